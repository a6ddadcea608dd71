"""In-session relevance feedback: what this person marked on the pages of one query adjusts that query.

Positives: results they marked similar or clicked; negatives: results marked not similar and results
skipped above a positive on the same page (FEEDBACK_NEGATIVES=explicit_only: marked ones only). The
adjusted query is Rocchio's (retrieval/relevance.py); "show more" and "refine" rank with it and leave out
every result already shown to them for this query, so the next page holds only new images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import QuerySet

from retrieval.relevance import rocchio, skipped_above
from webapp.feedback import memory
from webapp.feedback.models import Impression, Judgement
from webapp.gallery.models import ModelVersion


@dataclass(frozen=True)
class SessionFeedback:
    """What one requester said about the results of one query, across their pages."""

    positives: tuple[int, ...] = ()
    negatives: tuple[int, ...] = ()
    shown: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.positives or self.negatives)


def session_feedback(impressions: QuerySet[Impression], query_id: int) -> SessionFeedback:
    """Collect the judgements on the requester's impressions (`impressions`, already theirs) of `query_id`."""
    pages = list(impressions.filter(query_id=query_id).order_by("id")[:200])
    live = Judgement.objects.filter(impression__in=pages, retracted_at__isnull=True)  # changed verdicts: the new one
    judgements = live.values_list("impression_id", "image_id", "kind")
    positive: dict[int, set[int]] = {}
    negatives: set[int] = set()
    for impression, image, kind in judgements:
        if kind == Judgement.Kind.DISSIMILAR:
            negatives.add(image)
        else:
            positive.setdefault(impression, set()).add(image)
    positives = set().union(*positive.values()) if positive else set()
    if settings.FEEDBACK_NEGATIVES == "skip_above":
        for page in pages:
            if page.pk in positive:
                negatives.update(skipped_above(page.shown, positive[page.pk], settings.FEEDBACK_MAX_SKIP_ABOVE))
    negatives -= positives
    shown = frozenset(image for page in pages for image in page.shown)
    return SessionFeedback(tuple(sorted(positives)), tuple(sorted(negatives)), shown)


def adjusted_query(version: ModelVersion, vector: np.ndarray, feedback: SessionFeedback) -> np.ndarray:
    """Rocchio's query from the served vectors of the judged images."""
    dim = vector.shape[-1]

    def vectors(ids: tuple[int, ...]) -> np.ndarray:
        return memory.served_vectors(version, np.array(ids, np.int64)) if ids else np.empty((0, dim), np.float32)

    return rocchio(vector, vectors(feedback.positives), vectors(feedback.negatives))
