"""Search-time parameters of FAISS indexes that the factory string cannot express.

HNSW's ``efSearch`` (candidate-list size: higher = better recall, slower) is a search-time
setting; FAISS stores it inside the index file, so it can be applied either just before
`retrieval.index.save_index` or right after `retrieval.index.load_index`. Environment setting:
``REFIND_HNSW_EF_SEARCH`` (parsed in webapp/settings.py; default `DEFAULT_EF_SEARCH`, chosen in
docs/benchmarks.md).
"""

from __future__ import annotations

import faiss

DEFAULT_EF_SEARCH = 128


def innermost(index: faiss.Index) -> faiss.Index:
    """The index that does the work, unwrapped from ID maps and pre-transforms."""
    index = faiss.downcast_index(index)
    while hasattr(index, "index") and isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def set_ef_search(index: faiss.Index, ef_search: int) -> bool:
    """Set HNSW ``efSearch`` on `index` (or the HNSW index it wraps); False if it is not HNSW."""
    inner = innermost(index)
    hnsw = getattr(inner, "hnsw", None)
    if hnsw is None:
        return False
    hnsw.efSearch = max(1, int(ef_search))
    return True


def apply_search_params(index: faiss.Index, ef_search: int = DEFAULT_EF_SEARCH) -> faiss.Index:
    """Apply search-time parameters (efSearch for HNSW) and return `index`."""
    set_ef_search(index, ef_search)
    return index


def set_search_threads(threads: int = 1) -> None:
    """FAISS OpenMP threads for this process (process-wide).

    The app searches one query at a time; with more than one OpenMP thread every search ends in a
    barrier that waits for a second thread, which on a busy 2-core machine waits for a scheduler
    time slice: measured 10x slower p50 (docs/benchmarks.md). Call once at start-up in
    processes that serve searches; index builds may raise it again for the duration of a build.
    """
    faiss.omp_set_num_threads(max(1, int(threads)))
