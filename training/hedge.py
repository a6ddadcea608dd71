"""Adaptive Hedge Update of OAHU: the weights α over the L + 1 depths."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def uniform_alpha(num_depths: int) -> np.ndarray:
    """α_l = 1 / (L + 1) for every depth."""
    return np.full(num_depths, 1.0 / num_depths, dtype=np.float64)


def _use_power_rule(losses: Sequence[float], beta: float) -> bool:
    """Eq. 20's switch: β^{min L} · log(min L) > β − 1 (false when min L = 0, where log → −∞)."""
    smallest = min(losses)
    if smallest <= 0.0:
        return False
    return beta**smallest * math.log(smallest) > beta - 1.0


def hedge_step(alpha: np.ndarray, losses: Sequence[float], beta: float = 0.99, s: float = 0.1) -> np.ndarray:
    """One triplet's update: discount by β, floor at s / (L + 1), renormalise to a distribution."""
    losses = [float(v) for v in losses]
    if len(losses) != len(alpha):
        raise ValueError("one loss per depth is required")
    if _use_power_rule(losses, beta):
        updated = [a * beta**loss for a, loss in zip(alpha, losses, strict=True)]
    else:
        updated = [a * (1.0 - (1.0 - beta) * loss) for a, loss in zip(alpha, losses, strict=True)]
    floor = s / len(alpha)
    updated = [max(a, floor) for a in updated]
    total = sum(updated)
    return np.asarray([a / total for a in updated], dtype=np.float64)


def hedge_sequence(alpha: np.ndarray, losses: np.ndarray, beta: float = 0.99, s: float = 0.1) -> np.ndarray:
    """Apply :func:`hedge_step` for each row of ``losses`` (triplets × depths) in order."""
    for row in np.asarray(losses, dtype=np.float64):
        alpha = hedge_step(alpha, row, beta, s)
    return alpha
