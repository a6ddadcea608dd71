"""Click-like triplets for the feedback-adaptation benchmark (simulated users on labelled data)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def split_per_class(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out rows: each class's rows shuffled with ``seed``, the second half held out."""
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        held_out[rows[len(rows) // 2 :]] = True
    return held_out


class ClickSimulator:
    """A user searches with a feedback image, sees the top ``top_k`` feedback images under the current
    model and clicks a same-species result that has a different-species result ranked above it; the
    triplet is (query, clicked result, a different-species result ranked above the click)."""

    def __init__(self, labels: np.ndarray, pool: np.ndarray, top_k: int = 20, seed: int = 0) -> None:
        self.labels = np.asarray(labels)
        self.pool = np.asarray(pool)  # indices of the images users search with and see (feedback half)
        self.top_k = top_k
        self.rng = np.random.default_rng(seed)

    def triplets(
        self, embed: Callable[[np.ndarray], np.ndarray], count: int, queries_per_round: int = 256
    ) -> np.ndarray:
        """``count`` (query, positive, negative) dataset-index rows under the model ``embed`` gives now."""
        gallery = embed(self.pool)
        out: list[tuple[int, int, int]] = []
        attempts = 0
        while len(out) < count:
            attempts += 1
            if attempts > 1000:
                raise RuntimeError("the click simulator cannot find enough informative queries")
            picks = self.rng.integers(len(self.pool), size=queries_per_round)
            sims = gallery[picks] @ gallery.T
            sims[np.arange(len(picks)), picks] = -np.inf
            top = np.argpartition(-sims, self.top_k, axis=1)[:, : self.top_k]
            order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
            ranked = np.take_along_axis(top, order, axis=1)
            for q, results in zip(picks, ranked, strict=True):
                query = self.pool[q]
                same = self.labels[self.pool[results]] == self.labels[query]
                seen_negative = np.cumsum(~same)
                clickable = np.flatnonzero(same & (seen_negative > 0))
                if len(clickable) == 0:
                    continue
                click = int(self.rng.choice(clickable))
                negatives = np.flatnonzero(~same[:click])
                negative = int(self.rng.choice(negatives))
                out.append((int(query), int(self.pool[results[click]]), int(self.pool[results[negative]])))
                if len(out) == count:
                    break
        return np.asarray(out, dtype=np.int64)
