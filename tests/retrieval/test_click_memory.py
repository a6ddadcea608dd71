"""Click memory's update rule (bounded, towards the query / away from it) and the overlay search (exact)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.augment import l2_normalise
from retrieval.click_memory import ClickMemory, MemoryConfig, Overlay, search_with_overlay, shifted_features
from retrieval.index import build_index, search


def _features(n: int = 40, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(size=(n, dim))).astype(np.float32) * 3


def test_a_positive_moves_both_together_and_a_negative_moves_away() -> None:
    feats = _features()
    memory = ClickMemory(MemoryConfig(step=0.2, negative_step=0.1, max_shift=1.0))
    units = l2_normalise(feats)
    before = units @ units.T
    changed = memory.apply(0, [1], [2], lambda ids: feats[ids])
    assert changed == {0, 1, 2}
    served = l2_normalise(shifted_features(feats[[0, 1, 2]], np.stack([memory.offsets[i] for i in (0, 1, 2)])))
    assert served[0] @ served[1] > before[0, 1]
    assert served[0] @ served[2] < before[0, 2]


def test_offsets_are_bounded_whatever_the_clicks_say() -> None:
    feats = _features()
    memory = ClickMemory(MemoryConfig(step=0.5, negative_step=0.5, max_shift=0.2))
    for _ in range(200):
        memory.apply(0, [1, 3], [2], lambda ids: feats[ids])
    assert max(np.linalg.norm(offset) for offset in memory.offsets.values()) <= 0.2 + 1e-6


def test_images_that_are_not_movable_stay_put() -> None:
    feats = _features()
    memory = ClickMemory()
    changed = memory.apply(0, [1], [], lambda ids: feats[ids], movable=lambda image: image != 0)
    assert changed == {1} and 0 not in memory.offsets
    assert memory.apply(0, [0], [0], lambda ids: feats[ids]) == set()  # the query itself is neither


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError):
        MemoryConfig(max_shift=-1)
    with pytest.raises(ValueError):
        MemoryConfig(step=2)


def test_search_with_overlay_equals_a_brute_force_search_of_the_replaced_rows() -> None:
    rng = np.random.default_rng(3)
    vectors = l2_normalise(rng.normal(size=(300, 8)))
    ids = np.arange(1000, 1300, dtype=np.int64)
    index = build_index(vectors, ids)
    moved = rng.choice(300, size=60, replace=False)
    replaced = vectors.copy()
    replaced[moved] = l2_normalise(rng.normal(size=(60, 8)))
    overlay = Overlay(ids[moved], replaced[moved])
    for q in l2_normalise(rng.normal(size=(20, 8))):
        got = search_with_overlay(lambda query, n: search(index, query, n), index.ntotal, overlay, q, 25)
        expected = np.argsort(-(replaced @ q))[:25]
        assert [i for i, _ in got] == ids[expected].tolist()
        assert np.allclose([s for _, s in got], (replaced @ q)[expected], atol=1e-5)
