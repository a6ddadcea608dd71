"""The whole journey in a real browser: search by file and by drag-and-drop, judge results, retrain as staff."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.webapp.browser.support import wait_until
from webapp.feedback.models import Judgement, Triplet

pytestmark = pytest.mark.django_db(transaction=True)


def _drop_file(page, selector: str, path: Path) -> None:
    """Drag-and-drop a file onto an element, as a person dragging it from their desktop."""
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([selector, data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            const target = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        [selector, data, path.name],
    )


def test_search_judge_and_retrain(page, shot, live_server, split_demo, demo_folder: Path, eager_tasks,
                                  settings) -> None:
    settings.PROMOTION_GUARD = "off"
    page.goto(live_server.url + "/")
    shot("home")
    page.set_input_files("#image-input", str(demo_folder / "sunsets" / "sunsets-000.jpg"))
    page.wait_for_selector(".hit")
    assert "sunsets" in page.inner_text("#results")
    assert re.search(r"/images/\d+/similar/$", page.url)  # htmx swapped the results in and pushed their URL
    shot("results")

    _drop_file(page, "#search-form", demo_folder / "gravel" / "gravel-001.jpg")
    page.wait_for_selector("text=Results for gravel-001.jpg")
    for control, index in ((".hit .dissimilar", 4), (".hit .thumb", 1), (".hit .thumb", 0)):
        if page.evaluate("document.querySelector('#viewer').open"):
            page.keyboard.press("Escape")  # close the viewer the previous thumbnail opened
        with page.expect_response(lambda response: response.url.endswith("/feedback/")) as answer:
            page.locator(control).nth(index).click()
        assert answer.value.status == 200
    page.wait_for_selector("text=Marked not similar")
    page.wait_for_selector(".viewer >> text=Find similar to this")
    shot("viewer")
    assert Judgement.objects.count() == 3 and Triplet.objects.count() > 0

    get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True)
    page.goto(live_server.url + "/admin/login/?next=/dashboard/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Learning dashboard")
    page.select_option("#id_mode", "batch")
    page.select_option("#id_data", "triplets")
    page.fill("#id_epochs", "2")
    shot("dashboard")
    page.click("text=Start training")
    page.wait_for_selector("#progress .run-status")
    wait_until(page, "!document.querySelector('#progress [hx-trigger]')", timeout=120)
    assert page.locator(".run-status").inner_text() == "Promoted"
    shot("trained")

    page.click("text=Refresh the report")
    page.wait_for_selector("text=Model versions")
    assert page.locator("#versions tr.active").count() == 1
    for plot in ("#recall-plot", "#alpha-plot"):  # the PNGs arrive and decode as images
        wait_until(page, f"document.querySelector('{plot}').complete && "
                         f"document.querySelector('{plot}').naturalWidth > 0")
    shot("report", full_page=True)


def test_a_bad_file_shows_a_message(page, live_server, gallery, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image at all")
    page.goto(live_server.url + "/")
    page.set_input_files("#image-input", str(bad))
    page.wait_for_selector("[role=alert]")
    assert "not an image" in page.inner_text("[role=alert]")
