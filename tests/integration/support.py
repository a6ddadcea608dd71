"""Shared by the integration tests: fresh PostgreSQL databases, manage.py, gunicorn, Celery processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DB_URL = os.environ.get("REFIND_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REFIND_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def address_of(url: str) -> tuple[str, int]:
    """(host, port) of a service URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or {"redis": 6379}.get(parts.scheme, 5432)


def via_port(url: str, port: int) -> str:
    """The same URL reaching 127.0.0.1:port instead (a proxy in front of the service)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards; Redis is flushed. Fails, never skips."""
    try:
        admin = psycopg.connect(ADMIN_DB_URL, autocommit=True, connect_timeout=5)
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).flushdb()
    except Exception as exc:
        pytest.fail(f"PostgreSQL ({ADMIN_DB_URL}) and Redis ({REDIS_URL}) must be reachable: {exc}")
    name = f"refind_it_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_DB_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def stack_env(database_url: str, broker_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for manage.py, gunicorn and celery processes of one test stack."""
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url,
           "REFIND_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "webapp.settings", **extra}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def manage(env: dict[str, str], *args: str, timeout: int = 300, check: bool = True) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Process:
    """A child process whose output goes to a log file (a pipe nobody reads would block it once full)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, own_group: bool = False) -> None:
        self.log = log
        with log.open("w") as handle:
            self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                          start_new_session=own_group)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        self.popen.kill()
        self.popen.wait(timeout=30)

    def kill_group(self) -> list[int]:
        """SIGKILL the process and every process it started (needs own_group=True); returns their pids."""
        members = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _group_of(int(pid)) == self.popen.pid]
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)
        return members

    def stop(self, timeout: float = 60) -> str:
        """Terminate (kill after timeout seconds) and return everything it printed."""
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.output()


def _group_of(pid: int) -> int | None:
    """The process group of a live process (None once it is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] == "Z" else int(fields[2])


def alive(pid: int) -> bool:
    return _group_of(pid) is not None


def start_worker(env: dict[str, str], logs: Path, queues: str = "default,training", pool: str = "solo",
                 own_group: bool = False) -> Process:
    """A Celery worker; `pool="prefork"` runs tasks in a child process (one), as run.sh and compose do."""
    return Process([sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queues, "-P", pool,
                    "--concurrency", "1", "--without-mingle", "--without-gossip",  # as deployed (docs/operations.md)
                    "-n", f"{queues.replace(',', '-')}-{uuid.uuid4().hex[:6]}@%h",
                    "--loglevel", "INFO"], env, logs / f"worker-{uuid.uuid4().hex[:6]}.log", own_group=own_group)


def start_beat(env: dict[str, str], logs: Path) -> Process:
    return Process([sys.executable, "-m", "celery", "-A", "webapp", "beat", "--loglevel", "INFO",
                    "--pidfile", str(logs / "beat.pid")], env, logs / "beat.log")


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """Poll until condition() is truthy (returns it); fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """A real gunicorn serving the app (one worker process, a few threads) on a free local port."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([sys.executable, "-m", "gunicorn", "webapp.wsgi:application", "--bind",
                                f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "4", "--timeout", "120"],
                               env, logs / "gunicorn.log")
        wait_for(self._ready, 120, "gunicorn to answer", every=0.5)

    def _ready(self) -> bool:
        assert self.process.alive(), self.process.output()
        try:
            return requests.get(f"{self.url}/static/app.css", timeout=30).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> str:
        return self.process.stop()


STAFF = ("staff", "staff-password-for-tests-1")


def prepare_site(env: dict[str, str], folder: Path) -> None:
    """Migrate, import the demo gallery in `folder` (indexed), split it and add a staff user: one process."""
    code = (
        "from django.core.management import call_command; from django.contrib.auth import get_user_model; "
        "call_command('migrate', '--noinput', verbosity=0); "
        f"call_command('import_images', {str(folder)!r}, labels_from_dirs=True, verbosity=0); "
        "call_command('split_gallery', seed=0); "
        f"get_user_model().objects.create_user({STAFF[0]!r}, password={STAFF[1]!r}, is_staff=True)"
    )
    manage(env, "shell", "-c", code)


def visitor_session(base_url: str) -> requests.Session:
    """An anonymous browser-like session: the search page's CSRF cookie, sent back as X-CSRFToken on writes."""
    session = requests.Session()
    session.get(f"{base_url}/", timeout=30).raise_for_status()
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def staff_session(base_url: str) -> requests.Session:
    """A browser-like session logged in through the admin login form (CSRF token included)."""
    session = requests.Session()
    session.get(f"{base_url}/admin/login/", timeout=30).raise_for_status()
    response = session.post(f"{base_url}/admin/login/", timeout=30, data={
        "username": STAFF[0], "password": STAFF[1], "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "next": "/dashboard/"})
    assert response.status_code == 200 and response.url.endswith("/dashboard/"), response.text[:500]
    return session


def sql_value(database_url: str, query: str, params: tuple = ()) -> object:
    """The first column of the first row, read straight from PostgreSQL (no proxy, no Django)."""
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        row = connection.execute(query, params).fetchone()
    return None if row is None else row[0]
