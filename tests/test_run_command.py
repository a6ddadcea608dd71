"""scripts/run.sh serves like a product: gunicorn, DEBUG off, a kept secret key, bound to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.fixture
def served(tmp_path: Path):
    """`bash scripts/run.sh` on a fresh data dir (a small demo gallery), until the page answers."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "REFIND_", "DATABASE_URL", "CELERY_"))}
    env.update(REFIND_DATA_DIR=str(tmp_path / "data"), REFIND_PORT=str(port), REFIND_DEMO_PER_CLASS="2",
               REFIND_WEB_WORKERS="1")
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            try:
                if _get(url + "/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(1)
        yield url, tmp_path / "data", tmp_path / "run.log"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_run_serves_with_gunicorn_debug_off_and_a_kept_secret_key(served) -> None:
    url, data, _ = served
    status, headers, body = _get(url + "/images/999999/")
    assert status == 404 and "URLconf" not in body and "DEBUG" not in body  # no debug page
    assert "Back to the search page" in body
    assert "gunicorn" in headers.get("Server", "").lower()
    assert _get(url + "/favicon.ico")[0] == 200
    for name in ("secret-key", "admin-login.txt"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert len((data / "secret-key").read_text().strip()) >= 50
    port = int(url.rsplit(":", 1)[1])
    for address in _other_addresses():  # bound to 127.0.0.1 only: not reachable on the machine's other addresses
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(2)
            sock.connect((address, port))


def _other_addresses() -> list[str]:
    found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
    return [address for address in found if ":" not in address and not address.startswith("127.")]
