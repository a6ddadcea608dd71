"""Batch mode: fine-tune a linear head with any registry loss on triplets and/or labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Max

from retrieval.heads import save_head
from training.trainer import fine_tune
from webapp import artifacts
from webapp.feedback.models import Triplet
from webapp.feedback.splits import is_heldout_impression
from webapp.feedback.usable import usable_triplets
from webapp.gallery.features import ensure_features
from webapp.gallery.models import Image, ModelVersion
from webapp.learning.clicks import click_data
from webapp.learning.heads import LinearMetricHead
from webapp.learning.parameters import RunParameters
from webapp.runtime import runtime


def _training_triplets(max_id: int) -> np.ndarray:
    rows = usable_triplets(Triplet.objects.filter(id__lte=max_id)).values_list(
        "anchor_id", "positive_id", "negative_id", "judgement__impression_id"
    )
    return np.array([r[:3] for r in rows if r[3] is None or not is_heldout_impression(r[3])],
                    dtype=np.int64).reshape(-1, 3)


def training_images(backbone: str, use: str, watermark: int) -> tuple[np.ndarray, np.ndarray | None,
                                                                      np.ndarray | None]:
    """(image ids, labels, triplet rows into the ids): triplets when there are some (and asked for), else
    labels. Only images with features under `backbone` (readable originals) take part. `use="clicks"`: every
    click — click-graph components as labels and every-click triplets (webapp/learning/clicks.py)."""
    if use == "clicks":
        found = click_data(backbone, watermark)
        if found is None or len(set(found.labels.tolist())) < 2:
            raise ValueError("Not enough clicks to learn from: give feedback first.")
        return found.ids, found.labels, found.triplets
    triplets = _training_triplets(watermark) if use in ("triplets", "both") else np.empty((0, 3), np.int64)
    if len(triplets):
        members = np.unique(triplets)
        members = members[ensure_features(members, backbone).contains(members)]
        triplets = triplets[np.isin(triplets, members).all(axis=1)]
    if len(triplets):
        row = {int(image_id): i for i, image_id in enumerate(members)}
        return members, None, np.vectorize(row.__getitem__)(triplets)
    if use in ("labels", "both"):
        labelled = (Image.objects.filter(role=Image.Role.GALLERY).exclude(label="")
                    .exclude(split=Image.Split.HELDOUT).order_by("id").values_list("id", "label"))
        ids = np.array([i for i, _ in labelled], dtype=np.int64)
        names = np.array([name for _, name in labelled])
        keep = ensure_features(ids, backbone).contains(ids) if len(ids) else np.zeros(0, dtype=bool)
        if keep.sum() >= 4 and len(set(names[keep])) >= 2:
            _, labels = np.unique(names[keep], return_inverse=True)
            return ids[keep], labels, None
    raise ValueError("Not enough training data: give feedback, or import and split a labelled gallery.")


@dataclass(frozen=True)
class BatchSetup:
    """What a batch run (head or backbone) trains on, and how long: shared by both trainers."""

    active: ModelVersion
    watermark: int
    ids: np.ndarray
    labels: np.ndarray | None
    triplet_rows: np.ndarray | None
    batch_size: int
    steps: int

    def progress(self, report: Callable[[float, str], None], share: float) -> Callable[[int, int, float], None]:
        """A trainer's per-step callback reporting the first `share` of the run's progress."""
        return lambda step, total, loss: report(share * step / total, f"step {step}/{total}, loss {loss:.4f}")

    def config(self, parameters: RunParameters) -> dict:
        """The new model version's config: the run's parameters and what it trained on."""
        return {"mode": "batch", **parameters.stored(), "steps": self.steps, "items": len(self.ids),
                "triplets": 0 if self.triplet_rows is None else len(self.triplet_rows)}


def batch_shape(batch_size: int, epochs: int, labels: np.ndarray | None, items: int) -> tuple[int, int]:
    """(batch size, steps): m-per-class batches need a multiple of m that the data can fill."""
    if labels is not None:
        m = 4
        batch_size = max(m, min(batch_size, m * len(set(labels.tolist())), len(labels)) // m * m)
    return batch_size, epochs * max(1, items // batch_size)


def prepare(parameters: RunParameters) -> BatchSetup:
    """Training data of the active model's backbone up to the newest triplet; never held-out labels or
    held-out impressions' clicks."""
    active = ModelVersion.active()
    watermark = Triplet.objects.aggregate(top=Max("id"))["top"] or 0
    ids, labels, triplet_rows = training_images(active.backbone, parameters.data, watermark)
    batch_size, steps = batch_shape(parameters.batch_size, parameters.epochs, labels, len(ids))
    return BatchSetup(active, watermark, ids, labels, triplet_rows, batch_size, steps)


def checkpoint_path(run_id: int, suffix: str = "") -> Path:
    """This host's scratch file that lets a redelivered run resume."""
    return settings.CACHE_DIR / "checkpoints" / f"run-{run_id}{suffix}.ckpt"


def batch_retrain(run_id: int, parameters: RunParameters, progress: Callable[[float, str], None]) -> ModelVersion:
    """Fine-tune a linear head on the active backbone's cached features."""
    setup = prepare(parameters)
    features = runtime.feature_store(setup.active.backbone).get(setup.ids)
    result = fine_tune(
        features, setup.labels, setup.triplet_rows, loss=parameters.loss, steps=setup.steps, lr=parameters.lr,
        device=parameters.device, batch_size=setup.batch_size, seed=parameters.seed,
        checkpoint_path=checkpoint_path(run_id), progress=setup.progress(progress, 0.8),
    )
    # Stored under a new name before a row points to it (ArtifactError, e.g. disk full: no version is made).
    head = LinearMetricHead(result.head)
    artifact = artifacts.publish(artifacts.new_name("models", f"linear-run{run_id:06d}", ".pt"),
                                 lambda path: save_head(head, path))
    return ModelVersion.objects.create(
        backbone=setup.active.backbone, head_kind="linear", head_file=artifact, parent=setup.active,
        triplet_watermark=setup.watermark, config=setup.config(parameters),
    )
