"""Online learning with OAHU: consume new triplets exactly once, publish a candidate when enough changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import numpy as np
from django.conf import settings

from training.device import resolve_device
from training.oahu import OAHU, OAHUConfig
from webapp import artifacts
from webapp.feedback import consumer
from webapp.feedback.models import Triplet
from webapp.feedback.splits import is_heldout_impression
from webapp.feedback.usable import usable_triplets
from webapp.gallery.features import ensure_features
from webapp.gallery.indexing import indexable_ids
from webapp.gallery.models import ModelVersion
from webapp.learning.models import AlphaSnapshot
from webapp.runtime import runtime

CURSOR = "oahu"
READ_LIMIT = 5000
BASIS_SAMPLE = 4096  # enough to estimate the top principal directions; SVD stays ~0.5 s


def new_learner(backbone: str) -> OAHU:
    """A learner that starts as the pretrained metric, its basis fitted on gallery features."""
    gallery = indexable_ids(backbone)
    store = runtime.feature_store(backbone)
    if len(gallery) > BASIS_SAMPLE:
        gallery = np.random.default_rng(0).choice(gallery, BASIS_SAMPLE, replace=False)
    params = {**asdict(OAHUConfig(input_dim=store.dim)), **settings.OAHU_PARAMS}
    del params["input_dim"]
    basis_dim = min(params["basis_dim"], len(gallery))
    if basis_dim < params["basis_dim"]:  # a small gallery: shrink the learned part, keep its shape rules
        params.update(basis_dim=basis_dim, embedding_dim=basis_dim)
    return OAHU(store.dim, basis_features=store.get(np.sort(gallery)), **params)


def load_learner(cursor, backbone: str) -> OAHU:
    """The cursor's learner (or a new one), updating on TRAINING_DEVICE: CUDA through the torch pass on a GPU
    worker, else the NumPy pass (training/oahu_torch.py)."""
    learner = OAHU.load(artifacts.fetch(cursor.artifact)) if cursor.artifact else new_learner(backbone)
    return learner.use_device(resolve_device(settings.TRAINING_DEVICE))


def online_update(progress: Callable[[float, str], None]) -> ModelVersion | None:
    """Learn from every triplet past the cursor; return a new candidate version, or None if not enough changed."""
    active = ModelVersion.active()
    cursor = consumer.open_cursor(CURSOR)
    learner = load_learner(cursor, active.backbone)
    watermark, learned, total = cursor.watermark, 0, max(1, consumer.pending(cursor.watermark))
    while len(batch := consumer.read_batch(watermark, READ_LIMIT)):
        keep = np.array([not is_heldout_impression(int(i)) for i in batch.impressions], dtype=bool)
        keep &= np.isin(batch.sources, settings.ONLINE_TRIPLET_SOURCES)
        store = ensure_features(np.concatenate([batch.anchors, batch.positives, batch.negatives]), active.backbone)
        keep &= store.contains(batch.anchors) & store.contains(batch.positives) & store.contains(batch.negatives)
        if keep.any():
            learner.partial_fit(store.get(batch.anchors[keep]), store.get(batch.positives[keep]),
                                store.get(batch.negatives[keep]), batch_size=settings.OAHU_BATCH_SIZE)
        learned += int(keep.sum())
        watermark = batch.last_id
        progress(min(0.8, 0.8 * learned / total), f"learned from {learned} triplets")
    if watermark == cursor.watermark:
        return None
    # Stored under a new name before the cursor points to it (ArtifactError, e.g. disk full: nothing moves).
    artifact = artifacts.publish(artifacts.new_name("models", f"oahu-w{watermark:012d}", ".pt"), learner.save)
    if not consumer.advance(CURSOR, expected=cursor.watermark, watermark=watermark, artifact=artifact):
        raise RuntimeError("Another learner consumed these triplets first; nothing was published.")
    AlphaSnapshot.objects.create(triplets_seen=learner.triplets_seen, alpha=[float(a) for a in learner.alpha])
    return _publish_if_enough(active, artifact, watermark, learner)


def _publish_if_enough(active: ModelVersion, artifact: str, watermark: int, learner: OAHU) -> ModelVersion | None:
    last = ModelVersion.objects.filter(head_kind="oahu").order_by("-triplet_watermark").first()
    since = usable_triplets(Triplet.objects.filter(id__gt=last.triplet_watermark if last else 0,
                                                 id__lte=watermark)).count()
    if since < settings.ONLINE_MIN_NEW_TRIPLETS:
        return None
    return ModelVersion.objects.create(
        backbone=active.backbone, head_kind="oahu", head_file=artifact, parent=active, triplet_watermark=watermark,
        config={"mode": "oahu", "triplets_seen": learner.triplets_seen, "alpha": [float(a) for a in learner.alpha],
                **settings.OAHU_PARAMS},
    )
