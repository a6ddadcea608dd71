"""Periodic fine-tuning of a linear metric head with any registry loss, on labels and/or triplets.

The head starts from the pretrained metric: embed(x) = normalise(W x̂) with x̂ = x / ‖x‖ and W the
identity (embedding_dim = input dim) or the top principal directions of the features (smaller
embedding_dim), so with no training retrieval equals cosine retrieval on the backbone features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.device import resolve_device, seed_everything
from training.loop import ProgressCallback, make_optimizer, run_steps, training_items
from training.losses.registry import build_loss


class LinearHead(nn.Module):
    """normalise(W · x/‖x‖); W starts as the identity or a PCA projection (the pretrained metric)."""

    def __init__(
        self, input_dim: int, embedding_dim: int | None = None, basis_features: np.ndarray | None = None
    ):
        super().__init__()
        embedding_dim = embedding_dim or input_dim
        self.linear = nn.Linear(input_dim, embedding_dim, bias=False)
        with torch.no_grad():
            if embedding_dim == input_dim:
                self.linear.weight.copy_(torch.eye(input_dim))
            elif basis_features is not None:
                x = F.normalize(
                    torch.as_tensor(np.asarray(basis_features, dtype=np.float32)), dim=-1
                ).double()
                self.linear.weight.copy_(torch.linalg.svd(x, full_matrices=False)[2][:embedding_dim].float())
            else:
                raise ValueError("a head smaller than its input needs basis_features for its PCA start")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(F.normalize(x, dim=-1)), dim=-1)

    @torch.no_grad()
    def embed(self, features: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Unit-norm float32 embeddings for raw backbone features."""
        device = self.linear.weight.device
        out = [
            self(torch.as_tensor(np.asarray(features[i : i + chunk], dtype=np.float32), device=device))
            .cpu()
            .numpy()
            for i in range(0, len(features), chunk)
        ]
        return np.concatenate(out) if out else np.empty((0, self.linear.out_features), np.float32)


@dataclass
class FineTuneConfig:
    """Settings of :func:`fine_tune`."""

    loss: str = "multi_similarity"
    loss_params: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int | None = None
    steps: int = 200
    batch_size: int = 64
    m_per_class: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.0
    loss_lr: float = 1e-2
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100


@dataclass
class FineTuneResult:
    head: LinearHead
    loss_module: nn.Module
    losses: list[float]
    steps_done: int


def fine_tune(
    features: np.ndarray,
    labels: np.ndarray | None = None,
    triplets: np.ndarray | None = None,
    config: FineTuneConfig | None = None,
    progress: ProgressCallback | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    **overrides: Any,
) -> FineTuneResult:
    """Train a :class:`LinearHead` with a registry loss on labelled batches or triplet batches.

    ``triplets`` are (anchor, positive, negative) rows of indices into ``features``; with triplets the
    batches are triplet batches (labels, when given, only serve losses that need them; without labels
    those losses get click groups, see :func:`training.samplers.click_groups`). With labels alone the
    batches are m-per-class. ``progress(step, total_steps, loss)`` is called after every step. With a
    ``checkpoint_path`` the state is saved atomically every ``checkpoint_every`` steps and at the end,
    and an existing checkpoint is resumed from.
    """
    config = config or FineTuneConfig()
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise TypeError(f"unknown fine_tune setting {key!r}")
        setattr(config, key, value)
    features = np.asarray(features, dtype=np.float32)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    triplet_rows, item_labels = training_items(labels, triplets, len(features))

    head = LinearHead(features.shape[1], config.embedding_dim, features).to(device)
    loss_module = build_loss(config.loss, head.linear.out_features, int(item_labels.max()) + 1,
                             **config.loss_params).to(device)
    optimizer = make_optimizer(head, loss_module, config.lr, config.weight_decay, config.loss_lr)
    feats_t = torch.as_tensor(features, device=device)

    def embed(items: np.ndarray) -> torch.Tensor:
        head.train()
        return head(feats_t[torch.as_tensor(items, device=device)])

    losses, step = run_steps(
        head, loss_module, optimizer, embed, triplet_rows, item_labels, steps=config.steps,
        batch_size=config.batch_size, triplets_per_batch=config.batch_size, m_per_class=config.m_per_class,
        seed=config.seed, device=device, progress=progress, checkpoint_path=checkpoint_path,
        checkpoint_every=config.checkpoint_every,
    )
    head.eval()
    return FineTuneResult(head=head, loss_module=loss_module, losses=losses, steps_done=step)
