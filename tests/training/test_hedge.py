"""Adaptive Hedge Update: α stays a distribution and respects the floor."""

import math

import numpy as np
import pytest

from training.hedge import hedge_sequence, hedge_step, uniform_alpha


def test_starts_uniform() -> None:
    assert uniform_alpha(4).tolist() == [0.25] * 4


def test_power_rule_by_hand() -> None:
    beta, s = 0.5, 0.0
    losses = [0.5, 0.6, 0.7]
    assert beta**0.5 * math.log(0.5) > beta - 1  # the power branch of Eq. 20 applies
    raw = [a * beta**loss for a, loss in zip([1 / 3] * 3, losses, strict=True)]
    want = [r / sum(raw) for r in raw]
    assert hedge_step(uniform_alpha(3), losses, beta, s).tolist() == pytest.approx(want)


def test_linear_rule_by_hand() -> None:
    beta, s = 0.99, 0.0
    losses = [0.001, 0.5, 1.0]  # β^0.001 · log(0.001) < β − 1: the linear branch
    raw = [(1 / 3) * (1 - (1 - beta) * loss) for loss in losses]
    want = [r / sum(raw) for r in raw]
    assert hedge_step(uniform_alpha(3), losses, beta, s).tolist() == pytest.approx(want)


def test_zero_loss_takes_linear_rule() -> None:
    alpha = hedge_step(uniform_alpha(2), [0.0, 1.0], 0.5, 0.0)
    assert alpha.tolist() == pytest.approx([1 / 1.5, 0.5 / 1.5])


def test_distribution_and_floor_over_long_runs() -> None:
    rng = np.random.default_rng(0)
    depths, s = 5, 0.1
    alpha = uniform_alpha(depths)
    # depth 0 always loses: its weight must stop at the floor, not vanish
    for _ in range(3000):
        losses = rng.uniform(0.0, 0.2, size=depths)
        losses[0] = 1.0
        alpha = hedge_step(alpha, losses, 0.9, s)
        assert alpha.sum() == pytest.approx(1.0)
        assert np.all(alpha > 0)
        # after the floor max(α, s/(L+1)) the total is at most 1 + s, so normalised weights stay above this
        assert alpha.min() >= s / depths / (1.0 + s) - 1e-12
    assert alpha[0] == pytest.approx(alpha.min())
    assert alpha[0] < 0.05


def test_step_equals_floor_then_normalise() -> None:
    alpha = np.array([0.7, 0.2, 0.1])
    losses = [0.9, 0.1, 0.1]
    beta, s = 0.5, 0.3
    pre = alpha * beta ** np.array(losses) if beta**0.1 * math.log(0.1) > beta - 1 else None
    if pre is None:
        pre = alpha * (1 - (1 - beta) * np.array(losses))
    floored = np.maximum(pre, s / 3)
    assert hedge_step(alpha, losses, beta, s) == pytest.approx(floored / floored.sum())


def test_sequence_is_repeated_steps() -> None:
    rng = np.random.default_rng(1)
    losses = rng.uniform(size=(20, 4))
    alpha = uniform_alpha(4)
    for row in losses:
        alpha = hedge_step(alpha, row, 0.95, 0.1)
    assert hedge_sequence(uniform_alpha(4), losses, 0.95, 0.1) == pytest.approx(alpha)
