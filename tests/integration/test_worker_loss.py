"""A training worker killed whole (parent and child) mid-run; runs nobody can take; cancelling a running run.

Real processes: PostgreSQL, Redis, a `default` worker, a `training` worker with a child process (prefork, as
run.sh and compose run it) and beat with its housekeeping every REFIND_HOUSEKEEPING_SECONDS.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from tests.integration.support import (
    REDIS_URL,
    alive,
    fresh_database,
    manage,
    prepare_site,
    sql_value,
    stack_env,
    start_beat,
    start_worker,
    wait_for,
)
from webapp.gallery.demo import generate_demo_gallery

pytestmark = pytest.mark.services

STALE_SECONDS, HOUSEKEEPING_SECONDS = 20, 5  # a run's setup may go 10 s without a heartbeat here
SLACK_SECONDS = 30  # a loaded machine: beat's tick, the housekeeping task, our polling
LONG_RUN = {"mode": "batch", "epochs": 1000, "batch_size": 4, "data": "labels", "device": "cpu"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict[str, str]:
    with fresh_database() as database_url:
        env = stack_env(database_url, REDIS_URL, tmp_path_factory.mktemp("worker-loss-data"),
                        REFIND_STALE_RUN_SECONDS=str(STALE_SECONDS),
                        REFIND_HOUSEKEEPING_SECONDS=str(HOUSEKEEPING_SECONDS),
                        REFIND_ONLINE_LEARNING="0", REFIND_PROMOTION_GUARD="off")
        folder = tmp_path_factory.mktemp("worker-loss-demo")
        generate_demo_gallery(folder, per_class=3, seed=5)
        prepare_site(env, folder)
        yield env


def _api(env: dict[str, str], method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A staff API call, made in a manage.py process (its own worker inspection, as a web process's)."""
    code = ("import json; from django.contrib.auth import get_user_model; from rest_framework.test import APIClient; "
            "c = APIClient(); c.force_authenticate(get_user_model().objects.get(username='staff')); "
            f"r = getattr(c, {method!r})({path!r}, {body!r}, format='json'); "
            "print(json.dumps([r.status_code, r.json()]))")
    status, data = json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])
    return status, data


def _run(env: dict[str, str], run_id: int) -> dict:
    """The run's row, read straight from PostgreSQL (polling through manage.py would cost seconds a call)."""
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as connection:
        status, progress, message = connection.execute(
            "SELECT status, progress, message FROM learning_trainingrun WHERE id = %s", (run_id,)).fetchone()
    return {"status": status, "progress": progress, "message": message}


def _versions(env: dict[str, str]) -> tuple[int, int]:
    """(model versions, the active one)."""
    return (sql_value(env["DATABASE_URL"], "SELECT count(*) FROM gallery_modelversion"),
            sql_value(env["DATABASE_URL"], "SELECT id FROM gallery_modelversion WHERE is_active"))


def _start_long_run(env: dict[str, str]) -> int:
    status, run = _api(env, "post", "/api/v1/training-runs/", LONG_RUN)
    assert status == 202, run
    wait_for(lambda: (r := _run(env, run["id"]))["status"] == "running" and r["progress"] > 0, 180,
             "the run to start training", every=0.5)
    return run["id"]


def test_a_killed_training_worker_is_reaped_and_runs_go_on(stack: dict[str, str], tmp_path: Path) -> None:
    default = start_worker(stack, tmp_path, "default", pool="prefork")
    beat = start_beat(stack, tmp_path)
    trainer = start_worker(stack, tmp_path, "training", pool="prefork", own_group=True)
    try:
        wait_for(lambda: "ready" in trainer.output() and "ready" in default.output(), 300, "the workers")
        # device=cuda: no worker consumes `gpu`, so the run is refused with the reason, and nothing holds the claim
        status, body = _api(stack, "post", "/api/v1/training-runs/", {**LONG_RUN, "device": "cuda"})
        assert status == 409 and body["detail"].startswith("No worker consumes the gpu queue"), body

        before = _versions(stack)
        run_id = _start_long_run(stack)
        pids = trainer.kill_group()
        killed_at = time.monotonic()
        assert len(pids) >= 2  # the parent and its pool child
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "every process of the worker to die")

        def failed() -> dict | None:
            run = _run(stack, run_id)
            return run if run["status"] == "failed" else None

        run = wait_for(failed, STALE_SECONDS + HOUSEKEEPING_SECONDS + SLACK_SECONDS, "housekeeping to fail the run",
                       every=0.5)
        assert time.monotonic() - killed_at <= STALE_SECONDS + HOUSEKEEPING_SECONDS + SLACK_SECONDS
        assert run["message"].startswith(f"The worker stopped responding for over {STALE_SECONDS}s"), run
        assert _versions(stack) == before

        # Without a training worker a run is refused, saying why; with one back, the next run is accepted.
        dead = _api(stack, "post", "/api/v1/training-runs/", LONG_RUN)
        assert dead[0] == 409 and "No worker consumes the training queue" in dead[1]["detail"], dead
        trainer = start_worker(stack, tmp_path, "training", pool="prefork", own_group=True)
        wait_for(lambda: "ready" in trainer.output(), 300, "the new training worker")
        time.sleep(2)  # let it answer inspections
        following = _start_long_run(stack)

        # Staff cancel it while it runs: the claim is free at once, the task stops, nothing is published.
        status, cancelled = _api(stack, "post", f"/api/v1/training-runs/{following}/cancel/")
        assert status == 200 and cancelled["status"] == "cancelled", cancelled
        wait_for(lambda: "stopped at its next step: it is cancelled now" in trainer.output(), 60, "the task to stop")
        assert _run(stack, following)["status"] == "cancelled" and _versions(stack) == before
        assert trainer.alive() and "Task webapp.learning.tasks.execute_run" in trainer.output()
    finally:
        for process in (trainer, beat, default):
            process.stop()
    assert "webapp.learning.tasks.housekeeping" in default.output()  # reaped by the default queue's worker
