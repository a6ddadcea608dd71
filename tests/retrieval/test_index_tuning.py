"""Search-time parameters through FAISS's ParameterSpace (IVF nprobe, HNSW efSearch) and id exclusion."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from retrieval.heads import l2_normalise
from retrieval.index import build_index, load_index, save_index, search
from retrieval.index_tuning import apply_search_params, excluding, innermost


def _vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, dim)))


def _recall(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected, strict=True)]))


def test_ivf_nprobe_is_applied_and_raises_recall_against_flat(tmp_path: Path) -> None:
    gallery, queries = _vectors(4000), _vectors(100, seed=3)
    ids = np.arange(4000, dtype=np.int64)
    _, exact = search(build_index(gallery, ids, "Flat"), queries, 10)
    index = build_index(gallery, ids, "IVF64,Flat")
    assert faiss.extract_index_ivf(index).nprobe == 1  # FAISS's default: one list of 64
    one_list = _recall(search(index, queries, 10)[1], exact)
    apply_search_params(index, nprobe=16)
    assert faiss.extract_index_ivf(index).nprobe == 16
    sixteen = _recall(search(index, queries, 10)[1], exact)
    apply_search_params(index, nprobe=64)
    assert _recall(search(index, queries, 10)[1], exact) == 1.0  # every list: exact
    assert one_list < 0.6 < sixteen
    save_index(apply_search_params(index, nprobe=16), tmp_path / "ivf.faiss")
    assert faiss.extract_index_ivf(load_index(tmp_path / "ivf.faiss")).nprobe == 16  # stored with the index


def test_parameters_reach_wrapped_indexes_and_others_are_left_alone() -> None:
    gallery = _vectors(3000)
    ids = np.arange(3000, dtype=np.int64)
    pq = apply_search_params(build_index(gallery, ids, "PCA16,IVF32,PQ4x4"), ef_search=77, nprobe=9)
    assert faiss.extract_index_ivf(pq).nprobe == 9
    hnsw = apply_search_params(build_index(gallery, ids, "HNSW16"), ef_search=77, nprobe=9)
    assert innermost(hnsw).hnsw.efSearch == 77
    apply_search_params(build_index(gallery, ids, "Flat"), ef_search=77, nprobe=9)  # nothing to set: no error


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF16,Flat", "PCA16,IVF16,PQ4x4"])
def test_excluded_ids_never_come_back_and_the_page_stays_full(factory: str) -> None:
    gallery, queries = _vectors(2000), _vectors(10, seed=4)
    ids = np.arange(5000, 7000, dtype=np.int64)
    index = apply_search_params(build_index(gallery, ids, factory), ef_search=64, nprobe=16)
    _, before = search(index, queries, 10)
    removed = np.unique(before[:, :5])
    params = excluding(index, removed)
    _, after = search(index, queries, 10, params=params)
    assert not np.isin(after, removed).any() and (after >= 0).all()
    if factory == "IVF16,Flat":
        assert params.nprobe == 16  # the index's own setting is kept
    assert excluding(index, np.empty(0, dtype=np.int64)) is None
