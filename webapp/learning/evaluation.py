"""Evaluation reports of model versions: labelled held-out Recall@K / NMI / MAP@R, and feedback Recall@K.

Labelled: held-out images (Image.split) are the queries, the whole labelled gallery the reference,
the query itself excluded (training.evaluation). Without a split every labelled image is a query.
Feedback (for unlabelled galleries): clicks on *held-out impressions* — every impression whose id is
a multiple of LEARNING_HELDOUT_IMPRESSION_EVERY, never used for training — count a hit at K when the
clicked image is among the query's top K under the version.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.utils import timezone

from retrieval.index import build_index, search
from training.evaluation import DEFAULT_KS, evaluate
from webapp.feedback.models import Judgement
from webapp.gallery import pipeline
from webapp.gallery.features import ensure_features
from webapp.gallery.indexing import gallery_vectors
from webapp.gallery.models import Image, ModelVersion
from webapp.gallery.state import gallery_state

MIN_LABELLED_QUERIES = 2


def is_heldout_impression(impression_id: int) -> bool:
    every = settings.LEARNING_HELDOUT_IMPRESSION_EVERY
    return every > 0 and impression_id % every == 0


def labelled_gallery(backbone: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, labels, held-out mask) of labelled gallery images with features, in id order."""
    rows = list(Image.objects.filter(role=Image.Role.GALLERY).exclude(label="").order_by("id")
                .values_list("id", "label", "split"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    labels = np.array([r[1] for r in rows], dtype=object)
    heldout = np.array([r[2] == Image.Split.HELDOUT for r in rows], dtype=bool)
    keep = ensure_features(ids, backbone).contains(ids) if len(ids) else np.zeros(0, dtype=bool)
    return ids[keep], labels[keep], heldout[keep]


def labelled_report(version: ModelVersion) -> dict | None:
    ids, labels, heldout = labelled_gallery(version.backbone)
    store = pipeline.feature_store(version.backbone)
    if not len(ids):
        return None
    query_mask = heldout.copy()
    if query_mask.sum() < MIN_LABELLED_QUERIES:
        query_mask = np.ones(len(ids), dtype=bool)
    if query_mask.sum() < MIN_LABELLED_QUERIES or len(set(labels)) < 2:
        return None
    embeddings = pipeline.embed(version, store.get(ids))
    metrics = evaluate(embeddings, np.unique(labels.astype(str), return_inverse=True)[1], query_mask=query_mask)
    return {**metrics, "queries": int(query_mask.sum()), "gallery": len(ids),
            "protocol": "held-out split" if heldout.sum() >= MIN_LABELLED_QUERIES else "all labelled"}


def feedback_report(version: ModelVersion) -> dict | None:
    every = settings.LEARNING_HELDOUT_IMPRESSION_EVERY
    if every <= 0:
        return None
    clicks = [
        (query_id, image_id)
        for impression_id, query_id, image_id in Judgement.objects.exclude(kind=Judgement.Kind.DISSIMILAR)
        .exclude(image__role=Image.Role.REMOVED).exclude(impression__query__role=Image.Role.REMOVED)
        .values_list("impression_id", "impression__query_id", "image_id")
        if impression_id % every == 0
    ]
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
    _, found = search(index, pipeline.embed(version, store.get(np.array(queries))), k_max)
    ranked = {q: [i for i in row if i != q] for q, row in zip(queries, found.tolist(), strict=True)}
    ranks = [ranked[q].index(i) + 1 if i in ranked[q] else None for q, i in clicks if q in ranked]
    report = {f"recall@{k}": float(np.mean([r is not None and r <= k for r in ranks])) for k in DEFAULT_KS}
    return {**report, "clicks": len(ranks)}


def evaluate_version(version: ModelVersion) -> dict:
    """Compute and store the version's report."""
    report = {**{k: v for k, v in (version.metrics or {}).items() if k == "guard"},
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


def quick_recall_at_1(
    version: ModelVersion, gallery: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[str, float, int] | None:
    """("labelled"|"feedback", Recall@1, queries) on at most GUARD_MAX_QUERIES evaluation queries, or None.

    `gallery` = (ids, vectors) already embedded by `version` (indexing.gallery_vectors) saves embedding again.
    """
    ids, labels, heldout = labelled_gallery(version.backbone)
    store = pipeline.feature_store(version.backbone)
    if heldout.sum() >= MIN_LABELLED_QUERIES:
        if gallery is not None:
            position = {int(i): n for n, i in enumerate(gallery[0].tolist())}
            vectors = gallery[1][[position[int(i)] for i in ids]]
        else:
            vectors = pipeline.embed(version, store.get(ids))
        queries = guard_query_rows(heldout, settings.GUARD_MAX_QUERIES)
        _, found = search(build_index(vectors, np.arange(len(ids)), "Flat"), vectors[queries], 2)
        nearest = np.where(found[:, 0] == queries, found[:, 1], found[:, 0])  # skip the query itself
        return "labelled", float(np.mean(labels[nearest] == labels[queries])), len(queries)
    report = feedback_report(version)
    return None if report is None else ("feedback", report["recall@1"], report["clicks"])
