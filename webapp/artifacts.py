"""Model and index artifacts in the configured storage, read through a per-host cache.

Writers (workers) produce an artifact locally (``.part``, fsync, rename) and publish it under a new,
immutable name; only then does the database row that makes it active get written. Readers (web
replicas, other workers) call `fetch(name)` for a local path: the storage's own file when it is a local
`FileSystemStorage` (no copy), else a copy downloaded once into ``REFIND_CACHE_DIR`` — names never
change content, so the cache is never invalidated. See docs/scaling.md.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils._os import safe_join

from retrieval.atomic import atomic_write

logger = logging.getLogger(__name__)
ALIAS = "artifacts"
CHUNK = 4 * 1024 * 1024


class ArtifactError(OSError):
    """An artifact could not be stored or fetched; nothing half-written was published."""


class LocalArtifactStorage(FileSystemStorage):
    """The default artifact storage: a folder, ``REFIND_STORAGE_DIR`` unless `location` is given.

    The folder is read from the settings on each use (tests and commands may change it)."""

    @property
    def base_location(self) -> str:
        return self._value_or_setting(self._location, str(settings.STORAGE_DIR))

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


def storage() -> Storage:
    return storages[ALIAS]


def local_root(store: Storage) -> Path | None:
    """The folder a storage keeps its files in, or None for a remote one (S3 and the like)."""
    try:
        return Path(store.path(""))
    except NotImplementedError:
        return None


def new_name(folder: str, stem: str, suffix: str) -> str:
    """A name no other artifact has or will have: ``<folder>/<stem>-<UTC time>-<random><suffix>``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{folder}/{stem}-{stamp}-{secrets.token_hex(4)}{suffix}"


def publish(name: str, write: Callable[[str], None]) -> str:
    """Write an artifact with `write(local_path)` and store it under `name`; return the stored name.

    Raises ArtifactError (e.g. disk full) with nothing left under `name` or in the cache.
    """
    store = storage()
    try:
        if store.exists(name):
            raise ArtifactError(f"Artifact {name} already exists; artifact names are never reused.")
        root = local_root(store)
        if root is not None:
            atomic_write(store.path(name), write)
            return name
        return _upload(store, name, write)
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"Could not store artifact {name}: {_reason(exc)}; nothing was published.") from exc


def _upload(store: Storage, name: str, write: Callable[[str], None]) -> str:
    """Write to a temporary file in the cache, upload it, then keep it in the cache under its name."""
    staging = _cache_dir() / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    temporary = staging / f"{secrets.token_hex(8)}-{Path(name).name}"
    try:
        atomic_write(temporary, write)
        with open(temporary, "rb") as handle:
            stored = store.save(name, File(handle, name=Path(name).name))
    except BaseException:
        temporary.unlink(missing_ok=True)
        _remove_partial(store, name)
        raise
    target = _cache_path(stored)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temporary, target)
    return stored


def _remove_partial(store: Storage, name: str) -> None:
    """A failed upload may leave a partial object (object stores usually do not); remove it."""
    try:
        if store.exists(name):
            store.delete(name)
    except Exception:  # the storage is unreachable: nothing points to the name, log and go on
        logger.warning("Could not remove the partial artifact %s after a failed upload", name, exc_info=True)


def fetch(name: str) -> Path:
    """A local path holding the artifact `name` (downloaded into this host's cache once)."""
    if not name:
        raise ArtifactError("No artifact name given.")
    store = storage()
    try:
        root = local_root(store)
        if root is not None:
            path = Path(store.path(name))
            if not path.is_file():
                raise ArtifactError(f"Artifact {name} is missing from the artifact storage.")
            return path
        cached = _cache_path(name)
        if not cached.is_file():
            _download(store, name, cached)
        return cached
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"Could not fetch artifact {name}: {_reason(exc)}") from exc


def _download(store: Storage, name: str, target: Path) -> None:
    if not store.exists(name):
        raise ArtifactError(f"Artifact {name} is missing from the artifact storage.")

    def write(part: str) -> None:
        with store.open(name, "rb") as source, open(part, "wb") as handle:
            while chunk := source.read(CHUNK):
                handle.write(chunk)

    # A unique part name: processes of this host may download the same artifact at once.
    temporary = target.with_name(f"{target.name}.{secrets.token_hex(4)}")
    atomic_write(temporary, write)
    os.replace(temporary, target)


def exists(name: str) -> bool:
    return bool(name) and storage().exists(name)


def _cache_dir() -> Path:
    return Path(settings.CACHE_DIR)


def _cache_path(name: str) -> Path:
    return Path(safe_join(str(_cache_dir()), name))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})" if exc.errno else exc.strerror
    return f"{type(exc).__name__}: {exc}"
