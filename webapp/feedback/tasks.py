"""Feedback housekeeping (beat): expired sessions and what anonymous visitors left behind are removed, so a
flood of cookie-less requests cannot grow the session and impression tables without bound."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

from celery import shared_task
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Q
from django.utils import timezone

from webapp.feedback.models import Impression
from webapp.gallery.models import QueryOwner


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
