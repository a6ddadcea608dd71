"""Broker down: feedback is stored without waiting long, and the staff dashboard says training is delayed."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from kombu import pools
from rest_framework.test import APIClient

from webapp import broker, celery_app
from webapp.feedback import tasks as feedback_tasks
from webapp.feedback.models import Judgement, Triplet
from webapp.feedback.triplets import derive_pending
from webapp.gallery.models import Image
from webapp.learning.models import OnlineSchedule

pytestmark = pytest.mark.django_db
DELAYED = "Training is delayed: the task broker is unreachable"


def _use_broker(url: str) -> None:
    """Point the app at `url`, dropping the pooled connections and producers made for the previous one."""
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    pools.reset()  # kombu's process-wide producer pools still hold the closed connection pool
    celery_app.amqp._producer_pool = None
    celery_app.conf.broker_url = url
    broker.forget()


@pytest.fixture
def broker_down():
    """The app's broker is a Redis port where nothing listens (connection refused)."""
    _use_broker("redis://127.0.0.1:1/0")
    yield
    _use_broker("memory://")


def test_dashboard_warns_only_while_the_broker_is_unreachable(db, staff: Client, broker_down) -> None:
    assert DELAYED in staff.get("/dashboard/").content.decode()
    _use_broker("memory://")
    assert DELAYED not in staff.get("/dashboard/").content.decode()


def test_feedback_is_stored_quickly_and_learning_is_left_for_the_beat_task(
    gallery, settings, broker_down, django_capture_on_commit_callbacks, caplog
) -> None:
    settings.ONLINE_LEARNING = True
    client = APIClient()
    with Image.objects.filter(role="gallery").order_by("id").first().file.open("rb") as query:
        search = client.post("/api/v1/search/", {"image": query}).json()
    started = time.monotonic()
    feedback_tasks._covered_until = 0.0  # no derivation requested by an earlier test covers this click
    with django_capture_on_commit_callbacks(execute=True):  # the after-commit publish runs, as in production
        response = client.post("/api/v1/feedback/", {"query_id": search["query_id"], "judgement": "click",
                                                     "image_id": search["results"][3]["image_id"]}, format="json")
    assert response.status_code == 201 and response.json()["triplets_pending"] is True
    assert time.monotonic() - started < 5
    assert Judgement.objects.count() == 1 and Triplet.objects.count() == 0
    assert "Triplet derivation delayed: cannot reach the broker" in caplog.text
    with django_capture_on_commit_callbacks(execute=True):  # beat's housekeeping derives what the broker missed
        assert derive_pending() > 0
    assert Judgement.objects.get().derived
    assert OnlineSchedule.objects.get(name="oahu").pending is False  # not marked as enqueued: beat retries
    assert "Online learning delayed: cannot reach the broker" in caplog.text
