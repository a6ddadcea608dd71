"""The gallery page in a real browser: upload files and an archive by picker and by drag-and-drop, watch the
import finish, select images and remove them."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from webapp.gallery.models import Image, ImportJob

pytestmark = pytest.mark.django_db(transaction=True)


def _drop(page, selector: str, files: list[Path]) -> None:
    """Drag files from the desktop onto an element."""
    payload = [[base64.b64encode(path.read_bytes()).decode(), path.name] for path in files]
    page.evaluate(
        """([selector, payload]) => {
            const transfer = new DataTransfer();
            for (const [data, name] of payload) {
                const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            }
            const target = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        [selector, payload],
    )


def _wait_for_jobs(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#import-table tr.status-done').length >= n", arg=count, timeout=90_000)


def test_upload_and_remove_from_the_gallery_page(page, live_server, demo_folder: Path, tmp_path: Path,
                                                 eager_tasks) -> None:
    get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True)
    page.goto(live_server.url + "/admin/login/?next=/dashboard/gallery/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Add images")

    archive = tmp_path / "sunsets.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((demo_folder / "sunsets").glob("*.jpg")):
            zipped.write(path, f"sunsets/{path.name}")
    page.check("#upload-labels-from-dirs")
    page.set_input_files("#upload-files", [*sorted((demo_folder / "gravel").glob("*.jpg")), str(archive)])
    _wait_for_jobs(page, 1)
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 6
    assert Image.objects.filter(label="sunsets").count() == 3

    _drop(page, "#upload-form", sorted((demo_folder / "gold-stars").glob("*.jpg")))
    _wait_for_jobs(page, 2)
    assert ImportJob.objects.filter(status="done").count() == 2
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 9

    page.reload()
    page.wait_for_selector("text=Images (9)")
    doomed = list(Image.objects.filter(label="sunsets").values_list("id", flat=True))[:2]
    for image_id in doomed:
        page.check(f"input[name=ids][value='{image_id}']")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#remove-selected")
    page.wait_for_selector("text=Removed 2 images.")
    assert page.locator(f"li[data-image='{doomed[0]}']").count() == 0
    assert set(Image.objects.filter(pk__in=doomed).values_list("role", flat=True)) == {Image.Role.REMOVED}
