"""Record what a person was shown (an impression) and find the impression a judgement refers to."""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.http import HttpRequest

from webapp.feedback.models import Impression
from webapp.gallery import privacy
from webapp.gallery.models import Image


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


def own_showing_gallery_image(request: HttpRequest, impression_id: int, query_id: int,
                              image_id: int) -> Impression | None:
    """The requester's impression `impression_id` of `query_id` if `image_id` is a gallery image (anyone may
    see it), else None: what a click usually names, read in one statement. Written as SQL because composing it
    through the ORM cost ~0.65 ms of Python, a fifth of a click's (docs/benchmarks.md §11); it finds exactly
    what `owned_by` does (tests/webapp/test_click_lookup.py compares them for every kind of requester)."""
    user, session_key = requester(request)
    if user is None and not session_key:
        return None
    found = list(Impression.objects.raw(_lookup_sql(by_user=user is not None),
                                        [image_id, impression_id, query_id, session_key if user is None else user.pk]))
    return found[0] if found and found[0].shown_role == Image.Role.GALLERY else None


@cache
def _lookup_sql(*, by_user: bool) -> str:
    """`own_showing_gallery_image`'s statement, owned by a user or by an anonymous session (built once)."""
    quote = connection.ops.quote_name
    column = {name: quote(Impression._meta.get_field(name).column) for name in ("id", "query", "user", "session_key")}
    images, image_id, role = (quote(name) for name in (
        Image._meta.db_table, Image._meta.get_field("id").column, Image._meta.get_field("role").column))
    owner = f"{column['user']} = %s" if by_user else f"{column['user']} IS NULL AND {column['session_key']} = %s"
    return (f"SELECT *, (SELECT {role} FROM {images} WHERE {images}.{image_id} = %s) AS shown_role "
            f"FROM {quote(Impression._meta.db_table)} WHERE {column['id']} = %s AND {column['query']} = %s AND {owner}")
