"""Celery speaks JSON only: a pickle message is refused before it is unpickled (no code runs), JSON works."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from kombu.exceptions import ContentDisallowed
from kombu.serialization import loads

from webapp import celery_app

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"refind-pickle-ran-{os.getpid()}"


class _Exploit:
    """Unpickling this creates MARKER: proof that pickle content was deserialised."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


@celery_app.task(name="tests.security.record")
def record(path: str, text: str) -> None:
    Path(path).write_text(text)


@pytest.fixture(autouse=True)
def no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    MARKER.unlink(missing_ok=True)


def test_the_app_sends_json_and_accepts_nothing_else() -> None:
    conf = celery_app.conf
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.result_accept_content in (None, ["json"])  # None: the same list as accept_content
    with pytest.raises(ContentDisallowed):
        loads(pickle.dumps(_Exploit()), "application/x-python-serialize", "binary", accept=conf.accept_content)
    assert not MARKER.exists()


def test_a_worker_drops_a_pickled_task_without_unpickling_it(tmp_path: Path) -> None:
    done = tmp_path / "json-task-ran"
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        record.apply_async(args=[str(tmp_path / "pickle-task-ran"), _Exploit()], serializer="pickle")
        record.apply_async(args=[str(done), "ok"])  # sent after it, so handled after it (one solo worker)
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert done.read_text() == "ok"
    assert not (tmp_path / "pickle-task-ran").exists() and not MARKER.exists()
