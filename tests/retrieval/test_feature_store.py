"""The feature store: append-only, memory-mapped, keyed by image id, repaired after a torn write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.feature_store import FeatureStore


def test_append_and_get_by_id(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "bb", 4)
    store.append(np.array([7, 3]), np.array([[1, 1, 1, 1], [3, 3, 3, 3]], dtype=np.float32))
    store.append(np.array([5]), np.full((1, 4), 5, dtype=np.float32))
    np.testing.assert_array_equal(store.get(np.array([5, 7, 3]))[:, 0], [5, 1, 3])
    assert store.contains(np.array([3, 4])).tolist() == [True, False]
    assert len(store) == 3


def test_ids_are_stored_once(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "bb", 2)
    store.append(np.array([1, 1]), np.array([[1, 1], [2, 2]], dtype=np.float32))
    store.append(np.array([1, 2]), np.array([[9, 9], [2, 2]], dtype=np.float32))
    assert len(store) == 2
    np.testing.assert_array_equal(store.get(np.array([1]))[0], [1, 1])


def test_missing_ids_raise_keyerror(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "bb", 2)
    with pytest.raises(KeyError, match="42"):
        store.get(np.array([42]))


def test_a_torn_append_is_repaired_on_open(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "bb", 2)
    store.append(np.array([1]), np.ones((1, 2), dtype=np.float32))
    with open(store.dir / "vectors.f32", "ab") as handle:  # crash after the vectors, before the ids
        handle.write(np.ones((1, 2), dtype=np.float32).tobytes() + b"\x00\x01")
    reopened = FeatureStore(tmp_path, "bb", 2)
    assert len(reopened) == 1
    reopened.append(np.array([2]), np.full((1, 2), 2, dtype=np.float32))
    np.testing.assert_array_equal(reopened.get(np.array([2, 1])), [[2, 2], [1, 1]])


def test_dimension_mismatch_is_refused(tmp_path: Path) -> None:
    FeatureStore(tmp_path, "bb", 2)
    with pytest.raises(ValueError, match="2-d features"):
        FeatureStore(tmp_path, "bb", 3)


def test_backbones_have_separate_folders(tmp_path: Path) -> None:
    FeatureStore(tmp_path, "torchvision:resnet50", 2).append(np.array([1]), np.ones((1, 2), dtype=np.float32))
    assert len(FeatureStore(tmp_path, "efficientnet_lite0", 2)) == 0


def test_erase_overwrites_rows_in_place_and_forgets_them(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "bb", 3)
    store.append(np.array([1, 2, 3]), np.arange(9, dtype=np.float32).reshape(3, 3) + 1)
    reader = FeatureStore(tmp_path, "bb", 3)  # another process's view, snapshot taken before the erasure
    assert reader.contains(np.array([2])).tolist() == [True]
    assert store.erase(np.array([2, 99])) == 1
    raw = np.fromfile(store.dir / "vectors.f32", dtype=np.float32).reshape(-1, 3)
    assert not raw[1].any() and raw[0].all() and raw[2].all()  # the bytes are gone, the others kept
    assert np.fromfile(store.dir / "ids.i64", dtype=np.int64).tolist() == [1, -1, 3]
    for view in (store, reader):
        assert view.contains(np.array([1, 2, 3])).tolist() == [True, False, True]
        assert view.ids().tolist() == [1, 3]
        with pytest.raises(KeyError):
            view.get(np.array([2]))
        np.testing.assert_array_equal(view.get(np.array([3]))[0], [7, 8, 9])
    store.append(np.array([4]), np.ones((1, 3), dtype=np.float32))
    assert reader.contains(np.array([4, 2])).tolist() == [True, False]
    assert store.erase(np.array([2])) == 0
