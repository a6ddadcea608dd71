"""Artifacts through a storage backend: a worker host publishes, other hosts fetch into their own caches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from tests.imagefactory import image_bytes
from tests.webapp.learning_support import give_feedback
from tests.webapp.multihost import become_host, files_under
from webapp import artifacts
from webapp.feedback import consumer
from webapp.feedback.splits import split_gallery
from webapp.gallery import indexing
from webapp.gallery.features import ensure_features
from webapp.gallery.jobs import import_tree
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning.models import TrainingRun
from webapp.learning.online import CURSOR
from webapp.learning.parameters import RunParameters
from webapp.learning.runs import start_run
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


def _upload_search() -> dict:
    upload = SimpleUploadedFile("q.png", image_bytes("PNG", (80, 80), colour=(30, 160, 90)))
    response = APIClient().post("/api/v1/search/", {"image": upload, "k": 5})
    assert response.status_code == 200, response.content
    return response.json()


def _oahu_run() -> ModelVersion:
    run = start_run(RunParameters.of(TrainingRun.Mode.OAHU))
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.PROMOTED, (run.message, run.error)
    return run.candidate


def test_web_host_serves_what_worker_hosts_publish(
    object_storage, demo_folder, tmp_path, settings, monkeypatch, eager_tasks
) -> None:
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    settings.PROMOTION_GUARD = "off"  # about the plumbing; the guard has its own tests
    worker, web, trainer = tmp_path / "host-a", tmp_path / "host-b", tmp_path / "host-c"

    become_host(settings, monkeypatch, worker)
    import_tree(demo_folder, labels_from_dirs=True)
    split_gallery(seed=0)
    first = IndexVersion.objects.get(is_active=True)
    image = Image.objects.first()
    assert {image.file.name, image.thumbnail.name, first.path} <= files_under(object_storage)
    assert files_under(worker) >= {f"cache/{first.path}"}  # the writer keeps its copy: no download
    assert not (worker / "media").exists() and not (worker / "indexes").exists()

    become_host(settings, monkeypatch, web)  # a web replica: empty caches
    found = _upload_search()
    assert found["index_version"] == first.pk
    assert found["results"][0]["thumbnail_url"].startswith("https://objects.example/thumbnails/")
    assert (web / "cache" / first.path).is_file()
    query = Image.objects.filter(split=Image.Split.FEEDBACK).order_by("id").first()
    before = service.search_similar(query, k=5)  # imported on host A: its features are extracted here
    assert len(before.hits) == 5 and before.index_version == first.pk
    assert give_feedback() > 0

    become_host(settings, monkeypatch, worker)  # the trainer learns, publishes a head and an index
    version = _oahu_run()
    second = IndexVersion.objects.get(is_active=True)
    cursor = consumer.open_cursor(CURSOR)
    assert second.model_version == version and second.pk != first.pk
    assert {version.head_file, cursor.artifact, second.path} <= files_under(object_storage)

    become_host(settings, monkeypatch, web)  # its process, still serving the first index, swaps
    assert runtime.index_holder._current.version == first.pk
    after = service.search_similar(query, k=5)
    assert (after.index_version, after.model_version.pk) == (second.pk, version.pk)
    assert {f"cache/{second.path}", f"cache/{version.head_file}"} <= files_under(web)

    give_feedback(queries=4)
    become_host(settings, monkeypatch, trainer)  # another worker host continues from the learner state in storage
    third = _oahu_run()
    assert third.parent_id == version.pk
    assert f"cache/{cursor.artifact}" in files_under(trainer)
    assert consumer.open_cursor(CURSOR).artifact == third.head_file


def test_local_storage_is_read_in_place_and_media_is_served(gallery, data_dir: Path) -> None:
    active = IndexVersion.objects.get(is_active=True)
    assert (data_dir / active.path).is_file()
    assert service.search_similar(Image.objects.first(), k=3).index_version == active.pk
    assert artifacts.fetch(active.path) == data_dir / active.path
    assert not (data_dir / "cache").exists()  # nothing copied
    thumbnail = Image.objects.first().thumbnail
    response = Client().get(thumbnail.url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == thumbnail.read()


def test_remote_media_is_not_served_by_the_app(object_storage, gallery) -> None:
    thumbnail = Image.objects.first().thumbnail
    assert thumbnail.url == f"https://objects.example/{thumbnail.name}"
    assert Client().get(f"/media/{thumbnail.name}").status_code == 404


@pytest.mark.parametrize("remote", [False, True])
def test_an_artifact_name_is_never_reused(request, remote: bool) -> None:
    if remote:
        request.getfixturevalue("object_storage")
    name = artifacts.publish("models/x.bin", lambda path: Path(path).write_bytes(b"first"))
    with pytest.raises(artifacts.ArtifactError, match="never reused"):
        artifacts.publish(name, lambda path: Path(path).write_bytes(b"second"))
    assert artifacts.fetch(name).read_bytes() == b"first"


def test_a_missing_artifact_is_a_clear_error(object_storage) -> None:
    with pytest.raises(artifacts.ArtifactError, match="models/gone.pt is missing"):
        artifacts.fetch("models/gone.pt")
    with pytest.raises(Exception, match="outside"):
        artifacts.fetch("../../etc/passwd")


def test_a_host_extracts_the_features_it_lacks_from_the_stored_originals(
    object_storage, demo_folder, tmp_path, settings, monkeypatch, caplog
) -> None:
    become_host(settings, monkeypatch, tmp_path / "host-a")
    import_tree(demo_folder, labels_from_dirs=True)
    ids = np.array(sorted(Image.objects.values_list("id", flat=True)), dtype=np.int64)
    extracted_on_a = runtime.feature_store().get(ids)
    lost = Image.objects.get(pk=ids[-1])
    object_storage.joinpath(lost.file.name).unlink()  # an original gone from the storage

    become_host(settings, monkeypatch, tmp_path / "host-b")
    store = ensure_features(ids)
    assert store.contains(ids).tolist() == [True] * (len(ids) - 1) + [False]
    np.testing.assert_allclose(store.get(ids[:-1]), extracted_on_a[:-1], atol=1e-4)
    assert "Cannot extract features of 1 images" in caplog.text
    assert indexing.build_and_activate().ntotal == len(ids) - 1  # indexed without it, nothing crashed
