"""Staff uploads: files and zip/tar archives staged in the media storage for an import job.

Every file (or archive member with an image extension) is copied to ``imports/<token>/`` in the media
storage, where any worker can read it, and imported by an upload job (webapp/gallery/jobs.py) with the
command's validation and de-duplication; the staged copies are deleted when the job ends. Archive members
that are not regular files (links, devices) or exceed REFIND_MAX_UPLOAD_BYTES are refused by name here;
members without an image extension are ignored, as the folder import ignores such files.
"""

from __future__ import annotations

import secrets
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage

from webapp.gallery import jobs
from webapp.gallery.importer import IMAGE_EXTENSIONS
from webapp.gallery.models import ImportJob

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_ARCHIVE_MEMBERS = 200_000


class UploadRejected(ValueError):
    """The upload as a whole is unusable (e.g. a damaged archive); nothing was staged."""


def is_archive(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(".zip") or lower.endswith(TAR_SUFFIXES)


def start_upload_import(files: Iterable, *, label: str = "", labels_from_dirs: bool = False,
                        paths: list[str] = (), user=None) -> ImportJob:
    """Stage uploaded files (Django UploadedFile objects; `paths`: their relative paths in an uploaded folder)
    and send an import job for them."""
    prefix = f"imports/{secrets.token_hex(8)}"
    entries: list[list[str]] = []
    rejected: list[tuple[str, str]] = []
    try:
        _stage(files, list(paths), prefix, label, labels_from_dirs, entries, rejected)
    except UploadRejected:
        for staged, _, _ in entries:
            default_storage.delete(staged)
        raise
    job = jobs.create_job(ImportJob.Source.UPLOAD, prefix, entries, user=user, rejected=rejected,
                          labels_from_dirs=labels_from_dirs)
    jobs.send_chunks(job)
    return job


def _stage(files: Iterable, paths: list[str], prefix: str, label: str, labels_from_dirs: bool,
           entries: list[list[str]], rejected: list[tuple[str, str]]) -> None:
    for number, upload in enumerate(files):
        if is_archive(upload.name):
            members = _archive_members(upload)
        else:
            name = paths[number] if number < len(paths) else upload.name
            members = iter([(name, upload.size, lambda upload=upload: upload)])
        for name, size, open_member in members:
            if size is None:
                rejected.append((name, "not a regular file"))
            elif size > settings.MAX_UPLOAD_BYTES:
                rejected.append((name, f"larger than the upload limit of {settings.MAX_UPLOAD_BYTES} bytes"))
            else:
                staged = default_storage.save(f"{prefix}/{len(entries):07d}{PurePosixPath(name).suffix.lower()[:8]}",
                                              _as_file(open_member()))
                entries.append([staged, label or _dir_label(name, labels_from_dirs), PurePosixPath(name).name])


def _as_file(handle: IO[bytes] | File) -> File:
    if isinstance(handle, File):
        handle.seek(0)
        return handle
    return ContentFile(handle.read())


def _dir_label(name: str, labels_from_dirs: bool) -> str:
    parent = str(PurePosixPath(name).parent)
    return parent if labels_from_dirs and parent != "." else ""


def _archive_members(upload) -> Iterator[tuple[str, int | None, callable]]:
    """(name, size or None when not a regular file, opener) of the image members of a zip or tar upload."""
    upload.seek(0)
    try:
        if upload.name.lower().endswith(".zip"):
            archive = zipfile.ZipFile(upload)
            infos = archive.infolist()[:MAX_ARCHIVE_MEMBERS]
            for info in infos:
                if info.is_dir() or not _image_name(info.filename):
                    continue
                regular = (info.external_attr >> 28) in (0, 0o10)  # no unix mode, or S_IFREG
                yield info.filename, info.file_size if regular else None, lambda info=info: archive.open(info)
        else:
            archive = tarfile.open(fileobj=upload, mode="r:*")
            for count, info in enumerate(archive):
                if count >= MAX_ARCHIVE_MEMBERS:
                    break
                if info.isdir() or not _image_name(info.name):
                    continue
                yield info.name, info.size if info.isfile() else None, lambda info=info: archive.extractfile(info)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise UploadRejected(f"{upload.name}: not a readable archive ({exc})") from exc


def _image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS
