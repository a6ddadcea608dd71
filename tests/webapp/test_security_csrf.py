"""CSRF: every form and every session-authenticated API write needs the token; without it: 403, nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from webapp.feedback.models import Impression, Judgement
from webapp.gallery.models import Image, ModelVersion
from webapp.learning.models import TrainingRun

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _browser(page: str = "/", user=None) -> tuple[Client, str]:
    """A client that enforces CSRF like a browser, and the token the page gave it (htmx sends it as a header)."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    html = client.get(page).content.decode()
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert "X-CSRFToken" in html or "csrfmiddlewaretoken" in html  # the htmx header (base.html) or a form field
    return client, token


def _query(demo_folder: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile("q.jpg", (demo_folder / "gravel" / "gravel-000.jpg").read_bytes())


@pytest.fixture
def staff_user():
    return get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True)


def test_search_form(gallery, demo_folder: Path) -> None:
    client, token = _browser()
    images = Image.objects.count()
    refused = client.post("/search/", {"image": _query(demo_folder)}, **HTMX)
    assert refused.status_code == 403
    assert Image.objects.count() == images and not Impression.objects.exists()
    accepted = client.post("/search/", {"image": _query(demo_folder)}, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert accepted.status_code == 200 and Impression.objects.count() == 1


def test_feedback_controls(gallery, demo_folder: Path) -> None:
    client, token = _browser()
    client.post("/search/", {"image": _query(demo_folder)}, HTTP_X_CSRFTOKEN=token, **HTMX)
    impression = Impression.objects.get()
    verdict = {"impression": impression.pk, "image": impression.shown[2], "judgement": "dissimilar"}
    assert client.post("/feedback/", verdict, **HTMX).status_code == 403
    assert not Judgement.objects.exists()
    assert client.post("/feedback/", verdict, HTTP_X_CSRFTOKEN=token, **HTMX).status_code == 200
    assert Judgement.objects.count() == 1


def test_dashboard_retrain_and_rollback_forms(split_demo, staff_user) -> None:
    client, token = _browser("/dashboard/", staff_user)
    form = {"mode": "batch", "loss": "triplet", "epochs": 1, "lr": 0.001, "device": "cpu", "data": "labels"}
    assert client.post("/dashboard/retrain/", form, **HTMX).status_code == 403
    assert not TrainingRun.objects.exists()
    assert client.post("/dashboard/retrain/", form, HTTP_X_CSRFTOKEN=token, **HTMX).status_code == 200
    assert TrainingRun.objects.count() == 1
    version = ModelVersion.objects.get(is_active=True)
    assert client.post(f"/dashboard/versions/{version.pk}/rollback/", **HTMX).status_code == 403
    assert client.post(f"/dashboard/versions/{version.pk}/rollback/", HTTP_X_CSRFTOKEN=token, **HTMX
                       ).status_code == 200


def test_admin_login_form(staff_user) -> None:
    client, token = _browser("/admin/login/")
    credentials = {"username": "boss", "password": "pw-boss-12345", "next": "/dashboard/"}
    assert client.post("/admin/login/", credentials).status_code == 403
    assert "_auth_user_id" not in client.session
    assert client.post("/admin/login/", {**credentials, "csrfmiddlewaretoken": token}).status_code == 302
    assert client.session["_auth_user_id"] == str(staff_user.pk)


def test_session_authenticated_api_writes(split_demo, staff_user, demo_folder: Path) -> None:
    client, token = _browser("/dashboard/", staff_user)
    refused = client.post("/api/v1/training-runs/", {"mode": "oahu"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not TrainingRun.objects.exists()
    accepted = client.post("/api/v1/training-runs/", {"mode": "oahu"}, content_type="application/json",
                           HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 202
    version = ModelVersion.objects.get(is_active=True)
    assert client.post(f"/api/v1/model-versions/{version.pk}/rollback/").status_code == 403

    search = client.post("/api/v1/search/", {"image": _query(demo_folder)}, HTTP_X_CSRFTOKEN=token).json()
    feedback = {"query_id": search["query_id"], "image_id": search["results"][1]["image_id"], "judgement": "click"}
    assert client.post("/api/v1/feedback/", feedback, content_type="application/json").status_code == 403
    assert not Judgement.objects.exists()
    assert client.post("/api/v1/feedback/", feedback, content_type="application/json",
                       HTTP_X_CSRFTOKEN=token).status_code == 201


def test_an_anonymous_write_without_the_token_is_told_what_to_send() -> None:
    refused = Client(enforce_csrf_checks=True).post(
        "/api/v1/feedback/", {"query_id": 1, "image_id": 2, "judgement": "click"}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == ("CSRF failed: CSRF cookie not set. "
                                        "Send X-CSRFToken with the session, or use a token.")


def test_cookies_are_not_sent_on_cross_site_posts() -> None:
    """Anonymous API calls need no token (no login to ride on); SameSite=Lax keeps their session cookie home."""
    assert settings.SESSION_COOKIE_SAMESITE == "Lax" and settings.CSRF_COOKIE_SAMESITE == "Lax"
