"""Celery tasks of the gallery: thin wrappers that take primary keys and call the gallery code."""

from __future__ import annotations

from celery import shared_task

from webapp.gallery import indexing, jobs, retention, watching
from webapp.gallery.models import ModelVersion


@shared_task(acks_late=True)
def rebuild_index(model_version_id: int | None = None) -> int:
    """Build and activate a new index for a model version (default: the active one); returns its id."""
    version = ModelVersion.objects.get(pk=model_version_id) if model_version_id else None
    return indexing.build_and_activate(version).pk


@shared_task
def refresh_index() -> int | None:
    """Periodic: rebuild the index if gallery images were added (e.g. an import stopped before indexing)."""
    if indexing.index_is_stale():
        return indexing.build_and_activate().pk
    return None


@shared_task(acks_late=True)
def import_chunk(chunk_id: int) -> str:
    """Import one chunk of an import job (webapp/gallery/jobs.py); the last one builds the job's index."""
    return jobs.run_chunk(chunk_id)


@shared_task
def import_housekeeping() -> dict:
    """Periodic: re-send chunks whose worker died, then rescan the watched folders."""
    return {"resent": jobs.resend_stalled(), "scanned": watching.scan_all()}


@shared_task
def prune_artifacts() -> dict:
    """Periodic: delete artifacts nothing references any more (webapp/gallery/retention.py)."""
    return retention.prune(dry_run=False).as_dict()
