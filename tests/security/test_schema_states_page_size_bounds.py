"""The API schema states the page_size bounds the API enforces (issue 11, item 11)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_page_size_bounds_are_in_the_schema_and_enforced() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/images/"]["get"]["parameters"]}
    assert parameters["page_size"]["minimum"] == 1 and parameters["page_size"]["maximum"] == 1000
    assert parameters["page"]["minimum"] == 1
    for value, status in (("1000", 200), ("1001", 400), ("0", 400)):
        assert Client().get("/api/v1/images/", {"page_size": value}).status_code == status, value
