"""What users of an image search take for granted: paste, drop anywhere, a preview, readable results with a
relevance cutoff, a label filter, dark mode, a 390 px layout, and an image page that leads back."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.webapp.browser.conftest import csp_violations
from tests.webapp.browser.support import drop_file, paste_file, search_with

pytestmark = pytest.mark.django_db(transaction=True)


def test_paste_and_drop_anywhere_search_with_a_preview(page, shot, live_server, gallery, demo_folder: Path) -> None:
    page.goto(live_server.url + "/")
    page.route("**/search/", lambda route: (page.wait_for_timeout(400), route.continue_()))  # a slow upload
    paste_file(page, demo_folder / "pink-dots" / "pink-dots-001.jpg")
    page.wait_for_selector("#busy img[src^='blob:']", state="visible")  # the preview while it uploads
    shot("preview")
    page.wait_for_selector("text=Results for pink-dots-001.jpg")
    drop_file(page, "#results", demo_folder / "orange-bars" / "orange-bars-002.jpg")  # not on the form
    page.wait_for_selector("text=Results for orange-bars-002.jpg")
    assert csp_violations(page) == []


def test_results_are_readable_and_weak_matches_set_apart(page, shot, live_server, gallery, demo_folder: Path,
                                                         settings) -> None:
    search_with(page, live_server.url, demo_folder / "green-triangles" / "green-triangles-000.jpg")
    labels = page.locator("#result-grid .hit .label").all_inner_texts()
    assert labels and all("_" not in label and "-" not in label for label in labels)  # humanised
    assert page.locator("#result-grid .hit .label").first.get_attribute("title") == "green-triangles"  # full label
    assert "results shown" in page.inner_text("#result-count")
    strong = page.locator("#result-grid .hit:not(.weak)").count()
    assert f"{strong} close match" in page.inner_text("#result-count")
    hits = page.locator("#result-grid .hit")
    scores = [float(s) for s in hits.evaluate_all("els => els.map(e => e.dataset.score)")]
    assert strong == sum(score >= settings.RELEVANCE_CUTOFF for score in scores)
    if strong < len(scores):
        assert page.get_by_role("heading", name="Weaker matches").is_visible()
    shot("readable", full_page=True)


def test_a_query_with_no_good_match_says_so(page, shot, live_server, gallery, tmp_path: Path) -> None:
    noise = tmp_path / "static-noise.png"
    PILImage.effect_noise((256, 256), 90).convert("RGB").save(noise)
    search_with(page, live_server.url, noise)
    assert "No close match in the gallery" in page.inner_text("#results")
    assert page.locator("#result-grid .hit:not(.weak)").count() == 0
    shot("no-match")


def test_results_can_be_filtered_by_label(page, shot, live_server, gallery, demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "blue-squares" / "blue-squares-000.jpg")
    options = page.locator("#label-filter option").all_inner_texts()
    assert options[0] == "all labels" and "blue squares" in options and len(options) > 2
    page.select_option("#label-filter", "blue squares")
    visible = page.locator("#result-grid .hit:visible")
    shown = set(visible.evaluate_all("els => els.map(e => e.dataset.label)"))
    assert visible.count() >= 1 and shown == {"blue squares"}
    shot("filtered")
    page.select_option("#label-filter", "")
    assert page.locator("#result-grid .hit:visible").count() == 20


@pytest.mark.color_scheme("dark")
def test_dark_mode_follows_the_browser(page, shot, live_server, gallery, demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "sunsets" / "sunsets-001.jpg")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(c) for c in background[background.index("(") + 1:-1].split(",")[:3])
    assert red + green + blue < 150, background  # dark
    shot("dark")


def test_the_layout_fits_the_screen(page, shot, live_server, gallery, demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "sunsets" / "sunsets-002.jpg")
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
    thumbs = page.locator("#result-grid .hit .thumb")
    boxes = thumbs.evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert min(boxes) >= 120  # thumbnails stay big enough to judge at 390 px
    shot("layout", full_page=True)


def test_the_image_page_has_verdicts_and_leads_back_to_its_results(page, shot, live_server, gallery,
                                                                  demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "teal-rings" / "teal-rings-001.jpg")
    results_url = page.url
    page.locator("#result-grid .thumb").first.click()
    page.locator("#viewer").get_by_role("link", name="Open page").click()
    page.wait_for_selector("article.detail")
    page.get_by_role("button", name="Similar", exact=True).click()
    page.wait_for_selector(".detail .similar[aria-pressed=true]")
    shot("image-page")
    page.get_by_role("link", name="Back to the results").click()
    page.wait_for_url(results_url)
    page.wait_for_selector("#result-grid .hit")
