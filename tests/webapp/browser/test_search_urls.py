"""Every search has a URL: uploads, "show more" and "find similar" push history; Back, Forward and reload work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.webapp.browser.support import search_with

pytestmark = pytest.mark.django_db(transaction=True)


def _first_label(page) -> str:
    return page.locator("#result-grid .hit").first.get_attribute("data-label")


def test_results_have_urls_that_back_forward_and_reload_restore(page, shot, live_server, gallery,
                                                                demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "red-crosses" / "red-crosses-000.jpg")
    assert re.search(r"/images/\d+/similar/$", page.url)  # the uploaded query's results URL
    results_url = page.url
    assert _first_label(page) == "red crosses"
    page.reload()
    page.wait_for_selector("text=Results for red-crosses-000.jpg")
    assert _first_label(page) == "red crosses"
    shot("reloaded")

    page.get_by_role("button", name="Show more").click()
    page.wait_for_url("**/similar/?offset=20")
    page.wait_for_selector("text=#21")
    page.go_back()
    page.wait_for_url(results_url)
    page.wait_for_selector("#result-grid .hit")
    page.go_forward()
    page.wait_for_url("**/similar/?offset=20")

    page.goto(results_url)
    page.locator("#result-grid .thumb").nth(5).click()
    page.locator("#viewer .find-similar").click()
    page.wait_for_url(lambda url: url != results_url and re.search(r"/images/\d+/similar/$", url) is not None)
    similar_url = page.url
    page.go_back()
    page.wait_for_url(results_url)
    page.wait_for_selector("text=Results for red-crosses-000.jpg")
    page.goto(similar_url)  # a bookmark
    page.wait_for_selector("#result-grid .hit")
    shot("bookmark")


def test_an_uploaded_querys_url_is_its_uploaders(page, browser, live_server, gallery, demo_folder: Path,
                                                 tmp_path: Path) -> None:
    photo = tmp_path / "my-own-stars.jpg"  # not a gallery image's bytes (those are public gallery images)
    PILImage.open(demo_folder / "gold-stars" / "gold-stars-002.jpg").rotate(90).save(photo)
    search_with(page, live_server.url, photo)
    url = page.url
    page.reload()
    page.wait_for_selector("#result-grid .hit")  # the uploader can come back to it
    stranger = browser.new_context()
    try:
        answer = stranger.new_page().goto(url)
        assert answer.status == 404  # query images are private to their uploader (and staff)
    finally:
        stranger.close()
