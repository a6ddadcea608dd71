"""Losing the database mid-request is a clean 503 with Retry-After (JSON under /api/), never a traceback."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.db.models.query import QuerySet
from django.test import Client, RequestFactory

from webapp.errors import server_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_gone(monkeypatch):
    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(QuerySet, "count", lost)


def test_api_answers_503_json(database_gone) -> None:
    response = Client().get("/api/v1/images/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "database is unavailable" in response.json()["detail"]


def test_pages_answer_503_html_and_htmx_gets_a_fragment(database_gone) -> None:
    page = Client().get("/")
    assert page.status_code == 503 and page["Retry-After"] == "5"
    html = page.content.decode()
    assert "<html" in html and "database is unavailable" in html and "Traceback" not in html
    fragment = Client().get("/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'role="alert"' in fragment


def test_handler500_turns_database_errors_outside_views_into_503_and_others_into_json_500() -> None:
    factory = RequestFactory()
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        assert server_error(factory.get("/")).status_code == 503
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        response = server_error(factory.get("/api/v1/images/"))
    assert response.status_code == 500 and b'"detail"' in response.content and b"a bug" not in response.content
