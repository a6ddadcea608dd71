"""A hostile file or folder name, uploaded or imported, is shown as text on every page (escaped), never as HTML."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from tests.imagefactory import image_bytes
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
HOSTILE_FILE = "<img src=x onerror=alert(1)>.png"
HOSTILE_FOLDER = "<svg onload=alert(2)>"  # a folder name cannot hold "/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def _assert_inert(html: str) -> None:
    assert "<img src=x" not in html and "<svg onload" not in html


def test_an_uploaded_file_name_is_escaped_in_the_results_and_on_its_page(gallery) -> None:
    client = Client()
    upload = SimpleUploadedFile(HOSTILE_FILE, image_bytes("PNG", colour=(9, 99, 199)))
    results = client.post("/search/", {"image": upload}, **HTMX).content.decode()
    query = Image.objects.get(original_name=HOSTILE_FILE)
    _assert_inert(results)
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in results
    page = client.get(f"/images/{query.pk}/").content.decode()
    _assert_inert(page)
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page


def test_imported_file_and_folder_names_are_escaped_in_results_viewer_and_api(demo_folder: Path) -> None:
    hostile = demo_folder / HOSTILE_FOLDER
    hostile.mkdir()
    (hostile / HOSTILE_FILE).write_bytes(image_bytes("PNG", colour=(240, 10, 10)))
    call_command("import_images", str(demo_folder), "--labels-from-dirs", verbosity=0)
    image = Image.objects.get(original_name=HOSTILE_FILE)
    assert image.label == HOSTILE_FOLDER  # stored as given; escaping is the templates' job

    client = Client()
    other = Image.objects.get(original_name="gravel-000.jpg").pk
    results = "".join(client.get(f"/images/{other}/similar/?offset={offset}", **HTMX).content.decode()
                      for offset in (0, 20))  # every other image, the hostile one among them
    page = client.get(f"/images/{image.pk}/").content.decode()
    for html in (results, page):
        _assert_inert(html)
        assert "&lt;svg onload=alert(2)&gt;" in html
    api = client.get("/api/v1/images/", {"label": HOSTILE_FOLDER}).json()
    assert [row["original_name"] for row in api["results"]] == [HOSTILE_FILE]  # JSON carries the raw text
