"""Training runs: start (claim first, so a second trigger is refused), execute, reap dead ones."""

from __future__ import annotations

import logging
import time
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.learning import claims, dispatch
from webapp.learning.backbone import backbone_retrain
from webapp.learning.batch import batch_retrain
from webapp.learning.models import TrainingRun
from webapp.learning.online import online_update
from webapp.learning.parameters import RunParameters
from webapp.learning.promotion import promote_or_reject

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0


def start_run(parameters: RunParameters, user=None) -> TrainingRun:
    """Create a run holding the claim and send it; raises claims.TrainingBusy if one is in progress."""
    with transaction.atomic():
        run = TrainingRun.objects.create(mode=parameters.mode, params=parameters.stored(), triggered_by=user)
        claims.claim(run)  # raises TrainingBusy: the transaction rolls back, no run is created
    if not dispatch.send_run(run.pk, parameters.queue):  # it stays queued; housekeeping sends it again
        TrainingRun.objects.filter(pk=run.pk).update(message="Waiting for the task broker; training is delayed.")
    return run


class _Progress:
    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_SECONDS or fraction >= 1.0:
            self.last = now
            TrainingRun.objects.filter(pk=self.run.pk).update(
                progress=round(min(1.0, fraction), 4), message=message[:300], heartbeat_at=timezone.now()
            )


def execute(run_id: int) -> str:
    """Run a claimed run to its end; a redelivered run (worker killed) starts again."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.status in TrainingRun.FINISHED:
        return run.status
    claims.claim(run)
    now = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.RUNNING, started_at=run.started_at or now, heartbeat_at=now,
        attempts=run.attempts + 1, message="started",
    )
    progress = _Progress(run)
    started = time.monotonic()
    parameters = run.parameters
    try:
        if run.mode == TrainingRun.Mode.OAHU:
            candidate = online_update(progress)
        elif parameters.backbone:
            candidate = backbone_retrain(run.pk, parameters, progress)
        else:
            candidate = batch_retrain(run.pk, parameters, progress)
        if candidate is None:
            status, message = TrainingRun.Status.UNCHANGED, "Not enough new triplets to publish a version."
        else:
            candidate.duration_seconds = time.monotonic() - started
            candidate.save(update_fields=["duration_seconds"])
            progress(0.9, "evaluating the candidate")
            promoted = promote_or_reject(candidate)
            status = TrainingRun.Status.PROMOTED if promoted else TrainingRun.Status.REJECTED
            message = candidate.promotion_note
        _finish(run, status, message, candidate=candidate)
    except Exception as exc:
        logger.exception("Training run %s failed", run.pk)
        _finish(run, TrainingRun.Status.FAILED, f"{type(exc).__name__}: {exc}"[:300],
                error=traceback.format_exc())
    return TrainingRun.objects.get(pk=run.pk).status


def _finish(run: TrainingRun, status: str, message: str, candidate=None, error: str = "") -> None:
    TrainingRun.objects.filter(pk=run.pk).update(
        status=status, message=message[:300], error=error, candidate=candidate, finished_at=timezone.now(),
        progress=1.0 if status != TrainingRun.Status.FAILED else TrainingRun.objects.get(pk=run.pk).progress,
    )
    claims.release(run)


def reap_stale_runs() -> list[int]:
    """Fail runs whose worker stopped sending heartbeats (e.g. killed); free the claim. Returns their ids."""
    limit = timezone.now() - timedelta(seconds=settings.LEARNING_STALE_SECONDS)
    stale = list(TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=limit))
    for run in stale:
        _finish(run, TrainingRun.Status.FAILED,
                f"The worker stopped responding for over {settings.LEARNING_STALE_SECONDS}s (killed?); "
                "the active version is unchanged.", error="no heartbeat")
    return [run.pk for run in stale]


def resend_queued_runs() -> list[int]:
    """Send again the run that holds the claim but never reached a worker (broker was down)."""
    holder = claims.holder()
    if holder is None or holder.status != TrainingRun.Status.QUEUED:
        return []
    if timezone.now() - holder.created_at < timedelta(seconds=settings.LEARNING_STALE_SECONDS):
        return []
    return [holder.pk] if dispatch.send_run(holder.pk, holder.parameters.queue) else []
