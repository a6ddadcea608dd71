"""Import jobs: an import split into chunks that any worker of the `default` queue takes.

A job is created with every file it will import (a folder walked once, the files of an upload staged in
the media storage, or a watched folder's new files), in chunks of REFIND_IMPORT_CHUNK_SIZE. Each chunk is
sent as a `webapp.gallery.tasks.import_chunk` task; a worker *claims* it with a compare-and-swap on its
row, so a chunk is worked on by one process at a time, and a chunk whose heartbeat stopped (the worker
died) can be claimed again after REFIND_IMPORT_STALE_SECONDS: beat's `import_housekeeping` re-sends it.
Work is idempotent (webapp/gallery/importer.py), so a re-run chunk only finishes what was left. Whoever
finishes the last chunk moves the job to "indexing" (compare-and-swap again) and builds the index once.
`manage.py import_images` is a client: it creates the job, sends its chunks, and works on them itself
too, so it finishes with or without workers and shows the job's progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q, Sum
from django.utils import timezone

from retrieval.images import ImageRejected
from webapp import dispatch
from webapp.gallery import indexing
from webapp.gallery.importer import ImportItem, ImportReport, find_images, import_items, label_for, path_problem
from webapp.gallery.models import ImportChunk, ImportJob, ModelVersion

logger = logging.getLogger(__name__)
MAX_STORED_ERRORS = 1000  # per chunk; the counts stay exact


def create_job(
    source: str, root: str, entries: list[list[str]], *, build_index: bool = True, labels_from_dirs: bool = False,
    user=None, watched_folder=None, rejected: list[tuple[str, str]] = (),
) -> ImportJob:
    """A job over `entries` ([path or staged name, label, display name] each), chunked, not yet sent.

    `rejected`: (file, reason) refused before staging (e.g. an archive member over the size limit),
    reported with the job's other failures."""
    ModelVersion.active()  # on a new installation the model exists before workers race to create it
    job = ImportJob.objects.create(
        source=source, root=root, build_index=build_index, total=len(entries) + len(rejected),
        labels_from_dirs=labels_from_dirs, watched_folder=watched_folder,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    size = settings.IMPORT_CHUNK_SIZE
    chunks = [ImportChunk(job=job, number=n, items=entries[start : start + size])
              for n, start in enumerate(range(0, len(entries), size))]
    if rejected:
        now = timezone.now()
        chunks.append(ImportChunk(job=job, number=len(chunks), items=[], status=ImportChunk.Status.DONE,
                                  processed=len(rejected), failed=len(rejected), errors=[list(r) for r in rejected],
                                  started_at=now, finished_at=now))
    ImportChunk.objects.bulk_create(chunks)
    return job


def folder_entries(root: Path, labels_from_dirs: bool, paths: list[Path] | None = None) -> list[list[str]]:
    """Entries for the image files under `root` (or just `paths` under it)."""
    found = [path for path, _ in find_images(root)] if paths is None else paths
    return [[str(path), label_for(path, root, labels_from_dirs), path.name] for path in found]


def start_folder_import(root: Path, *, labels_from_dirs: bool = False, build_index: bool = True, user=None,
                        send: bool = True) -> ImportJob:
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder.")
    root = root.resolve()
    job = create_job(ImportJob.Source.FOLDER, str(root), folder_entries(root, labels_from_dirs),
                     build_index=build_index, labels_from_dirs=labels_from_dirs, user=user)
    if send:
        send_chunks(job)
    return job


def send_chunks(job: ImportJob, chunk_ids: list[int] | None = None) -> int:
    """Send a task per unfinished chunk; a broker outage is logged (housekeeping re-sends later)."""
    if chunk_ids is None:
        chunk_ids = list(job.chunks.exclude(status=ImportChunk.Status.DONE).values_list("id", flat=True))
    sent = 0
    for chunk_id in chunk_ids:
        if not dispatch.send(dispatch.IMPORT_CHUNK, [chunk_id]):  # logged: the chunk waits for housekeeping
            break
        sent += 1
    if not job.chunks.exclude(status=ImportChunk.Status.DONE).exists():  # nothing to import: finish now
        finish_if_complete(job.pk)
    return sent


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.IMPORT_STALE_SECONDS)


def claim(chunk_id: int) -> bool:
    """Take a pending chunk, or one whose worker stopped beating; False when someone else has it or it is done."""
    claimable = Q(status=ImportChunk.Status.PENDING) | Q(status=ImportChunk.Status.RUNNING,
                                                         heartbeat_at__lt=_stale_before())
    now = timezone.now()
    chunk = ImportChunk.objects.filter(pk=chunk_id).filter(claimable).first()
    if chunk is None:
        return False
    return ImportChunk.objects.filter(pk=chunk_id, status=chunk.status, heartbeat_at=chunk.heartbeat_at).update(
        status=ImportChunk.Status.RUNNING, heartbeat_at=now, attempts=chunk.attempts + 1,
        started_at=chunk.started_at or now,
    ) == 1


def run_chunk(chunk_id: int) -> str:
    """Claim and import one chunk; the last chunk of a job builds its index. Returns what happened."""
    if not claim(chunk_id):
        return "not claimed"
    chunk = ImportChunk.objects.select_related("job").get(pk=chunk_id)
    report = ImportReport()
    processed = 0

    def beat(n: int) -> None:
        nonlocal processed
        processed += n
        ImportChunk.objects.filter(pk=chunk_id).update(
            heartbeat_at=timezone.now(), processed=processed, imported=report.imported,
            duplicates=report.skipped, failed=len(report.failed),
        )

    import_items([_item(chunk.job, entry) for entry in chunk.items], report, progress=beat)
    ImportChunk.objects.filter(pk=chunk_id).update(
        status=ImportChunk.Status.DONE, finished_at=timezone.now(), heartbeat_at=timezone.now(),
        processed=len(chunk.items), imported=report.imported, duplicates=report.skipped,
        failed=len(report.failed), errors=[list(e) for e in report.failed[:MAX_STORED_ERRORS]],
    )
    finish_if_complete(chunk.job_id)
    return "done"


def _item(job: ImportJob, entry: list[str]) -> ImportItem:
    name, label, display = entry
    if job.source == ImportJob.Source.UPLOAD:
        return ImportItem(display, lambda: _read_staged(name), label=label)
    path, root = Path(name), Path(job.root)

    def read() -> bytes:
        problem = path_problem(path, root)  # checked again when read: the tree may have changed
        if problem:
            raise ImageRejected(problem)  # refused, not unreadable: the message is the reason itself
        return path.read_bytes()

    return ImportItem(str(path), read, label=label, source=str(path))


def _read_staged(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def finish_if_complete(job_id: int) -> bool:
    """When every chunk is done: move the job to indexing (one process wins), build the index once, finish."""
    if ImportChunk.objects.filter(job_id=job_id).exclude(status=ImportChunk.Status.DONE).exists():
        return False
    if not ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).update(
            status=ImportJob.Status.INDEXING, message="building the index"):
        return False
    job = ImportJob.objects.get(pk=job_id)
    index_version = None
    try:
        totals = job.chunks.aggregate(imported=Sum("imported"))
        if job.build_index and ((totals["imported"] or 0) or indexing.index_is_stale()):
            index_version = indexing.build_and_activate().pk
    except Exception as exc:
        logger.exception("Import %s: the index build failed", job_id)
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.FAILED, message=f"index build failed: {exc}"[:300], finished_at=timezone.now())
        raise
    finally:
        _drop_staged(job)
    ImportJob.objects.filter(pk=job_id).update(
        status=ImportJob.Status.DONE, index_version=index_version, finished_at=timezone.now(),
        message=f"index version {index_version} is active" if index_version else "no new index needed",
    )
    return True


def _drop_staged(job: ImportJob) -> None:
    """Uploaded files were copies: delete them once the job is over (stored images have their own copy)."""
    if job.source != ImportJob.Source.UPLOAD:
        return
    for chunk in job.chunks.all():
        for name, _, _ in chunk.items:
            try:
                default_storage.delete(name)
            except OSError as exc:
                logger.warning("Could not delete staged upload %s: %s", name, exc)


def resend_stalled() -> list[int]:
    """Beat: chunks nobody works on (pending, or a dead worker's) are sent again; stuck index builds retried."""
    stale = _stale_before()
    chunks = list(ImportChunk.objects.filter(job__status=ImportJob.Status.RUNNING).filter(
        Q(status=ImportChunk.Status.PENDING, job__created_at__lt=stale)
        | Q(status=ImportChunk.Status.RUNNING, heartbeat_at__lt=stale)).values_list("id", "job_id"))
    for job in ImportJob.objects.filter(pk__in={job_id for _, job_id in chunks}):
        send_chunks(job, [chunk_id for chunk_id, job_id in chunks if job_id == job.pk])
    for job_id in ImportJob.objects.filter(status=ImportJob.Status.INDEXING, updated_at__lt=stale).values_list(
            "id", flat=True):  # the process building its index died
        if ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.INDEXING).update(
                status=ImportJob.Status.RUNNING):
            finish_if_complete(job_id)
    return [chunk_id for chunk_id, _ in chunks]


def work_on(job: ImportJob, progress: Callable[[dict], None] | None = None, poll: float = 0.5) -> ImportJob:
    """Work on the job's chunks in this process too, then wait for the ones other workers hold; return it done."""
    while True:
        for chunk_id in job.chunks.filter(status=ImportChunk.Status.PENDING).values_list("id", flat=True):
            run_chunk(chunk_id)
            if progress is not None:
                progress(job_progress(job))
        job.refresh_from_db()
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            return job
        if not job.chunks.exclude(status=ImportChunk.Status.DONE).exists():
            finish_if_complete(job.pk)  # e.g. a job with no files, or a worker died between chunk and index
        elif job.chunks.filter(status=ImportChunk.Status.RUNNING, heartbeat_at__lt=_stale_before()).exists():
            for chunk_id in job.chunks.filter(status=ImportChunk.Status.RUNNING).values_list("id", flat=True):
                run_chunk(chunk_id)  # claims only the stale ones
        if progress is not None:
            progress(job_progress(job))
        time.sleep(poll)


def job_progress(job: ImportJob) -> dict:
    """Live counts, speed and time left (what the dashboard and GET /api/v1/imports/<id>/ show)."""
    job.refresh_from_db()
    sums = job.chunks.aggregate(processed=Sum("processed"), imported=Sum("imported"),
                                duplicates=Sum("duplicates"), failed=Sum("failed"))
    processed = sums["processed"] or 0
    started = job.chunks.filter(started_at__isnull=False).order_by("started_at").values_list(
        "started_at", flat=True).first()
    end = job.finished_at or timezone.now()
    elapsed = (end - started).total_seconds() if started else 0.0
    rate = processed / elapsed if elapsed > 0 and processed else None
    remaining = max(0, job.total - processed)
    errors = [e for chunk in job.chunks.exclude(errors=[]).values_list("errors", flat=True) for e in chunk]
    return {
        "id": job.pk, "status": job.status, "source": job.source, "message": job.message, "total": job.total,
        "done": processed, "imported": sums["imported"] or 0, "duplicates": sums["duplicates"] or 0,
        "failed": sums["failed"] or 0, "images_per_second": round(rate, 2) if rate else None,
        "seconds_left": round(remaining / rate, 1) if rate and job.status == ImportJob.Status.RUNNING else None,
        "index_version": job.index_version, "errors": [{"file": f, "reason": r} for f, r in errors[:200]],
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def report_of(job: ImportJob) -> ImportReport:
    """The job as the command's summary (found / imported / already present / failed)."""
    state = job_progress(job)
    errors = [tuple(e) for chunk in job.chunks.values_list("errors", flat=True) for e in chunk]
    return ImportReport(found=job.total, imported=state["imported"], skipped=state["duplicates"],
                        failed=errors, index_version=job.index_version)


def import_tree(root, *, labels_from_dirs: bool = False, build_index: bool = True,
                progress: Callable[[int], None] | None = None, send: bool = False) -> ImportReport:
    """Import a folder through a job, working on it in this process (and, with `send`, on workers too)."""
    job = start_folder_import(Path(root), labels_from_dirs=labels_from_dirs, build_index=build_index, send=send)
    done = 0

    def tick(state: dict) -> None:
        nonlocal done
        if progress is not None and state["done"] > done:
            progress(state["done"] - done)
            done = state["done"]

    return report_of(work_on(job, tick))
