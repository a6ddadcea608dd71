"""Rate limits key on the socket address; X-Forwarded-For counts only when the socket address is a configured
proxy (REFIND_TRUSTED_PROXIES). Cookie-less floods do not grow the session and impression tables without
bound: asking never creates a session, and beat prunes expired sessions and unjudged anonymous impressions
(issue 11, item 3)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.imagefactory import image_bytes
from tests.webapp.feedback_factory import make_images, make_impression
from webapp.env import env_networks
from webapp.feedback.models import Impression, Judgement
from webapp.feedback.tasks import prune_visitors
from webapp.gallery.models import Image, QueryOwner

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def two_per_minute(monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "search", "2/min")
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "feedback", "2/min")


def _codes(client: Client, forwarded: list[str], remote: str) -> list[int]:
    return [client.post("/search/", {}, REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=xff, **HTMX).status_code
            for xff in forwarded]


def test_a_forged_forwarded_for_does_not_reset_the_limit(two_per_minute, settings) -> None:
    settings.TRUSTED_PROXIES = []
    codes = _codes(Client(), [f"198.51.100.{i}" for i in range(4)], remote="203.0.113.9")
    assert codes == [400, 400, 429, 429]  # every request is the socket address 203.0.113.9


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(two_per_minute, settings) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/24")]
    client = Client()
    assert _codes(client, ["198.51.100.1", "198.51.100.1"], remote="10.0.0.2") == [400, 400]
    assert _codes(client, ["198.51.100.2"], remote="10.0.0.2") == [400]  # another client
    # what the client wrote itself (left of the proxy's entry) is not believed
    assert _codes(client, ["1.2.3.4, 198.51.100.1"], remote="10.0.0.2") == [429]
    # the API uses the same key
    api = APIClient()
    answer = api.post("/api/v1/feedback/", {}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1")
    answer = api.post("/api/v1/feedback/", {}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="9.9.9.9, 198.51.100.1")
    answer = api.post("/api/v1/feedback/", {}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="8.8.8.8, 198.51.100.1")
    assert answer.status_code == 429


def test_trusted_proxies_are_parsed_strictly(monkeypatch) -> None:
    monkeypatch.setenv("REFIND_TRUSTED_PROXIES", "10.0.0.5, 172.16.0.0/12, ::1")
    assert [str(n) for n in env_networks("REFIND_TRUSTED_PROXIES")] == ["10.0.0.5/32", "172.16.0.0/12", "::1/128"]
    monkeypatch.setenv("REFIND_TRUSTED_PROXIES", "10.0.0.5, proxy.example")
    with pytest.raises(ImproperlyConfigured, match="proxy.example"):
        env_networks("REFIND_TRUSTED_PROXIES")


def test_cookie_less_requests_that_own_nothing_create_no_session(gallery) -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    for _ in range(20):
        client = APIClient()  # a new, cookie-less client each time
        client.post("/api/v1/feedback/", {"query_id": query.pk, "image_id": query.pk, "judgement": "click"},
                    format="json")
        Client().post("/feedback/", {"impression": 1, "image": 1, "judgement": "click"}, **HTMX)
        Client().get("/feedback/viewer/", {"impression": 1, "image": 1})
        Client().get(f"/images/{query.pk}/")
    assert Session.objects.count() == 0


def test_beat_prunes_expired_sessions_and_unjudged_anonymous_impressions(gallery) -> None:
    assert django_settings.CELERY_BEAT_SCHEDULE["prune-visitors"]["task"] == "webapp.feedback.tasks.prune_visitors"
    for _ in range(3):  # three cookie-less searches: three sessions, impressions and query owners
        APIClient().post("/api/v1/search/", {"image": SimpleUploadedFile("q.png", image_bytes("PNG"))})
    assert Session.objects.count() == 3 and Impression.objects.count() == 3 and QueryOwner.objects.count() == 3
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    images = make_images(3)
    judged = make_impression(make_images(1, role=Image.Role.QUERY)[0], images, session_key="gone")
    Judgement.objects.create(impression=judged, image=images[0], kind="click", explicit=False, rank=1)
    make_impression(make_images(1, role=Image.Role.QUERY)[0], images, session_key="")  # cookie-less: pruned
    carol = get_user_model().objects.create_user("carol", password="pw-carol-123")
    mine = make_impression(make_images(1, role=Image.Role.QUERY)[0], images, session_key="", user=carol)
    prune_visitors()
    assert Session.objects.count() == 0 and not QueryOwner.objects.exists()
    assert set(Impression.objects.values_list("pk", flat=True)) == {judged.pk, mine.pk}

