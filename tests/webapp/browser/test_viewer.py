"""Issue 14 item 1: opening a result shows it in front of the user wherever the page is scrolled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.webapp.browser.support import in_viewport, search_with, wait_until
from webapp.feedback.models import Judgement

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_result_opened_from_a_scrolled_page_shows_large_in_front(page, shot, live_server, gallery,
                                                                   demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "sunsets" / "sunsets-000.jpg")
    shot("results")
    last = page.locator("#result-grid .hit .thumb").last
    last.scroll_into_view_if_needed()
    assert page.evaluate("scrollY") > 0  # the grid is scrolled; the top of the page is off-screen
    shot("scrolled")
    label = last.get_attribute("aria-label")
    last.click()
    viewer = page.locator("#viewer")
    viewer.locator(".viewer img").wait_for()
    wait_until(page, "document.querySelector('#viewer .viewer img').complete")
    assert page.evaluate("document.querySelector('#viewer').open") and in_viewport(page, "#viewer .viewer img")
    shot("viewer")
    box = viewer.locator(".viewer img").bounding_box()
    assert box["width"] >= 0.6 * min(page.viewport_size["width"], 400)  # large, not a thumbnail
    text = viewer.inner_text()
    assert label.split(",")[0] in text and "similarity" in text and "Result 20" in text
    for name in ("Find similar to this", "Similar", "Not similar", "Previous", "Next", "Close"):
        assert viewer.get_by_role("button", name=name, exact=True).is_visible(), name
    assert Judgement.objects.filter(kind="click").count() == 1  # opening it is a click

    viewer.get_by_role("button", name="Previous", exact=True).click()
    page.wait_for_selector("#viewer >> text=Result 19")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#viewer >> text=Result 20")
    assert Judgement.objects.filter(kind="click").count() == 1  # browsing the viewer is not a click
    page.keyboard.press("Escape")
    wait_until(page, "!document.querySelector('#viewer').open")
    shot("closed")


def test_find_similar_in_the_viewer_shows_that_images_results(page, shot, live_server, gallery,
                                                              demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "gravel" / "gravel-001.jpg")
    page.locator("#result-grid .thumb").nth(2).click()
    page.locator("#viewer .find-similar").click()
    wait_until(page, "!document.querySelector('#viewer').open")
    page.wait_for_url("**/images/*/similar/")
    page.wait_for_selector("#results h1")
    assert "Results for" in page.inner_text("#results h1")
    shot("similar")
