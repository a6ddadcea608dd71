"""GET /healthz: is this web process able to serve? Reports the database, the broker, the active index and
whether the workers are silent (webapp/learning/silence.py).

Answered by the first middleware, before the HTTPS redirect and the host check: a container's health check
reaches it over plain HTTP on 127.0.0.1 under production settings. It reveals no more than the dashboard's
public counts (no names, no errors' details beyond their class). 200 while the database answers (search and
feedback work: a broker outage only delays learning, docs/operations.md); 503 when it does not.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)
PATH = "/healthz"


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver's error: unreachable
        logger.warning("Health check: database unavailable: %s", exc)
        connection.close_if_unusable_or_obsolete()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _broker() -> dict:
    from webapp import broker

    problem = broker.problem()
    return {"ok": True} if problem is None else {"ok": False, "error": problem.split(":", 1)[0]}


def _index(database_ok: bool) -> dict:
    if not database_ok:
        return {"ok": False, "version": None}
    from webapp.gallery.models import IndexVersion

    active = IndexVersion.objects.filter(is_active=True).values("id", "ntotal", "model_version_id").first()
    if active is None:
        return {"ok": False, "version": None}
    return {"ok": True, "version": active["id"], "model_version": active["model_version_id"],
            "vectors": active["ntotal"]}


def _workers(database_ok: bool, broker_ok: bool) -> dict:
    """Not ok when no worker has run housekeeping for a long while although the broker answers."""
    if not (database_ok and broker_ok):
        return {"ok": True}  # unknown; the broken part says what is wrong
    from webapp.learning.silence import workers_silent_for

    silent = workers_silent_for()
    return {"ok": True} if silent is None else {"ok": False, "silent_seconds": round(silent)}


def health(request: HttpRequest) -> HttpResponse:
    database = _database()
    body = {"database": database, "broker": _broker(), "index": _index(database["ok"])}
    body["workers"] = _workers(database["ok"], body["broker"]["ok"])
    body["status"] = "ok" if all(part["ok"] for part in body.values()) else (
        "degraded" if database["ok"] else "unavailable")
    response = JsonResponse(body, status=200 if database["ok"] else 503)
    response["Cache-Control"] = "no-store"
    return response


class HealthMiddleware:
    """Answers GET/HEAD /healthz before any other middleware (no redirect, no host check, no session)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.rstrip("/") == PATH and request.method in {"GET", "HEAD"}:
            return health(request)
        return self.get_response(request)
