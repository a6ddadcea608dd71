"""The production stack on this machine: PostgreSQL, Redis as the broker and a real Celery worker process.

These tests fail (never skip) when a service is unreachable: scripts/test.sh checks first and says which.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from webapp.gallery.demo import generate_demo_gallery

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DB_URL = os.environ.get("REFIND_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REFIND_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict[str, str]:
    """A fresh PostgreSQL database and a clean Redis database; environment for manage.py and celery."""
    try:
        admin = psycopg.connect(ADMIN_DB_URL, autocommit=True, connect_timeout=5)
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).flushdb()
    except Exception as exc:
        pytest.fail(f"PostgreSQL ({ADMIN_DB_URL}) and Redis ({REDIS_URL}) must be reachable: {exc}")
    name = f"refind_it_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_DB_URL.rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{name}",
        "CELERY_BROKER_URL": REDIS_URL,
        "REFIND_DATA_DIR": str(tmp_path_factory.mktemp("stack-data")),
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    try:
        yield env
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _manage(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _active_index(env: dict[str, str]) -> tuple[int, int] | None:
    code = ("from webapp.gallery.models import IndexVersion as I; a=I.objects.filter(is_active=True).first(); "
            "print('none' if a is None else f'{a.pk} {a.ntotal}')")
    out = _manage(env, "shell", "-c", code).strip().splitlines()[-1]
    return None if out == "none" else tuple(int(x) for x in out.split())  # type: ignore[return-value]


def test_import_index_by_worker_and_search_on_postgres_and_redis(stack: dict[str, str], tmp_path: Path) -> None:
    _manage(stack, "migrate", "--noinput", "-v0")
    database = _manage(stack, "shell", "-c", "from django.db import connection as c; print(c.settings_dict['NAME'])")
    assert "refind_it_" in database
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=2, seed=3)
    out = _manage(stack, "import_images", str(folder), "--labels-from-dirs", "--no-index", "-v0")
    assert "24 imported" in out
    assert _active_index(stack) is None

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "default", "-P", "solo", "--loglevel", "INFO"],
        cwd=ROOT, env=stack, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _manage(stack, "shell", "-c", "from webapp.gallery.tasks import rebuild_index; rebuild_index.delay()")
        deadline = time.monotonic() + 120
        while (active := _active_index(stack)) is None and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stdout.read()
            time.sleep(1)
        assert active is not None and active[1] == 24, "the worker did not build the index in time"
    finally:
        worker.terminate()
        log = worker.communicate(timeout=30)[0]
    assert "rebuild_index" in log and "succeeded" in log

    query = next((folder / "sunsets").iterdir())
    code = (
        "import json; from django.test import Client; "
        f"r = Client().post('/api/v1/search/', {{'image': open({str(query)!r}, 'rb'), 'k': 3}}); "
        "print(json.dumps({'status': r.status_code, **r.json()}))"
    )
    body = json.loads(_manage(stack, "shell", "-c", code).strip().splitlines()[-1])
    assert body["status"] == 200
    assert [hit["label"] for hit in body["results"]][0] == "sunsets"
