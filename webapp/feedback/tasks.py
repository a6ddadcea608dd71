"""Celery tasks of feedback: thin wrappers."""

from __future__ import annotations

import logging

from celery import shared_task

from webapp.feedback import triplets

logger = logging.getLogger(__name__)


@shared_task
def derive_triplets() -> int:
    """Append the triplets of every judgement stored but not derived yet (in order, exactly once)."""
    return triplets.derive_pending()


def request_derivation() -> bool:
    """After a judgement's commit: ask a worker to derive it. A broker outage gives up within about a second
    (the judgement is stored; the beat's housekeeping derives it later); True if enqueued."""
    try:
        derive_triplets.apply_async()
    except Exception as exc:
        logger.warning("Triplet derivation delayed: cannot reach the broker (%s)", exc)
        return False
    return True
