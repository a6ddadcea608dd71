"""Search-time parameters of FAISS indexes that the factory string cannot express.

HNSW's ``efSearch`` (candidate-list size) and IVF's ``nprobe`` (inverted lists visited) trade recall
for speed; FAISS stores them inside the index file, so they can be applied either just before
`retrieval.index.save_index` or right after `retrieval.index.load_index`. They are set through FAISS's
own ``ParameterSpace``, which knows where each lives in wrapped indexes (ID maps, PCA, IVF-PQ).
Environment settings: ``REFIND_HNSW_EF_SEARCH`` and ``REFIND_IVF_NPROBE`` (parsed in webapp/settings.py;
defaults `DEFAULT_EF_SEARCH`, `DEFAULT_NPROBE`, measured in docs/benchmarks.md).
"""

from __future__ import annotations

import faiss
import numpy as np

DEFAULT_EF_SEARCH = 128
DEFAULT_NPROBE = 16


def innermost(index: faiss.Index) -> faiss.Index:
    """The index that does the work, unwrapped from ID maps and pre-transforms."""
    index = faiss.downcast_index(index)
    while hasattr(index, "index") and isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def set_parameter(index: faiss.Index, name: str, value: float) -> bool:
    """Set one search-time parameter with ``faiss.ParameterSpace``; False if this index type has none."""
    try:
        faiss.ParameterSpace().set_index_parameter(index, name, float(value))
    except RuntimeError:  # FAISS raises for a parameter the index type does not have
        return False
    return True


def apply_search_params(
    index: faiss.Index, ef_search: int = DEFAULT_EF_SEARCH, nprobe: int = DEFAULT_NPROBE
) -> faiss.Index:
    """Apply search-time parameters (efSearch for HNSW, nprobe for IVF) and return `index`."""
    set_parameter(index, "efSearch", max(1, int(ef_search)))
    set_parameter(index, "nprobe", max(1, int(nprobe)))
    return index


def excluding(index: faiss.Index, ids) -> faiss.SearchParameters | None:
    """Search parameters that leave `ids` out of the results (None when there are none to leave out).

    The parameters carry the index's own efSearch / nprobe: FAISS takes parameters passed to a search
    instead of the index's, and IVF refuses parameters of another type."""
    if ids is None or not len(ids):
        return None
    batch = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    selector = faiss.IDSelectorNot(batch)
    inner = innermost(index)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
    elif getattr(inner, "hnsw", None) is not None:
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=selector)
    params.referenced = (batch, selector)  # the C++ object points to them: keep them alive
    return params


def set_search_threads(threads: int = 1) -> None:
    """FAISS OpenMP threads for this process (process-wide).

    The app searches one query at a time; with more than one OpenMP thread every search ends in a
    barrier that waits for a second thread, which on a busy 2-core machine waits for a scheduler
    time slice: measured 10x slower p50 (docs/benchmarks.md). Call once at start-up in
    processes that serve searches; index builds may raise it again for the duration of a build.
    """
    faiss.omp_set_num_threads(max(1, int(threads)))
