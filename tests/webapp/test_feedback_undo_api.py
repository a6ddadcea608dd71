"""POST /api/v1/feedback/undo/: a script can take back a similar / not-similar verdict, as the page's buttons do."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from webapp.feedback.models import Judgement, Triplet
from webapp.feedback.triplets import derive_pending
from webapp.feedback.usable import usable_triplets

pytestmark = pytest.mark.django_db


def _search(client: APIClient, demo_folder: Path) -> dict:
    data = (demo_folder / "checkerboard" / "checkerboard-000.jpg").read_bytes()
    return client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", data), "k": 10}).json()


def _post(client: APIClient, path: str, **body):
    return client.post(f"/api/v1/feedback/{path}", body, format="json")


def test_undo_removes_the_verdict_and_retracts_its_triplets(gallery, demo_folder: Path) -> None:
    client = APIClient()
    found = _search(client, demo_folder)
    query, third = found["query_id"], found["results"][2]["image_id"]
    assert _post(client, "", query_id=query, image_id=third, judgement="similar").status_code == 201
    assert derive_pending() > 0
    given = usable_triplets(Triplet.objects.all()).count()

    answer = _post(client, "undo/", query_id=query, image_id=third)
    assert answer.status_code == 200
    assert answer.json() == {"impression_id": found["impression_id"], "undone": True, "triplets_retracted": given}
    assert usable_triplets(Triplet.objects.all()).count() == 0
    assert not Judgement.objects.filter(retracted_at__isnull=True).exists()

    again = _post(client, "undo/", query_id=query, image_id=third)  # nothing left to undo: said, not an error
    assert again.status_code == 200 and again.json()["undone"] is False


def test_undo_keeps_clicks(gallery, demo_folder: Path) -> None:
    client = APIClient()
    found = _search(client, demo_folder)
    query, second = found["query_id"], found["results"][1]["image_id"]
    _post(client, "", query_id=query, image_id=second, judgement="click")
    assert _post(client, "undo/", query_id=query, image_id=second).json()["undone"] is False
    assert Judgement.objects.get().retracted_at is None


def test_nobody_else_can_undo_your_verdict(gallery, demo_folder: Path) -> None:
    owner, stranger = APIClient(), APIClient()
    found = _search(owner, demo_folder)
    query, third = found["query_id"], found["results"][2]["image_id"]
    _post(owner, "", query_id=query, image_id=third, judgement="dissimilar")
    refused = _post(stranger, "undo/", query_id=query, image_id=third, impression_id=found["impression_id"])
    assert refused.status_code == 404
    assert Judgement.objects.get().retracted_at is None


@pytest.mark.parametrize("body", [{}, {"query_id": "x", "image_id": 1}, {"query_id": 1, "image_id": -3},
                                  {"query_id": 1, "image_id": 10**30}])
@pytest.mark.parametrize("path", ["", "undo/"])
def test_malformed_feedback_is_a_400(db, body: dict, path: str) -> None:
    response = _post(APIClient(), path, **{**body, "judgement": "click"} if path == "" else body)
    assert response.status_code == 400 and response.json()["detail"]
