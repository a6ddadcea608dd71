"""A real server process for the adversarial tests: gunicorn (one worker process) over a fresh SQLite site."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.integration.support import Gunicorn, Process, free_port, prepare_site, stack_env, wait_for
from webapp.gallery.demo import generate_demo_gallery


def prepared_site(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Migrate `database_url`, import a small demo gallery (36 images, 24 indexed after the split) and add a
    staff user; returns the environment for server processes."""
    data = tmp_path / "site"
    data.mkdir()
    env = stack_env(database_url, "memory://", data, REFIND_ONLINE_LEARNING="0", OMP_NUM_THREADS="1", **extra)
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=3, seed=3)
    prepare_site(env, folder)
    return env


@contextmanager
def sqlite_site(tmp_path: Path, **extra: str) -> Iterator[tuple[Gunicorn, dict[str, str]]]:
    """A prepared SQLite site served by gunicorn (one worker process); yields (server, environment)."""
    env = prepared_site(tmp_path, f"sqlite:///{tmp_path / 'refind.sqlite3'}", **extra)
    server = Gunicorn(env, tmp_path)
    try:
        yield server, env
    finally:
        server.stop()


def worker_pid(server: Gunicorn) -> int:
    """The pid of gunicorn's (only) worker process: the one that handles the requests."""
    master = server.process.popen.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1))


class Server:
    """gunicorn with `workers` processes of `threads` threads each, on a free local port."""

    def __init__(self, env: dict[str, str], logs: Path, workers: int = 2, threads: int = 8,
                 ready_path: str = "/static/app.css") -> None:
        self.ready_path = ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([sys.executable, "-m", "gunicorn", "webapp.wsgi:application", "--bind",
                                f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", str(threads),
                                "--timeout", "120"], env, logs / f"gunicorn-{self.port}.log")
        wait_for(self._ready, 180, "gunicorn to answer", every=0.5)

    def _ready(self) -> bool:
        assert self.process.alive(), self.process.output()
        try:
            return requests.get(f"{self.url}{self.ready_path}", timeout=30).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> str:
        return self.process.stop()
