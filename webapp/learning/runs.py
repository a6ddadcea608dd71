"""Training runs: start (claim first, so a second trigger is refused), execute, cancel, reap dead or unserved
ones."""

from __future__ import annotations

import logging
import time
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp import dispatch
from webapp.learning import claims
from webapp.learning.backbone import backbone_retrain
from webapp.learning.batch import batch_retrain
from webapp.learning.models import TrainingRun
from webapp.learning.online import online_update
from webapp.learning.parameters import RunParameters
from webapp.learning.promotion import promote_or_reject

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0
Status = TrainingRun.Status
UNFINISHED = (Status.QUEUED, Status.RUNNING)


class RunCancelled(Exception):
    """Raised inside a run at its next step after staff cancelled it."""


class NotCancellable(RuntimeError):
    """The run has finished already; the message says how."""


def start_run(parameters: RunParameters, user=None) -> TrainingRun:
    """Create a run holding the claim and send it. Raises dispatch.NoConsumer when workers answer and none
    serves the run's queue, claims.TrainingBusy while another run holds the claim; either way no run is made."""
    dispatch.require_consumer(parameters.queue)
    with transaction.atomic():
        run = TrainingRun.objects.create(mode=parameters.mode, params=parameters.stored(), triggered_by=user)
        claims.claim(run)  # raises TrainingBusy: the transaction rolls back, no run is created
    if not dispatch.send_run(run.pk, parameters.queue):  # it stays queued; housekeeping sends it again
        TrainingRun.objects.filter(pk=run.pk).update(message="Waiting for the task broker; training is delayed.")
    return run


def cancel(run: TrainingRun, user=None) -> TrainingRun:
    """Cancel a queued or running run: it is marked cancelled and the claim is free at once; a running task
    stops at its next step (its next heartbeat), publishing nothing. Raises NotCancellable when finished."""
    who = getattr(user, "username", "") or "staff"
    if not TrainingRun.objects.filter(pk=run.pk, status__in=UNFINISHED).update(
        status=Status.CANCELLED, message=f"Cancelled by {who}; the active version is unchanged."[:300],
        finished_at=timezone.now(),
    ):
        run.refresh_from_db()
        raise NotCancellable(f"Run {run.pk} has already finished ({run.get_status_display().lower()}).")
    claims.release(run)
    run.refresh_from_db()
    return run


class _Progress:
    """The run's progress callback: a heartbeat at most every HEARTBEAT_SECONDS; raises RunCancelled once
    the run is no longer running (staff cancelled it, or it was reaped)."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_SECONDS or fraction >= 1.0:
            self.last = now
            if not TrainingRun.objects.filter(pk=self.run.pk, status=Status.RUNNING).update(
                progress=round(min(1.0, fraction), 4), message=message[:300], heartbeat_at=timezone.now()
            ):
                raise RunCancelled

    def check(self) -> None:
        """Raise RunCancelled now if the run is no longer running."""
        if not TrainingRun.objects.filter(pk=self.run.pk, status=Status.RUNNING).exists():
            raise RunCancelled


def execute(run_id: int) -> str:
    """Run a claimed run to its end; a redelivered run (worker killed) starts again, a finished or
    cancelled one does nothing."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.status in TrainingRun.FINISHED:
        return run.status
    claims.claim(run)
    now = timezone.now()
    if not TrainingRun.objects.filter(pk=run.pk, status__in=UNFINISHED).update(
        status=Status.RUNNING, started_at=run.started_at or now, heartbeat_at=now, attempts=run.attempts + 1,
        message="started",
    ):  # cancelled in the meantime
        claims.release(run)
        return TrainingRun.objects.get(pk=run.pk).status
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
            status, message = Status.UNCHANGED, "Not enough new triplets to publish a version."
        else:
            candidate.duration_seconds = time.monotonic() - started
            candidate.save(update_fields=["duration_seconds"])
            progress(0.9, "evaluating the candidate")
            progress.check()  # the last moment a cancel stops it: promotion publishes
            promoted = promote_or_reject(candidate)
            status = Status.PROMOTED if promoted else Status.REJECTED
            message = candidate.promotion_note
        _finish(run, status, message, candidate=candidate)
    except RunCancelled:
        logger.info("Training run %s stopped at its next step: it is %s now", run.pk,
                    TrainingRun.objects.get(pk=run.pk).status)
        claims.release(run)
    except Exception as exc:
        logger.exception("Training run %s failed", run.pk)
        _finish(run, Status.FAILED, f"{type(exc).__name__}: {exc}"[:300], error=traceback.format_exc())
    return TrainingRun.objects.get(pk=run.pk).status


def _finish(run: TrainingRun, status: str, message: str, candidate=None, error: str = "",
            only_if: tuple[str, ...] = UNFINISHED) -> bool:
    """Record the end of a run that is still `only_if` (a cancelled run stays cancelled); free the claim."""
    finished = TrainingRun.objects.filter(pk=run.pk, status__in=only_if).update(
        status=status, message=message[:300], error=error, candidate=candidate, finished_at=timezone.now(),
        **({"progress": 1.0} if status != Status.FAILED else {}),
    )
    claims.release(run)
    return bool(finished)


def reap_stale_runs() -> list[int]:
    """Fail runs whose worker stopped sending heartbeats (e.g. killed); free the claim. Returns their ids."""
    limit = timezone.now() - timedelta(seconds=settings.LEARNING_STALE_SECONDS)
    stale = TrainingRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=limit)
    return [run.pk for run in stale if _finish(
        run, Status.FAILED, f"The worker stopped responding for over {settings.LEARNING_STALE_SECONDS}s "
        "(killed?); the active version is unchanged.", error="no heartbeat", only_if=(Status.RUNNING,))]


def fail_unserved_runs() -> list[int]:
    """Fail queued runs no worker took within REFIND_QUEUE_WAIT_SECONDS (nobody consumes their queue, or the
    broker was away that long); free the claim. Returns their ids."""
    limit = timezone.now() - timedelta(seconds=settings.LEARNING_QUEUE_WAIT_SECONDS)
    waiting = TrainingRun.objects.filter(status=Status.QUEUED, created_at__lt=limit)
    return [run.pk for run in waiting if _finish(
        run, Status.FAILED, f"No worker took the run within {settings.LEARNING_QUEUE_WAIT_SECONDS}s: is a worker "
        f"serving the {run.parameters.queue} queue, and the broker up?", error="not taken",
        only_if=(Status.QUEUED,))]


def resend_queued_runs() -> list[int]:
    """Send again the run that holds the claim but never reached a worker (broker was down)."""
    holder = claims.holder()
    if holder is None or holder.status != Status.QUEUED:
        return []
    if timezone.now() - holder.created_at < timedelta(seconds=settings.LEARNING_STALE_SECONDS):
        return []
    return [holder.pk] if dispatch.send_run(holder.pk, holder.parameters.queue) else []
