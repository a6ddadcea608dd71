"""POST /api/v1/feedback/, GET /api/v1/triplets/ and the JSONL export: behaviour and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.imagefactory import image_bytes
from tests.webapp.feedback_factory import make_images, make_impression
from webapp.feedback.models import Impression, Judgement, Triplet
from webapp.feedback.triplets import derive_pending, record_judgement
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def client_alice(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


def _counts() -> tuple[int, int]:
    return Judgement.objects.count(), Triplet.objects.count()


def test_search_records_an_impression_and_a_click_becomes_triplets(gallery, demo_folder: Path) -> None:
    client = APIClient()
    data = (demo_folder / "checkerboard" / "checkerboard-000.jpg").read_bytes()
    found = client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", data), "k": 10}).json()
    impression = Impression.objects.get(pk=found["impression_id"])
    assert impression.shown == [hit["image_id"] for hit in found["results"]]
    assert impression.query_id == found["query_id"] and impression.session_key
    third = found["results"][2]["image_id"]
    answer = client.post("/api/v1/feedback/", {"query_id": found["query_id"], "image_id": third,
                                               "judgement": "click"}, format="json")
    assert answer.status_code == 201 and answer.json()["triplets_pending"] is True
    assert Triplet.objects.count() == 0  # the request only stored the judgement; a worker derives
    assert derive_pending() == 2  # the two results above it
    repeat = client.post("/api/v1/feedback/", {"query_id": found["query_id"], "image_id": third,
                                               "judgement": "click"}, format="json")
    assert repeat.status_code == 200 and repeat.json()["created"] is False
    assert Judgement.objects.count() == 1 and Triplet.objects.count() == 2


def test_uploaded_queries_never_appear_in_results(gallery) -> None:
    client = APIClient()
    first = client.post("/api/v1/search/", {"image": SimpleUploadedFile("a.png", image_bytes("PNG"))}).json()
    other = image_bytes("PNG", colour=(9, 9, 9))
    second = client.post("/api/v1/search/", {"image": SimpleUploadedFile("b.png", other)})
    assert first["query_id"] not in [hit["image_id"] for hit in second.json()["results"]]
    assert Image.objects.get(pk=first["query_id"]).role == Image.Role.QUERY


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"query_id": 999999, "image_id": 1, "judgement": "click"}, 404, "No image with id 999999"),
        ({"query_id": "Q", "image_id": "I", "judgement": "click"}, 404, "No image with id"),  # not hers: as if missing
        ({"query_id": "Q", "image_id": 999999, "judgement": "click"}, 404, "No image with id 999999"),
        ({"query_id": "Q", "image_id": "X", "judgement": "click"}, 400, "was not shown"),
        ({"query_id": "Q", "image_id": "I", "judgement": "love"}, 400, "judgement"),
        ({"query_id": "Q", "judgement": "click"}, 400, "image_id"),
        ({"query_id": "Q", "image_id": "I", "judgement": "click", "impression_id": 424242}, 404, "impression"),
    ],
    ids=["unknown-query", "no-impression", "unknown-image", "not-shown", "bad-judgement", "missing-field",
         "unknown-impression"],
)
def test_bad_feedback_is_refused_and_writes_nothing(client_alice, alice, payload, status, message) -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    shown, other = make_images(3), make_images(1)[0]
    unjudged_query = make_images(1, role=Image.Role.QUERY)[0]
    make_impression(query, shown, session_key="", user=alice)
    ids = {"Q": query.pk, "I": shown[1].pk, "X": other.pk}
    if payload == {"query_id": "Q", "image_id": "I", "judgement": "click"}:
        ids["Q"] = unjudged_query.pk  # a real image that alice never searched with
    body = {key: ids.get(value, value) if isinstance(value, str) else value for key, value in payload.items()}
    before = _counts()
    response = client_alice.post("/api/v1/feedback/", body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["detail"]
    assert _counts() == before


def test_malformed_json_is_a_400(client_alice) -> None:
    response = client_alice.post("/api/v1/feedback/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["detail"]


def test_someone_elses_impression_is_not_found(client_alice) -> None:
    bob = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    query = make_images(1, role=Image.Role.QUERY)[0]
    shown = make_images(2)
    impression = make_impression(query, shown, session_key="", user=bob)
    response = client_alice.post("/api/v1/feedback/", {"query_id": query.pk, "image_id": shown[0].pk,
                                                       "impression_id": impression.pk, "judgement": "click"},
                                 format="json")
    assert response.status_code == 404
    assert Judgement.objects.count() == 0


def test_a_changed_verdict_replaces_the_earlier_one(client_alice, alice) -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    shown = make_images(3)
    make_impression(query, shown, session_key="", user=alice)
    dissimilar = {"query_id": query.pk, "image_id": shown[0].pk, "judgement": "dissimilar"}
    assert client_alice.post("/api/v1/feedback/", dissimilar, format="json").status_code == 201
    similar = {"query_id": query.pk, "image_id": shown[1].pk, "judgement": "similar"}
    assert client_alice.post("/api/v1/feedback/", similar, format="json").json()["triplets_pending"] is True
    assert derive_pending() == 1
    response = client_alice.post("/api/v1/feedback/", {**dissimilar, "judgement": "similar"}, format="json")
    assert response.status_code == 201 and response.json()["triplets_retracted"] == 1
    live = Judgement.objects.filter(retracted_at__isnull=True, image=shown[0])
    assert list(live.values_list("kind", flat=True)) == ["similar"]


@pytest.fixture
def some_triplets() -> list[Triplet]:
    query = make_images(1, role=Image.Role.QUERY)[0]
    shown = make_images(4)
    impression = make_impression(query, shown)
    record_judgement(impression, shown[2].pk, "click")
    record_judgement(impression, shown[3].pk, "dissimilar")
    return list(Triplet.objects.order_by("id"))


def test_triplets_are_staff_only(some_triplets, client_alice) -> None:
    assert APIClient().get("/api/v1/triplets/").status_code in (401, 403)
    assert client_alice.get("/api/v1/triplets/").status_code == 403
    assert client_alice.get("/api/v1/triplets/export.jsonl").status_code == 403


def test_staff_list_filters_and_export(some_triplets) -> None:
    staff = APIClient()
    staff.force_authenticate(get_user_model().objects.create_user("st", password="pw-staff-123", is_staff=True))
    everything = staff.get("/api/v1/triplets/").json()
    assert everything["count"] == len(some_triplets) == 3
    explicit = staff.get("/api/v1/triplets/", {"source": "explicit"}).json()
    assert {t["source"] for t in explicit["results"]} == {"explicit"} and explicit["count"] == 1
    after = staff.get("/api/v1/triplets/", {"after": some_triplets[0].pk}).json()
    assert [t["id"] for t in after["results"]] == [t.pk for t in some_triplets[1:]]
    assert staff.get("/api/v1/triplets/", {"source": "gossip"}).status_code == 400
    export = staff.get("/api/v1/triplets/export.jsonl")
    lines = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines()]
    assert [line["id"] for line in lines] == [t.pk for t in some_triplets]
    assert set(lines[0]) == {"id", "anchor", "positive", "negative", "source", "created_at"}
