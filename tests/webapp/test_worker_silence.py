"""A worker alive but taking no tasks: once housekeeping has not run for a while, the dashboard and /healthz say so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from webapp.learning.models import Housekeeping
from webapp.learning.silence import silent_after_seconds
from webapp.learning.tasks import housekeeping

pytestmark = pytest.mark.django_db
SILENT = "No worker has run its periodic housekeeping for"


def _last_run(seconds_ago: float) -> None:
    Housekeeping.objects.update_or_create(name="housekeeping",
                                          defaults={"ran_at": timezone.now() - timedelta(seconds=seconds_ago)})


def test_housekeeping_records_when_it_ran() -> None:
    before = timezone.now()
    housekeeping()
    assert Housekeeping.objects.get(name="housekeeping").ran_at >= before


def test_the_dashboard_and_health_speak_only_after_a_long_silence(staff: Client) -> None:
    assert SILENT not in staff.get("/dashboard/").content.decode()  # never ran: nothing to compare with
    assert Client().get("/healthz").json()["workers"] == {"ok": True}

    _last_run(silent_after_seconds() - 30)
    assert SILENT not in staff.get("/dashboard/").content.decode()

    _last_run(silent_after_seconds() + 60)
    page = staff.get("/dashboard/").content.decode()
    assert f"{SILENT} {round((silent_after_seconds() + 60) / 60)} minutes" in page
    health = Client().get("/healthz").json()
    assert health["status"] == "degraded" and health["workers"]["ok"] is False
    assert health["workers"]["silent_seconds"] >= silent_after_seconds() + 60

    housekeeping()  # a worker takes tasks again
    assert SILENT not in staff.get("/dashboard/").content.decode()
    assert Client().get("/healthz").json()["workers"] == {"ok": True}


def test_silence_is_a_few_beat_periods_and_two_minutes_at_least(settings) -> None:
    settings.CELERY_BEAT_SCHEDULE = {"learning-housekeeping": {"schedule": 5.0}}
    assert silent_after_seconds() == 120.0
    settings.CELERY_BEAT_SCHEDULE = {"learning-housekeeping": {"schedule": 300.0}}
    assert silent_after_seconds() == 1200.0
