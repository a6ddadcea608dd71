"""A real server process for the adversarial tests: gunicorn (one worker process) over a fresh SQLite site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.support import Gunicorn, prepare_site, stack_env
from webapp.gallery.demo import generate_demo_gallery


@contextmanager
def sqlite_site(tmp_path: Path, **extra: str) -> Iterator[tuple[Gunicorn, dict[str, str]]]:
    """A migrated SQLite site with a small indexed demo gallery (12 images) and a staff user, served by
    gunicorn; yields (server, environment)."""
    data = tmp_path / "site"
    data.mkdir()
    env = stack_env(f"sqlite:///{data / 'refind.sqlite3'}", "memory://", data,
                    REFIND_ONLINE_LEARNING="0", OMP_NUM_THREADS="1", **extra)
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=1, seed=3)
    prepare_site(env, folder)
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
