"""Settings come from the environment with strict parsing: bad values raise ImproperlyConfigured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_choice, env_int, env_list, parse_database_url, parse_storages

ROOT = Path(__file__).resolve().parents[2]


def test_booleans(monkeypatch) -> None:
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("X_FLAG", False)


def test_integers_and_ranges(monkeypatch) -> None:
    monkeypatch.setenv("X_INT", "12")
    assert env_int("X_INT", 1) == 12
    monkeypatch.setenv("X_INT", "12MB")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="outside the allowed range"):
        env_int("X_INT", 1, minimum=1)


def test_choices(monkeypatch) -> None:
    monkeypatch.setenv("X_ENV", "staging")
    with pytest.raises(ImproperlyConfigured, match="must be one of"):
        env_choice("X_ENV", "development", {"development", "production"})


def test_lists_with_choices(monkeypatch) -> None:
    monkeypatch.setenv("X_SOURCES", "click, transitive")
    assert env_list("X_SOURCES", ["click"], choices={"click", "explicit", "transitive"}) == ["click", "transitive"]
    for bad in ("click,typo", " , "):
        monkeypatch.setenv("X_SOURCES", bad)
        with pytest.raises(ImproperlyConfigured, match="one or more of"):
            env_list("X_SOURCES", ["click"], choices={"click", "explicit", "transitive"})


def test_database_urls(tmp_path: Path) -> None:
    postgres = parse_database_url("postgres://u:p%40ss@db.example:5433/refind", tmp_path)
    assert (postgres["NAME"], postgres["USER"], postgres["PASSWORD"], postgres["HOST"], postgres["PORT"]) == (
        "refind", "u", "p@ss", "db.example", "5433")
    assert parse_database_url("sqlite:////abs/db.sqlite3", tmp_path)["NAME"] == "/abs/db.sqlite3"
    assert parse_database_url("sqlite:///rel.sqlite3", tmp_path)["NAME"] == str(tmp_path / "rel.sqlite3")
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme"):
        parse_database_url("mysql://x/y", tmp_path)
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        parse_database_url("postgres://host/", tmp_path)


def test_storages_default_to_local_folders_and_take_any_storage_class(tmp_path: Path) -> None:
    local = parse_storages(None, None)
    assert local["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert local["artifacts"]["BACKEND"] == "webapp.artifacts.LocalArtifactStorage"
    configured = parse_storages("django.core.files.storage.FileSystemStorage", f'{{"location": "{tmp_path}"}}')
    assert configured["default"] == configured["artifacts"] == {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        (None, '{"bucket_name": "x"}', "needs REFIND_STORAGE_BACKEND"),
        ("nowhere.backends.s3.S3Storage", None, "cannot be imported"),
        ("S3Storage", None, "not a dotted class path"),
        ("json.JSONDecoder", None, "not a Django Storage class"),
        ("django.core.files.storage.FileSystemStorage", "{location: /x}", "not valid JSON"),
        ("django.core.files.storage.FileSystemStorage", '["/x"]', "must be a JSON object"),
    ],
)
def test_bad_storage_settings(backend: str | None, options: str | None, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_storages(backend, options)


def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup()"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REFIND_ENV": "production"}, "DJANGO_SECRET_KEY is required"),
        ({"REFIND_MAX_UPLOAD_BYTES": "lots"}, "not an integer"),
        ({"REFIND_INDEX_FACTORY": "Bogus42"}, "REFIND_INDEX_FACTORY"),
        ({"DATABASE_URL": "oracle://x/y"}, "unsupported scheme"),
        ({"REFIND_STORAGE_BACKEND": "nowhere.Storage"}, "REFIND_STORAGE_BACKEND"),
        ({"REFIND_BATCH_LOSS": "no_such_loss"}, "REFIND_BATCH_LOSS: 'no_such_loss' is not a loss"),
        ({"REFIND_POOLING": "max"}, "REFIND_POOLING"),
        ({"REFIND_GEM_P": "nan"}, "REFIND_GEM_P"),
        ({"REFIND_GEM_P": "0"}, "REFIND_GEM_P"),
        ({"REFIND_BACKBONE": "efficientnet_lite0+gem3"}, "REFIND_POOLING"),
        ({"REFIND_INFERENCE": "INT8"}, "REFIND_INFERENCE"),
        ({"REFIND_INFERENCE": "onnx"}, "REFIND_INFERENCE"),
        ({"REFIND_INFERENCE": " int8"}, "REFIND_INFERENCE"),
        ({"REFIND_RELEVANCE_CUTOFF": "nan"}, "REFIND_RELEVANCE_CUTOFF"),  # every float setting is finite
        ({"REFIND_CLICK_MEMORY_MAX_SHIFT": "2.5"}, "REFIND_CLICK_MEMORY_MAX_SHIFT"),
        ({"REFIND_EMBED_NICE": "20"}, "REFIND_EMBED_NICE"),  # Linux nice values end at 19
    ],
)
def test_bad_environment_stops_startup(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = _load_settings({"REFIND_DATA_DIR": str(tmp_path), **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_the_storage_setting_reaches_media_and_artifacts(tmp_path: Path) -> None:
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup(); "
            "from django.core.files.storage import storages; "
            "print(storages['default'].path('a'), storages['artifacts'].path('b'))")
    env = {"PATH": "/usr/bin:/bin", "REFIND_DATA_DIR": str(tmp_path / "data"),
           "REFIND_STORAGE_BACKEND": "django.core.files.storage.FileSystemStorage",
           "REFIND_STORAGE_OPTIONS": f'{{"location": "{tmp_path / "shared"}"}}'}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == [str(tmp_path / "shared" / "a"), str(tmp_path / "shared" / "b")], result.stderr
