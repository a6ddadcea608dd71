"""A query image is private to whoever uploaded it (a user or an anonymous session) and to staff: on every page,
API and media URL; its id answers exactly like an id that does not exist; strangers cannot search with it or
judge it; importing the same bytes into the gallery does not carry the uploader's file name (issue 11, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from tests.imagefactory import image_bytes
from webapp.feedback.models import Impression, Judgement
from webapp.gallery.jobs import import_tree
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
SECRET_NAME = "alice-passport-scan.png"
MISSING = 987_654


def _upload(client, data: bytes) -> dict:
    response = client.post("/api/v1/search/", {"image": SimpleUploadedFile(SECRET_NAME, data), "k": 5})
    assert response.status_code == 200, response.content
    return response.json()


def _urls(query: Image) -> list[str]:
    return [f"/images/{query.pk}/", f"/images/{query.pk}/similar/", f"/api/v1/images/{query.pk}/",
            query.file.url, query.thumbnail.url]


def _missing_urls(query: Image) -> list[str]:
    fake = "f" * 64
    return [f"/images/{MISSING}/", f"/images/{MISSING}/similar/", f"/api/v1/images/{MISSING}/",
            f"/media/originals/ff/{fake}.png", f"/media/thumbnails/ff/{fake}.jpg"]


def test_strangers_get_the_answer_of_a_missing_id_and_owners_and_staff_see_it(gallery) -> None:
    alice = APIClient()
    found = _upload(alice, image_bytes("PNG", colour=(12, 99, 140)))
    query = Image.objects.get(pk=found["query_id"])
    assert query.role == Image.Role.QUERY
    stranger, user = Client(), Client()
    user.force_login(get_user_model().objects.create_user("mallory", password="pw-mallory-123"))
    for client in (stranger, user):
        for url, missing in zip(_urls(query), _missing_urls(query), strict=True):
            answer, reference = client.get(url), client.get(missing)
            assert answer.status_code == reference.status_code == 404, url
            assert SECRET_NAME not in answer.content.decode(errors="replace")
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True))
    for client in (alice, staff):
        detail = client.get(f"/images/{query.pk}/")
        assert detail.status_code == 200
        assert client.get(f"/images/{query.pk}/similar/").status_code == 200
        assert client.get(query.file.url).status_code == 200 and client.get(query.thumbnail.url).status_code == 200
    assert SECRET_NAME in alice.get(f"/images/{query.pk}/").content.decode()


def test_a_stranger_can_neither_search_with_nor_judge_someone_elses_query(gallery) -> None:
    alice = APIClient()
    found = _upload(alice, image_bytes("PNG", colour=(200, 10, 10)))
    query_id, shown = found["query_id"], found["results"][0]["image_id"]
    impressions = Impression.objects.count()
    stranger = APIClient()
    assert stranger.get(f"/images/{query_id}/similar/").status_code == 404
    assert Impression.objects.count() == impressions  # no impression of someone else's query was created
    verdict = {"query_id": query_id, "image_id": shown, "judgement": "similar"}
    answer = stranger.post("/api/v1/feedback/", verdict, format="json")
    missing = stranger.post("/api/v1/feedback/", {**verdict, "query_id": MISSING}, format="json")
    assert answer.status_code == missing.status_code == 404
    assert answer.json()["detail"].replace(str(query_id), "N") == missing.json()["detail"].replace(str(MISSING), "N")
    with_impression = stranger.post("/api/v1/feedback/", {**verdict, "impression_id": found["impression_id"]},
                                    format="json")
    assert with_impression.status_code == 404 and not Judgement.objects.exists()
    assert alice.post("/api/v1/feedback/", verdict, format="json").status_code == 201


def test_two_uploaders_of_the_same_bytes_each_see_only_their_own_file_name(gallery) -> None:
    data = image_bytes("PNG", colour=(1, 200, 1))
    first, second = APIClient(), APIClient()
    query_id = _upload(first, data)["query_id"]
    response = second.post("/api/v1/search/", {"image": SimpleUploadedFile("bob-holiday.png", data)})
    assert response.json()["query_id"] == query_id
    page = second.get(f"/images/{query_id}/").content.decode()
    assert "bob-holiday.png" in page and SECRET_NAME not in page


def test_importing_a_querys_bytes_into_the_gallery_does_not_publish_its_file_name(gallery, tmp_path: Path) -> None:
    data = image_bytes("PNG", colour=(77, 7, 170))
    query_id = _upload(APIClient(), data)["query_id"]
    folder = tmp_path / "more" / "violet"
    folder.mkdir(parents=True)
    (folder / "violet-001.png").write_bytes(data)
    import_tree(tmp_path / "more", labels_from_dirs=True)
    image = Image.objects.get(pk=query_id)
    assert image.role == Image.Role.GALLERY and image.original_name == "violet-001.png"
    listing = APIClient().get("/api/v1/images/", {"label": "violet"}).json()
    assert [row["original_name"] for row in listing["results"]] == ["violet-001.png"]
    assert SECRET_NAME not in Client().get(f"/images/{query_id}/").content.decode()
