"""POST /api/v1/search/ and GET /api/v1/images/: happy paths, limits and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.imagefactory import bomb_png, image_bytes, truncated_jpeg
from webapp.gallery.models import Image
from webapp.runtime import runtime

pytestmark = pytest.mark.django_db


def _upload(data: bytes, name: str = "query.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def _snapshot(data_dir: Path) -> tuple[int, int, list[str]]:
    files = sorted(str(p) for p in (data_dir / "media").rglob("*") if p.is_file())
    return Image.objects.count(), len(runtime.feature_store()), files


def test_search_ranks_same_class_images_first(gallery, demo_folder: Path) -> None:
    query = demo_folder / "gold-stars" / "gold-stars-000.jpg"
    response = APIClient().post("/api/v1/search/", {"image": _upload(query.read_bytes()), "k": 5})
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["results"]) == 5
    assert [hit["rank"] for hit in body["results"]] == [1, 2, 3, 4, 5]
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["results"][0]["label"] == "gold-stars"
    assert body["results"][0]["thumbnail_url"].startswith("http://testserver/media/thumbnails/")
    assert isinstance(body["model_version"], int) and isinstance(body["query_id"], int)


def test_a_query_never_gets_itself_back(gallery, demo_folder: Path) -> None:
    data = (demo_folder / "gravel" / "gravel-001.jpg").read_bytes()
    stored = Image.objects.get(original_name="gravel-001.jpg")
    body = APIClient().post("/api/v1/search/", {"image": _upload(data), "k": 100}).json()
    assert body["query_id"] == stored.pk
    ids = [hit["image_id"] for hit in body["results"]]
    assert stored.pk not in ids and len(ids) == 35


def test_a_new_query_is_stored_as_a_query_image_outside_the_gallery(gallery) -> None:
    body = APIClient().post("/api/v1/search/", {"image": _upload(image_bytes("PNG", (64, 64)), "q.png")}).json()
    query = Image.objects.get(pk=body["query_id"])
    assert query.role == Image.Role.QUERY
    listed = APIClient().get("/api/v1/images/", {"page_size": 100}).json()
    assert query.pk not in [item["id"] for item in listed["results"]]


def test_k_defaults_to_20(gallery) -> None:
    body = APIClient().post("/api/v1/search/", {"image": _upload(image_bytes())}).json()
    assert len(body["results"]) == 20


@pytest.mark.parametrize("k", ["0", "101", "many"])
def test_bad_k_is_a_400(gallery, k: str) -> None:
    response = APIClient().post("/api/v1/search/", {"image": _upload(image_bytes()), "k": k})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("k:")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a but not really", "not an image"),
        (truncated_jpeg(), "damaged or truncated"),
        (bomb_png(), "pixels"),
        (image_bytes("PNG", (16, 16)), "at least 32"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated", "bomb", "too-small"],
)
def test_bad_uploads_get_a_clear_400_and_write_nothing(gallery, data_dir: Path, data: bytes, message: str) -> None:
    before = _snapshot(data_dir)
    response = APIClient().post("/api/v1/search/", {"image": _upload(data)})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert _snapshot(data_dir) == before


def test_missing_image_field_is_a_400(gallery) -> None:
    response = APIClient().post("/api/v1/search/", {"k": 5})
    assert response.status_code == 400 and "image" in response.json()["detail"]


def test_files_over_the_size_limit_are_refused(gallery, data_dir: Path, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 2000
    before = _snapshot(data_dir)
    big = image_bytes("PNG", (400, 400), colour=(1, 2, 3), compress_level=0)
    response = APIClient().post("/api/v1/search/", {"image": _upload(big)})
    assert response.status_code == 400 and "limit" in response.json()["detail"]
    assert _snapshot(data_dir) == before


def test_search_before_any_import_is_a_503(db) -> None:
    response = APIClient().post("/api/v1/search/", {"image": _upload(image_bytes())})
    assert response.status_code == 503 and "import" in response.json()["detail"]
    assert Image.objects.count() == 0


def test_images_endpoint_pages_through_the_gallery(gallery) -> None:
    client = APIClient()
    first = client.get("/api/v1/images/").json()
    assert first["count"] == 36 and len(first["results"]) == 36
    labelled = client.get("/api/v1/images/", {"label": "gravel"}).json()
    assert labelled["count"] == 3 and {item["label"] for item in labelled["results"]} == {"gravel"}


def test_openapi_schema_and_docs_are_served(db) -> None:
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/search/" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def test_uploaded_query_thumbnail_is_served(gallery) -> None:
    body = APIClient().post("/api/v1/search/", {"image": _upload(image_bytes())}).json()
    thumb = APIClient().get(body["results"][0]["thumbnail_url"].replace("http://testserver", ""))
    assert thumb.status_code == 200
    assert b"".join(thumb.streaming_content)[:2] == b"\xff\xd8"


def test_an_upload_is_embedded_below_the_request_s_priority(gallery, monkeypatch, settings) -> None:
    """REFIND_EMBED_NICE: the forward pass of an upload runs on a thread that much nicer than the request."""
    from retrieval.priority import MAX_NICE, thread_nice
    from webapp.search import service

    seen: list[int] = []
    preprocess = service.preprocess
    monkeypatch.setattr(service, "preprocess", lambda *args: (seen.append(thread_nice()), preprocess(*args))[1])
    response = APIClient().post("/api/v1/search/", {"image": _upload(image_bytes("PNG", (80, 80)), "n.png")})
    assert response.status_code == 200, response.content
    assert seen == [min(MAX_NICE, thread_nice() + settings.EMBED_NICE)] and settings.EMBED_NICE == 10
