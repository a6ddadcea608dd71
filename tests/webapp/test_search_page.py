"""The search page: htmx upload, results grid, show more, image page with "find similar", messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.imagefactory import truncated_jpeg
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
HIT = re.compile(r'<li class="hit[ "]')


def test_home_page_has_the_upload_form_and_vendored_htmx(db) -> None:
    html = Client().get("/").content.decode()
    assert 'hx-post="/search/"' in html and 'type="file"' in html and 'name="image"' in html
    assert "/static/vendor/htmx.min.js" in html and "cdn" not in html.lower()


def test_htmx_upload_returns_a_results_fragment(gallery, demo_folder: Path) -> None:
    data = (demo_folder / "red-crosses" / "red-crosses-000.jpg").read_bytes()
    response = Client().post("/search/", {"image": SimpleUploadedFile("q.jpg", data)}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html  # a fragment, swapped in without a page reload
    assert len(HIT.findall(html)) == 20
    assert "red-crosses" in html and "Show more" in html


def test_show_more_returns_the_next_page(gallery) -> None:
    query = Image.objects.get(original_name="teal-rings-000.jpg")
    first = Client().get(f"/images/{query.pk}/similar/", **HTMX).content.decode()
    more = Client().get(f"/images/{query.pk}/similar/?offset=20", **HTMX).content.decode()
    assert len(HIT.findall(first)) == 20 and len(HIT.findall(more)) == 15  # 36 minus the query
    assert "#21" in more and "Show more" not in more
    assert f'data-image-id="{query.pk}"' not in first + more


def test_image_page_offers_find_similar(gallery) -> None:
    image = Image.objects.get(original_name="pink-dots-002.jpg")
    html = Client().get(f"/images/{image.pk}/").content.decode()
    assert "Find similar to this" in html and f"/images/{image.pk}/similar/" in html
    assert "pink-dots" in html


def test_bad_upload_shows_a_message_and_writes_nothing(gallery) -> None:
    count = Image.objects.count()
    response = Client().post("/search/", {"image": SimpleUploadedFile("x.jpg", truncated_jpeg())}, **HTMX)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode() and "truncated" in response.content.decode()
    assert Image.objects.count() == count


def test_missing_file_without_htmx_renders_the_full_page_with_the_message(db) -> None:
    response = Client().post("/search/", {})
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" in html and "Choose an image file" in html


def test_labels_and_file_names_are_escaped(gallery) -> None:
    image = Image.objects.first()
    image.label = '<script>alert("x")</script>'
    image.original_name = '"><img src=x onerror=alert(1)>.jpg'
    image.save()
    html = Client().get(f"/images/{image.pk}/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html
