"""Only staff may send a body above the normal limit, and only to the gallery upload endpoint: the size-limit
middleware decides from the headers (token or session) before any of the body is read."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.imagefactory import image_bytes

pytestmark = pytest.mark.django_db
BIG = image_bytes("PNG", (400, 400), colour=(1, 2, 3), compress_level=0)  # ~480 KB


@pytest.fixture
def small_limit(settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000


def _user(name: str, staff: bool):
    return get_user_model().objects.create_user(name, password=f"pw-{name}-12345", is_staff=staff)


def _upload(client: Client, path: str = "/api/v1/images/", **headers):
    return client.post(path, {"files": [SimpleUploadedFile("big.png", BIG)]}, **headers)


def test_a_staff_token_may_upload_a_large_body_to_the_gallery(small_limit) -> None:
    token = Token.objects.create(user=_user("boss", staff=True))
    assert _upload(Client(), HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 202


def test_a_staff_session_may_upload_a_large_body_to_the_gallery(small_limit) -> None:
    client = Client(enforce_csrf_checks=False)
    client.force_login(_user("boss", staff=True))
    assert _upload(client).status_code == 202


@pytest.mark.parametrize("who", ["anonymous", "member token", "unknown token", "member session"])
def test_everyone_else_gets_413(small_limit, who: str) -> None:
    client, headers = Client(), {}
    if who == "member token":
        headers["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=_user('ann', staff=False)).key}"
    elif who == "unknown token":
        headers["HTTP_AUTHORIZATION"] = "Token " + "0" * 40
    elif who == "member session":
        client.force_login(_user("ann", staff=False))
    response = _upload(client, **headers)
    assert response.status_code == 413 and "the limit is 48.8 KB" in response.json()["detail"]


def test_staff_get_the_larger_limit_only_on_the_gallery_upload(small_limit) -> None:
    token = Token.objects.create(user=_user("boss", staff=True))
    response = _upload(Client(), "/api/v1/search/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 413
