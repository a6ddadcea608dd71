"""FAISS index: build (ID-mapped, inner product), atomic versioned save, memory-mapped load, search."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from retrieval.atomic import atomic_write

DEFAULT_FACTORY = "Flat"


class IndexFactoryError(ValueError):
    """The index factory string cannot be built."""


def validate_factory(factory: str, dim: int = 64) -> None:
    """Raise IndexFactoryError unless FAISS can build an inner-product index from `factory`."""
    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise IndexFactoryError(f"FAISS cannot build index {factory!r}: {exc}") from exc


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str = DEFAULT_FACTORY) -> faiss.Index:
    """An inner-product index over L2-normalised `vectors` whose search returns `ids`.

    Indexes that need training (IVF, PQ) are trained on the vectors themselves; IVF's
    ``nlist`` is clipped so that small galleries still train.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    dim = vectors.shape[1]
    validate_factory(factory, dim)
    inner = faiss.index_factory(dim, fit_factory_to_size(factory, len(vectors)), faiss.METRIC_INNER_PRODUCT)
    if not inner.is_trained:
        if len(vectors) == 0:
            raise IndexFactoryError(f"Index {factory!r} needs training vectors; the gallery is empty.")
        inner.train(vectors)
    index = faiss.IndexIDMap2(inner)
    if len(vectors):
        index.add_with_ids(vectors, ids)
    return index


def fit_factory_to_size(factory: str, n: int) -> str:
    """Shrink ``IVF<nlist>`` so that every list gets at least 39 training vectors (FAISS's minimum)."""
    cap = max(1, n // 39)
    return re.sub(r"IVF(\d+)", lambda m: f"IVF{min(int(m.group(1)), cap)}", factory)


def save_index(index: faiss.Index, path: str | os.PathLike) -> Path:
    """Write atomically (``.part``, fsync, rename)."""
    return atomic_write(path, lambda part: faiss.write_index(index, part))


def load_index(path: str | os.PathLike, mmap: bool = True) -> faiss.Index:
    """Load memory-mapped where the index type allows, else into memory."""
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            pass
    return faiss.read_index(str(path))


def search(
    index: faiss.Index, queries: np.ndarray, k: int, params: faiss.SearchParameters | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) for each query row; missing neighbours have id -1 and are cut by the caller.

    `params`: e.g. `retrieval.index_tuning.excluding(index, ids)` to leave removed ids out."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    if params is None:
        return index.search(queries, k)
    # faiss.contrib.torch_utils (imported by pytorch-metric-learning) replaces `search` with a version
    # without `params`; it keeps FAISS's own as `search_numpy`
    return getattr(index, "search_numpy", index.search)(queries, k, params=params)


@dataclass(frozen=True)
class LoadedIndex:
    version: int
    path: str
    index: faiss.Index


class IndexHolder:
    """Keeps the active index of a process and swaps it when a newer version becomes active.

    `resolve` returns (version, path) of the active index and is cheap to call (e.g. one database
    query); `load` reads the index at a path (default `load_index`; a caller may first fetch a stored
    name into a local file); `prepare` sets search-time parameters on each loaded index. A search takes
    a reference to the current `LoadedIndex`; a swap replaces the reference, so searches in flight
    finish on the index they started with, and while one thread loads a new version the others keep
    searching the loaded one instead of waiting. An index that cannot be loaded (missing or corrupted
    file) is reported once through `on_error(version, exception)` and not retried; the index already
    loaded keeps serving (the error propagates only when there is none).
    """

    def __init__(
        self,
        resolve: Callable[[], tuple[int, str] | None],
        prepare: Callable[[faiss.Index], faiss.Index] | None = None,
        on_error: Callable[[int, Exception], None] | None = None,
        load: Callable[[str], faiss.Index] | None = None,
    ) -> None:
        self._resolve = resolve
        self._load = load or load_index
        self._prepare = prepare or (lambda index: index)
        self._on_error = on_error or (lambda version, exc: None)
        self._current: LoadedIndex | None = None
        self._failed: dict[tuple[int, str], Exception] = {}
        self._lock = threading.Lock()

    def current(self) -> LoadedIndex | None:
        active = self._resolve()
        if active is None:
            return None
        version, path = active
        loaded = self._current
        if loaded is not None and (loaded.version, loaded.path) == (version, path):
            return loaded
        if not self._lock.acquire(blocking=loaded is None):
            return loaded  # another thread is loading (maybe downloading) the new one: keep serving
        try:
            if self._current is not None and (self._current.version, self._current.path) == (version, path):
                return self._current
            if (version, path) not in self._failed:
                try:
                    self._current = LoadedIndex(version, path, self._prepare(self._load(path)))
                    return self._current
                except (RuntimeError, OSError) as exc:
                    self._failed[(version, path)] = exc
                    self._on_error(version, exc)
            if self._current is None:
                raise self._failed[(version, path)]
            return self._current
        finally:
            self._lock.release()
