"""Celery tasks of learning: thin wrappers taking primary keys (sent by name: webapp/dispatch.py)."""

from __future__ import annotations

from celery import shared_task

from webapp.gallery.models import ModelVersion
from webapp.learning import runs, scheduling, silence
from webapp.learning.evaluation import evaluate_version


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_run(run_id: int) -> str:
    """Train one run (online or batch) to promoted / rejected / unchanged / failed."""
    return runs.execute(run_id)


@shared_task
def learn_online() -> int | None:
    """Debounced: start an online run if triplets are waiting."""
    return scheduling.run_online_update_if_needed()


@shared_task
def housekeeping() -> dict:
    """Periodic, on the `default` queue: fail dead runs and runs nobody took, re-send runs the broker missed,
    derive judgements whose derivation the broker missed, apply judgements to the click memory that a web
    process did not (it stopped before its background pass), pick up waiting triplets."""
    from webapp.feedback.memory import apply_pending
    from webapp.feedback.triplets import derive_pending

    silence.record_housekeeping()
    return {"reaped": runs.reap_stale_runs(), "unserved": runs.fail_unserved_runs(),
            "resent": runs.resend_queued_runs(), "derived": derive_pending(), "remembered": apply_pending(),
            "online_run": scheduling.run_online_update_if_needed()}


@shared_task
def evaluate_model_version(version_id: int) -> dict:
    """Compute and store a version's full evaluation report."""
    return evaluate_version(ModelVersion.objects.get(pk=version_id))
