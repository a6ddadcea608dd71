"""Upload limits: a file over REFIND_MAX_UPLOAD_BYTES is a clear 400, a body over the request limit a clear
413 (refused from its Content-Length, before it is read); nothing is stored either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.imagefactory import image_bytes
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_the_search_page_refuses_a_file_over_the_limit_with_a_message(gallery, data_dir: Path, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 2000
    images, files = Image.objects.count(), _files(data_dir)
    big = image_bytes("PNG", (400, 400), colour=(1, 2, 3), compress_level=0)
    response = Client().post("/search/", {"image": SimpleUploadedFile("big.png", big)}, **HTMX)
    assert response.status_code == 400
    assert "the limit is 2,000 bytes" in response.content.decode() and 'role="alert"' in response.content.decode()
    assert Image.objects.count() == images and _files(data_dir) == files


@pytest.mark.parametrize("path", ["/api/v1/search/", "/search/"])
def test_a_request_over_the_body_limit_is_413_before_it_is_read(gallery, data_dir: Path, settings,
                                                                path: str) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    images, files = Image.objects.count(), _files(data_dir)
    big = image_bytes("PNG", (400, 400), colour=(1, 2, 3), compress_level=0)
    response = Client().post(path, {"image": SimpleUploadedFile("big.png", big)}, **HTMX)
    assert response.status_code == 413
    text = response.json()["detail"] if path.startswith("/api/") else response.content.decode()
    assert "the limit is 48.8 KB" in text
    assert Image.objects.count() == images and _files(data_dir) == files


def test_too_many_form_fields_is_a_json_400_under_the_api(db, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = Client().post("/api/v1/feedback/", {f"field{i}": "x" for i in range(50)})
    assert response.status_code == 400 and "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]
