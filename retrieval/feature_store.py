"""On-disk cache of backbone features, one folder per backbone, keyed by image id.

Layout of ``<root>/<backbone>/``: ``vectors.f32`` (rows of `dim` float32, append-only) and
``ids.i64`` (one int64 image id per row, append-only), plus ``meta.json`` with the dimension.
Rows are appended vectors first, ids second, each fsynced; on open, vectors beyond the last id
(a crash between the two writes) are truncated away, so a row exists exactly when its id does.
Readers memory-map both files. Appends are serialised with an exclusive file lock.

`erase` deletes rows in place (privacy: a removed image's features must not survive): the vector is
overwritten with zeros and the id with -1, both fsynced, and ``erasures`` grows by one record so that
every reader's id map is rebuilt. Erased rows keep their space until the store is rewritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ERASED = -1


class FeatureStore:
    """Append-only memory-mapped feature matrix for one backbone."""

    def __init__(self, root: str | os.PathLike, backbone: str, dim: int) -> None:
        self.dir = Path(root) / re.sub(r"[^A-Za-z0-9_.-]", "_", backbone)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._vectors = self.dir / "vectors.f32"
        self._ids = self.dir / "ids.i64"
        meta = self.dir / "meta.json"
        if meta.exists():
            stored = json.loads(meta.read_text())["dim"]
            if stored != dim:
                raise ValueError(f"Feature store {self.dir} holds {stored}-d features, not {dim}-d.")
        else:
            meta.write_text(json.dumps({"backbone": backbone, "dim": dim}))
        with self._locked():
            self._repair()
        self._erasures = self.dir / "erasures"
        self._erasures.touch(exist_ok=True)
        self._cache: tuple[tuple[int, int], np.ndarray, np.ndarray, dict[int, int]] | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _repair(self) -> None:
        """Drop torn rows left by a crash: keep min(complete vectors, ids) rows."""
        for path in (self._vectors, self._ids):
            path.touch(exist_ok=True)
        n_ids = self._ids.stat().st_size // 8
        n_vec = self._vectors.stat().st_size // (4 * self.dim)
        rows = min(n_ids, n_vec)
        if self._ids.stat().st_size != rows * 8:
            os.truncate(self._ids, rows * 8)
        if self._vectors.stat().st_size != rows * 4 * self.dim:
            os.truncate(self._vectors, rows * 4 * self.dim)

    def __len__(self) -> int:
        return self._ids.stat().st_size // 8

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store features for new ids (ids already present, or repeated in `ids`, are stored once)."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"Expected {len(ids)} x {self.dim} features, got {vectors.shape}.")
        with self._locked():
            self._repair()
            _, first = np.unique(ids, return_index=True)
            fresh = np.zeros(len(ids), dtype=bool)
            fresh[first] = True
            fresh &= ~np.isin(ids, self.ids())
            if not fresh.any():
                return
            for path, data in ((self._vectors, vectors[fresh]), (self._ids, ids[fresh])):
                with open(path, "ab") as handle:
                    handle.write(data.tobytes())
                    handle.flush()
                    os.fsync(handle.fileno())

    def erase(self, ids: np.ndarray) -> int:
        """Overwrite the rows of `ids` (zeros, id -1) in place and fsync; returns how many rows were erased."""
        ids = np.asarray(ids, dtype=np.int64)
        with self._locked():
            self._repair()
            rows = len(self)
            if not rows or not len(ids):
                return 0
            stored = np.memmap(self._ids, dtype=np.int64, mode="r", shape=(rows,))
            hits = np.flatnonzero(np.isin(stored, ids))
            del stored
            if not len(hits):
                return 0
            zeros = bytes(4 * self.dim)
            gone = np.array([ERASED], dtype=np.int64).tobytes()
            for path, row_bytes, value in ((self._vectors, 4 * self.dim, zeros), (self._ids, 8, gone)):
                fd = os.open(path, os.O_WRONLY)
                try:
                    for row in hits.tolist():
                        os.pwrite(fd, value, row * row_bytes)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            with open(self._erasures, "ab") as handle:
                handle.write(np.array([len(hits)], dtype=np.int64).tobytes())
                handle.flush()
                os.fsync(handle.fileno())
            return len(hits)

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """Memory maps of the current rows and the id → row map, extended (not rebuilt) as rows arrive and
        rebuilt after an erasure."""
        key = (len(self), self._erasures.stat().st_size)
        rows = key[0]
        if self._cache is None or self._cache[0] != key:
            if self._cache is not None and self._cache[0][1] != key[1]:
                self._cache = None  # rows were erased: rebuild the id map
            if rows == 0:
                ids = np.empty(0, dtype=np.int64)
                vectors = np.empty((0, self.dim), dtype=np.float32)
            else:
                ids = np.memmap(self._ids, dtype=np.int64, mode="r", shape=(rows,))
                vectors = np.memmap(self._vectors, dtype=np.float32, mode="r", shape=(rows, self.dim))
            known = self._cache[0][0] if self._cache is not None and self._cache[0][0] < rows else 0
            row_of = self._cache[3] if known else {}
            row_of.update(zip(np.asarray(ids[known:]).tolist(), range(known, rows), strict=True))
            row_of.pop(ERASED, None)
            self._cache = (key, ids, vectors, row_of)
        return self._cache[1], self._cache[2], self._cache[3]

    def ids(self) -> np.ndarray:
        ids = np.array(self._snapshot()[0])
        return ids[ids != ERASED]

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `ids` have stored features."""
        return np.isin(np.asarray(ids, dtype=np.int64), self._snapshot()[0])

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Features for `ids` in the given order; KeyError names any id without features."""
        _, vectors, row_of = self._snapshot()
        missing = [int(i) for i in ids if int(i) not in row_of]
        if missing:
            raise KeyError(f"No stored features for image ids {missing[:10]}")
        return np.asarray(vectors[[row_of[int(i)] for i in ids]], dtype=np.float32)

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, features) of every stored row; features are a read-only memory map; erased rows have id -1."""
        ids, vectors, _ = self._snapshot()
        return np.array(ids), vectors
