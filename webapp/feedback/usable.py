"""Which triplets learners may learn from: the one rule every consumer and batch data path applies."""

from __future__ import annotations

from django.db.models import QuerySet

from webapp.gallery.models import Image


def usable_triplets(queryset: QuerySet) -> QuerySet:
    """`queryset` (of Triplet) without the triplets no learner may use.

    Left out: triplets retracted because the verdict they came from was changed or undone
    (TripletRetraction, docs/feedback.md), and triplets that mention a removed image (anchor, positive or
    negative; docs/gallery.md).
    """
    removed = Image.Role.REMOVED
    return (queryset.filter(retraction__isnull=True).exclude(anchor__role=removed)
            .exclude(positive__role=removed).exclude(negative__role=removed))
