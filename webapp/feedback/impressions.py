"""Record what a person was shown (an impression) and find the impression a judgement refers to."""

from __future__ import annotations

from django.http import HttpRequest

from webapp.feedback.models import Impression
from webapp.gallery import privacy


def requester(request: HttpRequest, *, create: bool = False) -> tuple[object | None, str]:
    """(user, session key) of whoever is asking; an anonymous visitor gets a session when they search (so they
    own their impressions), never merely by asking (webapp/gallery/privacy.py)."""
    return privacy.requester(request, create=create)


def record(request: HttpRequest, result) -> Impression:
    """Store the results page `result` (a search.service.SearchResult) as shown to this requester."""
    user, session_key = requester(request, create=True)
    return Impression.objects.create(
        query=result.query, model_version=result.model_version, index_version=result.index_version,
        shown=[hit.image.pk for hit in result.hits], offset=result.offset, user=user, session_key=session_key,
    )


def owned_by(request: HttpRequest):
    """Impressions this requester may judge."""
    mine = privacy.owners_filter(request)
    return Impression.objects.filter(mine) if mine is not None else Impression.objects.none()


def find_for_judgement(request: HttpRequest, query_id: int, image_id: int, impression_id: int | None):
    """The requester's impression (given, or the latest of the query that showed the image), or None."""
    mine = owned_by(request).filter(query_id=query_id)
    if impression_id is not None:
        return mine.filter(pk=impression_id).first()
    for impression in mine.order_by("-id")[:50]:
        if impression.rank_of(image_id) is not None:
            return impression
    return mine.order_by("-id").first()
