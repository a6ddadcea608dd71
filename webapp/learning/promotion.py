"""Promotion guard, activation and rollback of model versions."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from webapp import artifacts
from webapp.feedback.models import EvaluationSplit
from webapp.gallery import indexing, pipeline
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning.evaluation import quick_recall_at_1


def guard(
    candidate: ModelVersion, active: ModelVersion, gallery: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[bool, str]:
    """Promote unless the candidate's Recall@1 is below the active one's by more than the tolerance.

    Both are measured now on the same evaluation queries (labelled held-out images, else held-out
    clicks; at most REFIND_GUARD_MAX_QUERIES of them), so the comparison is like for like and fast.
    """
    mine, theirs = quick_recall_at_1(candidate, gallery), cached_quick_recall_at_1(active)
    if mine is None or theirs is None:
        return True, "No labelled or held-out feedback evaluation set: promoted without comparison."
    tolerance = settings.PROMOTION_TOLERANCE_POINTS / 100.0
    delta = (mine[1] - theirs[1]) * 100.0
    verdict = (f"Recall@1 ({mine[0]}, {mine[2]} queries) {mine[1]:.2%} vs active v{active.pk} {theirs[1]:.2%} "
               f"({delta:+.2f} points)")
    if mine[1] < theirs[1] - tolerance:
        return False, f"Rejected: {verdict}; the tolerance is {settings.PROMOTION_TOLERANCE_POINTS} points."
    return True, f"Promoted: {verdict}."


def cached_quick_recall_at_1(version: ModelVersion) -> tuple[str, float, int] | None:
    """quick_recall_at_1, remembered on the version while the gallery and the split stay the same."""
    key = [Image.objects.filter(role=Image.Role.GALLERY).count(),
           EvaluationSplit.objects.order_by("-id").values_list("id", flat=True).first(),
           f"sample-{settings.GUARD_MAX_QUERIES}"]  # figures of other query samples are not comparable
    cached = (version.metrics or {}).get("guard")
    if cached and cached.get("key") == key:
        return tuple(cached["value"]) if cached["value"] else None
    value = quick_recall_at_1(version)
    version.metrics = {**(version.metrics or {}), "guard": {"key": key, "value": list(value) if value else None}}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return value


def promote_or_reject(candidate: ModelVersion) -> bool:
    """Guard, then build + activate the candidate's index or mark it rejected. The full reports are a
    separate task (queue `default`) so that they delay neither the swap nor the next run."""
    active = pipeline.active_model_version()
    gallery = indexing.gallery_vectors(candidate)  # embedded once: for the guard and for the index
    promoted, note = guard(candidate, active, gallery)
    if promoted:  # first: a failed index write (e.g. disk full) leaves the candidate unmarked and inactive
        indexing.build_and_activate(candidate, gallery=gallery)
    candidate.promotion = ModelVersion.Promotion.PROMOTED if promoted else ModelVersion.Promotion.REJECTED
    candidate.promotion_note = note
    candidate.save(update_fields=["promotion", "promotion_note"])
    from webapp.learning import tasks

    for version in (candidate, active):
        if not version.metrics.get("evaluated_at"):
            try:
                tasks.evaluate_model_version.apply_async(args=[version.pk], queue="default")
            except Exception:  # broker down: the dashboard and `manage.py evaluate` can compute it later
                pass
    return promoted


class RollbackRefused(ValueError):
    """The version's artifacts were deleted by retention (webapp/gallery/retention.py)."""


def rollback(version: ModelVersion) -> IndexVersion:
    """Serve `version` again: re-activate its newest index if it covers today's gallery, else rebuild."""
    if version.pruned_at is not None:
        raise RollbackRefused(f"Version {version.pk} was pruned (its artifacts are deleted); it cannot be served.")
    latest = version.indexes.order_by("-id").first()
    indexable = len(indexing.indexable_ids(version.backbone))
    if latest is not None and latest.ntotal == indexable and artifacts.exists(latest.path):
        latest.activate()
        return latest
    return indexing.build_and_activate(version)
