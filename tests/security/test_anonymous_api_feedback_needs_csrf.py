"""API feedback that relies on the browser session needs the CSRF token, also from anonymous visitors; scripts
use a token instead (issue 11, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from webapp.feedback.models import Judgement

pytestmark = pytest.mark.django_db


def _query(demo_folder: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile("q.jpg", (demo_folder / "gravel" / "gravel-000.jpg").read_bytes())


def test_an_anonymous_session_needs_the_csrf_token(gallery, demo_folder: Path) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    found = browser.post("/api/v1/search/", {"image": _query(demo_folder), "k": 5}, HTTP_X_CSRFTOKEN=token).json()
    verdict = {"query_id": found["query_id"], "image_id": found["results"][1]["image_id"], "judgement": "click"}
    forged = browser.post("/api/v1/feedback/", verdict, content_type="application/json")
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    assert not Judgement.objects.exists()
    accepted = browser.post("/api/v1/feedback/", verdict, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201 and Judgement.objects.count() == 1


def test_a_script_with_a_token_needs_no_csrf_token(gallery, demo_folder: Path) -> None:
    user = get_user_model().objects.create_user("script", password="pw-script-123")
    script = APIClient(enforce_csrf_checks=True)
    script.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    found = script.post("/api/v1/search/", {"image": _query(demo_folder), "k": 5}).json()
    verdict = {"query_id": found["query_id"], "image_id": found["results"][1]["image_id"], "judgement": "click"}
    assert script.post("/api/v1/feedback/", verdict, format="json").status_code == 201
