"""Inference paths: exported models match the eager backbone, int8 stays close, exports are keyed and cached."""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval import inference
from retrieval.backbones import Backbone, load_backbone
from retrieval.extraction import FeatureExtractor, preprocess
from retrieval.inference import ExportOptions, OnnxForward, check_path, export_key, exported_model, make_forward
from tests.retrieval.test_extraction import eager_features, generated_images

# Exported models are named by their content, so one folder serves every test run on this machine
# (the int8 export calibrates on 128 crops once; later runs reuse it).
SHARED_EXPORTS = Path(os.environ.get("REFIND_EXPORTS_DIR", Path(tempfile.gettempdir()) / "refind-test-exports"))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    backbone = load_backbone()
    return [preprocess(image, backbone) for image in generated_images(4, seed=5)]


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite0+gem3"])
def test_fp32_export_matches_the_eager_model_under_each_pooling(name: str, crops: list[np.ndarray]) -> None:
    backbone = load_backbone(name)
    forward = make_forward(backbone, "fp32", SHARED_EXPORTS)
    assert isinstance(forward, OnnxForward) and inference.pools_outside(backbone)
    onnx = np.concatenate([forward(crop[None]) for crop in crops])
    eager = eager_features(backbone, crops)
    assert onnx.shape == eager.shape == (len(crops), backbone.dim)
    np.testing.assert_allclose(onnx, eager, rtol=1e-4, atol=1e-4 * float(np.abs(eager).max()))
    assert cosines(onnx, eager).min() > 0.99999


def test_one_export_serves_every_pooling() -> None:
    """The graph ends at the feature map: avg and GeM backbones share one exported file."""
    avg, gem = load_backbone("efficientnet_lite0"), load_backbone("efficientnet_lite0+gem3")
    assert export_key(avg, ExportOptions()) == export_key(gem, ExportOptions())
    assert export_key(avg, ExportOptions()) != export_key(avg, ExportOptions(precision="int8"))


def test_int8_features_stay_within_a_cosine_bound_of_full_precision(crops: list[np.ndarray]) -> None:
    backbone = load_backbone("efficientnet_lite0+gem3")
    full = np.concatenate([make_forward(backbone, "fp32", SHARED_EXPORTS)(c[None]) for c in crops])
    int8 = make_forward(backbone, "int8", SHARED_EXPORTS)
    quantised = np.concatenate([int8(c[None]) for c in crops])
    similarity = cosines(quantised, full)
    assert similarity.min() > 0.97, similarity
    assert not np.allclose(quantised, full, rtol=1e-3)  # it really is another model


def test_extractor_runs_any_path_and_batches_alike(crops: list[np.ndarray]) -> None:
    backbone = load_backbone()
    extractor = FeatureExtractor(backbone, forward=make_forward(backbone, "fp32", SHARED_EXPORTS), parallel=2)
    one_by_one = extractor.features(crops)
    extractor.micro_batch = 3
    np.testing.assert_allclose(extractor.features(crops), one_by_one, rtol=1e-4, atol=1e-5)


def tuned_copy(backbone: Backbone) -> Backbone:
    """The backbone with changed weights, as a backbone run leaves it."""
    model = copy.deepcopy(backbone.model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in list(model.parameters())[-6:]:
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator) * parameter.abs().mean())
    return dataclasses.replace(backbone, model=model.eval(), name=f"{backbone.name}@models/run.pt")


def test_a_tuned_backbone_round_trips_through_export(tmp_path: Path, crops: list[np.ndarray]) -> None:
    base = load_backbone("efficientnet_lite0+gem3")
    tuned = tuned_copy(base)
    assert export_key(tuned, ExportOptions()) != export_key(base, ExportOptions())
    # The run exports next to its weights; a host that loads the same weights computes the same key.
    published = tmp_path / "published.onnx"
    inference.export_model(tuned, ExportOptions(), published)
    reloaded = dataclasses.replace(load_backbone("efficientnet_lite0+gem3"), name=tuned.name)
    reloaded.model.load_state_dict(tuned.model.state_dict())
    key = export_key(reloaded, ExportOptions())
    seen: list[str] = []

    def lookup(asked: str) -> Path:
        seen.append(asked)
        return published

    forward = make_forward(reloaded, "fp32", tmp_path / "host-cache", lookup)
    assert seen == [key] and forward.model_path == published
    assert not (tmp_path / "host-cache").exists()  # nothing exported on this host
    features = np.concatenate([forward(c[None]) for c in crops])
    np.testing.assert_allclose(features, eager_features(tuned, crops), rtol=1e-4,
                               atol=1e-4 * float(np.abs(features).max()))
    assert cosines(features, eager_features(base, crops)).min() < 0.99999  # the tuned weights, not the base's


def test_a_host_without_the_exported_file_creates_it_once(tmp_path: Path, monkeypatch) -> None:
    backbone = load_backbone()
    cache = tmp_path / "exports"
    first = exported_model(backbone, ExportOptions(), cache, published=lambda key: None)
    assert first.is_file() and first.parent == cache and first.name == f"{export_key(backbone, ExportOptions())}.onnx"
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary files left behind

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(inference, "export_model", no_second_export)
    assert exported_model(backbone, ExportOptions(), cache) == first


def test_calibration_crops_are_fixed_natural_photos() -> None:
    crops = inference.calibration_crops(64, count=6)
    again = inference.calibration_crops(64, count=6)
    assert len(crops) == 6 and all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in crops)
    assert all(np.array_equal(a, b) for a, b in zip(crops, again, strict=True))
    assert min(float(c.std()) for c in crops) > 5  # real pictures, not blank frames


@pytest.mark.parametrize("bad", ["INT8", "onnx", "", " fp32", "bf16"])
def test_path_names_are_strict(bad: str) -> None:
    with pytest.raises(ValueError, match="Unknown inference path"):
        check_path(bad)
    with pytest.raises(ValueError, match="Unknown inference path"):
        make_forward(load_backbone(), bad)
    assert [check_path(p) for p in inference.PATHS] == list(inference.PATHS)
