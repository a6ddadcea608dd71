"""Periodic fine-tuning of a linear metric head with any registry loss, on labels and/or triplets.

The head starts from the pretrained metric: embed(x) = normalise(W x̂) with x̂ = x / ‖x‖ and W the
identity (embedding_dim = input dim) or the top principal directions of the features (smaller
embedding_dim), so with no training retrieval equals cosine retrieval on the backbone features.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.device import resolve_device, seed_everything
from training.losses.registry import REGISTRY, build_loss
from training.oahu import atomic_torch_save
from training.samplers import (
    batch_from_triplets,
    click_groups,
    drop_contradictions,
    m_per_class_batches,
    triplet_batches,
)

ProgressCallback = Callable[[int, int, float], None]


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
    if labels is None and triplets is None:
        raise ValueError("fine_tune needs labels, triplets or both")
    features = np.asarray(features, dtype=np.float32)
    spec = REGISTRY[config.loss]
    device = resolve_device(config.device)
    seed_everything(config.seed)

    triplet_rows = None if triplets is None else drop_contradictions(triplets)
    if labels is not None:
        item_labels = np.asarray(labels, dtype=np.int64)
    elif triplet_rows is not None:
        item_labels = click_groups(triplet_rows, len(features))
    num_classes = int(item_labels.max()) + 1

    head = LinearHead(features.shape[1], config.embedding_dim, features).to(device)
    embedding_dim = head.linear.out_features
    loss_module = build_loss(config.loss, embedding_dim, num_classes, **config.loss_params).to(device)
    groups = [{"params": head.parameters(), "lr": config.lr, "weight_decay": config.weight_decay}]
    loss_params = list(loss_module.parameters())
    if loss_params:
        groups.append({"params": loss_params, "lr": config.loss_lr})
    optimizer = torch.optim.Adam(groups)

    step, losses = 0, []
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=False)
        head.load_state_dict(state["head"])
        loss_module.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
        if hasattr(loss_module.loss, "gamma") and "gamma" in state:
            loss_module.loss.gamma = state["gamma"]

    feats_t = torch.as_tensor(features, device=device)
    labels_t = torch.as_tensor(item_labels, device=device)

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        if triplet_rows is not None:
            return triplet_batches(len(triplet_rows), config.batch_size, config.seed, epoch)
        return m_per_class_batches(item_labels, config.m_per_class, config.batch_size, config.seed, epoch)

    per_epoch = len(epoch_batches(0))
    if per_epoch == 0:
        raise ValueError("not enough data for one batch")
    while step < config.steps:
        epoch, offset = divmod(step, per_epoch)
        if offset == 0 and epoch > 0:
            loss_module.step_epoch()
        batch = epoch_batches(epoch)[offset]
        head.train()
        if triplet_rows is not None:
            items, indices_tuple = batch_from_triplets(triplet_rows[batch])
            items_t = torch.as_tensor(items, device=device)
            embeddings = head(feats_t[items_t])
            batch_labels = labels_t[items_t]
            if spec.needs_labels:
                value = loss_module(embeddings, batch_labels)
            else:
                value = loss_module(embeddings, None, tuple(t.to(device) for t in indices_tuple))
        else:
            rows = torch.as_tensor(batch, device=device)
            value = loss_module(head(feats_t[rows]), labels_t[rows])
        optimizer.zero_grad()
        if value.requires_grad:
            value.backward()
            optimizer.step()
        step += 1
        losses.append(float(value.detach()))
        if progress is not None:
            progress(step, config.steps, losses[-1])
        if path is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            state = {
                "head": head.state_dict(),
                "loss": loss_module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "losses": losses,
                "gamma": getattr(loss_module.loss, "gamma", None),
            }
            atomic_torch_save(state, path)
    head.eval()
    return FineTuneResult(head=head, loss_module=loss_module, losses=losses, steps_done=step)
