"""FAISS index: exact results equal brute force; atomic versioned files; memory-mapped loads; hot swap."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from retrieval.heads import l2_normalise
from retrieval.index import IndexFactoryError, IndexHolder, build_index, load_index, save_index, search


def _vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, dim)))


def _brute_force(gallery: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int):
    scores = queries @ gallery.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def test_flat_index_equals_numpy_brute_force() -> None:
    gallery, queries = _vectors(500), _vectors(20, seed=1)
    ids = np.arange(1000, 1500, dtype=np.int64)[::-1].copy()  # ids unrelated to row order
    scores, found = search(build_index(gallery, ids, "Flat"), queries, 10)
    expected_scores, expected_ids = _brute_force(gallery, ids, queries, 10)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_hnsw_finds_nearly_all_true_neighbours() -> None:
    gallery, queries = _vectors(2000), _vectors(50, seed=2)
    ids = np.arange(2000, dtype=np.int64)
    _, found = search(build_index(gallery, ids, "HNSW32"), queries, 10)
    _, expected = _brute_force(gallery, ids, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, expected, strict=True)])
    assert recall >= 0.9


def test_ivf_returns_true_inner_products_in_rank_order() -> None:
    gallery, queries = _vectors(2000), _vectors(20, seed=2)
    scores, found = search(build_index(gallery, np.arange(2000, dtype=np.int64), "IVF16,Flat"), queries, 10)
    for query, row_scores, row_ids in zip(queries, scores, found, strict=True):
        kept = row_ids >= 0
        np.testing.assert_allclose(row_scores[kept], gallery[row_ids[kept]] @ query, rtol=1e-5)
        assert (np.diff(row_scores[kept]) <= 1e-6).all()


def test_ivf_on_a_small_gallery_still_builds() -> None:
    index = build_index(_vectors(100), np.arange(100, dtype=np.int64), "IVF4096,Flat")
    assert index.ntotal == 100


def test_unknown_factory_is_a_clear_error() -> None:
    with pytest.raises(IndexFactoryError, match="cannot build index"):
        build_index(_vectors(10), np.arange(10, dtype=np.int64), "NoSuchIndex")


def test_save_is_atomic_and_load_is_memory_mapped(tmp_path: Path) -> None:
    gallery = _vectors(300)
    ids = np.arange(300, dtype=np.int64)
    path = save_index(build_index(gallery, ids), tmp_path / "index-000001.faiss")
    assert path.exists() and not list(tmp_path.glob("*.part"))
    loaded = load_index(path)
    _, found = search(loaded, gallery[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "index.faiss"
    save_index(build_index(_vectors(50), np.arange(50, dtype=np.int64)), path)
    before = path.read_bytes()

    def disk_full(index, name):
        Path(name).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("retrieval.index.faiss.write_index", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_index(build_index(_vectors(60), np.arange(60, dtype=np.int64)), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.part"))


def test_holder_swaps_to_a_new_version_while_searches_run(tmp_path: Path) -> None:
    old, new = _vectors(400, seed=3), _vectors(400, seed=4)
    ids = np.arange(400, dtype=np.int64)
    save_index(build_index(old, ids), tmp_path / "v1.faiss")
    save_index(build_index(new, ids + 10_000), tmp_path / "v2.faiss")
    active = {"value": (1, str(tmp_path / "v1.faiss"))}
    holder = IndexHolder(lambda: active["value"])
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                loaded = holder.current()
                _, found = search(loaded.index, old[:3], 5)
                assert (found >= 10_000).all() if loaded.version == 2 else (found < 10_000).all()
                seen.add(loaded.version)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    while 1 not in seen:
        pass
    active["value"] = (2, str(tmp_path / "v2.faiss"))
    while 2 not in seen and not errors:
        pass
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert holder.current().version == 2


def test_while_one_thread_loads_a_new_version_the_others_keep_searching(tmp_path: Path) -> None:
    ids = np.arange(50, dtype=np.int64)
    for name in ("v1", "v2"):
        save_index(build_index(_vectors(50), ids), tmp_path / f"{name}.faiss")
    loading, release = threading.Event(), threading.Event()

    def slow_load(path: str):  # e.g. a download from object storage
        if path.endswith("v2.faiss"):
            loading.set()
            release.wait(30)
        return load_index(path)

    active = {"value": (1, str(tmp_path / "v1.faiss"))}
    holder = IndexHolder(lambda: active["value"], load=slow_load)
    assert holder.current().version == 1
    active["value"] = (2, str(tmp_path / "v2.faiss"))
    loader = threading.Thread(target=holder.current)
    loader.start()
    assert loading.wait(30)
    assert holder.current().version == 1  # answered at once, not after the load
    release.set()
    loader.join()
    assert holder.current().version == 2
