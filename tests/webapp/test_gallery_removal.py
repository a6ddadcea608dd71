"""Removing images: gone from results at once (before any rebuild) and after one, files and features deleted,
no longer fetchable; learners skip triplets that mention them; users delete their own query images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.webapp.accounts import staff_api_client
from webapp.feedback import consumer
from webapp.feedback.models import Triplet
from webapp.gallery import indexing
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.gallery.removal import remove_images
from webapp.learning import batch
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


def _ranked(query: Image, k: int = 35) -> list[int]:
    return [hit.image.pk for hit in service.search_similar(query, k=k).hits]


def test_a_removed_image_leaves_results_at_once_and_after_the_rebuild(gallery) -> None:
    query = Image.objects.get(original_name="gravel-000.jpg")
    before = _ranked(query, k=5)
    victims = before[:3]
    index_before = IndexVersion.objects.get(is_active=True)
    assert staff_api_client().post("/api/v1/images/remove/", {"ids": victims}, format="json").json() == {"removed": 3}
    # the same index still serves (no rebuild yet), yet the removed images are filtered and the page stays full
    assert IndexVersion.objects.get(is_active=True) == index_before
    after = _ranked(query, k=5)
    assert not set(victims) & set(after) and len(after) == 5
    assert after[:2] == before[3:5]
    assert not set(victims) & set(_ranked(query))  # no page of any length shows them
    assert indexing.index_is_stale()  # beat's refresh_index rebuilds
    rebuilt = indexing.build_and_activate()
    assert rebuilt.ntotal == 33
    assert not set(victims) & set(_ranked(query))


def test_removal_deletes_original_thumbnail_and_features_and_they_cannot_be_fetched(gallery) -> None:
    image = Image.objects.get(original_name="gravel-001.jpg")
    file, thumbnail = image.file.name, image.thumbnail.name
    file_url, thumb_url = image.file.url, image.thumbnail.url
    store = runtime.feature_store()
    assert store.contains(np.array([image.pk]))[0]
    response = staff_api_client().delete(f"/api/v1/images/{image.pk}/")
    assert response.status_code == 204
    assert not default_storage.exists(file) and not default_storage.exists(thumbnail)
    assert not store.contains(np.array([image.pk]))[0]
    image.refresh_from_db()
    assert image.role == Image.Role.REMOVED and image.removed_at is not None
    assert image.sha256 == f"removed:{image.pk}" and image.original_name == "" and not image.file
    client = Client()
    assert client.get(file_url).status_code == 404 and client.get(thumb_url).status_code == 404
    assert APIClient().get(f"/api/v1/images/{image.pk}/").status_code == 404
    listed = APIClient().get("/api/v1/images/", {"page_size": 100}).json()
    assert image.pk not in [item["id"] for item in listed["results"]] and listed["count"] == 35
    assert staff_api_client().delete(f"/api/v1/images/{image.pk}/").status_code == 404  # already gone


def test_the_same_bytes_imported_again_become_a_new_image(gallery, demo_folder: Path, eager_tasks) -> None:
    image = Image.objects.get(original_name="gravel-002.jpg")
    remove_images([image.pk])
    data = (demo_folder / "gravel" / "gravel-002.jpg").read_bytes()
    body = staff_api_client().post("/api/v1/images/", {"files": [_file("again.jpg", data)]}, format="multipart").json()
    assert body["imported"] == 1 and body["status"] == "done"
    again = Image.objects.get(original_name="again.jpg")
    assert again.pk != image.pk and again.role == Image.Role.GALLERY
    assert runtime.feature_store().contains(np.array([again.pk, image.pk])).tolist() == [True, False]


def test_only_staff_remove_and_the_command_removes_by_label(gallery, capsys) -> None:
    image = Image.objects.filter(role=Image.Role.GALLERY).first()
    assert APIClient().delete(f"/api/v1/images/{image.pk}/").status_code in (401, 403)
    assert APIClient().post("/api/v1/images/remove/", {"ids": [image.pk]}, format="json").status_code in (401, 403)
    call_command("remove_images", "--label", "gravel")
    assert "Removed 3 of 3 images" in capsys.readouterr().out
    assert not Image.objects.filter(role=Image.Role.GALLERY, label="gravel").exists()


def _triplets_over(images: list[Image]) -> list[Triplet]:
    a, p, n, x = images
    return [Triplet.objects.create(anchor=a, positive=p, negative=n, source="label"),
            Triplet.objects.create(anchor=a, positive=p, negative=x, source="label"),
            Triplet.objects.create(anchor=x, positive=a, negative=n, source="label")]


def test_both_learners_skip_triplets_with_a_removed_member(gallery, settings) -> None:
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id")[:4])
    kept, with_removed_negative, with_removed_anchor = _triplets_over(images)
    remove_images([images[3].pk])
    online = consumer.read_batch(0)
    assert online.ids.tolist() == [kept.pk] and consumer.pending(0) == 1
    ids, labels, rows = batch.training_images(ModelVersion.active().backbone, "triplets", kept.pk + 10)
    assert labels is None and len(rows) == 1
    assert ids[rows[0]].tolist() == [images[0].pk, images[1].pk, images[2].pk]
    assert Triplet.objects.count() == 3  # append-only: nothing was deleted


def test_the_online_learner_learns_only_the_usable_triplets(gallery, settings, eager_tasks) -> None:
    from webapp.learning.online import CURSOR, load_learner, online_update

    settings.ONLINE_TRIPLET_SOURCES = ["label"]
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id")[:4])
    _triplets_over(images)
    remove_images([images[3].pk])
    assert online_update(lambda fraction, message: None) is not None
    learner = load_learner(consumer.open_cursor(CURSOR), ModelVersion.active().backbone)
    assert learner.triplets_seen == 1


def test_a_user_deletes_their_own_query_image_and_nobody_else_can(gallery) -> None:
    from tests.imagefactory import image_bytes

    owner = APIClient()
    body = owner.post("/api/v1/search/", {"image": _file("mine.png", image_bytes("PNG", (80, 80)))}).json()
    query = Image.objects.get(pk=body["query_id"])
    name = query.file.name
    assert APIClient().delete(f"/api/v1/queries/{query.pk}/").status_code == 404  # another visitor
    gallery_image = Image.objects.filter(role=Image.Role.GALLERY).first()
    assert owner.delete(f"/api/v1/queries/{gallery_image.pk}/").status_code == 404  # not a query image
    assert owner.delete(f"/api/v1/queries/{query.pk}/").status_code == 204
    query.refresh_from_db()
    assert query.role == Image.Role.REMOVED and not default_storage.exists(name)
    assert not runtime.feature_store().contains(np.array([query.pk]))[0]


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")
