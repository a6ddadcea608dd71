"""The CPU-optimised extractor matches the eager model, is batching-invariant and drops undecodable items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from retrieval.backbones import Backbone, load_backbone, optimize_for_cpu
from retrieval.extraction import FeatureExtractor, preprocess

RTOL = 1e-4


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone()


@pytest.fixture(scope="module")
def shared(backbone: Backbone) -> FeatureExtractor:
    """One optimised extractor for the module (building it deep-copies and traces the model)."""
    return FeatureExtractor(backbone)


@pytest.fixture
def extractor(shared: FeatureExtractor) -> FeatureExtractor:
    shared.batch_size, shared.micro_batch = 16, 1
    return shared


def generated_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Smooth gradients plus noise, in a few sizes and aspect ratios (exercises resize and crop)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        height, width = 180 + 40 * i, 300 - 30 * i
        ramp = np.linspace(0, 255, width)[None, :, None] * rng.uniform(0.2, 1.0, 3)
        noise = rng.normal(0, 30, (height, width, 3))
        images.append(Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8), "RGB"))
    return images


def eager_features(backbone: Backbone, crops: list[np.ndarray]) -> np.ndarray:
    """Reference: the backbone's own eager model on a contiguous NCHW batch."""
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().contiguous()
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(backbone.std).view(1, 3, 1, 1) * 255.0
    return backbone((batch - mean) / std).numpy()


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * float(np.abs(expected).max()))


def test_optimised_extractor_matches_the_eager_model(backbone: Backbone, extractor: FeatureExtractor) -> None:
    crops = [preprocess(image, backbone) for image in generated_images(3)]
    assert all(crop.shape == (224, 224, 3) for crop in crops)
    features = extractor.features(crops)
    assert features.shape == (3, backbone.dim) and features.dtype == np.float32
    assert_close(features, eager_features(backbone, crops))


def test_features_do_not_depend_on_the_batch_size(backbone: Backbone, extractor: FeatureExtractor) -> None:
    crops = [preprocess(image, backbone) for image in generated_images(4, seed=1)]
    one = extractor.features(crops)
    extractor.micro_batch = 4
    four = extractor.features(crops)
    extractor.micro_batch = 3  # uneven last chunk
    three = extractor.features(crops)
    assert_close(four, one)
    assert_close(three, one)


def test_optimising_leaves_the_backbone_model_untouched(backbone: Backbone, extractor: FeatureExtractor) -> None:
    before = {key: value.clone() for key, value in backbone.model.state_dict().items()}
    fast = extractor.forward.model
    assert fast is not backbone.model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in backbone.model.modules()) > 0
    after = backbone.model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[key], before[key]) for key in before)


def test_optimize_for_cpu_folds_batchnorm_of_any_traceable_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, groups=8, padding=1), nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    for bn in (model[1], model[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    model.eval()
    fast = optimize_for_cpu(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    inputs = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert_close(fast(inputs.contiguous(memory_format=torch.channels_last)).numpy(), model(inputs).numpy())


def test_stream_drops_items_whose_loader_returns_none(backbone: Backbone, extractor: FeatureExtractor) -> None:
    images = generated_images(5, seed=2)
    extractor.batch_size = 2

    def load(index: int) -> Image.Image | None:
        return None if index in (1, 2) else images[index]

    batches = list(extractor.stream(range(5), load))
    kept = [item for items, _ in batches for item in items]
    features = np.concatenate([feats for _, feats in batches])
    assert kept == [0, 3, 4]
    assert features.shape == (3, backbone.dim)
    assert all(len(items) == len(feats) for items, feats in batches)
    expected = extractor.features([preprocess(images[i], backbone) for i in kept])
    assert_close(features, expected)


def test_stream_of_only_undecodable_items_yields_no_features(backbone: Backbone, extractor: FeatureExtractor) -> None:
    extractor.batch_size = 2
    batches = list(extractor.stream(range(3), lambda _: None))
    assert all(items == [] and feats.shape == (0, backbone.dim) for items, feats in batches)


def test_torch_threads_restores_the_process_setting() -> None:
    from retrieval.extraction import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_parallel_forward_passes_give_the_same_features() -> None:
    backbone = load_backbone()
    crops = [np.random.default_rng(i).integers(0, 256, (224, 224, 3), dtype=np.uint8) for i in range(5)]
    sequential = FeatureExtractor(backbone, parallel=1).features(crops)
    side_by_side = FeatureExtractor(backbone, parallel=3).features(crops)
    np.testing.assert_allclose(side_by_side, sequential, rtol=1e-5, atol=1e-6)
