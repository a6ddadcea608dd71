"""A model version whose head, backbone or index artifact cannot be fetched is refused by rollback with a 409
that says which; and search never answers 500 because of an artifact: the previous version keeps serving, the
error is recorded for the dashboard (issue 11, item 5)."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from retrieval.heads import PCAHead, save_head
from tests.imagefactory import image_bytes
from webapp import artifacts
from webapp.gallery import indexing
from webapp.gallery.models import IndexVersion, ModelVersion
from webapp.runtime import runtime

pytestmark = pytest.mark.django_db


def _pca_version(base: ModelVersion) -> ModelVersion:
    """A version with a head artifact in the storage (a projection on the first 64 feature dimensions)."""
    dim = runtime.backbone(base.backbone).dim
    head = PCAHead(np.zeros(dim, dtype=np.float32), np.eye(dim, 64, dtype=np.float32))
    name = artifacts.publish(artifacts.new_name("models", "head", ".npz"), lambda path: save_head(head, path))
    return ModelVersion.objects.create(backbone=base.backbone, head_kind="pca", head_file=name)


def _delete(name: str) -> None:
    artifacts.storage().delete(name)
    (artifacts._cache_path(name)).unlink(missing_ok=True)


@pytest.fixture
def staff() -> APIClient:
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("boss", password="pw-boss-12345",
                                                                   is_staff=True))
    return client


def _search(client: APIClient) -> dict:
    response = client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.png", image_bytes("PNG"))})
    assert response.status_code == 200, response.content
    return response.json()


def test_rollback_refuses_a_version_whose_artifacts_are_gone(gallery, staff) -> None:
    first = ModelVersion.objects.get(is_active=True)
    second = _pca_version(first)
    second_index = indexing.build_and_activate(second)
    assert _search(APIClient())["model_version"] == second.pk
    assert staff.post(f"/api/v1/model-versions/{first.pk}/rollback/").status_code == 200

    _delete(second_index.path)
    refused = staff.post(f"/api/v1/model-versions/{second.pk}/rollback/")
    assert refused.status_code == 409 and "index" in refused.json()["detail"]
    assert second_index.path in refused.json()["detail"]

    _delete(second.head_file)
    refused = staff.post(f"/api/v1/model-versions/{second.pk}/rollback/")
    assert refused.status_code == 409 and "metric head" in refused.json()["detail"]
    page = Client()
    page.force_login(get_user_model().objects.get(username="boss"))
    answer = page.post(f"/dashboard/versions/{second.pk}/rollback/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 409 and "metric head" in answer.content.decode()
    assert ModelVersion.objects.get(is_active=True) == first  # nothing was activated
    assert _search(APIClient())["model_version"] == first.pk


def test_an_active_version_with_a_missing_head_never_breaks_search(gallery) -> None:
    first = ModelVersion.objects.get(is_active=True)
    first_index = IndexVersion.objects.get(is_active=True)
    broken = _pca_version(first)
    broken_index = indexing.build_and_activate(broken)
    first_index.activate()
    runtime.reset()  # a process that never loaded the broken version's head
    assert _search(APIClient())["index_version"] == first_index.pk
    _delete(broken.head_file)
    broken_index.activate()  # e.g. activated by another host before its head vanished from the storage
    for _ in range(3):
        assert _search(APIClient())["index_version"] == first_index.pk  # the previous version keeps serving
    broken_index.refresh_from_db()
    assert broken.head_file in broken_index.load_error  # shown to staff on the dashboard
