"""A click's request does not apply the click memory: the web process's background thread does, within
moments, each judgement once; what a stopped process left is applied by housekeeping."""

from __future__ import annotations

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.integration.support import wait_for
from webapp.feedback import memory
from webapp.feedback.models import ClickOffset, ConsumerCursor, Judgement
from webapp.gallery.models import ModelVersion
from webapp.learning.tasks import housekeeping

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def applied_by(monkeypatch, settings) -> list[str]:
    """The names of the threads that applied judgements (background application on, as deployed)."""
    settings.CLICK_MEMORY_BACKGROUND = True
    names: list[str] = []
    original = memory.apply_pending

    def recording(*args, **kwargs) -> int:
        done = original(*args, **kwargs)
        if done:
            names.append(threading.current_thread().name)
        return done

    monkeypatch.setattr(memory, "apply_pending", recording)
    memory.reset()
    yield names
    memory.reset()


def _clicks(demo_folder, count: int) -> list[int]:
    client = APIClient()
    data = (demo_folder / "checkerboard" / "checkerboard-000.jpg").read_bytes()
    found = client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", data), "k": 30}).json()
    for hit in found["results"][:count]:
        answer = client.post("/api/v1/feedback/", {"query_id": found["query_id"], "image_id": hit["image_id"],
                                                   "judgement": "click"}, format="json")
        assert answer.status_code == 201
    return list(Judgement.objects.order_by("id").values_list("id", flat=True))


def _watermark() -> int | None:
    name = memory.CURSOR_PREFIX + ModelVersion.active().backbone
    return ConsumerCursor.objects.filter(name=name).values_list("watermark", flat=True).first()


def test_the_background_thread_applies_every_click_once_and_the_request_applies_none(
        gallery, demo_folder, applied_by) -> None:
    judgements = _clicks(demo_folder, 5)
    wait_for(lambda: _watermark() == judgements[-1], 20, "the background pass over every click", every=0.05)
    assert applied_by and set(applied_by) == {"click-memory"}  # never the request's thread
    assert ClickOffset.objects.exists()
    assert housekeeping()["remembered"] == 0  # nothing left over, nothing applied twice


def test_housekeeping_applies_what_a_stopped_process_left(gallery, demo_folder, applied_by, monkeypatch) -> None:
    monkeypatch.setattr(memory._applier, "wake", lambda: None)  # the web process stopped before its pass
    judgements = _clicks(demo_folder, 3)
    assert _watermark() in (None, 0) and not ClickOffset.objects.exists()
    assert housekeeping()["remembered"] == len(judgements)
    assert _watermark() == judgements[-1]
