"""Paired comparison of two retrieval models on the same queries, and the promotion decision built on it.

Each query is a hit or a miss under each model (e.g. Recall@1). Only the *discordant* queries — a hit
under one model and a miss under the other — say anything about which model is better: `better` queries
the candidate gets right and the active model wrong, `worse` the reverse. The evidence reported:

- the difference of Recall@1 in points and its paired bootstrap interval (queries resampled with
  replacement; with binary outcomes a resample is a multinomial draw of the three kinds of query, so
  10,000 resamples cost microseconds);
- McNemar's exact two-sided p-value (a binomial test of `better` among the discordant queries).

:func:`decide` promotes only with enough evidence: a point difference of at least zero, at least
`min_discordant` discordant queries, and an interval whose lower end is above −tolerance (the candidate is, at
the stated confidence, no more than `tolerance` points worse). No Django here: `webapp/learning/promotion.py`
calls it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PairedComparison:
    """Candidate vs active on the same queries; rates and interval in points (0–100)."""

    queries: int
    candidate: float
    active: float
    better: int
    worse: int
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float

    @property
    def discordant(self) -> int:
        return self.better + self.worse

    def as_dict(self) -> dict:
        return {**asdict(self), "discordant": self.discordant}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    comparison: PairedComparison | None


def mcnemar_exact(better: int, worse: int) -> float:
    """Two-sided exact McNemar p-value (1.0 without discordant queries)."""
    n = better + worse
    tail = sum(math.comb(n, k) for k in range(min(better, worse) + 1))
    return min(1.0, 2 * tail / 2**n)  # integer true division: exact for any n


def bootstrap_interval(better: int, worse: int, queries: int, confidence: float = 0.95,
                       resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the paired difference of hit rates (points), by resampling queries."""
    if queries <= 0:
        raise ValueError("no queries")
    draws = np.random.default_rng(seed).multinomial(queries, [better / queries, worse / queries,
                                                              1 - (better + worse) / queries], size=resamples)
    differences = 100.0 * (draws[:, 0] - draws[:, 1]) / queries
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    return float(low), float(high)


def compare(candidate_hits: np.ndarray, active_hits: np.ndarray, confidence: float = 0.95,
            resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Paired comparison of per-query hits (booleans, the same queries in the same order)."""
    candidate_hits = np.asarray(candidate_hits, dtype=bool)
    active_hits = np.asarray(active_hits, dtype=bool)
    if candidate_hits.shape != active_hits.shape or candidate_hits.ndim != 1:
        raise ValueError("the two models must be judged on the same queries")
    queries = len(candidate_hits)
    if queries == 0:
        raise ValueError("no queries")
    better = int(np.sum(candidate_hits & ~active_hits))
    worse = int(np.sum(~candidate_hits & active_hits))
    low, high = bootstrap_interval(better, worse, queries, confidence, resamples, seed)
    return PairedComparison(
        queries=queries, candidate=100.0 * candidate_hits.mean(), active=100.0 * active_hits.mean(),
        better=better, worse=worse, difference=100.0 * (better - worse) / queries, low=low, high=high,
        confidence=confidence, p_value=mcnemar_exact(better, worse),
    )


def decide(comparison: PairedComparison | None, tolerance: float, min_discordant: int) -> Decision:
    """Promote only on evidence; the reason states the figures and the rule that decided."""
    if comparison is None:
        return Decision(False, "Not promoted: no evaluation queries (no labelled held-out images and no clicks "
                               "on held-out impressions), so there is no evidence either way.", None)
    c = comparison
    figures = (f"Recall@1 {c.candidate:.2f}% vs {c.active:.2f}% on the same {c.queries} queries, "
               f"{c.difference:+.2f} points ({c.confidence:.0%} paired bootstrap interval {c.low:+.2f} to "
               f"{c.high:+.2f}); {c.better} queries better, {c.worse} worse (McNemar p = {c.p_value:.3g})")
    if c.difference < 0:
        return Decision(False, f"Rejected, worse: {figures}.", c)
    if c.discordant < min_discordant:
        return Decision(False, f"Not promoted, not enough evidence: {figures}; at least {min_discordant} "
                               "queries on which the two differ are needed.", c)
    if c.low <= -tolerance:
        return Decision(False, f"Rejected, could be worse by more than {tolerance:g} points: {figures}.", c)
    return Decision(True, f"Promoted: {figures}.", c)
