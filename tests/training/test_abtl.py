"""ABTL against hand-computed values."""

import math

import pytest
import torch

from training.abtl import abtl, abtl_terms, adaptive_bounds, check_tau

E2 = math.exp(2.0) - 1.0
EM2 = 1.0 - math.exp(-2.0)


def hand_abtl(d_pos: float, d_neg: float, tau: float) -> tuple[float, float, float]:
    d_sim = tau * (math.exp(d_pos) - 1.0) / E2
    d_dis = (2.0 - tau) + tau * (1.0 - math.exp(-d_neg)) / EM2
    attr = max(0.0, (d_pos - d_sim) / (2.0 - d_sim))
    rep = max(0.0, 1.0 - d_neg / d_dis)
    return attr, rep, (attr + rep) / 2.0


def test_bounds_at_the_ends() -> None:
    d_sim, d_dis = adaptive_bounds(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 2.0]), 0.5)
    assert d_sim.tolist() == pytest.approx([0.0, 0.5])
    assert d_dis.tolist() == pytest.approx([1.5, 2.0])


@pytest.mark.parametrize(
    ("d_pos", "d_neg", "tau"),
    [(0.0, 0.0, 0.5), (0.3, 1.2, 0.5), (1.0, 1.0, 0.2), (2.0, 2.0, 0.6), (0.7, 0.1, 0.1), (1.5, 1.9, 0.33)],
)
def test_matches_hand_computation(d_pos: float, d_neg: float, tau: float) -> None:
    attr, rep = abtl_terms(
        torch.tensor([d_pos], dtype=torch.float64), torch.tensor([d_neg], dtype=torch.float64), tau
    )
    want_attr, want_rep, want = hand_abtl(d_pos, d_neg, tau)
    assert attr.item() == pytest.approx(want_attr, abs=1e-12)
    assert rep.item() == pytest.approx(want_rep, abs=1e-12)
    loss = abtl(torch.tensor([d_pos], dtype=torch.float64), torch.tensor([d_neg], dtype=torch.float64), tau)
    assert loss.item() == pytest.approx(want, abs=1e-12)


def test_concrete_numbers() -> None:
    # d+ = d- = 1, tau = 0.5: d_sim = 0.5 (e - 1)/(e^2 - 1), d_dis = 1.5 + 0.5 (1 - e^-1)/(1 - e^-2)
    attr, rep = abtl_terms(
        torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), 0.5
    )
    d_sim = 0.5 * (math.e - 1) / (math.e**2 - 1)
    assert d_sim == pytest.approx(0.1344707, abs=1e-7)
    assert attr.item() == pytest.approx((1 - 0.1344707) / (2 - 0.1344707), abs=1e-7)
    assert rep.item() == pytest.approx(1 - 1 / (1.5 + 0.5 * 0.6321206 / 0.8646647), abs=1e-7)


def test_perfect_triplet_has_zero_loss_and_satisfied_bounds() -> None:
    loss = abtl(torch.tensor([0.0]), torch.tensor([2.0]), 0.5)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


def test_no_gradient_through_bounds() -> None:
    d_pos = torch.tensor([0.8], requires_grad=True)
    d_neg = torch.tensor([0.9], requires_grad=True)
    abtl(d_pos, d_neg, 0.5).sum().backward()
    d_sim, d_dis = adaptive_bounds(d_pos, d_neg, 0.5)
    assert d_pos.grad.item() == pytest.approx(0.5 / (2.0 - d_sim.item()))
    assert d_neg.grad.item() == pytest.approx(-0.5 / d_dis.item())


def test_self_weighted_variant() -> None:
    attr, rep, _ = hand_abtl(0.6, 0.8, 0.5)
    got = abtl(torch.tensor([0.6], dtype=torch.float64), torch.tensor([0.8], dtype=torch.float64), 0.5, True)
    assert got.item() == pytest.approx((attr**2 + rep**2) / (attr + rep))
    zero = abtl(torch.tensor([0.0]), torch.tensor([2.0]), 0.5, True)
    assert zero.item() == 0.0


@pytest.mark.parametrize("tau", [0.0, 2.0 / 3.0, -0.1, 1.0])
def test_tau_range(tau: float) -> None:
    with pytest.raises(ValueError):
        check_tau(tau)
