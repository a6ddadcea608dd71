"""The whole journey in a real browser: search by file and by drag-and-drop, judge results, retrain as staff."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

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


def test_search_judge_and_retrain(page, live_server, split_demo, demo_folder: Path, eager_tasks, settings) -> None:
    settings.PROMOTION_GUARD = "off"
    page.goto(live_server.url + "/")
    page.set_input_files("#image-input", str(demo_folder / "sunsets" / "sunsets-000.jpg"))
    page.wait_for_selector(".hit")
    assert "sunsets" in page.inner_text("#results")
    assert page.url == live_server.url + "/"  # htmx swapped the results in, no page load

    _drop_file(page, "#search-form", demo_folder / "gravel" / "gravel-001.jpg")
    page.wait_for_selector("text=Results for gravel-001.jpg")
    for control, index in ((".hit .dissimilar", 4), (".hit .thumb", 1), (".hit .thumb", 0)):
        with page.expect_response(lambda response: response.url.endswith("/feedback/")) as answer:
            page.locator(control).nth(index).click()
        assert answer.value.status == 200
    page.wait_for_selector("text=Marked not similar")
    page.wait_for_selector(".viewer >> text=Find similar to this")
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
    page.click("text=Start training")
    page.wait_for_selector("#progress progress")
    page.wait_for_function("!document.querySelector('#progress [hx-trigger]')", timeout=120_000)
    assert page.locator(".run-status").inner_text() == "Promoted"
    assert page.eval_on_selector("#progress progress", "el => el.value") == 1

    page.click("text=Refresh the report")
    page.wait_for_selector("text=Model versions")
    assert page.locator("#versions tr.active").count() == 1
    for plot in ("#recall-plot", "#alpha-plot"):  # the PNGs arrive and decode as images
        page.wait_for_function(f"document.querySelector('{plot}').complete && "
                               f"document.querySelector('{plot}').naturalWidth > 0")


def test_a_bad_file_shows_a_message(page, live_server, gallery, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image at all")
    page.goto(live_server.url + "/")
    page.set_input_files("#image-input", str(bad))
    page.wait_for_selector("[role=alert]")
    assert "not an image" in page.inner_text("[role=alert]")
