"""A real Refind deployment on 127.0.0.1 for end-to-end benchmarks: database, data dir, gunicorn, Celery.

Every process is a child of the benchmark, started with one environment (data dir outside the
repository, database, broker) and stopped on exit (terminate, then kill after a timeout), also on
Ctrl-C and SIGTERM. Logs go to <data dir>/log/.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# As deployed (docker-compose.yml, scripts/run.sh): no start-up sync or gossip between workers (docs/operations.md)
WORKER_FEATURES = ("--without-mingle", "--without-gossip")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_postgres_database(url: str, fresh: bool) -> None:
    """Create the PostgreSQL database named in `url` (only that one); `fresh` drops it first."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise ValueError(f"Database name {name!r}: use letters, digits and underscores only.")
    admin = parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


class Stack:
    """One deployment: `manage()` runs commands, `start_*` spawn servers, `stop()` ends them all."""

    def __init__(self, data_dir: Path, database_url: str, broker_url: str, extra_env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir).resolve()
        if self.data_dir.is_relative_to(ROOT):
            raise ValueError(f"The data dir {self.data_dir} must be outside the repository.")
        self.log_dir = self.data_dir / "log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                    "REFIND_DATA_DIR": str(self.data_dir), "DATABASE_URL": database_url,
                    "CELERY_BROKER_URL": broker_url, "DJANGO_SETTINGS_MODULE": "webapp.settings",
                    # as deployed (docker-compose.yml): rate limits and sessions in a shared Redis cache
                    "REFIND_CACHE_URL": os.environ.get("REFIND_CACHE_URL", "redis://127.0.0.1:6379/11"),
                    "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.processes: dict[str, subprocess.Popen] = {}
        self.base_url = ""
        atexit.register(self.stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.stop()
        raise SystemExit(128 + signum)

    def manage(self, *args: str, timeout: float = 3600, check: bool = True) -> str:
        """Run `manage.py ARGS` in this deployment's environment; returns its stdout."""
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def start_web(self, workers: int = 2, threads: int = 1, timeout: int = 120) -> str:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self._spawn("web", [PYTHON, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
                            "--threads", str(threads), "--timeout", str(timeout), "--graceful-timeout", "10"])
        return self.base_url

    def start_worker(self, queue: str) -> None:
        """One solo worker per queue, as deployed: training never waits behind reports and index builds."""
        self._spawn(f"worker-{queue}", [PYTHON, "-m", "celery", "-A", "webapp", "worker", "-Q", queue, "-P", "solo",
                                        "-n", f"{queue}-{os.getpid()}@%h", *WORKER_FEATURES, "--loglevel", "INFO"])

    def start_beat(self) -> None:
        self._spawn("beat", [PYTHON, "-m", "celery", "-A", "webapp", "beat", "--loglevel", "INFO",
                             "-s", str(self.data_dir / "celerybeat-schedule")])

    def wait_ready(self, path: str = "/api/v1/images/?page_size=1", timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=10) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.5)
        raise TimeoutError(f"{self.base_url} did not answer within {timeout:.0f} s (see {self.log_dir}).")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / name}.log")

    def stop(self) -> None:
        """SIGTERM each process group, then SIGKILL whatever is left after 30 s."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the group of this child only (start_new_session)
    except ProcessLookupError:
        pass
