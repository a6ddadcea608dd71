"""Search and feedback are rate limited (per user or client address), in the API and on the page."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.imagefactory import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight_limits(monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "search", "2/min")
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "feedback", "2/min")


def test_api_search_gets_429_past_the_limit(gallery, tight_limits) -> None:
    client = APIClient()
    codes = [client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.png", image_bytes("PNG"))}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]


def test_page_search_and_feedback_get_429_with_a_message(db, tight_limits) -> None:
    client = Client()
    for _ in range(2):
        client.post("/search/", {}, HTTP_HX_REQUEST="true")  # 400s count too: every attempt costs
    refused = client.post("/search/", {}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 429 and "Too many requests" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    for _ in range(2):
        client.post("/feedback/", {}, HTTP_HX_REQUEST="true")
    assert client.post("/feedback/", {}, HTTP_HX_REQUEST="true").status_code == 429


def test_a_bad_rate_stops_startup(monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from webapp.env import env_rate

    monkeypatch.setenv("X_RATE", "fast")
    with pytest.raises(ImproperlyConfigured, match="not a rate"):
        env_rate("X_RATE", "1/min")
