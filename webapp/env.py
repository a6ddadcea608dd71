"""Strict parsing of settings from environment variables: a bad value raises ImproperlyConfigured."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage
from django.utils.module_loading import import_string

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name}={number} is outside the allowed range [{minimum}, {maximum}].")
    return number


def env_float(name: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite number.")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} must be at most {maximum}.")
    return number


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {sorted(choices)}.")
    return value


def env_list(name: str, default: list[str], choices: set[str] | None = None) -> list[str]:
    """Comma-separated items; with `choices`, every item must be one of them and at least one is needed."""
    value = env_str(name)
    if value is None:
        return default
    items = [item.strip() for item in value.split(",") if item.strip()]
    if choices is not None:
        unknown = sorted(set(items) - choices)
        if unknown or not items:
            raise ImproperlyConfigured(f"{name}={value!r}: give one or more of {sorted(choices)}, comma-separated.")
    return items


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses or networks (``10.0.0.5, 172.16.0.0/12``); anything else is an error."""
    value = env_str(name)
    if value is None:
        return []
    networks = []
    for item in (part.strip() for part in value.split(",")):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or network (e.g. 10.0.0.5 or 172.16.0.0/12)."
            ) from None
    return networks


def parse_database_url(url: str, base_dir: Path) -> dict:
    """``sqlite:///relative/or//absolute/path`` or ``postgres://user:pass@host:port/name``."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if not path or path == "/":
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file.")
        file = Path(path[1:])  # sqlite:///rel/path is relative, sqlite:////abs/path absolute
        file = file if file.is_absolute() else base_dir / file
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(file),
            # IMMEDIATE: a transaction takes the write lock when it begins, so concurrent writers wait for it
            # (up to `timeout` seconds). A DEFERRED one that reads, then writes, fails at once with "database is
            # locked" when another writer got there first (SQLite cannot wait: its snapshot is stale).
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL;"},
            # A file, not shared-cache memory, so that tests with threads lock like production does.
            "TEST": {"NAME": str(file.with_name(f"test-{file.stem}.sqlite3"))},
        }
    if parsed.scheme in {"postgres", "postgresql"}:
        name = parsed.path.lstrip("/")
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database.")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(name),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {parsed.scheme!r}; use sqlite:/// or postgres://."
    )


def env_rate(name: str, default: str) -> str:
    """A rate like ``120/min`` (per s, sec, m, min, h, hour, d or day), as DRF's throttles take it."""
    value = env_str(name, default)
    number, _, period = value.partition("/")
    if not number.isdigit() or period not in {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 120/min.")
    return value


_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
LOCAL_MEDIA_STORAGE = "django.core.files.storage.FileSystemStorage"
LOCAL_ARTIFACT_STORAGE = "webapp.artifacts.LocalArtifactStorage"


def parse_storages(backend: str | None, options: str | None) -> dict[str, dict]:
    """STORAGES entries "default" (media) and "artifacts" (models, indexes) from
    REFIND_STORAGE_BACKEND (a dotted Storage class) and REFIND_STORAGE_OPTIONS (a JSON object)."""
    parsed: dict = {}
    if options is not None:
        try:
            parsed = json.loads(options)
        except ValueError as exc:
            raise ImproperlyConfigured(f"REFIND_STORAGE_OPTIONS is not valid JSON: {exc}.") from None
        if not isinstance(parsed, dict):
            raise ImproperlyConfigured("REFIND_STORAGE_OPTIONS must be a JSON object, e.g. {\"bucket_name\": \"x\"}.")
    if backend is None:
        if parsed:
            raise ImproperlyConfigured("REFIND_STORAGE_OPTIONS needs REFIND_STORAGE_BACKEND (the class it configures).")
        return {"default": {"BACKEND": LOCAL_MEDIA_STORAGE}, "artifacts": {"BACKEND": LOCAL_ARTIFACT_STORAGE}}
    if not _DOTTED.match(backend):
        raise ImproperlyConfigured(f"REFIND_STORAGE_BACKEND={backend!r} is not a dotted class path.")
    try:
        storage_class = import_string(backend)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"REFIND_STORAGE_BACKEND={backend!r} cannot be imported ({exc}); for S3 install django-storages[s3]."
        ) from None
    if not (isinstance(storage_class, type) and issubclass(storage_class, Storage)):
        raise ImproperlyConfigured(f"REFIND_STORAGE_BACKEND={backend!r} is not a Django Storage class.")
    entry = {"BACKEND": backend, "OPTIONS": parsed}
    return {"default": entry, "artifacts": dict(entry)}
