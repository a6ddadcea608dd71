"""Issue 11 item 11: a Content-Security-Policy (django-csp) that the pages, htmx and the API docs work under."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.webapp.browser.conftest import csp_violations

PAGES = ["/", "/dashboard/", "/api/docs/", "/admin/login/", "/images/999999/"]


def _policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_allows_only_same_origin_script_without_inline_or_eval(path: str) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True))
    policy = _policy(client.get(path))
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"]


@pytest.mark.django_db
def test_our_templates_have_no_inline_script_or_style_or_handlers() -> None:
    templates = Path(__file__).resolve().parents[2] / "templates"
    for template in templates.rglob("*.html"):
        text = template.read_text()
        assert "<script>" not in text and "<style" not in text and " onclick=" not in text, template
        assert 'style="' not in text and "hx-on" not in text, template  # hx-on needs eval


@pytest.mark.django_db(transaction=True)
def test_search_and_judging_work_under_the_policy_in_a_browser(page, live_server, gallery, demo_folder: Path) -> None:
    page.goto(live_server.url + "/")
    page.set_input_files("#image-input", str(demo_folder / "sunsets" / "sunsets-000.jpg"))
    page.wait_for_selector("#result-grid .hit")  # htmx swapped the results in
    page.locator("#result-grid .hit .similar").first.click()
    page.wait_for_selector("#result-grid .similar[aria-pressed=true]")
    page.locator("#result-grid .thumb").nth(1).click()
    page.wait_for_selector("#viewer[open] .viewer img")
    assert csp_violations(page) == []
