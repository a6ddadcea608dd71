"""Record what a person was shown (an impression) and find the impression a judgement refers to."""

from __future__ import annotations

from django.http import HttpRequest

from webapp.feedback.models import Impression


def requester(request: HttpRequest) -> tuple[object | None, str]:
    """(user, session key) of whoever is asking; anonymous visitors get a session so they own impressions."""
    user = request.user if request.user.is_authenticated else None
    if user is not None:
        return user, ""
    if not request.session.session_key:
        request.session.save()
    return None, request.session.session_key or ""


def record(request: HttpRequest, result) -> Impression:
    """Store the results page `result` (a search.service.SearchResult) as shown to this requester."""
    user, session_key = requester(request)
    return Impression.objects.create(
        query=result.query, model_version=result.model_version, index_version=result.index_version,
        shown=[hit.image.pk for hit in result.hits], offset=result.offset, user=user, session_key=session_key,
    )


def owned_by(request: HttpRequest):
    """Impressions this requester may judge."""
    user, session_key = requester(request)
    if user is not None:
        return Impression.objects.filter(user=user)
    return Impression.objects.filter(user=None, session_key=session_key)


def find_for_judgement(request: HttpRequest, query_id: int, image_id: int, impression_id: int | None):
    """The requester's impression (given, or the latest of the query that showed the image), or None."""
    mine = owned_by(request).filter(query_id=query_id)
    if impression_id is not None:
        return mine.filter(pk=impression_id).first()
    for impression in mine.order_by("-id")[:50]:
        if impression.rank_of(image_id) is not None:
            return impression
    return mine.order_by("-id").first()
