"""Debounced online learning: new triplets ask for one OAHU update a couple of seconds later."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from webapp.feedback import consumer
from webapp.learning import claims
from webapp.learning.models import OnlineSchedule, TrainingRun
from webapp.learning.online import CURSOR

logger = logging.getLogger(__name__)


def request_online_update() -> bool:
    """Enqueue one delayed update unless one is already pending (compare-and-swap); True if enqueued."""
    if not settings.ONLINE_LEARNING:
        return False
    from webapp.learning import tasks

    OnlineSchedule.objects.get_or_create(name="oahu")
    if not OnlineSchedule.objects.filter(name="oahu", pending=False).update(pending=True,
                                                                              requested_at=timezone.now()):
        return False
    try:
        tasks.learn_online.apply_async(countdown=settings.ONLINE_DEBOUNCE_SECONDS, queue="training")
    except Exception as exc:  # broker down: feedback is stored; beat retries when the broker is back
        OnlineSchedule.objects.filter(name="oahu").update(pending=False)
        logger.warning("Online learning delayed: cannot reach the broker (%s)", exc)
        return False
    return True


def run_online_update_if_needed() -> int | None:
    """Start an OAHU run when triplets wait past the learner's watermark; returns the run id."""
    OnlineSchedule.objects.filter(name="oahu").update(pending=False)
    if consumer.pending(consumer.open_cursor(CURSOR).watermark) == 0:
        return None
    holder = claims.holder()
    if holder is not None:
        return None  # a run is in progress; its end (or the beat task) picks the triplets up
    try:
        run = _start_online()
    except claims.TrainingBusy:
        return None
    return run.pk


def _start_online() -> TrainingRun:
    from webapp.learning.runs import start_run

    return start_run(TrainingRun.Mode.OAHU, {"trigger": "feedback"})
