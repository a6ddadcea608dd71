"""Celery tasks of feedback: triplet derivation (and the request for it from a web process), and the
housekeeping (beat) that removes expired sessions and what anonymous visitors left behind, so a flood of
cookie-less requests cannot grow the session and impression tables without bound."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from importlib import import_module

from celery import shared_task
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Q
from django.utils import timezone

from webapp import dispatch
from webapp.feedback import triplets
from webapp.feedback.models import Impression
from webapp.gallery.models import QueryOwner

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
        if not dispatch.send(dispatch.DERIVE_TRIPLETS, countdown=DERIVE_DELAY_S):
            logger.warning("Triplet derivation delayed: cannot reach the broker; housekeeping derives it")
            return False
        # a task run inline (eager) has derived already: it covers nothing committed after it
        _covered_until = 0.0 if dispatch.runs_inline() else now + DERIVE_DELAY_S
        return True


@shared_task(ignore_result=True)
def prune_visitors() -> dict[str, int]:
    """Clear expired sessions (Django's `clearsessions`); delete anonymous impressions nobody judged whose
    session is gone or that are older than REFIND_ANONYMOUS_RETENTION_DAYS, and the query ownership of
    sessions that are gone (those queries stay visible to staff only)."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    live = Session.objects.values("session_key")
    cutoff = timezone.now() - timedelta(days=settings.ANONYMOUS_RETENTION_DAYS)
    stale = Impression.objects.filter(user=None, judgements__isnull=True).filter(
        ~Q(session_key__in=live) | Q(created_at__lt=cutoff))
    impressions, _ = Impression.objects.filter(pk__in=stale.values("pk")).delete()
    owners, _ = QueryOwner.objects.filter(user=None).exclude(session_key__in=live).delete()
    return {"impressions": impressions, "query_owners": owners}
