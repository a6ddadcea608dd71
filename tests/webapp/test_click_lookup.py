"""The click's one-statement lookup (`impressions.own_showing_gallery_image`, SQL) finds exactly what the ORM's
`owned_by` does, for every kind of requester, and declines whatever it does not cover (the slower path
answers those), so the API's answers are the same as before."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from rest_framework.test import APIClient

from tests.webapp.feedback_factory import make_images, make_impression
from webapp.feedback import impressions
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
S1, S2 = "1" * 32, "2" * 32  # session keys (Django ignores keys shorter than 8)


def _request(user=None, session_key: str | None = None):
    request = RequestFactory().post("/api/v1/feedback/")
    request.user = user or AnonymousUser()
    request.session = SessionStore(session_key)
    return request


def test_it_finds_what_owned_by_finds_for_every_requester() -> None:
    users = get_user_model()
    alice, bob = users.objects.create_user("alice"), users.objects.create_user("bob")
    staff = users.objects.create_user("staff", is_staff=True)
    query, other_query, *shown = make_images(6)
    private = make_images(1, role=Image.Role.QUERY)[0]
    removed = make_images(1, role=Image.Role.REMOVED)[0]
    pages = [make_impression(query, [*shown, private, removed], session_key=S1),
             make_impression(query, [*shown, private, removed], session_key=S2),
             make_impression(other_query, shown, session_key="", user=alice),
             make_impression(query, [*shown, removed], session_key="", user=staff)]
    requesters = [_request(session_key=S1), _request(session_key=S2), _request(), _request(alice),
                  _request(bob), _request(staff)]
    checked = 0
    for request, page, query_id, image in itertools.product(
            requesters, pages, (query.pk, other_query.pk), (shown[0], shown[3], private, removed)):
        expected = impressions.owned_by(request).filter(pk=page.pk, query_id=query_id).first()
        if image.role != Image.Role.GALLERY:
            expected = None
        found = impressions.own_showing_gallery_image(request, page.pk, query_id, image.pk)
        assert found == expected, (request.user, request.session.session_key, page, query_id, image.role)
        if found is not None:
            assert found.shown == page.shown and found.offset == page.offset
            checked += 1
    assert checked == 8  # S1, S2, alice and staff: the two gallery images of their own page each


def test_the_api_answers_clicks_on_every_kind_of_image_as_before() -> None:
    client = APIClient()
    session_key = client.session.session_key  # the test client saves a session and sends it as its cookie
    query, *shown = make_images(3)
    private = make_images(1, role=Image.Role.QUERY)[0]
    removed = make_images(1, role=Image.Role.REMOVED)[0]
    page = make_impression(query, [*shown, private, removed], session_key=session_key)

    def click(image_id: int, impression_id: int | None = page.pk) -> int:
        body = {"query_id": query.pk, "image_id": image_id, "judgement": "click"}
        if impression_id is not None:
            body["impression_id"] = impression_id
        return client.post("/api/v1/feedback/", body, format="json").status_code

    assert click(shown[0].pk) == 201 and click(shown[0].pk) == 200  # the one-statement path, then a repeat
    assert click(shown[1].pk, impression_id=None) == 201  # no impression named: the latest one that showed it
    assert click(private.pk) == 404 and click(removed.pk) == 404  # not visible to this requester
    assert click(shown[1].pk, impression_id=page.pk + 1000) == 404
