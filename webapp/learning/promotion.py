"""Promotion guard, activation and rollback of model versions."""

from __future__ import annotations

import base64

import numpy as np
from django.conf import settings

from training.paired_test import compare, decide
from webapp import artifacts, dispatch
from webapp.gallery import indexing
from webapp.gallery.models import TUNED, IndexVersion, ModelVersion
from webapp.learning.evaluation import GuardQueries, guard_hits, guard_queries


def guard(
    candidate: ModelVersion, active: ModelVersion, gallery: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[bool, str, dict | None]:
    """(promote?, note, evidence): a paired test of candidate vs active on the same evaluation queries.

    The queries: every labelled held-out image (at most REFIND_GUARD_MAX_QUERIES, default 10,000, a fixed
    seeded sample beyond that), else clicks on held-out impressions. Promoted only with at least
    REFIND_GUARD_MIN_DISCORDANT queries on which the two differ, a difference ≥ 0 and a paired bootstrap
    interval (REFIND_GUARD_CONFIDENCE) whose lower end is above −REFIND_PROMOTION_TOLERANCE_POINTS
    (training/paired_test.py). REFIND_PROMOTION_GUARD=off promotes every candidate.
    """
    if settings.PROMOTION_GUARD == "off":
        return True, "Promoted without comparison: the promotion guard is off (REFIND_PROMOTION_GUARD).", None
    queries = guard_queries(candidate.backbone)
    comparison = None
    if queries is not None:
        mine, theirs = guard_hits(candidate, queries, gallery), cached_guard_hits(active, queries)
        if mine is not None and theirs is not None:
            comparison = compare(mine, theirs, confidence=settings.GUARD_CONFIDENCE)
    decision = decide(comparison, settings.PROMOTION_TOLERANCE_POINTS, settings.GUARD_MIN_DISCORDANT)
    evidence = None if comparison is None else {
        **comparison.as_dict(), "kind": queries.kind, "active_version": active.pk,
        "tolerance": settings.PROMOTION_TOLERANCE_POINTS, "min_discordant": settings.GUARD_MIN_DISCORDANT,
        "promote": decision.promote}
    return decision.promote, f"{decision.reason} (active v{active.pk})", evidence


def cached_guard_hits(version: ModelVersion, queries: GuardQueries) -> np.ndarray | None:
    """guard_hits of the active version, remembered on it for this exact query set (GuardQueries.key)."""
    cached = (version.metrics or {}).get("guard")
    if cached and cached.get("key") == queries.key and cached.get("hits") is not None:
        return np.unpackbits(np.frombuffer(base64.b64decode(cached["hits"]), dtype=np.uint8),
                             count=int(cached["count"])).astype(bool)
    hits = guard_hits(version, queries)
    packed = None if hits is None else base64.b64encode(np.packbits(hits).tobytes()).decode()
    version.metrics = {**(version.metrics or {}), "guard": {
        "key": queries.key, "hits": packed, "count": 0 if hits is None else len(hits)}}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return hits


def promote_or_reject(candidate: ModelVersion) -> bool:
    """Guard, then build + activate the candidate's index or mark it rejected. The full reports are a
    separate task (queue `default`) so that they delay neither the swap nor the next run."""
    active = ModelVersion.active()
    gallery = indexing.gallery_vectors(candidate)  # embedded once: for the guard and for the index
    promoted, note, evidence = guard(candidate, active, gallery)
    if promoted:  # first: a failed index write (e.g. disk full) leaves the candidate unmarked and inactive
        indexing.build_and_activate(candidate, gallery=gallery)
    candidate.promotion = ModelVersion.Promotion.PROMOTED if promoted else ModelVersion.Promotion.REJECTED
    candidate.promotion_note = note
    candidate.save(update_fields=["promotion", "promotion_note"])
    if evidence is not None:  # shown on the dashboard next to the decision
        candidate.metrics = {**(candidate.metrics or {}), "promotion_evidence": evidence}
        ModelVersion.objects.filter(pk=candidate.pk).update(metrics=candidate.metrics)
    for version in (candidate, active):
        if not version.metrics.get("evaluated_at"):
            dispatch.send_evaluation(version.pk)  # broker down: housekeeping sends it later
    return promoted


class VersionUnavailable(RuntimeError):
    """A model version cannot be served: one of its artifacts cannot be fetched (the message says which)."""


def _fetchable(kind: str, name: str) -> None:
    try:
        artifacts.fetch(name)
    except OSError as exc:
        raise VersionUnavailable(f"Its {kind} ({name}) cannot be fetched from the storage: {exc}") from exc


def rollback(version: ModelVersion) -> IndexVersion:
    """Serve `version` again: re-activate its newest index if it covers today's gallery, else rebuild.

    Raises VersionUnavailable, activating nothing, when its head, tuned backbone or index cannot be fetched,
    or when retention pruned it (webapp/gallery/retention.py)."""
    if version.pruned_at is not None:
        raise VersionUnavailable("It was pruned by retention (prune_artifacts): its artifacts are deleted.")
    if version.head_file:
        _fetchable("metric head", version.head_file)
    if TUNED in version.backbone:
        _fetchable("tuned backbone", version.backbone.partition(TUNED)[2])
    latest = version.indexes.order_by("-id").first()
    indexable = len(indexing.indexable_ids(version.backbone))
    if latest is not None and latest.ntotal == indexable:
        _fetchable("index", latest.path)
        latest.activate()
        return latest
    return indexing.build_and_activate(version)
