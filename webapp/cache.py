"""A Redis cache that survives a Redis outage: reads miss and writes are dropped, so rate limits fail open."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
WARN_EVERY_SECONDS = 60.0


class ReusingRedisCacheClient(RedisCacheClient):
    """Django's client builds a new `redis.Redis` for every command (~0.4 ms of Python each: its response-callback
    table is filled anew); a client is safe to share over its pool, so keep one per pool."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[Any, Any] = {}  # pool: its client

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        if pool not in self._clients:
            self._clients[pool] = self._client(connection_pool=pool)
        return self._clients[pool]


class TolerantRedisCache(RedisCache):
    """Django's Redis cache; while Redis is unreachable it acts as an empty cache and logs a warning."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    _last_warning = float("-inf")

    @classmethod
    def _tolerate(cls, call: Callable[[], Any], fallback: Any) -> Any:
        try:
            return call()
        except RedisError as exc:
            now = time.monotonic()
            if now - cls._last_warning >= WARN_EVERY_SECONDS:
                cls._last_warning = now
                logger.warning("Cache unavailable (%s); rate limits are not enforced until Redis is back", exc)
            return fallback

    def get(self, key, default=None, version=None):
        return self._tolerate(lambda: RedisCache.get(self, key, default, version), default)

    def get_many(self, keys, version=None):
        return self._tolerate(lambda: RedisCache.get_many(self, keys, version), {})

    def has_key(self, key, version=None):
        return self._tolerate(lambda: RedisCache.has_key(self, key, version), False)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._tolerate(lambda: RedisCache.set(self, key, value, timeout, version), None)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._tolerate(lambda: RedisCache.set_many(self, data, timeout, version), list(data))

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._tolerate(lambda: RedisCache.add(self, key, value, timeout, version), False)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._tolerate(lambda: RedisCache.touch(self, key, timeout, version), False)

    def delete(self, key, version=None):
        return self._tolerate(lambda: RedisCache.delete(self, key, version), False)

    def delete_many(self, keys, version=None):
        self._tolerate(lambda: RedisCache.delete_many(self, keys, version), None)

    def clear(self):
        return self._tolerate(lambda: RedisCache.clear(self), False)
