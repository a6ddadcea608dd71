"""Adaptive-Bound Triplet Loss (ABTL) of OAHU (Gao et al., WWW 2019).

Distances are between L2-normalised embeddings, so they lie in [0, 2]. The bounds follow the authors'
public code (``docs/training.md``) and are treated as targets: no gradient flows through them.
"""

from __future__ import annotations

import math

import torch

_E2_MINUS_1 = math.exp(2.0) - 1.0
_ONE_MINUS_EM2 = 1.0 - math.exp(-2.0)


def check_tau(tau: float) -> float:
    """Validate the control parameter τ ∈ (0, 2/3)."""
    if not 0.0 < tau < 2.0 / 3.0:
        raise ValueError(f"tau must lie in (0, 2/3), got {tau}")
    return float(tau)


def adaptive_bounds(
    d_pos: torch.Tensor, d_neg: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the detached bounds (d_sim, d_dis) for positive and negative distances."""
    d_pos = d_pos.detach()
    d_neg = d_neg.detach()
    d_sim = tau * (torch.exp(d_pos) - 1.0) / _E2_MINUS_1
    d_dis = (2.0 - tau) + tau * (1.0 - torch.exp(-d_neg)) / _ONE_MINUS_EM2
    return d_sim, d_dis


def abtl_terms(d_pos: torch.Tensor, d_neg: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the attractive and repulsive terms (L_attr, L_rep), each in [0, 1], elementwise."""
    d_sim, d_dis = adaptive_bounds(d_pos, d_neg, tau)
    attr = torch.clamp((d_pos - d_sim) / (2.0 - d_sim), min=0.0)
    rep = torch.clamp(1.0 - d_neg / d_dis, min=0.0)
    return attr, rep


def combine_terms(attr: torch.Tensor, rep: torch.Tensor, self_weighted: bool = False) -> torch.Tensor:
    """Local loss: (L_attr + L_rep) / 2 (slides) or the self-weighted (a² + r²) / (a + r) (authors' code)."""
    if not self_weighted:
        return 0.5 * (attr + rep)
    total = attr + rep
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, (attr * attr + rep * rep) / safe, torch.zeros_like(total))


def abtl(
    d_pos: torch.Tensor, d_neg: torch.Tensor, tau: float = 0.5, self_weighted: bool = False
) -> torch.Tensor:
    """Per-triplet ABTL local loss L = (L_attr + L_rep) / 2 from the two distances (no reduction)."""
    attr, rep = abtl_terms(d_pos, d_neg, tau)
    return combine_terms(attr, rep, self_weighted)


def triplet_distances(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances d(a, p), d(a, n) along the last dimension, safe to differentiate at 0."""
    d_pos = torch.sqrt(((anchor - positive) ** 2).sum(-1) + eps)
    d_neg = torch.sqrt(((anchor - negative) ** 2).sum(-1) + eps)
    return d_pos, d_neg
