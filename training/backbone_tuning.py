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

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.device import resolve_device, seed_everything
from training.loop import ProgressCallback, make_optimizer, run_steps, training_items
from training.losses.registry import build_loss

BatchLoader = Callable[[np.ndarray, bool], torch.Tensor]


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

    ``model`` itself is left untouched. Batches, checkpointing and resuming are
    :func:`training.loop.run_steps` (triplet batches of ``batch_size // 3`` triplets); the loss is
    computed in float32 on normalised features.
    """
    device_t = resolve_device(device)
    seed_everything(seed)
    triplet_rows, item_labels = training_items(labels, triplets, num_items)
    tuned = copy.deepcopy(model).to(device_t)
    with torch.no_grad():
        probe = tuned.eval()(load_batch(np.arange(min(2, num_items)), False).to(device_t))
    loss_module = build_loss(loss, probe.shape[1], int(item_labels.max()) + 1).to(device_t)
    optimizer = make_optimizer(tuned, loss_module, lr, weight_decay, loss_lr, adamw=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device_t.type == "cuda")

    def embed(items: np.ndarray) -> torch.Tensor:
        tuned.train()
        freeze_batchnorm(tuned)
        images = load_batch(items, True).to(device_t, non_blocking=True)
        with autocast:
            features = tuned(images)
        return F.normalize(features.float(), dim=-1)

    losses, step = run_steps(
        tuned, loss_module, optimizer, embed, triplet_rows, item_labels, steps=steps, batch_size=batch_size,
        triplets_per_batch=max(1, batch_size // 3), m_per_class=m_per_class, seed=seed, device=device_t,
        progress=progress, checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every,
    )
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
