"""A web process asks a worker to derive triplets at most once per DERIVE_DELAY_S, and never loses a click."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from webapp import dispatch
from webapp.feedback import tasks as feedback_tasks
from webapp.feedback.models import Judgement
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db


def _click_twice(client: APIClient, capture) -> None:
    with Image.objects.filter(role="gallery").order_by("id").first().file.open("rb") as query:
        search = client.post("/api/v1/search/", {"image": query}).json()
    for rank in (1, 2):
        with capture(execute=True):  # the after-commit request runs, as in production
            response = client.post("/api/v1/feedback/", {"query_id": search["query_id"], "judgement": "click",
                                                         "image_id": search["results"][rank]["image_id"]},
                                   format="json")
        assert response.status_code == 201


def test_a_requested_derivation_covers_the_clicks_committed_before_it_starts(
        gallery, monkeypatch, django_capture_on_commit_callbacks) -> None:
    sent = []
    monkeypatch.setattr(dispatch, "send", lambda name, **options: sent.append((name, options)) or True)
    monkeypatch.setattr(feedback_tasks, "_covered_until", 0.0)
    _click_twice(APIClient(), django_capture_on_commit_callbacks)
    assert sent == [(dispatch.DERIVE_TRIPLETS, {"countdown": feedback_tasks.DERIVE_DELAY_S})]


def test_with_tasks_run_inline_every_click_is_derived_at_once(
        gallery, eager_tasks, monkeypatch, django_capture_on_commit_callbacks) -> None:
    monkeypatch.setattr(feedback_tasks, "_covered_until", 0.0)
    _click_twice(APIClient(), django_capture_on_commit_callbacks)  # the second click comes well within the delay
    assert Judgement.objects.count() == 2
    assert Judgement.objects.filter(derived=False).count() == 0
