"""With a shared Redis cache, sessions are read from it (no database query) and written through to the
database; every cached copy lives at most a minute, so a logout that could not reach Redis ends the session
within a minute. Without a shared cache, sessions stay in the database only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.integration.support import REDIS_URL
from webapp import sessions

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_sessions(settings):
    settings.CACHES = {"default": {"BACKEND": "webapp.cache.TolerantRedisCache", "LOCATION": REDIS_URL,
                                   "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}}}
    settings.SESSION_ENGINE = "webapp.sessions"
    return redis.Redis.from_url(REDIS_URL)


def _cached_ttl(client: redis.Redis, store: sessions.SessionStore) -> int:
    keys = client.keys(f"*{store.cache_key}")
    assert len(keys) == 1
    return client.ttl(keys[0])


def test_a_session_is_read_from_the_cache_and_cached_for_a_minute_at_most(redis_sessions) -> None:
    store = sessions.SessionStore()
    store["visits"] = 1
    store.save()
    assert 0 < _cached_ttl(redis_sessions, store) <= sessions.SESSION_CACHE_SECONDS
    with CaptureQueriesContext(connection) as queries:
        assert sessions.SessionStore(store.session_key)["visits"] == 1
    assert len(queries) == 0

    redis_sessions.delete(*redis_sessions.keys(f"*{store.cache_key}"))  # expired from the cache: the database
    assert sessions.SessionStore(store.session_key)["visits"] == 1
    assert 0 < _cached_ttl(redis_sessions, store) <= sessions.SESSION_CACHE_SECONDS  # and cached again


def test_a_logout_that_cannot_reach_redis_ends_the_session_within_a_minute(redis_sessions, monkeypatch) -> None:
    store = sessions.SessionStore()
    store["_auth_user_id"] = "7"
    store.save()
    cached = sessions.SessionStore(store.session_key)
    monkeypatch.setattr(type(cached._cache._cache), "delete", lambda self, key, version=None: False)  # unreachable
    cached.flush()  # the logout
    assert not Session.objects.filter(session_key=store.session_key).exists()  # the database row is gone
    assert sessions.SessionStore(store.session_key).get("_auth_user_id") == "7"  # the cached copy still answers,
    assert 0 < _cached_ttl(redis_sessions, store) <= sessions.SESSION_CACHE_SECONDS  # for a minute at most


@pytest.mark.parametrize(("cache_url", "engine"), [("redis://127.0.0.1:6379/1", "webapp.sessions"),
                                                    ("", "django.contrib.sessions.backends.db")])
def test_the_engine_follows_the_shared_cache(tmp_path: Path, cache_url: str, engine: str) -> None:
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup(); "
            "from django.conf import settings; print(settings.SESSION_ENGINE)")
    env = {"PATH": "/usr/bin:/bin", "REFIND_DATA_DIR": str(tmp_path), "REFIND_CACHE_URL": cache_url}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == engine, result.stderr
