"""Training-free re-weighting of gallery and query vectors: database-side augmentation and α-query expansion.

Both replace a vector by a similarity-weighted average of itself and its nearest gallery neighbours
(Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human annotation", 2018, αQE / αDBA):
weights are ``max(similarity, 0) ** alpha``, the vector itself has weight 1, the result is L2-normalised.
DBA does it to every gallery vector once (at index build), QE to a query after a first search.
Whether either helps is measured leak-free in docs/benchmarks.md §10; both are off by default.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_ALPHA = 3.0


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def weighted_average(own: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray,
                     alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Rows of `own` (N x d) averaged with their neighbours (N x k x d), weights similarity ** alpha."""
    weights = np.power(np.clip(similarities, 0.0, None), alpha)[..., None]
    return l2_normalise(own + (weights * neighbours).sum(axis=1))


def database_side_augmentation(vectors: np.ndarray, k: int, alpha: float = DEFAULT_ALPHA,
                               chunk: int = 2048) -> np.ndarray:
    """αDBA: each L2-normalised gallery row averaged with its `k` nearest other rows (exact search)."""
    vectors = l2_normalise(vectors)
    if k <= 0 or len(vectors) < 2:
        return vectors
    k = min(k, len(vectors) - 1)
    out = np.empty_like(vectors)
    for start in range(0, len(vectors), chunk):
        block = vectors[start : start + chunk]
        sims = block @ vectors.T
        sims[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not itself
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near_sims = np.take_along_axis(sims, nearest, axis=1)
        out[start : start + len(block)] = weighted_average(block, vectors[nearest], near_sims, alpha)
    return out


def query_expansion(query: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray,
                    alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """αQE: a normalised query (d,) or (1, d) averaged with its top gallery vectors (k x d) and their scores."""
    query = np.asarray(query, dtype=np.float32).reshape(1, -1)
    if len(neighbours) == 0:
        return l2_normalise(query)
    return weighted_average(l2_normalise(query), np.asarray(neighbours, np.float32)[None],
                            np.asarray(similarities, np.float32)[None], alpha)


def augment_with_index(
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]], vectors: np.ndarray, ids: np.ndarray | None,
    k: int, alpha: float = DEFAULT_ALPHA, batch: int = 4096,
) -> np.ndarray:
    """αDBA through an index's search (any FAISS index, so large galleries need no N x N product): each row
    of `vectors` averaged with its `k` nearest index vectors other than itself (`ids[i]` is row i's id in the
    index; None: the rows are not in it). Neighbour vectors come from `vectors` by id when present."""
    vectors = l2_normalise(vectors)
    if k <= 0 or len(vectors) == 0:
        return vectors
    row_of = {} if ids is None else {int(i): n for n, i in enumerate(ids)}
    out = np.empty_like(vectors)
    for start in range(0, len(vectors), batch):
        block = vectors[start : start + batch]
        scores, found = search(block, k + 1)
        for n in range(len(block)):
            own = None if ids is None else int(ids[start + n])
            pairs = [(int(i), float(s)) for i, s in zip(found[n], scores[n], strict=True)
                     if i >= 0 and int(i) != own and int(i) in row_of][:k]
            rows = [row_of[i] for i, _ in pairs]
            out[start + n] = weighted_average(block[n : n + 1], vectors[rows][None], np.array([[s for _, s in pairs]]),
                                              alpha)[0] if rows else block[n]
    return out
