"""ABTL (OAHU's adaptive-bound triplet loss) as a batch loss over labelled batches or given triplets."""

from __future__ import annotations

import torch
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import nn
from torch.nn import functional as F

from training.abtl import abtl, check_tau, triplet_distances


class ABTLLoss(nn.Module):
    """Mean ABTL over the triplets of a batch: all valid (a, p, n) of ``labels``, or ``indices_tuple``."""

    def __init__(self, tau: float = 0.5, self_weighted: bool = False) -> None:
        super().__init__()
        self.tau = check_tau(tau)
        self.self_weighted = self_weighted

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        if indices_tuple is None:
            if labels is None:
                raise ValueError("ABTLLoss needs labels or an (anchor, positive, negative) indices_tuple")
            indices_tuple = lmu.get_all_triplets_indices(labels)
        if len(indices_tuple) != 3:
            raise ValueError("ABTLLoss takes (anchor, positive, negative) index triplets")
        anchor, positive, negative = indices_tuple
        if len(anchor) == 0:
            return embeddings.sum() * 0.0
        f = F.normalize(embeddings, dim=-1)
        d_pos, d_neg = triplet_distances(f[anchor], f[positive], f[negative])
        return abtl(d_pos, d_neg, self.tau, self.self_weighted).mean()
