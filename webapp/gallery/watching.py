"""Watched folders: beat rescans them, imports new files and (optionally) withdraws vanished ones.

Folders come from REFIND_WATCHED_FOLDERS (registered on each scan) or the dashboard. A scan walks the
folder, imports files whose path no gallery image came from (an import job, like any other), and — only
with `withdraw_missing`, off by default — removes gallery images that came from a path under the folder
that no longer exists. A folder that cannot be read withdraws nothing (an unmounted share is not a
deletion).
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from webapp.gallery import jobs
from webapp.gallery.importer import find_images
from webapp.gallery.models import Image, ImportJob, WatchedFolder
from webapp.gallery.removal import remove_images

logger = logging.getLogger(__name__)


def register_from_settings() -> None:
    for path in settings.WATCHED_FOLDERS:
        WatchedFolder.objects.get_or_create(
            path=str(Path(path).resolve()),
            defaults={"from_settings": True, "withdraw_missing": settings.WATCH_WITHDRAW_MISSING},
        )


def scan_all() -> list[int]:
    """Scan every enabled folder whose previous scan's job is over; returns the ids of the jobs started."""
    register_from_settings()
    started = []
    for folder in WatchedFolder.objects.filter(enabled=True):
        if folder.jobs.filter(status__in=[ImportJob.Status.RUNNING, ImportJob.Status.INDEXING]).exists():
            continue  # still importing the previous scan's files
        job = scan(folder)
        if job is not None:
            started.append(job.pk)
    return started


def scan(folder: WatchedFolder) -> ImportJob | None:
    root = Path(folder.path)
    if not root.is_dir():
        _record(folder, f"{root} is not a readable folder; nothing imported or withdrawn")
        return None
    present = [path for path, problem in find_images(root) if problem is None]
    known = set(Image.objects.filter(role=Image.Role.GALLERY, source__startswith=str(root))
                .values_list("source", flat=True))
    new = [path for path in present if str(path) not in known]
    withdrawn = 0
    if folder.withdraw_missing:
        names = {str(path) for path in present}
        gone = [pk for pk, source in Image.objects.filter(role=Image.Role.GALLERY, source__startswith=f"{root}/")
                .values_list("id", "source") if source not in names]
        withdrawn = remove_images(gone, roles=[Image.Role.GALLERY])
    job = None
    if new:
        entries = jobs.folder_entries(root, folder.labels_from_dirs, new)
        job = jobs.create_job(ImportJob.Source.WATCHED, str(root), entries,
                              labels_from_dirs=folder.labels_from_dirs, watched_folder=folder)
        jobs.send_chunks(job)
    _record(folder, f"{len(new)} new files, {withdrawn} withdrawn")
    return job


def _record(folder: WatchedFolder, message: str) -> None:
    WatchedFolder.objects.filter(pk=folder.pk).update(last_scan_at=timezone.now(), last_scan=message[:300])
    logger.info("Watched folder %s: %s", folder.path, message)
