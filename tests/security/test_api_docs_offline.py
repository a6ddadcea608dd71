"""Issue 11 item 11 / issue 14: /api/docs/ serves Swagger UI from this app (drf-spectacular-sidecar), never a CDN."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.webapp.browser.conftest import csp_violations

pytestmark = pytest.mark.django_db


def test_the_docs_page_loads_swagger_ui_from_our_static_files() -> None:
    html = Client().get("/api/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/") for source in sources), sources  # nothing from another origin
    assert any("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in s for s in sources)
    for source in sources:
        assert Client().get(source, follow=True).status_code == 200, source


@pytest.mark.django_db(transaction=True)
def test_the_docs_work_offline_in_a_browser(page, shot, live_server) -> None:
    elsewhere = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:  # offline: anything from another origin fails
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(live_server.url + "/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=60_000)
    assert page.get_by_text("/api/v1/search/").first.is_visible()
    assert elsewhere == [] and csp_violations(page) == []
    shot("api-docs")
