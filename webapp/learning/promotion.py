"""Promotion guard, activation and rollback of model versions."""

from __future__ import annotations

from django.conf import settings

from webapp.gallery import indexing, pipeline
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning.evaluation import evaluate_version, quick_recall_at_1


def guard(candidate: ModelVersion, active: ModelVersion) -> tuple[bool, str]:
    """Promote unless the candidate's Recall@1 is below the active one's by more than the tolerance.

    Both are measured now on the same evaluation queries (labelled held-out images, else held-out
    clicks; at most REFIND_GUARD_MAX_QUERIES of them), so the comparison is like for like and fast.
    """
    mine, theirs = quick_recall_at_1(candidate), quick_recall_at_1(active)
    if mine is None or theirs is None:
        return True, "No labelled or held-out feedback evaluation set: promoted without comparison."
    tolerance = settings.PROMOTION_TOLERANCE_POINTS / 100.0
    delta = (mine[1] - theirs[1]) * 100.0
    verdict = (f"Recall@1 ({mine[0]}, {mine[2]} queries) {mine[1]:.2%} vs active v{active.pk} {theirs[1]:.2%} "
               f"({delta:+.2f} points)")
    if mine[1] < theirs[1] - tolerance:
        return False, f"Rejected: {verdict}; the tolerance is {settings.PROMOTION_TOLERANCE_POINTS} points."
    return True, f"Promoted: {verdict}."


def promote_or_reject(candidate: ModelVersion) -> bool:
    """Guard, then build + activate the candidate's index or mark it rejected; the full report comes last
    so that it does not delay the swap."""
    active = pipeline.active_model_version()
    promoted, note = guard(candidate, active)
    candidate.promotion = ModelVersion.Promotion.PROMOTED if promoted else ModelVersion.Promotion.REJECTED
    candidate.promotion_note = note
    candidate.save(update_fields=["promotion", "promotion_note"])
    if promoted:
        indexing.build_and_activate(candidate)
    evaluate_version(candidate)
    if not active.metrics.get("evaluated_at"):
        evaluate_version(active)
    return promoted


def rollback(version: ModelVersion) -> IndexVersion:
    """Serve `version` again: re-activate its newest index if it covers today's gallery, else rebuild."""
    latest = version.indexes.order_by("-id").first()
    gallery_size = Image.objects.filter(role=Image.Role.GALLERY).count()
    if latest is not None and latest.ntotal == gallery_size and (settings.DATA_DIR / latest.path).exists():
        latest.activate()
        return latest
    return indexing.build_and_activate(version)
