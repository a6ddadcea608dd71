"""In-session relevance feedback: move a query towards what the person marked similar (Rocchio, 1971).

``q' = normalise(q + beta * mean(positives) - gamma * mean(negatives))`` over L2-normalised vectors.
Positives are results marked similar or clicked; negatives are results marked not similar and results
skipped above a positive (shown higher, not chosen). beta = 1, gamma = 0.5 (docs/benchmarks.md §10).
"""

from __future__ import annotations

import numpy as np

from retrieval.augment import l2_normalise

BETA = 1.0
GAMMA = 0.5


def rocchio(query: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
            beta: float = BETA, gamma: float = GAMMA) -> np.ndarray:
    """The adjusted query (1 x d, normalised); with neither positives nor negatives, the query itself."""
    adjusted = l2_normalise(np.asarray(query, dtype=np.float32).reshape(1, -1))[0]
    if len(positives):
        adjusted = adjusted + beta * l2_normalise(positives).mean(axis=0)
    if len(negatives):
        adjusted = adjusted - gamma * l2_normalise(negatives).mean(axis=0)
    return l2_normalise(adjusted.reshape(1, -1))


def skipped_above(shown: list[int], positives: set[int], limit: int | None = None) -> list[int]:
    """Results shown above the lowest positive that are not positives themselves (nearest to it first)."""
    ranks = [rank for rank, image in enumerate(shown) if image in positives]
    if not ranks:
        return []
    above = [image for image in shown[: max(ranks)] if image not in positives]
    return list(reversed(above))[:limit]
