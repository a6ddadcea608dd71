"""Issue 14 item 5: a page past the last result says so, every page has a favicon, a missing image gets the
app's 404 page (scripts/run.sh serving with DEBUG off: tests/test_run_command.py)."""

from __future__ import annotations

import pytest

from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_page_past_the_last_result_says_so(page, shot, live_server, gallery) -> None:
    query = Image.objects.get(original_name="teal-rings-000.jpg")
    response = page.goto(f"{live_server.url}/images/{query.pk}/similar/?offset=5000")
    assert response.status == 404
    assert "No more results" in page.inner_text("main")
    shot("past-the-end")


def test_pages_load_without_a_missing_favicon_or_debug_page(page, shot, live_server, gallery) -> None:
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.goto(live_server.url + "/")
    assert page.request.get(live_server.url + "/favicon.ico").status == 200
    assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith(".svg")
    assert failed == []
    missing = page.goto(live_server.url + "/images/999999/")
    assert missing.status == 404 and "URLconf" not in page.content()
    assert page.get_by_role("link", name="Back to the search page").is_visible()
    shot("not-found")
