"""The production stack on this machine: PostgreSQL, Redis as the broker and a real Celery worker process.

These tests fail (never skip) when a service is unreachable: scripts/test.sh checks first and says which.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.support import REDIS_URL, ROOT, fresh_database, manage, stack_env, start_worker
from webapp.gallery.demo import generate_demo_gallery

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict[str, str]:
    """A fresh PostgreSQL database and a clean Redis database; environment for manage.py and celery."""
    with fresh_database() as database_url:
        yield stack_env(database_url, REDIS_URL, tmp_path_factory.mktemp("stack-data"))


def _active_index(env: dict[str, str]) -> tuple[int, int] | None:
    code = ("from webapp.gallery.models import IndexVersion as I; a=I.objects.filter(is_active=True).first(); "
            "print('none' if a is None else f'{a.pk} {a.ntotal}')")
    out = manage(env, "shell", "-c", code).strip().splitlines()[-1]
    return None if out == "none" else tuple(int(x) for x in out.split())  # type: ignore[return-value]


def test_import_index_by_worker_and_search_on_postgres_and_redis(stack: dict[str, str], tmp_path: Path) -> None:
    manage(stack, "migrate", "--noinput", "-v0")
    database = manage(stack, "shell", "-c", "from django.db import connection as c; print(c.settings_dict['NAME'])")
    assert "refind_it_" in database
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=2, seed=3)
    out = manage(stack, "import_images", str(folder), "--labels-from-dirs", "--no-index", "-v0")
    assert "24 imported" in out
    assert _active_index(stack) is None

    worker = start_worker(stack, tmp_path, "default")
    try:
        manage(stack, "shell", "-c", "from webapp.gallery.tasks import rebuild_index; rebuild_index.delay()")
        deadline = time.monotonic() + 120
        while (active := _active_index(stack)) is None and time.monotonic() < deadline:
            assert worker.alive(), worker.output()
            time.sleep(1)
        assert active is not None and active[1] == 24, "the worker did not build the index in time"
    finally:
        log = worker.stop()
    assert "rebuild_index" in log and "succeeded" in log

    query = next((folder / "sunsets").iterdir())
    code = (
        "import json; from django.test import Client; "
        f"r = Client().post('/api/v1/search/', {{'image': open({str(query)!r}, 'rb'), 'k': 3}}); "
        "print(json.dumps({'status': r.status_code, **r.json()}))"
    )
    body = json.loads(manage(stack, "shell", "-c", code).strip().splitlines()[-1])
    assert body["status"] == 200
    assert [hit["label"] for hit in body["results"]][0] == "sunsets"


@pytest.fixture(scope="module")
def learning_stack(stack: dict[str, str], tmp_path_factory) -> dict[str, str]:
    """The stack with a split labelled demo gallery, settings that publish every update."""
    env = {**stack, "REFIND_ONLINE_MIN_NEW_TRIPLETS": "1", "REFIND_PROMOTION_GUARD": "off",
           "REFIND_ONLINE_DEBOUNCE_SECONDS": "0.2", "REFIND_STALE_RUN_SECONDS": "5"}
    manage(env, "migrate", "--noinput", "-v0")
    folder = tmp_path_factory.mktemp("learning-demo")
    generate_demo_gallery(folder, per_class=3, seed=5)
    manage(env, "import_images", str(folder), "--labels-from-dirs", "-v0")
    manage(env, "split_gallery", "--seed", "0")
    return env


def test_feedback_is_learned_by_a_worker_and_changes_that_querys_results(learning_stack, tmp_path: Path) -> None:
    worker = start_worker(learning_stack, tmp_path)
    try:
        script = ROOT / "tests" / "integration" / "scripts" / "feedback_roundtrip.py"
        out = manage(learning_stack, "shell", "-c", f"exec(open({str(script)!r}).read())", timeout=200)
    finally:
        log = worker.stop()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["seconds"] < 90, log[-3000:]
    assert result["after"]["model_version"] != result["before"]["model_version"]
    assert result["after"]["index_version"] != result["before"]["index_version"]
    before_scores = [hit["score"] for hit in result["before"]["results"]]
    after_scores = [hit["score"] for hit in result["after"]["results"]]
    assert before_scores != after_scores
    assert "execute_run" in log and "succeeded" in log


def test_killing_the_worker_mid_run_loses_nothing(learning_stack, tmp_path: Path) -> None:
    count_code = ("from webapp.feedback.models import Triplet; from webapp.gallery.models import ModelVersion as M; "
                  "print(Triplet.objects.count(), M.objects.get(is_active=True).pk)")
    before = manage(learning_stack, "shell", "-c", count_code).split()[-2:]
    worker = start_worker(learning_stack, tmp_path)
    try:
        manage(learning_stack, "retrain", "--mode", "batch", "--loss", "multi_similarity", "--epochs", "1000",
                "--batch-size", "4", "--data", "labels")
        status_code = ("from webapp.learning.models import TrainingRun as R; r = R.objects.latest('id'); "
                       "print(r.pk, r.status, r.progress)")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run_id, status, progress = manage(learning_stack, "shell", "-c", status_code).split()[-3:]
            if status == "running" and float(progress) > 0:
                break
            time.sleep(0.5)
        assert status == "running", "the run never started"
        worker.kill()
    finally:
        if worker.alive():
            worker.kill()
    assert manage(learning_stack, "shell", "-c", count_code).split()[-2:] == before
    time.sleep(6)  # past REFIND_STALE_RUN_SECONDS without a heartbeat
    reaped = manage(learning_stack, "shell", "-c",
                     "from webapp.learning.tasks import housekeeping; print(housekeeping()['reaped'])")
    assert run_id in reaped
    final = manage(learning_stack, "shell", "-c", status_code).split()[-3:]
    assert final[1] == "failed"
    claim = manage(learning_stack, "shell", "-c", "from webapp.learning import claims; print(claims.holder())")
    assert claim.strip().splitlines()[-1] == "None"
