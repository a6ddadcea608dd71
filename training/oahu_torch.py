"""OAHU's forward/backward pass and SGD step in torch, for any device (CUDA when a GPU worker runs it).

The same arithmetic as training/oahu_backprop.py (the NumPy pass), op for op in float32 with the loss
terms in float64, so on the CPU the two agree to float rounding (tests/training/test_oahu_torch.py);
``OAHU.use_device("cuda")`` sends :meth:`training.oahu.OAHU.partial_fit` here. The weights are copied
to the device once per ``partial_fit`` call and back at its end; the per-mini-batch depth losses come back
to the host for the Adaptive Hedge Update (a few numbers per mini-batch).
"""

from __future__ import annotations

import math

import numpy as np
import torch

_E2_MINUS_1 = math.exp(2.0) - 1.0
_ONE_MINUS_EM2 = 1.0 - math.exp(-2.0)
_DIST_EPS = 1e-12
_NORM_EPS = 1e-12


def _abtl_grads(d_pos: torch.Tensor, d_neg: torch.Tensor, tau: float,
                self_weighted: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    d_sim = tau * (torch.exp(d_pos) - 1.0) / _E2_MINUS_1
    d_dis = (2.0 - tau) + tau * (1.0 - torch.exp(-d_neg)) / _ONE_MINUS_EM2
    attr_raw = (d_pos - d_sim) / (2.0 - d_sim)
    rep_raw = 1.0 - d_neg / d_dis
    attr_on, rep_on = attr_raw > 0, rep_raw > 0
    zero = torch.zeros((), dtype=d_pos.dtype, device=d_pos.device)
    attr = torch.where(attr_on, attr_raw, zero)
    rep = torch.where(rep_on, rep_raw, zero)
    dattr = torch.where(attr_on, 1.0 / (2.0 - d_sim), zero)
    drep = torch.where(rep_on, -1.0 / d_dis, zero)
    if not self_weighted:
        return 0.5 * (attr + rep), 0.5 * dattr, 0.5 * drep
    total = attr + rep
    positive = total > 0
    safe = torch.where(positive, total, torch.ones((), dtype=total.dtype, device=total.device))
    loss = torch.where(positive, (attr * attr + rep * rep) / safe, zero)
    sq = safe * safe
    w_attr = torch.where(positive, (attr * attr + 2 * attr * rep - rep * rep) / sq, zero)
    w_rep = torch.where(positive, (rep * rep + 2 * attr * rep - attr * attr) / sq, zero)
    return loss, w_attr * dattr, w_rep * drep


def forward_backward(
    hidden: list[tuple[torch.Tensor, torch.Tensor]],
    embeddings: list[tuple[torch.Tensor, torch.Tensor]],
    z: torch.Tensor,
    scale: torch.Tensor,
    rest_pos: torch.Tensor,
    rest_neg: torch.Tensor,
    alpha: np.ndarray,
    tau: float,
    self_weighted: bool = False,
    skip: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Depth losses (n × depths, float64) and gradients in the order of oahu_backprop.Params.all."""
    n = z.shape[0] // 3
    hs, us = [z], []
    for w, b in hidden:
        u = hs[-1] @ w.T + b
        us.append(u)
        hs.append(torch.clamp_min(u, 0.0))
    losses = torch.empty((n, len(embeddings)), dtype=torch.float64, device=z.device)
    grad_h: list[torch.Tensor] = []
    grad_ew: list[torch.Tensor] = []
    grad_eb: list[torch.Tensor] = []
    for depth, (w, b) in enumerate(embeddings):
        e = hs[depth] @ w.T + b
        if skip:
            e = e + z
        norm = torch.clamp_min(torch.sqrt((e * e).sum(1)), _NORM_EPS)[:, None]
        u = e / norm
        f = u * scale[:, None]
        diff_p, diff_n = f[:n] - f[n : 2 * n], f[:n] - f[2 * n :]
        d_pos = torch.sqrt((diff_p * diff_p).sum(1) + rest_pos + _DIST_EPS)
        d_neg = torch.sqrt((diff_n * diff_n).sum(1) + rest_neg + _DIST_EPS)
        loss, g_dpos, g_dneg = _abtl_grads(d_pos.double(), d_neg.double(), tau, self_weighted)
        losses[:, depth] = loss
        weight = float(alpha[depth]) / n
        g_pos = (weight * g_dpos / d_pos).float()[:, None] * diff_p
        g_neg = (weight * g_dneg / d_neg).float()[:, None] * diff_n
        g_u = torch.cat([g_pos + g_neg, -g_pos, -g_neg]) * scale[:, None]
        g_e = (g_u - u * (u * g_u).sum(1)[:, None]) / norm
        grad_ew.append(g_e.T @ hs[depth])
        grad_eb.append(g_e.sum(0))
        grad_h.append(g_e @ w)
    grad_hw: list[torch.Tensor] = [torch.empty(0)] * len(hidden)
    grad_hb: list[torch.Tensor] = [torch.empty(0)] * len(hidden)
    carry = None
    for layer in range(len(hidden) - 1, -1, -1):
        g_h = grad_h[layer + 1] if carry is None else grad_h[layer + 1] + carry
        g_u = g_h * (us[layer] > 0)
        grad_hw[layer] = g_u.T @ hs[layer]
        grad_hb[layer] = g_u.sum(0)
        if layer > 0:
            carry = g_u @ hidden[layer][0]
    return losses, [*grad_hw, *grad_hb, *grad_ew, *grad_eb]


@torch.no_grad()
def sgd_update(params: list[torch.Tensor], grads: list[torch.Tensor], buffers: list[torch.Tensor | None],
               lr: float, momentum: float, weight_decay: float, anchor: list[torch.Tensor] | None = None,
               anchor_decay: float = 0.0) -> None:
    """oahu_backprop.sgd_update on tensors (in place)."""
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if weight_decay:
            g = g + weight_decay * p
        if anchor_decay and anchor is not None:
            g = g + anchor_decay * (p - anchor[i])
        if momentum:
            if buffers[i] is None:
                buffers[i] = g.clone()
            else:
                buffers[i].mul_(momentum).add_(g)
            g = buffers[i]
        p.sub_(lr * g)
