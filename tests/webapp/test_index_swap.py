"""A running process picks up a newly activated index (and its model) without a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from retrieval.heads import PCAHead, save_head
from tests.imagefactory import image_bytes
from webapp.gallery import indexing
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.runtime import runtime
from webapp.search import service


def _search(k: int = 5) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("q.png", image_bytes("PNG", (80, 80), colour=(30, 160, 90)))
    response = APIClient().post("/api/v1/search/", {"image": upload, "k": k})
    assert response.status_code == 200, response.content
    return response.json()


def _pca_version(data_dir: Path) -> ModelVersion:
    _, features = runtime.feature_store().all()
    save_head(PCAHead.fit(np.asarray(features), 16), data_dir / "models" / "pca.npz")
    return ModelVersion.objects.create(backbone=settings.BACKBONE, head_kind="pca", head_file="models/pca.npz")


@pytest.mark.django_db
def test_next_search_uses_the_newly_activated_index_and_model(gallery, data_dir: Path) -> None:
    before = _search()
    new = indexing.build_and_activate(_pca_version(data_dir))
    after = _search()
    assert before["index_version"] != after["index_version"] == new.pk
    assert after["model_version"] == new.model_version_id != before["model_version"]
    assert IndexVersion.objects.filter(is_active=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_searches_during_swaps_all_succeed(gallery, data_dir: Path) -> None:
    query = Image.objects.filter(role=Image.Role.GALLERY).first()
    errors: list[BaseException] = []
    versions: set[int] = set()
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                result = service.search_similar(query, k=5)
                assert len(result.hits) == 5 and query.pk not in [h.image.pk for h in result.hits]
                versions.add(result.index_version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            indexing.build_and_activate()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert len(versions) >= 2
