"""Debounced online learning: new triplets ask for one OAHU update a couple of seconds later."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from webapp import dispatch
from webapp.feedback import consumer
from webapp.learning import claims
from webapp.learning.models import OnlineSchedule, TrainingRun
from webapp.learning.online import CURSOR
from webapp.learning.parameters import RunParameters
from webapp.learning.runs import start_run

logger = logging.getLogger(__name__)


def request_online_update() -> bool:
    """Send one delayed update unless one is already pending (compare-and-swap); True if sent."""
    if not settings.ONLINE_LEARNING:
        return False
    OnlineSchedule.objects.get_or_create(name="oahu")
    if not OnlineSchedule.objects.filter(name="oahu", pending=False).update(pending=True,
                                                                              requested_at=timezone.now()):
        return False
    if not dispatch.send_online_update():  # feedback is stored; housekeeping starts the update later
        OnlineSchedule.objects.filter(name="oahu").update(pending=False)
        logger.warning("Online learning delayed: cannot reach the broker")
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
        run = start_run(RunParameters.of(TrainingRun.Mode.OAHU, trigger="feedback"))
    except (claims.TrainingBusy, dispatch.NoConsumer) as exc:  # no training worker: the triplets wait
        logger.info("No online update now: %s", exc)
        return None
    return run.pk
