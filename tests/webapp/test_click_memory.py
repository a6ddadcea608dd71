"""Click memory in the app: each committed judgement moves the judged images for everyone, exactly once,
boundedly, without a training run, and on top of whichever model is active."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from retrieval.heads import PCAHead, save_head
from webapp.feedback import memory
from webapp.feedback.models import ClickOffset, ConsumerCursor, Judgement
from webapp.feedback.triplets import record_judgement
from webapp.gallery import indexing
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_view():
    memory.reset()
    yield
    memory.reset()


def _search(client: APIClient, demo_folder, k: int = 30) -> dict:
    data = (demo_folder / "checkerboard" / "checkerboard-000.jpg").read_bytes()
    answer = client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", data), "k": k})
    assert answer.status_code == 200, answer.content
    return answer.json()


def _score(found: dict, image_id: int) -> tuple[int, float]:
    hit = next(h for h in found["results"] if h["image_id"] == image_id)
    return hit["rank"], hit["score"]


def test_a_click_moves_the_clicked_image_up_for_everyone_without_a_training_run(
    gallery, demo_folder, django_capture_on_commit_callbacks
) -> None:
    alice, bob = APIClient(), APIClient()
    before = _search(alice, demo_folder)
    clicked = before["results"][14]["image_id"]
    versions = ModelVersion.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        answer = alice.post("/api/v1/feedback/", {"query_id": before["query_id"], "image_id": clicked,
                                                  "judgement": "similar"}, format="json")
    assert answer.status_code == 201
    after = _search(bob, demo_folder)  # another person, the same index: no rebuild, no new model
    assert (after["index_version"], after["model_version"]) == (before["index_version"], before["model_version"])
    assert ModelVersion.objects.count() == versions
    rank_before, score_before = _score(before, clicked)
    rank_after, score_after = _score(after, clicked)
    assert score_after > score_before + 0.01 and rank_after < rank_before
    skipped = before["results"][0]["image_id"]  # shown above it, not chosen: pushed away a little
    assert _score(after, skipped)[1] < _score(before, skipped)[1]
    judgement = Judgement.objects.get()
    assert ConsumerCursor.objects.get(name=f"click-memory:{ModelVersion.active().backbone}").watermark \
        == judgement.pk


def _judge(query: Image, image_ids: list[int], kind: str = "similar") -> list[Judgement]:
    result = service.search_similar(query, k=100)
    from webapp.feedback.models import Impression

    impression = Impression.objects.create(query=query, model_version=result.model_version,
                                           index_version=result.index_version,
                                           shown=[hit.image.pk for hit in result.hits], session_key="s")
    return [record_judgement(impression, image_id, kind).judgement for image_id in image_ids]


def _offsets() -> dict[int, bytes]:
    return {row.image_id: bytes(row.vector) for row in ClickOffset.objects.all()}


def test_each_judgement_is_applied_exactly_once(gallery) -> None:
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id"))
    _judge(images[0], [images[5].pk, images[9].pk])
    assert memory.apply_pending() == 2
    first = _offsets()
    assert first and memory.apply_pending() == 0 and _offsets() == first  # nothing twice
    _judge(images[1], [images[7].pk], "dissimilar")
    assert memory.apply_pending() == 1
    assert set(_offsets()) == set(first) | {images[7].pk}
    for image, vector in first.items():  # the dissimilar judgement moved only its own image
        if image != images[7].pk:
            assert _offsets()[image] == vector

    # a replay from scratch (a new feature space starts so) gives the same memory: nothing lost or doubled
    replay = dict(_offsets())
    ClickOffset.objects.all().delete()
    ConsumerCursor.objects.filter(name__startswith=memory.CURSOR_PREFIX).update(watermark=0)
    assert memory.apply_pending() == 3
    assert {k: np.frombuffer(v, np.float32) for k, v in _offsets().items()}.keys() == replay.keys()
    for image, vector in replay.items():
        assert np.allclose(np.frombuffer(_offsets()[image], np.float32), np.frombuffer(vector, np.float32))


def test_a_lost_race_writes_nothing(gallery, monkeypatch) -> None:
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id"))
    [judgement] = _judge(images[0], [images[5].pk])
    real_apply = memory.ClickMemory.apply

    def other_process_wins(self, *args, **kwargs):  # another process applies the batch meanwhile
        ConsumerCursor.objects.filter(name__startswith=memory.CURSOR_PREFIX).update(watermark=judgement.pk)
        return real_apply(self, *args, **kwargs)

    monkeypatch.setattr(memory.ClickMemory, "apply", other_process_wins)
    assert memory.apply_pending() == 0
    assert not ClickOffset.objects.exists()


def test_offsets_stay_bounded_under_many_clicks(gallery, settings) -> None:
    settings.CLICK_MEMORY_MAX_SHIFT = 0.2
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id"))
    for query in images[:12]:
        _judge(query, [images[20].pk])
    assert memory.apply_pending() == 12
    norms = [np.linalg.norm(np.frombuffer(v, np.float32)) for v in _offsets().values()]
    assert max(norms) <= 0.2 + 1e-5


def test_other_processes_see_a_judgement_within_the_check_interval(gallery, settings, monkeypatch) -> None:
    settings.INDEX_CHECK_SECONDS = 1.0
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id"))
    version = ModelVersion.active()
    other = memory.OverlayCache()  # another web process
    now = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    assert len(other.get(version, 1280)) == 0
    _judge(images[0], [images[3].pk])
    memory.apply_pending()
    now[0] += 0.5
    assert len(other.get(version, 1280)) == 0  # still its last look
    now[0] += 0.5  # one check interval after its last look
    assert images[3].pk in other.get(version, 1280).ids.tolist()


def test_the_memory_composes_with_a_model_switch(gallery, data_dir, settings) -> None:
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id"))
    query, target = images[0], images[-1]
    for _ in range(3):
        _judge(query, [target.pk])
    memory.apply_pending()
    _, features = runtime.feature_store().all()
    save_head(PCAHead.fit(np.asarray(features), 16), data_dir / "models" / "pca.npz")
    pca = ModelVersion.objects.create(backbone=settings.BACKBONE, head_kind="pca", head_file="models/pca.npz")
    indexing.build_and_activate(pca)

    def score() -> float:
        result = service.search_similar(query, k=len(images))
        assert result.model_version.pk == pca.pk and IndexVersion.objects.get(is_active=True).dim == 16
        return next(hit.score for hit in result.hits if hit.image.pk == target.pk)

    remembered = score()
    settings.CLICK_MEMORY = False
    plain = score()
    assert remembered > plain + 0.01  # the same offsets, embedded by the newly active head
