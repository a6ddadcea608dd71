"""Evaluation reports of model versions: labelled held-out Recall@K / NMI / MAP@R, and feedback Recall@K.

Labelled, leak-free: held-out images (Image.split) are the queries; they are never in the index
(webapp/gallery/indexing.py), so they are never shown, clicked or trained on, and are searched as uploads
are — embedded by the version and looked up in the indexed, labelled gallery. Without a split every labelled
indexed image is a query against the others (leave-one-out, named so in the report).
Feedback (for unlabelled galleries): clicks on *held-out impressions* — every impression whose id is
a multiple of LEARNING_HELDOUT_IMPRESSION_EVERY, never used for training — count a hit at K when the
clicked image is among the query's top K under the version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings
from django.utils import timezone

from retrieval.index import build_index, search
from training.evaluation import DEFAULT_KS, evaluate, evaluate_against
from webapp.feedback.models import Judgement
from webapp.feedback.splits import is_heldout_impression
from webapp.gallery.features import ensure_features
from webapp.gallery.indexing import gallery_vectors, indexable_ids
from webapp.gallery.models import Image, ModelVersion
from webapp.gallery.state import gallery_state
from webapp.runtime import runtime

MIN_LABELLED_QUERIES = 2


@dataclass(frozen=True)
class LabelledSet:
    """Evaluation queries and the reference they are searched against (image ids and labels).

    With a split the queries are the held-out images, which are never in the index (indexing.indexable_ids)
    and so never shown, clicked or trained on; the reference is the labelled part of the index. Without a
    split every labelled indexed image is a query against the others (leave-one-out; not leak-free once
    those images have been clicked, hence the protocol name in the report)."""

    query_ids: np.ndarray
    query_labels: np.ndarray
    reference_ids: np.ndarray
    reference_labels: np.ndarray
    leave_one_out: bool

    @property
    def protocol(self) -> str:
        return "all labelled, leave-one-out" if self.leave_one_out else "held-out queries, not in the index"


def labelled_set(backbone: str) -> LabelledSet | None:
    """The labelled evaluation set under `backbone` (images with features only), or None if too small."""
    rows = list(Image.objects.filter(role=Image.Role.GALLERY).exclude(label="").order_by("id")
                .values_list("id", "label", "split"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    labels = np.array([r[1] for r in rows], dtype=object).astype(str)
    heldout = np.array([r[2] == Image.Split.HELDOUT for r in rows], dtype=bool)
    if not len(ids):
        return None
    keep = ensure_features(ids, backbone).contains(ids)
    indexed = np.isin(ids, indexable_ids(backbone))
    queries, reference = keep & heldout, keep & indexed
    leave_one_out = queries.sum() < MIN_LABELLED_QUERIES
    if leave_one_out:
        queries = reference
    if queries.sum() < MIN_LABELLED_QUERIES or reference.sum() < 2 or len(set(labels[reference])) < 2:
        return None
    return LabelledSet(ids[queries], labels[queries], ids[reference], labels[reference], bool(leave_one_out))


def labelled_report(version: ModelVersion) -> dict | None:
    found = labelled_set(version.backbone)
    if found is None:
        return None
    store = runtime.feature_store(version.backbone)
    names, codes = np.unique(np.concatenate([found.query_labels, found.reference_labels]), return_inverse=True)
    query_codes, reference_codes = codes[: len(found.query_ids)], codes[len(found.query_ids):]
    reference = runtime.embed(version, store.get(found.reference_ids))
    if found.leave_one_out:
        metrics = evaluate(reference, reference_codes)
    else:  # searched as an upload is: embedded by the version, against an index that never held it
        queries = runtime.embed(version, store.get(found.query_ids))
        metrics = evaluate_against(queries, query_codes, reference, reference_codes)
    return {**metrics, "queries": len(found.query_ids), "gallery": len(found.reference_ids),
            "protocol": found.protocol}


def feedback_report(version: ModelVersion) -> dict | None:
    clicks = heldout_clicks()
    if not clicks:
        return None
    ids, vectors = gallery_vectors(version)
    index = build_index(vectors, ids, "Flat")
    asked = np.array(sorted({q for q, _ in clicks}), dtype=np.int64)
    store = ensure_features(asked, version.backbone)
    queries = asked[store.contains(asked)].tolist()
    if not queries:
        return None
    k_max = max(DEFAULT_KS) + 1
    _, found = search(index, runtime.embed(version, store.get(np.array(queries))), k_max)
    ranked = {q: [i for i in row if i != q] for q, row in zip(queries, found.tolist(), strict=True)}
    ranks = [ranked[q].index(i) + 1 if i in ranked[q] else None for q, i in clicks if q in ranked]
    report = {f"recall@{k}": float(np.mean([r is not None and r <= k for r in ranks])) for k in DEFAULT_KS}
    return {**report, "clicks": len(ranks)}


def evaluate_version(version: ModelVersion) -> dict:
    """Compute and store the version's report."""
    report = {**{k: v for k, v in (version.metrics or {}).items() if k in ("guard", "promotion_evidence")},
              "labelled": labelled_report(version), "feedback": feedback_report(version),
              "gallery": gallery_state(), "evaluated_at": timezone.now().isoformat()}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=report)
    version.metrics = report
    return report


def guard_query_rows(heldout: np.ndarray, limit: int) -> np.ndarray:
    """Rows of at most `limit` held-out queries: a fixed seeded sample spread over the whole held-out half.

    Not the first `limit` rows: rows are in id order, i.e. in import (folder) order, so those would be a
    few labels only and the guard would judge candidates on them (bench/app_learning.py showed it).
    """
    rows = np.flatnonzero(heldout)
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))


@dataclass(frozen=True)
class GuardQueries:
    """The queries the guard judges both versions on: labelled (`labelled` set, at most
    GUARD_MAX_QUERIES of its queries) or, for unlabelled galleries, clicks on held-out impressions."""

    kind: str
    labelled: LabelledSet | None = None
    clicks: tuple[tuple[int, int], ...] = ()

    @property
    def key(self) -> str:
        """Identifies the exact query set: hits measured on another set are never paired with these."""
        digest = hashlib.sha256(self.kind.encode())
        if self.labelled is not None:
            for array in (self.labelled.query_ids, self.labelled.reference_ids):
                digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        digest.update(np.array(self.clicks, dtype=np.int64).tobytes())
        return digest.hexdigest()[:32]


def guard_queries(backbone: str) -> GuardQueries | None:
    found = labelled_set(backbone)
    if found is not None:
        rows = guard_query_rows(np.ones(len(found.query_ids), dtype=bool), settings.GUARD_MAX_QUERIES)
        return GuardQueries("labelled", replace(found, query_ids=found.query_ids[rows],
                                                query_labels=found.query_labels[rows]))
    clicks = heldout_clicks()
    return GuardQueries("feedback", clicks=tuple(clicks[: settings.GUARD_MAX_QUERIES])) if clicks else None


def heldout_clicks() -> list[tuple[int, int]]:
    """(query image, clicked image) of positive judgements on held-out impressions, in judgement order."""
    if settings.LEARNING_HELDOUT_IMPRESSION_EVERY <= 0:
        return []
    rows = (Judgement.objects.exclude(kind=Judgement.Kind.DISSIMILAR).order_by("id")
            .exclude(image__role=Image.Role.REMOVED).exclude(impression__query__role=Image.Role.REMOVED)
            .values_list("impression_id", "impression__query_id", "image_id"))
    return [(int(q), int(i)) for impression_id, q, i in rows if is_heldout_impression(impression_id)]


def guard_hits(version: ModelVersion, queries: GuardQueries,
               gallery: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
    """Per query, whether `version` gets it right at rank 1 (None: features missing under its backbone).

    `gallery` = (ids, vectors) already embedded by `version` (indexing.gallery_vectors) saves embedding again.
    """
    store = runtime.feature_store(version.backbone)
    if queries.labelled is not None:
        found = queries.labelled
        needed = np.concatenate([found.query_ids, found.reference_ids])
        if not ensure_features(needed, version.backbone).contains(needed).all():
            return None
        reference = _embedded(version, found.reference_ids, gallery)
        k = 2 if found.leave_one_out else 1
        vectors = _embedded(version, found.query_ids, gallery) if found.leave_one_out else \
            runtime.embed(version, store.get(found.query_ids))
        _, rows = search(build_index(reference, np.arange(len(reference)), "Flat"), vectors, k)
        if found.leave_one_out:  # skip the query itself
            own = np.searchsorted(found.reference_ids, found.query_ids)
            rows = np.where(rows[:, 0] == own, rows[:, 1], rows[:, 0])
        else:
            rows = rows[:, 0]
        return found.reference_labels[rows] == found.query_labels
    asked = np.array(sorted({q for q, _ in queries.clicks}), dtype=np.int64)
    if not ensure_features(asked, version.backbone).contains(asked).all():
        return None
    ids, vectors = gallery if gallery is not None else gallery_vectors(version)
    _, found_ids = search(build_index(vectors, ids, "Flat"), runtime.embed(version, store.get(asked)), 2)
    first = {int(q): int(row[1] if row[0] == q else row[0]) for q, row in zip(asked, found_ids, strict=True)}
    return np.array([first[q] == i for q, i in queries.clicks], dtype=bool)


def _embedded(version: ModelVersion, ids: np.ndarray, gallery: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if gallery is not None:
        position = {int(i): n for n, i in enumerate(gallery[0].tolist())}
        if all(int(i) in position for i in ids):
            return gallery[1][[position[int(i)] for i in ids]]
    return runtime.embed(version, runtime.feature_store(version.backbone).get(ids))
