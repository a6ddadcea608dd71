"""Learning tests: feedback that follows the demo labels."""

from __future__ import annotations

from webapp.feedback import impressions
from webapp.feedback.triplets import record_judgement
from webapp.gallery.models import Image
from webapp.search import service


class _Request:
    """What impressions.record needs from a request."""

    def __init__(self) -> None:
        from django.contrib.auth.models import AnonymousUser
        from django.contrib.sessions.backends.db import SessionStore

        self.user = AnonymousUser()
        self.session = SessionStore()


def give_feedback(queries: int = 12, clicks: int = 2) -> int:
    """Search with feedback-half images, click results sharing the query's label and mark the best-ranked
    other label "not similar"; returns the number of triplets made."""
    request = _Request()
    made = 0
    for query in Image.objects.filter(split=Image.Split.FEEDBACK).order_by("id")[:queries]:
        result = service.search_similar(query, k=20)
        impression = impressions.record(request, result)
        matching = [hit.image.pk for hit in result.hits if hit.image.label == query.label][:clicks]
        wrong = next(hit.image.pk for hit in result.hits if hit.image.label != query.label)
        made += record_judgement(impression, wrong, "dissimilar").triplets_created
        for image_id in matching:
            made += record_judgement(impression, image_id, "click").triplets_created
    return made
