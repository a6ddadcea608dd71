"""Is the task broker reachable? A cheap connect-and-ping, remembered for a few seconds per process."""

from __future__ import annotations

import threading
import time

CHECK_EVERY_SECONDS = 2.0
TIMEOUT_SECONDS = 1.0

_lock = threading.Lock()
_last: tuple[float, str | None] = (float("-inf"), None)


def problem() -> str | None:
    """None while the broker answers; otherwise why it does not (the dashboard says training is delayed)."""
    global _last
    with _lock:
        checked_at, answer = _last
        if time.monotonic() - checked_at < CHECK_EVERY_SECONDS:
            return answer
        answer = _ping()
        _last = (time.monotonic(), answer)
        return answer


def forget() -> None:
    """Check again on the next call (tests, and after a configuration change)."""
    global _last
    with _lock:
        _last = (float("-inf"), None)


def _ping() -> str | None:
    from webapp import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_SECONDS)
            _ = connection.default_channel  # opening a channel talks to the server (Redis: PING)
    except Exception as exc:  # any transport's connection error means the same thing here
        return f"{type(exc).__name__}: {exc}"[:300]
    return None
