"""Workers that are alive but silent: beat sends housekeeping every REFIND_HOUSEKEEPING_SECONDS; when no
worker has run it for a long while although the broker answers, a worker has stopped consuming (a Celery
worker can reconnect to Redis and never take a task again: docs/operations.md) or none is running."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from webapp.learning.models import Housekeeping

SILENT_AFTER_PERIODS = 4
SILENT_AFTER_AT_LEAST_SECONDS = 120.0


def record_housekeeping() -> None:
    Housekeeping.objects.update_or_create(name="housekeeping", defaults={"ran_at": timezone.now()})


def silent_after_seconds() -> float:
    """How long without housekeeping counts as silence: a few of beat's periods, two minutes at least."""
    period = float(settings.CELERY_BEAT_SCHEDULE["learning-housekeeping"]["schedule"])
    return max(SILENT_AFTER_AT_LEAST_SECONDS, SILENT_AFTER_PERIODS * period)


def workers_silent_for() -> float | None:
    """Seconds since a worker last ran housekeeping when that counts as silence; None otherwise, and None
    before the first run (a site whose workers never started: its queued runs are failed after
    REFIND_QUEUE_WAIT_SECONDS with a message saying so)."""
    last = Housekeeping.objects.filter(name="housekeeping").values_list("ran_at", flat=True).first()
    if last is None:
        return None
    age = (timezone.now() - last).total_seconds()
    return age if age >= silent_after_seconds() else None


def workers_silent_minutes() -> int | None:
    """workers_silent_for() in whole minutes, for people."""
    seconds = workers_silent_for()
    return None if seconds is None else round(seconds / 60)
