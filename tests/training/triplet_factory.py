"""Random label-consistent triplets for training tests."""

from __future__ import annotations

import numpy as np


def triplets(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """`count` (anchor, positive, negative) index rows: anchor and positive share a label, the negative not."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < count:
        a, p, n = rng.integers(len(labels), size=3)
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            rows.append((a, p, n))
    return np.asarray(rows)
