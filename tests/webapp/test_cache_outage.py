"""With the shared Redis cache down, requests still succeed: reads miss, writes drop, rate limits fail open."""

from __future__ import annotations

import time

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.imagefactory import image_bytes
from webapp.cache import TolerantRedisCache

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused


def test_reads_miss_and_writes_are_dropped_quickly() -> None:
    cache = TolerantRedisCache(DOWN, {"OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}})
    started = time.monotonic()
    assert cache.get("k", "default") == "default"
    cache.set("k", 1)
    assert cache.add("k", 1) is False and cache.get_many(["k"]) == {} and not cache.has_key("k")
    assert time.monotonic() - started < 5


def test_search_still_answers_while_the_rate_limit_cache_is_down(gallery, settings, monkeypatch) -> None:
    settings.CACHES = {"default": {"BACKEND": "webapp.cache.TolerantRedisCache", "LOCATION": DOWN,
                                   "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}}}
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "search", "1/min")
    client = APIClient()
    codes = [client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.png", image_bytes("PNG"))}).status_code
             for _ in range(2)]
    assert codes == [200, 200]  # no counter can be kept: the limit is not enforced, nothing fails
