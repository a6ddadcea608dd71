"""In-session relevance feedback: "show more" / "refine" and POST /api/v1/search/refine/ rank with the marks."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from retrieval.augment import l2_normalise
from retrieval.relevance import rocchio
from webapp.feedback import memory
from webapp.feedback.models import Impression
from webapp.gallery.models import Image, ModelVersion
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plain_index(settings) -> None:
    """Scores compared with vectors computed here: no database-side augmentation of the index rows."""
    settings.DBA_K = 0
HTMX = {"HTTP_HX_REQUEST": "true"}


def _search(client: APIClient, demo_folder, k: int = 10) -> dict:
    data = (demo_folder / "checkerboard" / "checkerboard-001.jpg").read_bytes()
    return client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", data), "k": k}).json()


def _mark(client: APIClient, found: dict, image_id: int, kind: str = "similar") -> None:
    answer = client.post("/api/v1/feedback/", {"query_id": found["query_id"], "impression_id": found["impression_id"],
                                               "image_id": image_id, "judgement": kind}, format="json")
    assert answer.status_code == 201, answer.content


def test_refine_ranks_the_unseen_images_with_the_adjusted_query(gallery, demo_folder) -> None:
    alice = APIClient()
    found = _search(alice, demo_folder)
    shown = [hit["image_id"] for hit in found["results"]]
    marked = [shown[1], shown[4], shown[6]]
    for image in marked:
        _mark(alice, found, image)
    _mark(alice, found, shown[8], "dissimilar")
    answer = alice.post("/api/v1/search/refine/", {"query_id": found["query_id"], "k": 10}, format="json")
    assert answer.status_code == 200, answer.content
    refined = answer.json()
    skipped = {shown[0], shown[2], shown[3], shown[5]}  # above the lowest mark, not marked
    assert refined["refined"] == {"positives": 3, "negatives": len(skipped) + 1, "excluded": 10}
    ids = [hit["image_id"] for hit in refined["results"]]
    assert len(ids) == 10 and not set(ids) & set(shown) and found["query_id"] not in ids
    assert [hit["rank"] for hit in refined["results"]] == list(range(11, 21))
    page = Impression.objects.get(pk=refined["impression_id"])
    assert page.shown == ids and page.offset == 10 and page.rank_of(ids[0]) == 11  # it can be judged too

    # the scores are those of Rocchio's query over the served vectors
    version = ModelVersion.active()
    query = runtime.embed(version, runtime.feature_store(version.backbone).get(np.array([found["query_id"]])))
    adjusted = rocchio(query, memory.served_vectors(version, np.array(sorted(marked))),
                       memory.served_vectors(version, np.array(sorted(skipped | {shown[8]}))))
    expected = l2_normalise(memory.served_vectors(version, np.array(ids))) @ adjusted[0]
    assert np.allclose([hit["score"] for hit in refined["results"]], expected, atol=1e-4)
    plain = service.search_similar(Image.objects.get(pk=found["query_id"]), k=10, offset=10)
    assert [hit.image.pk for hit in plain.hits] != ids or not np.allclose(
        [hit.score for hit in plain.hits], [hit["score"] for hit in refined["results"]])


def test_without_marks_refine_is_the_plain_next_page(gallery, demo_folder) -> None:
    client = APIClient()
    found = _search(client, demo_folder)
    refined = client.post("/api/v1/search/refine/", {"query_id": found["query_id"], "k": 10}, format="json").json()
    plain = service.search_similar(Image.objects.get(pk=found["query_id"]), k=10, offset=10)
    assert refined["refined"] is None
    assert [hit["image_id"] for hit in refined["results"]] == [hit.image.pk for hit in plain.hits]


def test_marks_are_personal_and_bad_requests_are_refused(gallery, demo_folder) -> None:
    alice, bob = APIClient(), APIClient()
    found = _search(alice, demo_folder)
    _mark(alice, found, found["results"][2]["image_id"])
    assert bob.post("/api/v1/search/refine/", {"query_id": found["query_id"]}, format="json").status_code == 404
    assert alice.post("/api/v1/search/refine/", {"query_id": found["query_id"], "k": 0}, format="json").status_code \
        == 400
    assert alice.post("/api/v1/search/refine/", {"query_id": "x"}, format="json").status_code == 400
    assert alice.post("/api/v1/search/refine/", {}, format="json").status_code == 400


def test_the_page_says_when_show_more_uses_the_marks(gallery) -> None:
    client = Client()
    query = Image.objects.get(original_name="teal-rings-000.jpg")
    first = client.get(f"/images/{query.pk}/similar/", **HTMX)
    assert "Refine with my marks" in first.content.decode()
    impression = Impression.objects.latest("id")
    answer = client.post("/feedback/", {"impression": impression.pk, "image": impression.shown[3],
                                              "judgement": "similar"}, **HTMX)
    assert answer.status_code == 200
    more = client.get(f"/images/{query.pk}/similar/?offset=20&refine=1", **HTMX).content.decode()
    assert "Refined with your marks (1 similar, 3 not similar or skipped)" in more
    assert more.count('data-image-id="') == 15 and f'data-image-id="{impression.shown[3]}"' not in more
    plain = Client().get(f"/images/{query.pk}/similar/?offset=20", **HTMX).content.decode()  # someone else
    assert "Refined with your marks" not in plain
