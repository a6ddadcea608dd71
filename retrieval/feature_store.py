"""On-disk cache of backbone features, one folder per backbone, keyed by image id.

Layout of ``<root>/<backbone>/``: ``vectors.f32`` (rows of `dim` float32, append-only) and
``ids.i64`` (one int64 image id per row, append-only), plus ``meta.json`` with the dimension.
Rows are appended vectors first, ids second, each fsynced; on open, vectors beyond the last id
(a crash between the two writes) are truncated away, so a row exists exactly when its id does.
Readers memory-map both files. Appends are serialised with an exclusive file lock.
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
        self._cache: tuple[int, np.ndarray, np.ndarray, dict[int, int]] | None = None

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

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """Memory maps of the current rows and the id → row map, extended (not rebuilt) as rows arrive."""
        rows = len(self)
        if self._cache is None or self._cache[0] != rows:
            if rows == 0:
                ids = np.empty(0, dtype=np.int64)
                vectors = np.empty((0, self.dim), dtype=np.float32)
            else:
                ids = np.memmap(self._ids, dtype=np.int64, mode="r", shape=(rows,))
                vectors = np.memmap(self._vectors, dtype=np.float32, mode="r", shape=(rows, self.dim))
            known = self._cache[0] if self._cache is not None and self._cache[0] < rows else 0
            row_of = self._cache[3] if known else {}
            row_of.update(zip(np.asarray(ids[known:]).tolist(), range(known, rows), strict=True))
            self._cache = (rows, ids, vectors, row_of)
        return self._cache[1], self._cache[2], self._cache[3]

    def ids(self) -> np.ndarray:
        return np.array(self._snapshot()[0])

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
        """(ids, features) of every stored row; features are a read-only memory map."""
        ids, vectors, _ = self._snapshot()
        return np.array(ids), vectors
