"""Celery tasks of feedback: thin wrappers, and the request for one from a web process."""

from __future__ import annotations

import logging
import threading
import time

from celery import shared_task

from webapp.feedback import triplets

logger = logging.getLogger(__name__)

# A web process asks for at most one derivation per this many seconds: the task runs that much later and
# derives every judgement committed before it starts, so the clicks in between need no message of their own.
DERIVE_DELAY_S = 0.25
_MARGIN_S = 0.05  # a judgement committed this close to a requested run's start asks for the next one
_lock = threading.Lock()
_covered_until = 0.0  # time.time() when the last requested derivation starts


@shared_task
def derive_triplets() -> int:
    """Append the triplets of every judgement stored but not derived yet (in order, exactly once)."""
    return triplets.derive_pending()


def request_derivation() -> bool:
    """After a judgement's commit: make sure a worker derives it soon. True if a derivation was requested or
    one already requested will start after this commit; False when the broker is unreachable (publishing
    gives up within about a second; the judgement is stored and the beat's housekeeping derives it)."""
    global _covered_until
    with _lock:
        now = time.time()
        if now < _covered_until - _MARGIN_S:
            return True
        try:
            derive_triplets.apply_async(countdown=DERIVE_DELAY_S)
        except Exception as exc:
            logger.warning("Triplet derivation delayed: cannot reach the broker (%s)", exc)
            return False
        _covered_until = now + DERIVE_DELAY_S
        return True
