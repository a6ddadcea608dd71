"""Production settings: DEBUG off (cannot be turned on), a strong secret key required, `check --deploy` clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "p7Vq-2mZ_rX9kL4tB8nW1cY6hJ3sD0fG5aE_uI7oP2lK9jH4gF1dS8aQ3wE6rT0y"


def _manage(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "REFIND_DATA_DIR": str(tmp_path), "REFIND_ENV": "production",
            "DJANGO_ALLOWED_HOSTS": "refind.example.org", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_SECRET_KEY": STRONG_KEY, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be off"),
        ({"DJANGO_SECRET_KEY": "short"}, "at least 50 random characters"),
        ({"DJANGO_SECRET_KEY": "ab" * 40}, "at least 50 random characters"),
    ],
)
def test_unsafe_production_settings_stop_startup(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = _manage(tmp_path, env, "check")
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_production_runs_without_debug_and_check_deploy_is_clean(tmp_path: Path) -> None:
    result = _manage(tmp_path, {"DJANGO_SECRET_KEY": STRONG_KEY}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    debug = _manage(tmp_path, {"DJANGO_SECRET_KEY": STRONG_KEY}, "shell", "-c",
                    "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE)")
    assert debug.stdout.strip().splitlines()[-1] == "False True", debug.stdout + debug.stderr
