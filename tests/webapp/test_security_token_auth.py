"""DRF token authentication for scripts: `manage.py drf_create_token USER`, then `Authorization: Token KEY`."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from webapp.learning.models import TrainingRun

pytestmark = pytest.mark.django_db


def _token_for(username: str, capsys, **flags) -> str:
    call_command("drf_create_token", username, **flags)
    return re.search(r"Generated token (\w+) for user", capsys.readouterr().out).group(1)


def test_a_staff_token_reaches_the_staff_apis_without_a_session_or_csrf(split_demo, capsys) -> None:
    get_user_model().objects.create_user("ops", password="pw-ops-123456", is_staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {_token_for('ops', capsys)}")
    assert client.get("/api/v1/training-runs/").status_code == 200
    assert client.post("/api/v1/training-runs/", {"mode": "oahu"}, format="json").status_code == 202
    assert TrainingRun.objects.get().triggered_by.username == "ops"


def test_bad_tokens_and_non_staff_tokens_are_refused(db, capsys) -> None:
    get_user_model().objects.create_user("joe", password="pw-joe-123456")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get("/api/v1/training-runs/")
    assert response.status_code == 401 and "Invalid token" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Token"
    client.credentials(HTTP_AUTHORIZATION=f"Token {_token_for('joe', capsys)}")
    assert client.get("/api/v1/training-runs/").status_code == 403


def test_a_regenerated_token_replaces_the_old_one(db, capsys) -> None:
    get_user_model().objects.create_user("ops", password="pw-ops-123456", is_staff=True)
    old = _token_for("ops", capsys)
    new = _token_for("ops", capsys, reset_token=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert new != old and client.get("/api/v1/reports/").status_code == 401


def test_admins_can_manage_tokens_in_the_admin(db) -> None:
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw-root-12345"))
    assert admin.get("/admin/authtoken/tokenproxy/").status_code == 200
