"""The step loop both trainers share: training items, batches per epoch, the loss call, checkpoints, progress.

`training.trainer.fine_tune` (a head over features) and `training.backbone_tuning.fine_tune_backbone`
(the CNN itself) differ only in how a batch of items becomes embeddings; everything else lives here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from retrieval.atomic import atomic_torch_save
from training.losses.registry import MetricLoss
from training.samplers import (
    batch_from_triplets,
    click_groups,
    drop_contradictions,
    m_per_class_batches,
    triplet_batches,
)

ProgressCallback = Callable[[int, int, float], None]
Embed = Callable[[np.ndarray], torch.Tensor]  # item indices -> embeddings (train mode, on the device)


def training_items(labels: np.ndarray | None, triplets: np.ndarray | None,
                   num_items: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(triplet rows without contradictions, one label per item: the given labels, else click groups)."""
    if labels is None and triplets is None:
        raise ValueError("training needs labels, triplets or both")
    rows = None if triplets is None else drop_contradictions(triplets)
    item_labels = np.asarray(labels, dtype=np.int64) if labels is not None else click_groups(rows, num_items)
    return rows, item_labels


def make_optimizer(model: nn.Module, loss_module: nn.Module, lr: float, weight_decay: float, loss_lr: float,
                   adamw: bool = False) -> torch.optim.Optimizer:
    """Adam(W) over the model's trainable weights, plus the loss's own parameters (proxies) at `loss_lr`."""
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr,
               "weight_decay": weight_decay}]
    loss_params = list(loss_module.parameters())
    if loss_params:
        groups.append({"params": loss_params, "lr": loss_lr, "weight_decay": 0.0})
    return (torch.optim.AdamW if adamw else torch.optim.Adam)(groups)


def run_steps(
    model: nn.Module,
    loss_module: MetricLoss,
    optimizer: torch.optim.Optimizer,
    embed: Embed,
    triplet_rows: np.ndarray | None,
    item_labels: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    triplets_per_batch: int,
    m_per_class: int,
    seed: int,
    device: torch.device,
    progress: ProgressCallback | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
) -> tuple[list[float], int]:
    """Train until `steps` (resuming from an existing checkpoint); returns (losses per step, steps done).

    Triplet batches when there are triplet rows (losses that take triplets get them as indices_tuple,
    the others the item labels), else m-per-class batches of `batch_size`. The checkpoint (model, loss,
    optimizer, step, losses, facility-location γ) is written atomically every `checkpoint_every` steps
    and at the end, so a resumed run repeats the uninterrupted one.
    """
    step, losses = 0, []
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        loss_module.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
        if hasattr(loss_module.loss, "gamma") and state.get("gamma") is not None:
            loss_module.loss.gamma = state["gamma"]

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        if triplet_rows is not None:
            return triplet_batches(len(triplet_rows), triplets_per_batch, seed, epoch)
        return m_per_class_batches(item_labels, m_per_class, batch_size, seed, epoch)

    per_epoch = len(epoch_batches(0))
    if per_epoch == 0:
        raise ValueError("not enough data for one batch")
    labels_t = torch.as_tensor(item_labels, device=device)
    while step < steps:
        epoch, offset = divmod(step, per_epoch)
        if offset == 0 and epoch > 0:
            loss_module.step_epoch()
        batch = epoch_batches(epoch)[offset]
        indices_tuple = None
        if triplet_rows is not None:
            batch, local = batch_from_triplets(triplet_rows[batch])
            indices_tuple = tuple(t.to(device) for t in local)
        embeddings = embed(batch)
        if indices_tuple is not None and not loss_module.needs_labels:
            value = loss_module(embeddings, None, indices_tuple)
        else:
            value = loss_module(embeddings, labels_t[torch.as_tensor(batch, device=device)])
        optimizer.zero_grad(set_to_none=True)
        if value.requires_grad:
            value.backward()
            optimizer.step()
        step += 1
        losses.append(float(value.detach()))
        if progress is not None:
            progress(step, steps, losses[-1])
        if path is not None and (step % checkpoint_every == 0 or step == steps):
            atomic_torch_save({"model": model.state_dict(), "loss": loss_module.state_dict(),
                               "optimizer": optimizer.state_dict(), "step": step, "losses": losses,
                               "gamma": getattr(loss_module.loss, "gamma", None)}, path)
    return losses, step
