"""One training run at a time: a compare-and-swap claim on the TrainingLock row."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from webapp.learning.models import TrainingLock, TrainingRun


class TrainingBusy(RuntimeError):
    """Another run holds the claim; the message names it."""


def claim(run: TrainingRun) -> None:
    """Take the claim for `run` (a retry of the same run may re-take it); raise TrainingBusy otherwise."""
    TrainingLock.objects.get_or_create(name="training")
    taken = TrainingLock.objects.filter(Q(run__isnull=True) | Q(run=run), name="training").update(
        run=run, claimed_at=timezone.now()
    )
    if taken != 1:
        holder = TrainingLock.objects.select_related("run").get(name="training").run
        raise TrainingBusy(f"Training run {holder.pk if holder else '?'} ({holder.mode if holder else '?'}) "
                           "is in progress; try again when it has finished.")


def release(run: TrainingRun) -> None:
    TrainingLock.objects.filter(name="training", run=run).update(run=None, claimed_at=None)


def holder() -> TrainingRun | None:
    lock = TrainingLock.objects.select_related("run").filter(name="training").first()
    return lock.run if lock else None
