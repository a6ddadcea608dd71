"""Batch mode: fine-tune a linear head with any registry loss on triplets and/or labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.db.models import Max

from retrieval.heads import save_head
from training.trainer import fine_tune
from webapp import artifacts
from webapp.feedback.models import Triplet
from webapp.feedback.usable import usable_triplets
from webapp.gallery import pipeline
from webapp.gallery.features import ensure_features
from webapp.gallery.models import Image, ModelVersion
from webapp.learning.evaluation import is_heldout_impression
from webapp.learning.heads import LinearMetricHead


def _training_triplets(max_id: int) -> np.ndarray:
    rows = usable_triplets(Triplet.objects.filter(id__lte=max_id)).values_list(
        "anchor_id", "positive_id", "negative_id", "judgement__impression_id"
    )
    return np.array([r[:3] for r in rows if r[3] is None or not is_heldout_impression(r[3])],
                    dtype=np.int64).reshape(-1, 3)


def training_images(backbone: str, use: str, watermark: int) -> tuple[np.ndarray, np.ndarray | None,
                                                                      np.ndarray | None]:
    """(image ids, labels, triplet rows into the ids): triplets when there are some (and asked for), else
    labels. Only images with features under `backbone` (readable originals) take part."""
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


def batch_shape(params: dict, labels: np.ndarray | None, items: int) -> tuple[int, int]:
    """(batch size, steps): m-per-class batches need a multiple of m that the data can fill."""
    batch_size = int(params.get("batch_size", 64))
    if labels is not None:
        m = 4
        batch_size = max(m, min(batch_size, m * len(set(labels.tolist())), len(labels)) // m * m)
    return batch_size, int(params.get("epochs", 5)) * max(1, items // batch_size)


def batch_retrain(run_id: int, params: dict, progress: Callable[[float, str], None]) -> ModelVersion:
    """Train on what exists now; never on held-out images' labels or held-out impressions' clicks."""
    active = pipeline.active_model_version()
    watermark = Triplet.objects.aggregate(top=Max("id"))["top"] or 0
    ids, labels, triplet_rows = training_images(active.backbone, params.get("data", "both"), watermark)
    features = pipeline.feature_store(active.backbone).get(ids)
    batch_size, steps = batch_shape(params, labels, len(features))
    result = fine_tune(
        features, labels, triplet_rows, loss=params.get("loss", settings.BATCH_DEFAULT_LOSS),
        steps=steps, lr=float(params.get("lr", 1e-4)), device=params.get("device", settings.TRAINING_DEVICE),
        batch_size=batch_size, seed=int(params.get("seed", 0)),
        checkpoint_path=settings.CACHE_DIR / "checkpoints" / f"run-{run_id}.ckpt",  # this host's scratch
        progress=lambda step, total, loss: progress(0.8 * step / total, f"step {step}/{total}, loss {loss:.4f}"),
    )
    # Stored under a new name before a row points to it (ArtifactError, e.g. disk full: no version is made).
    head = LinearMetricHead(result.head)
    artifact = artifacts.publish(artifacts.new_name("models", f"linear-run{run_id:06d}", ".pt"),
                                 lambda path: save_head(head, path))
    return ModelVersion.objects.create(
        backbone=active.backbone, head_kind="linear", head_file=artifact, parent=active,
        triplet_watermark=watermark,
        config={"mode": "batch", **params, "steps": steps, "items": len(features),
                "triplets": 0 if triplet_rows is None else len(triplet_rows)},
    )
