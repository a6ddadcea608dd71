"""Sessions read from the shared Redis cache, written through to the database (Django's `cached_db`), with
every cached copy kept at most SESSION_CACHE_SECONDS.

Used only where REFIND_CACHE_URL names a shared Redis (settings.py): a per-process cache would keep a copy
that another process has logged out. The bound matters because the cache forgives outages
(webapp/cache.py): a logout while Redis is unreachable deletes the database row but cannot delete the
cached copy, which would otherwise keep the session alive for its whole age (two weeks); now for a
minute at most. Each request of a busy session then reads Redis instead of PostgreSQL (a click: one
database round trip and ~0.35 ms of Python fewer, docs/benchmarks.md §11)."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import cached_db
from django.core.cache.backends.base import DEFAULT_TIMEOUT

SESSION_CACHE_SECONDS = 60


class _BoundedCache:
    """The session cache, with every timeout cut to SESSION_CACHE_SECONDS."""

    def __init__(self, cache) -> None:
        self._cache = cache

    def _bounded(self, timeout: Any) -> int:
        if timeout is None or timeout is DEFAULT_TIMEOUT:  # "forever" / the cache's default: the bound
            return SESSION_CACHE_SECONDS
        return min(int(timeout), SESSION_CACHE_SECONDS)

    def set(self, key: str, value: Any, timeout: Any = None, version: int | None = None) -> None:
        self._cache.set(key, value, self._bounded(timeout), version)

    async def aset(self, key: str, value: Any, timeout: Any = None, version: int | None = None) -> None:
        await self._cache.aset(key, value, self._bounded(timeout), version)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __getattr__(self, name: str) -> Any:  # get, delete, aget, adelete: unchanged
        return getattr(self._cache, name)


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache = _BoundedCache(self._cache)
