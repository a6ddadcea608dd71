"""Metric heads: map backbone features to the L2-normalised vectors that are indexed.

Built in: ``identity`` (normalise the features) and ``pca`` (centre, project onto the top
principal components, whiten optionally, normalise). Trained heads from ``training/`` plug in
through `register_head`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np

from retrieval.atomic import atomic_write_bytes


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class MetricHead(Protocol):
    kind: str

    def output_dim(self, input_dim: int) -> int: ...

    def apply(self, features: np.ndarray) -> np.ndarray:
        """L2-normalised float32 vectors for a batch of backbone features."""

    def to_bytes(self) -> bytes: ...


class IdentityHead:
    kind = "identity"

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    def apply(self, features: np.ndarray) -> np.ndarray:
        return l2_normalise(features)

    def to_bytes(self) -> bytes:
        return b""

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityHead:
        return cls()


class PCAHead:
    """Centre, project onto `components` (d x k), normalise."""

    kind = "pca"

    def __init__(self, mean: np.ndarray, components: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.components = np.asarray(components, dtype=np.float32)

    @classmethod
    def fit(cls, features: np.ndarray, dim: int) -> PCAHead:
        features = l2_normalise(features)
        if len(features) < 2:
            raise ValueError("PCA needs at least two feature vectors.")
        dim = min(dim, features.shape[1], len(features))
        mean = features.mean(axis=0)
        _, _, vt = np.linalg.svd(features - mean, full_matrices=False)
        return cls(mean, vt[:dim].T)

    def output_dim(self, input_dim: int) -> int:
        return self.components.shape[1]

    def apply(self, features: np.ndarray) -> np.ndarray:
        return l2_normalise((l2_normalise(features) - self.mean) @ self.components)

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(out, mean=self.mean, components=self.components)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PCAHead:
        arrays = np.load(io.BytesIO(data))
        return cls(arrays["mean"], arrays["components"])


_LOADERS: dict[str, Callable[[bytes], MetricHead]] = {
    IdentityHead.kind: IdentityHead.from_bytes,
    PCAHead.kind: PCAHead.from_bytes,
}


def register_head(kind: str, loader: Callable[[bytes], MetricHead]) -> None:
    """Make a head kind loadable by `load_head` (used by trained heads)."""
    _LOADERS[kind] = loader


def save_head(head: MetricHead, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, head.to_bytes())


def load_head(kind: str, path: str | os.PathLike | None) -> MetricHead:
    if kind not in _LOADERS:
        raise ValueError(f"Unknown metric head kind {kind!r}; known: {sorted(_LOADERS)}")
    data = b"" if path is None else open(path, "rb").read()
    return _LOADERS[kind](data)
