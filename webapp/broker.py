"""Is the task broker reachable? A cheap connect-and-ping, remembered for a few seconds per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from webapp import celery_app

CHECK_EVERY_SECONDS = 2.0
TIMEOUT_SECONDS = 1.0
T = TypeVar("T")


class Remembered(Generic[T]):
    """A slow answer (one that asks the broker) computed at most every `seconds` per process."""

    def __init__(self, seconds: float, compute: Callable[[], T]) -> None:
        self.seconds = seconds
        self.compute = compute
        self._lock = threading.Lock()
        self._last: tuple[float, T | None] = (float("-inf"), None)

    def __call__(self) -> T:
        with self._lock:
            checked_at, answer = self._last
            if time.monotonic() - checked_at >= self.seconds:
                answer = self.compute()
                self._last = (time.monotonic(), answer)
            return answer  # type: ignore[return-value]

    def forget(self) -> None:
        """Ask again on the next call (tests, and after a configuration change)."""
        with self._lock:
            self._last = (float("-inf"), None)


def _ping() -> str | None:
    """None while the broker answers; otherwise why it does not (the dashboard says training is delayed)."""
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_SECONDS)
            _ = connection.default_channel  # opening a channel talks to the server (Redis: PING)
    except Exception as exc:  # any transport's connection error means the same thing here
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


problem = Remembered(CHECK_EVERY_SECONDS, _ping)
forget = problem.forget
