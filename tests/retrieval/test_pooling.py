"""Pooling of the last feature map: GeM and average, their names, and backbones that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.backbones import BackboneUnavailable, load_backbone
from retrieval.extraction import FeatureExtractor
from retrieval.pooling import (
    AVG,
    Pooling,
    PoolingError,
    parse_pooling,
    pooled_name,
    pooling_from_key,
    split_pooled_name,
)


def test_gem_lies_between_the_average_and_the_maximum_and_p1_is_the_average() -> None:
    fmap = torch.rand(3, 5, 4, 4, generator=torch.Generator().manual_seed(0)) * 6
    avg, gem3, gem1 = AVG(fmap), Pooling("gem", 3)(fmap), Pooling("gem", 1)(fmap)
    peak = fmap.amax(dim=(2, 3))
    assert torch.all(gem3 > avg) and torch.all(gem3 < peak)
    assert torch.allclose(gem1, avg, atol=1e-6)
    assert torch.allclose(Pooling("gem", 3)(fmap), fmap.pow(3).mean(dim=(2, 3)).pow(1 / 3), atol=1e-5)


def test_numpy_and_torch_pool_alike_including_float16_maps() -> None:
    fmap = torch.rand(2, 7, 3, 3, generator=torch.Generator().manual_seed(1)) * 6 - 1  # some negatives
    for pooling in (AVG, Pooling("gem", 3), Pooling("gem", 2.5)):
        assert np.allclose(pooling.numpy(fmap.numpy()), pooling(fmap).numpy(), atol=1e-5)
        half = pooling.numpy(fmap.numpy().astype(np.float16))
        assert half.dtype == np.float32 and np.allclose(half, pooling(fmap).numpy(), atol=1e-2)


def test_settings_values_are_parsed_strictly() -> None:
    assert parse_pooling("gem") == Pooling("gem", 3.0)
    assert parse_pooling("GEM", "4") == Pooling("gem", 4.0)
    assert parse_pooling("avg", "4") == AVG
    for kind, p in (("max", None), ("gem", "three"), ("gem", "nan"), ("gem", "inf"), ("gem", "0"), ("gem", "-1"),
                    ("gem", "100")):
        with pytest.raises(PoolingError):
            parse_pooling(kind, p)


def test_names_carry_the_pooling_and_average_keeps_the_old_name() -> None:
    assert pooled_name("efficientnet_lite0", AVG) == "efficientnet_lite0"
    assert pooled_name("efficientnet_lite0", Pooling("gem", 3)) == "efficientnet_lite0+gem3"
    assert pooled_name("torchvision:resnet50", Pooling("gem", 2.5)) == "torchvision:resnet50+gem2.5"
    for name in ("efficientnet_lite0", "efficientnet_lite0+gem3", "torchvision:resnet50+gem2.5"):
        base, pooling = split_pooled_name(name)
        assert pooled_name(base, pooling) == name
    assert pooling_from_key("gem3") == Pooling("gem", 3)
    with pytest.raises(PoolingError):
        split_pooled_name("efficientnet_lite0+max")


def test_backbone_features_are_the_pooled_feature_map() -> None:
    avg, gem = load_backbone("efficientnet_lite0"), load_backbone("efficientnet_lite0+gem3")
    assert (avg.name, gem.name, gem.pooling) == ("efficientnet_lite0", "efficientnet_lite0+gem3", Pooling("gem", 3))
    crops = [np.random.default_rng(i).integers(0, 256, (224, 224, 3), dtype=np.uint8) for i in range(2)]
    extractor = FeatureExtractor(gem, parallel=1)
    batch = extractor._to_input(np.stack(crops))
    fmap = gem.feature_map(batch)
    assert fmap.shape == (2, 1280, 7, 7)
    assert torch.allclose(avg.feature_map(batch), fmap)  # the same network; only the pooling differs
    features = extractor.features(crops)  # the CPU-optimised copy
    assert np.allclose(features, gem.pooling.numpy(fmap.numpy()), rtol=1e-3, atol=1e-4)
    assert np.allclose(FeatureExtractor(avg, parallel=1).features(crops), fmap.mean(dim=(2, 3)).numpy(),
                       rtol=1e-3, atol=1e-4)
    assert not np.allclose(features, fmap.mean(dim=(2, 3)).numpy(), rtol=1e-2)


def test_a_bad_pooling_suffix_is_a_clear_backbone_error() -> None:
    with pytest.raises(BackboneUnavailable, match="pooling"):
        load_backbone("efficientnet_lite0+max")
