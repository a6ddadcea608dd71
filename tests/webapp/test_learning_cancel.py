"""Staff cancel runs (dashboard, API, command); a run nobody can take is refused or failed after a bound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from webapp import celery_app, dispatch
from webapp.gallery.models import IndexVersion, ModelVersion
from webapp.learning import batch, claims, runs
from webapp.learning.models import TrainingRun
from webapp.learning.parameters import RunParameters
from webapp.learning.tasks import housekeeping

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True)


@pytest.fixture
def api(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture
def workers(monkeypatch):
    """Workers that answer Celery's inspect with the queues they consume (set the list per test)."""
    served: list[str] = []

    class Inspect:
        def active_queues(self):
            return {f"worker-{name}@host": [{"name": name}] for name in served}

    monkeypatch.setattr(celery_app.control, "inspect", lambda timeout=None: Inspect())
    dispatch.consumed_queues.forget()
    yield served
    dispatch.consumed_queues.forget()


def test_a_running_run_cancelled_by_staff_stops_at_its_next_step_and_publishes_nothing(
    split_demo, eager_tasks, settings, monkeypatch
) -> None:
    settings.PROMOTION_GUARD = "off"
    monkeypatch.setattr(runs, "HEARTBEAT_SECONDS", 0.0)  # every step is a heartbeat
    steps: list[int] = []
    real = batch.fine_tune

    def cancelling_at_step_3(features, labels, triplets, progress, **kwargs):
        def watched(step, total, loss):
            steps.append(step)
            if step == 3:
                call_command("cancel_run")  # staff, from another process: the database says cancelled
            progress(step, total, loss)

        return real(features, labels, triplets, progress=watched, **kwargs)

    monkeypatch.setattr(batch, "fine_tune", cancelling_at_step_3)
    versions, index = ModelVersion.objects.count(), IndexVersion.objects.get(is_active=True).pk
    run = runs.start_run(RunParameters.of("batch", epochs=50, batch_size=8, data="labels"))
    run.refresh_from_db()
    assert steps == [1, 2, 3]  # the heartbeat right after the cancel stopped it: no further step ran
    assert run.status == TrainingRun.Status.CANCELLED and run.message.startswith("Cancelled by staff")
    assert ModelVersion.objects.count() == versions  # nothing published
    assert IndexVersion.objects.get(is_active=True).pk == index
    assert claims.holder() is None
    monkeypatch.setattr(batch, "fine_tune", real)
    following = runs.start_run(RunParameters.of("batch", epochs=1, data="labels"))  # the claim is free
    following.refresh_from_db()
    assert following.status == TrainingRun.Status.PROMOTED, following.error


def test_a_queued_run_cancelled_through_the_api_frees_the_claim_and_is_skipped_by_the_worker(api, db) -> None:
    run = runs.start_run(RunParameters.of("batch", loss="triplet"))  # no worker here: it stays queued
    assert claims.holder() == run
    response = api.post(f"/api/v1/training-runs/{run.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert claims.holder() is None
    assert runs.execute(run.pk) == "cancelled"  # the message reaches a worker later: nothing happens
    again = api.post(f"/api/v1/training-runs/{run.pk}/cancel/")
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]
    assert APIClient().post(f"/api/v1/training-runs/{run.pk}/cancel/").status_code in (401, 403)


def test_the_dashboard_cancel_button(staff, db) -> None:
    run = runs.start_run(RunParameters.of("oahu"))
    web = Client()
    web.force_login(staff)
    page = web.get(f"/dashboard/progress/?run={run.pk}").content.decode()
    assert f'hx-post="/dashboard/runs/{run.pk}/cancel/"' in page
    response = web.post(f"/dashboard/runs/{run.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Cancelled" in response.content.decode()
    assert "Cancel run" not in response.content.decode()
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled" and claims.holder() is None
    visitor = Client()
    visitor.force_login(get_user_model().objects.create_user("user", password="pw-user-12345"))
    assert visitor.post(f"/dashboard/runs/{run.pk}/cancel/").status_code == 302  # to the staff login


def test_a_run_for_a_queue_nobody_consumes_is_refused_at_submission(api, workers) -> None:
    workers[:] = ["default", "training"]
    response = api.post("/api/v1/training-runs/", {"mode": "batch", "device": "cuda"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("No worker consumes the gpu queue (device=cuda needs a GPU worker")
    assert TrainingRun.objects.count() == 0 and claims.holder() is None
    assert api.post("/api/v1/training-runs/", {"mode": "batch", "device": "cpu"}, format="json").status_code == 202


def test_without_a_training_worker_online_updates_wait_and_manual_runs_are_refused(api, workers, settings) -> None:
    workers[:] = ["default"]
    with pytest.raises(dispatch.NoConsumer, match="No worker consumes the training queue"):
        runs.start_run(RunParameters.of("oahu"))
    assert housekeeping()["online_run"] is None and TrainingRun.objects.count() == 0


def test_a_queued_run_nobody_takes_is_failed_after_the_bounded_wait(db, settings) -> None:
    settings.LEARNING_QUEUE_WAIT_SECONDS = 30
    run = runs.start_run(RunParameters.of("batch", device="cuda"))  # no worker answers: sent, and waits
    assert housekeeping()["unserved"] == []
    TrainingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=31))
    assert housekeeping()["unserved"] == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and "No worker took the run within 30s" in run.message and "gpu" in run.message
    assert claims.holder() is None
