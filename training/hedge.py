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
    """Apply :func:`hedge_step` for each row of ``losses`` (triplets × depths) in order.

    The per-row multipliers (which branch of Eq. 20, β^L or 1 − (1 − β)L) depend on that row's losses only,
    so they are computed for all rows at once; only the floor and the renormalisation run row by row.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 2 or losses.shape[1] != len(alpha):
        raise ValueError("one loss per depth is required")
    if len(losses) == 0:
        return np.asarray(alpha, dtype=np.float64)
    smallest = losses.min(axis=1)
    with np.errstate(divide="ignore"):
        power = (smallest > 0) & (beta ** smallest * np.log(np.where(smallest > 0, smallest, 1.0)) > beta - 1.0)
    multipliers = np.where(power[:, None], beta**losses, 1.0 - (1.0 - beta) * losses).tolist()
    floor = s / len(alpha)
    current = [float(a) for a in alpha]
    for row in multipliers:
        current = [max(a * m, floor) for a, m in zip(current, row, strict=True)]
        total = sum(current)
        current = [a / total for a in current]
    return np.asarray(current, dtype=np.float64)
