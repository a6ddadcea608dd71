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


def _manage(env: dict[str, str], *args: str, timeout: int = 300, check: bool = True) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check:
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


def _start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "default,training", "-P", "solo",
         "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.fixture(scope="module")
def learning_stack(stack: dict[str, str], tmp_path_factory) -> dict[str, str]:
    """The stack with a split labelled demo gallery, settings that publish every update."""
    env = {**stack, "REFIND_ONLINE_MIN_NEW_TRIPLETS": "1", "REFIND_PROMOTION_TOLERANCE_POINTS": "100",
           "REFIND_ONLINE_DEBOUNCE_SECONDS": "0.2", "REFIND_STALE_RUN_SECONDS": "5"}
    _manage(env, "migrate", "--noinput", "-v0")
    folder = tmp_path_factory.mktemp("learning-demo")
    generate_demo_gallery(folder, per_class=3, seed=5)
    _manage(env, "import_images", str(folder), "--labels-from-dirs", "-v0")
    _manage(env, "split_gallery", "--seed", "0")
    return env


def test_feedback_is_learned_by_a_worker_and_changes_that_querys_results(learning_stack) -> None:
    worker = _start_worker(learning_stack)
    try:
        script = ROOT / "tests" / "integration" / "scripts" / "feedback_roundtrip.py"
        out = _manage(learning_stack, "shell", "-c", f"exec(open({str(script)!r}).read())", timeout=200)
    finally:
        worker.terminate()
        log = worker.communicate(timeout=60)[0]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["seconds"] < 90, log[-3000:]
    assert result["after"]["model_version"] != result["before"]["model_version"]
    assert result["after"]["index_version"] != result["before"]["index_version"]
    before_scores = [hit["score"] for hit in result["before"]["results"]]
    after_scores = [hit["score"] for hit in result["after"]["results"]]
    assert before_scores != after_scores
    assert "execute_run" in log and "succeeded" in log


def test_killing_the_worker_mid_run_loses_nothing(learning_stack) -> None:
    count_code = ("from webapp.feedback.models import Triplet; from webapp.gallery.models import ModelVersion as M; "
                  "print(Triplet.objects.count(), M.objects.get(is_active=True).pk)")
    before = _manage(learning_stack, "shell", "-c", count_code).split()[-2:]
    worker = _start_worker(learning_stack)
    try:
        _manage(learning_stack, "retrain", "--mode", "batch", "--loss", "multi_similarity", "--epochs", "1000",
                "--batch-size", "4", "--data", "labels")
        status_code = ("from webapp.learning.models import TrainingRun as R; r = R.objects.latest('id'); "
                       "print(r.pk, r.status, r.progress)")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run_id, status, progress = _manage(learning_stack, "shell", "-c", status_code).split()[-3:]
            if status == "running" and float(progress) > 0:
                break
            time.sleep(0.5)
        assert status == "running", "the run never started"
        worker.kill()  # SIGKILL: no cleanup of any kind
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert _manage(learning_stack, "shell", "-c", count_code).split()[-2:] == before
    time.sleep(6)  # past REFIND_STALE_RUN_SECONDS without a heartbeat
    reaped = _manage(learning_stack, "shell", "-c",
                     "from webapp.learning.tasks import housekeeping; print(housekeeping()['reaped'])")
    assert run_id in reaped
    final = _manage(learning_stack, "shell", "-c", status_code).split()[-3:]
    assert final[1] == "failed"
    claim = _manage(learning_stack, "shell", "-c", "from webapp.learning import claims; print(claims.holder())")
    assert claim.strip().splitlines()[-1] == "None"
