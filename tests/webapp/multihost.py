"""Several hosts in one test process: an object store they share (like S3) and a switch between hosts."""

from __future__ import annotations

from pathlib import Path

from django.core.files import File
from django.core.files.storage import Storage
from django.utils._os import safe_join

from retrieval.index import IndexHolder
from webapp.runtime import new_index_holder, runtime


class ObjectStorage(Storage):
    """Objects are files under `location`, but callers cannot see that: `path()` is not supported.

    `_save` writes straight to the final name (no temporary file), so a failure mid-way leaves a partial
    object — worse than S3, whose multipart uploads appear only when complete.
    """

    def __init__(self, location: str) -> None:
        self.root = Path(location)

    def _file(self, name: str) -> Path:
        return Path(safe_join(str(self.root), name))

    def _open(self, name: str, mode: str = "rb") -> File:
        return File(open(self._file(name), mode))

    def _save(self, name: str, content) -> str:
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            for chunk in content.chunks():
                handle.write(chunk)
        return name

    def exists(self, name: str) -> bool:
        return self._file(name).exists()

    def delete(self, name: str) -> None:
        self._file(name).unlink(missing_ok=True)

    def size(self, name: str) -> int:
        return self._file(name).stat().st_size

    def url(self, name: str) -> str:
        return f"https://objects.example/{name}"


_processes: dict[str, IndexHolder] = {}


def become_host(settings, monkeypatch, root: Path) -> None:
    """From now on this test plays the process of a host whose local disk is `root`: its own feature
    store, artifact cache and loaded index (kept while it plays another host); the database and the
    storage are shared."""
    settings.DATA_DIR = root
    settings.FEATURES_DIR = root / "features"
    settings.CACHE_DIR = root / "cache"
    runtime.reset()
    monkeypatch.setattr(runtime, "index_holder", _processes.setdefault(str(root), new_index_holder()))


def files_under(root: Path) -> set[str]:
    """Relative names of every file below `root` (none when it does not exist)."""
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.exists() else set()
