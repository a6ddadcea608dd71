"""Hand-written forward/backward pass of the OAHU network in NumPy (float32).

Autograd costs ~1 ms per triplet in op overhead on a small CPU; this pass computes the same gradients
(checked against autograd in tests/training/test_oahu.py) with a fraction of the overhead, which is
what lets OAHU update per triplet at product speed. Gradient routing is the paper's: E_l receives
α_l ∇L_l, hidden layer l receives Σ_{j≥l} α_j ∇L_j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_E2_MINUS_1 = math.exp(2.0) - 1.0
_ONE_MINUS_EM2 = 1.0 - math.exp(-2.0)
_DIST_EPS = 1e-12
_NORM_EPS = 1e-12


@dataclass
class Params:
    """NumPy views of the network weights: hidden (W, b) pairs and embedding (E, c) pairs."""

    hidden_w: list[np.ndarray]
    hidden_b: list[np.ndarray]
    embed_w: list[np.ndarray]
    embed_b: list[np.ndarray]

    def all(self) -> list[np.ndarray]:
        return [*self.hidden_w, *self.hidden_b, *self.embed_w, *self.embed_b]


def _abtl_grads(
    d_pos: np.ndarray, d_neg: np.ndarray, tau: float, self_weighted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local losses and their derivatives with respect to d⁺ and d⁻ (bounds held constant)."""
    d_sim = tau * (np.exp(d_pos) - 1.0) / _E2_MINUS_1
    d_dis = (2.0 - tau) + tau * (1.0 - np.exp(-d_neg)) / _ONE_MINUS_EM2
    attr_raw = (d_pos - d_sim) / (2.0 - d_sim)
    rep_raw = 1.0 - d_neg / d_dis
    attr_on = attr_raw > 0
    rep_on = rep_raw > 0
    attr = np.where(attr_on, attr_raw, 0.0)
    rep = np.where(rep_on, rep_raw, 0.0)
    dattr = np.where(attr_on, 1.0 / (2.0 - d_sim), 0.0)
    drep = np.where(rep_on, -1.0 / d_dis, 0.0)
    if not self_weighted:
        return 0.5 * (attr + rep), 0.5 * dattr, 0.5 * drep
    total = attr + rep
    positive = total > 0
    safe = np.where(positive, total, 1.0)
    loss = np.where(positive, (attr * attr + rep * rep) / safe, 0.0)
    sq = safe * safe
    w_attr = np.where(positive, (attr * attr + 2 * attr * rep - rep * rep) / sq, 0.0)
    w_rep = np.where(positive, (rep * rep + 2 * attr * rep - attr * attr) / sq, 0.0)
    return loss, w_attr * dattr, w_rep * drep


def forward_backward(
    params: Params,
    z: np.ndarray,
    scale: np.ndarray,
    rest_pos: np.ndarray,
    rest_neg: np.ndarray,
    alpha: np.ndarray,
    tau: float,
    self_weighted: bool = False,
    skip: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Depth losses (n × depths) and gradients of mean_t Σ_l α_l L_l.

    ``z`` stacks [anchors; positives; negatives] (3n rows). Each depth's embedding is
    f = [scale · normalise(E h) ; frozen residual]; ``scale`` (3n,) is the norm of the learnable part and
    ``rest_pos``/``rest_neg`` (n,) the squared residual distances of the pairs (zeros without residual).
    Gradients come back in the order of :meth:`Params.all`.
    """
    n = z.shape[0] // 3
    hs = [z]
    us = []
    for w, b in zip(params.hidden_w, params.hidden_b, strict=True):
        u = hs[-1] @ w.T
        u += b
        us.append(u)
        hs.append(np.maximum(u, 0.0))
    depths = len(params.embed_w)
    losses = np.empty((n, depths), dtype=np.float64)
    grad_h = [None] * depths
    grad_ew: list[np.ndarray] = []
    grad_eb: list[np.ndarray] = []
    for depth in range(depths):
        e = hs[depth] @ params.embed_w[depth].T
        e += params.embed_b[depth]
        if skip:
            e += z
        norm = np.sqrt(np.einsum("ij,ij->i", e, e))[:, None]
        norm = np.maximum(norm, _NORM_EPS)
        u = e / norm
        f = u * scale[:, None]
        fa, fp, fn = f[:n], f[n : 2 * n], f[2 * n :]
        diff_p = fa - fp
        diff_n = fa - fn
        d_pos = np.sqrt(np.einsum("ij,ij->i", diff_p, diff_p) + rest_pos + _DIST_EPS)
        d_neg = np.sqrt(np.einsum("ij,ij->i", diff_n, diff_n) + rest_neg + _DIST_EPS)
        loss, g_dpos, g_dneg = _abtl_grads(
            d_pos.astype(np.float64), d_neg.astype(np.float64), tau, self_weighted
        )
        losses[:, depth] = loss
        weight = alpha[depth] / n
        g_u = np.empty_like(f)
        np.multiply((weight * g_dpos / d_pos).astype(np.float32)[:, None], diff_p, out=g_u[n : 2 * n])
        np.multiply((weight * g_dneg / d_neg).astype(np.float32)[:, None], diff_n, out=g_u[2 * n :])
        np.add(g_u[n : 2 * n], g_u[2 * n :], out=g_u[:n])
        np.negative(g_u[n:], out=g_u[n:])
        g_u *= scale[:, None]
        g_e = (g_u - u * np.einsum("ij,ij->i", u, g_u)[:, None]) / norm
        grad_ew.append(g_e.T @ hs[depth])
        grad_eb.append(g_e.sum(0))
        grad_h[depth] = g_e @ params.embed_w[depth]
    grad_hw: list[np.ndarray] = [None] * len(params.hidden_w)  # type: ignore[list-item]
    grad_hb: list[np.ndarray] = [None] * len(params.hidden_w)  # type: ignore[list-item]
    carry = None
    for layer in range(len(params.hidden_w) - 1, -1, -1):
        g_h = grad_h[layer + 1] if carry is None else grad_h[layer + 1] + carry
        g_u = g_h * (us[layer] > 0)
        grad_hw[layer] = g_u.T @ hs[layer]
        grad_hb[layer] = g_u.sum(0)
        if layer > 0:
            carry = g_u @ params.hidden_w[layer]
    return losses, [*grad_hw, *grad_hb, *grad_ew, *grad_eb]


def sgd_update(
    params: list[np.ndarray],
    grads: list[np.ndarray],
    buffers: list[np.ndarray | None],
    lr: float,
    momentum: float,
    weight_decay: float,
    anchor: list[np.ndarray] | None = None,
    anchor_decay: float = 0.0,
) -> None:
    """In-place SGD with torch.optim.SGD's conventions (buffer = μ·buffer + g; w −= lr·buffer).

    ``anchor_decay`` adds anchor_decay·(w − w₀) to the gradient: weight decay towards the initial
    weights ``anchor`` (the pretrained metric) instead of towards zero.
    """
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if weight_decay:
            g = g + weight_decay * p
        if anchor_decay and anchor is not None:
            g = g + anchor_decay * (p - anchor[i])
        if momentum:
            if buffers[i] is None:
                buffers[i] = g.astype(np.float32, copy=True)
            else:
                buf = buffers[i]
                buf *= momentum
                buf += g
            g = buffers[i]
        p -= lr * g
