"""Fine-tune the backbone itself, end to end, with any registry loss (a GPU job; CPU works, slowly).

The model is the backbone's pooled-feature network (image batch → feature vectors); the loss sees the
L2-normalised features, so after tuning the gallery is re-extracted with the tuned weights and searched
through an identity head, exactly as with the pretrained backbone. Images are the caller's business:
``load_batch(indices, train)`` returns a preprocessed float batch (N, 3, H, W); with ``train=True`` it may
augment. BatchNorm statistics stay frozen (small metric-learning batches would corrupt them), which also
keeps an untrained model identical to the pretrained one. On CUDA the forward pass runs in bfloat16.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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

BatchLoader = Callable[[np.ndarray, bool], torch.Tensor]
ProgressCallback = Callable[[int, int, float], None]


@dataclass
class BackboneTuningResult:
    model: nn.Module  # eval mode, on the training device
    losses: list[float]
    steps_done: int


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: running statistics stay the pretrained ones."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def fine_tune_backbone(
    model: nn.Module,
    load_batch: BatchLoader,
    num_items: int,
    labels: np.ndarray | None = None,
    triplets: np.ndarray | None = None,
    *,
    loss: str = "multi_similarity",
    steps: int = 200,
    batch_size: int = 64,
    m_per_class: int = 4,
    lr: float = 1e-5,
    loss_lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
) -> BackboneTuningResult:
    """Train a copy of ``model`` on labelled (m-per-class) or triplet batches of items 0..num_items-1.

    ``model`` itself is left untouched. Batches, checkpointing and resuming follow
    :func:`training.trainer.fine_tune`; the loss is computed in float32 on normalised features.
    """
    if labels is None and triplets is None:
        raise ValueError("fine_tune_backbone needs labels, triplets or both")
    spec = REGISTRY[loss]
    device_t = resolve_device(device)
    seed_everything(seed)
    triplet_rows = None if triplets is None else drop_contradictions(triplets)
    if triplet_rows is not None and len(triplet_rows) == 0:
        raise ValueError("no usable triplets")
    item_labels = (np.asarray(labels, dtype=np.int64) if labels is not None
                   else click_groups(triplet_rows, num_items))

    tuned = copy.deepcopy(model).to(device_t)
    with torch.no_grad():
        probe = tuned.eval()(load_batch(np.arange(min(2, num_items)), False).to(device_t))
    loss_module = build_loss(loss, probe.shape[1], int(item_labels.max()) + 1).to(device_t)
    groups = [{"params": [p for p in tuned.parameters() if p.requires_grad], "lr": lr,
               "weight_decay": weight_decay}]
    if list(loss_module.parameters()):
        groups.append({"params": list(loss_module.parameters()), "lr": loss_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)

    step, losses = 0, []
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location=device_t, weights_only=False)
        tuned.load_state_dict(state["model"])
        loss_module.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        if triplet_rows is not None:
            return triplet_batches(len(triplet_rows), max(1, batch_size // 3), seed, epoch)
        return m_per_class_batches(item_labels, m_per_class, batch_size, seed, epoch)

    per_epoch = len(epoch_batches(0))
    if per_epoch == 0:
        raise ValueError("not enough data for one batch")
    labels_t = torch.as_tensor(item_labels, device=device_t)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device_t.type == "cuda")
    while step < steps:
        epoch, offset = divmod(step, per_epoch)
        if offset == 0 and epoch > 0:
            loss_module.step_epoch()
        batch = epoch_batches(epoch)[offset]
        indices_tuple = None
        if triplet_rows is not None:
            items, indices_tuple = batch_from_triplets(triplet_rows[batch])
            indices_tuple = tuple(t.to(device_t) for t in indices_tuple)
        else:
            items = batch
        tuned.train()
        freeze_batchnorm(tuned)
        images = load_batch(items, True).to(device_t, non_blocking=True)
        with autocast:
            features = tuned(images)
        embeddings = F.normalize(features.float(), dim=-1)
        batch_labels = labels_t[torch.as_tensor(items, device=device_t)]
        if indices_tuple is not None and not spec.needs_labels:
            value = loss_module(embeddings, None, indices_tuple)
        else:
            value = loss_module(embeddings, batch_labels)
        optimizer.zero_grad(set_to_none=True)
        if value.requires_grad:
            value.backward()
            optimizer.step()
        step += 1
        losses.append(float(value.detach()))
        if progress is not None:
            progress(step, steps, losses[-1])
        if path is not None and (step % checkpoint_every == 0 or step == steps):
            atomic_torch_save({"model": tuned.state_dict(), "loss": loss_module.state_dict(),
                               "optimizer": optimizer.state_dict(), "step": step, "losses": losses}, path)
    return BackboneTuningResult(model=tuned.eval(), losses=losses, steps_done=step)


@torch.no_grad()
def extract_features(model: nn.Module, load_batch: BatchLoader, num_items: int, batch_size: int = 256,
                     device: str = "auto", bf16: bool = True) -> np.ndarray:
    """Pooled features of items 0..num_items-1 (no augmentation), float32 on the CPU.

    ``bf16=False`` keeps CUDA in float32, so the rows match what a CPU host extracts for the same images.
    """
    device_t = resolve_device(device)
    model = model.to(device_t).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device_t.type == "cuda")
    out = []
    for start in range(0, num_items, batch_size):
        images = load_batch(np.arange(start, min(start + batch_size, num_items)), False).to(device_t)
        with autocast:
            out.append(model(images).float().cpu())
    return torch.cat(out).numpy()
