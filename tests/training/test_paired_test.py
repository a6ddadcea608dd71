"""The guard's statistics: paired counts, McNemar's exact test, the bootstrap interval, the decision rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.paired_test import bootstrap_interval, compare, decide, mcnemar_exact


def _hits(better: int, worse: int, both: int, neither: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    candidate = np.array([1] * better + [0] * worse + [1] * both + [0] * neither, dtype=bool)
    active = np.array([0] * better + [1] * worse + [1] * both + [0] * neither, dtype=bool)
    order = np.random.default_rng(seed).permutation(len(candidate))
    return candidate[order], active[order]


def test_counts_rates_and_difference_come_from_the_paired_queries() -> None:
    comparison = compare(*_hits(better=30, worse=10, both=900, neither=60))
    assert (comparison.queries, comparison.better, comparison.worse, comparison.discordant) == (1000, 30, 10, 40)
    assert comparison.candidate == pytest.approx(93.0) and comparison.active == pytest.approx(91.0)
    assert comparison.difference == pytest.approx(2.0)
    assert comparison.low < 2.0 < comparison.high


def test_mcnemar_matches_the_binomial_tail_by_hand() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2**10)
    by_hand = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert mcnemar_exact(10, 2) == pytest.approx(by_hand) == pytest.approx(mcnemar_exact(2, 10))
    assert mcnemar_exact(50, 50) == 1.0
    assert 0.0 < mcnemar_exact(3100, 2900) < 1.0  # large counts stay finite


def test_the_bootstrap_interval_covers_the_normal_approximation() -> None:
    better, worse, n = 60, 30, 3000
    low, high = bootstrap_interval(better, worse, n, 0.95, resamples=20_000)
    diff = 100 * (better - worse) / n
    se = 100 * math.sqrt((better + worse) / n - ((better - worse) / n) ** 2) / math.sqrt(n)
    assert low == pytest.approx(diff - 1.96 * se, abs=0.1) and high == pytest.approx(diff + 1.96 * se, abs=0.1)
    assert bootstrap_interval(0, 0, 100) == (0.0, 0.0)
    assert bootstrap_interval(better, worse, n, 0.99)[0] < low  # more confidence, wider interval


def test_different_query_sets_cannot_be_compared() -> None:
    with pytest.raises(ValueError):
        compare(np.ones(5, bool), np.ones(6, bool))
    with pytest.raises(ValueError):
        compare(np.ones(0, bool), np.ones(0, bool))


def test_no_evidence_is_never_a_promotion() -> None:
    assert not decide(None, 0.5, 10).promote
    one_query = compare(np.zeros(1, bool), np.zeros(1, bool))  # "1 query, 0% vs 0%"
    decision = decide(one_query, 0.5, 10)
    assert not decision.promote and "not enough evidence" in decision.reason
    few = compare(*_hits(better=6, worse=0, both=100, neither=10))  # clearly better, but only 6 queries differ
    assert not decide(few, 0.5, 10).promote and decide(few, 0.5, 6).promote


def test_a_clearly_better_candidate_is_promoted_and_a_worse_one_rejected() -> None:
    better = decide(compare(*_hits(better=60, worse=20, both=2500, neither=420)), 0.5, 10)
    assert better.promote and better.reason.startswith("Promoted") and "McNemar" in better.reason
    worse = decide(compare(*_hits(better=20, worse=60, both=2500, neither=420)), 0.5, 10)
    assert not worse.promote and "worse" in worse.reason


def test_a_noisy_small_gain_that_could_be_a_large_loss_is_rejected() -> None:
    noisy = compare(*_hits(better=26, worse=24, both=60, neither=40))  # +1.3 points, interval ≈ ±9
    assert noisy.difference > 0 and noisy.low < -0.5
    decision = decide(noisy, 0.5, 10)
    assert not decision.promote and "could be worse" in decision.reason


def test_the_decision_agrees_with_the_truth_when_it_differs_by_half_a_point_or_more() -> None:
    """Simulated pairs of models on 3,000 queries whose true Recall@1 differ by ±0.5 to ±3 points."""
    rng = np.random.default_rng(1)
    disagreements = 0
    for true_difference in (-3.0, -1.0, -0.5, 0.5, 1.0, 3.0):
        for _ in range(20):
            n, discordant_rate = 3000, 0.04
            p_better = discordant_rate / 2 + true_difference / 200
            kinds = rng.choice(3, n, p=[p_better, discordant_rate - p_better, 1 - discordant_rate])
            active = rng.random(n) < 0.85
            candidate = active.copy()
            candidate[kinds == 0], active[kinds == 0] = True, False
            candidate[kinds == 1], active[kinds == 1] = False, True
            promoted = decide(compare(candidate, active), 0.5, 10).promote
            disagreements += promoted != (true_difference > 0)
    assert disagreements <= 6  # of 120 (3 measured); at ±0.5 on 3,000 queries the observed sign is noisy
