"""Retention: delete model and index artifacts that nothing will ever serve or load again.

Kept model versions: the active one, the REFIND_KEEP_ROLLBACK_VERSIONS most recent rollback targets
(versions that were promoted or served an index), and candidates of runs still queued or running.
Every other version is *pruned*: its head file and index files are deleted and ``pruned_at`` is set
(the row stays: impressions and reports point to it; rollback to it is refused). Of a kept version only
its newest index is kept (rollback re-activates the newest one). Then every file under ``models/`` and
``indexes/`` of the artifact storage that no row or learner cursor names is deleted, once older than
`grace_seconds` (an artifact is published before the row that names it is written). This host's cached
copies of deleted artifacts and the local feature folders of pruned tuned backbones go too.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webapp import artifacts
from webapp.gallery.models import IndexVersion, ModelVersion

logger = logging.getLogger(__name__)
FOLDERS = ("models", "indexes")
DEFAULT_GRACE_SECONDS = 3600
_STAMP = re.compile(r"-(\d{8}T\d{6})-[0-9a-f]+\.")


@dataclass
class PruneReport:
    dry_run: bool
    versions: list[int] = field(default_factory=list)  # model versions pruned
    indexes: list[int] = field(default_factory=list)  # index rows deleted
    files: list[str] = field(default_factory=list)  # artifact names deleted
    bytes: int = 0
    feature_folders: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "versions": self.versions, "indexes": self.indexes,
                "files": len(self.files), "bytes": self.bytes, "feature_folders": self.feature_folders}

    def summary(self) -> str:
        verb = "Would delete" if self.dry_run else "Deleted"
        return (f"{verb} {len(self.files)} artifact files ({self.bytes / 1e6:.1f} MB), {len(self.indexes)} index "
                f"versions and the artifacts of {len(self.versions)} model versions; "
                f"{len(self.feature_folders)} local feature folders.")


def kept_versions(keep: int | None = None) -> set[int]:
    """Ids of the model versions whose artifacts stay."""
    from webapp.learning.models import TrainingRun

    keep = keep or settings.KEEP_ROLLBACK_VERSIONS
    targets = (ModelVersion.objects.filter(pruned_at__isnull=True)
               .filter(Q(promotion=ModelVersion.Promotion.PROMOTED) | Q(indexes__isnull=False))
               .distinct().order_by("-id").values_list("id", flat=True)[:keep])
    in_flight = TrainingRun.objects.exclude(status__in=TrainingRun.FINISHED).exclude(candidate=None)
    return ({*targets, *ModelVersion.objects.filter(is_active=True).values_list("id", flat=True),
             *in_flight.values_list("candidate_id", flat=True),
             *IndexVersion.objects.filter(is_active=True).values_list("model_version_id", flat=True)})


def referenced_names() -> set[str]:
    """Artifact names some row or cursor still points to."""
    from webapp.feedback.models import ConsumerCursor

    live = ModelVersion.objects.filter(pruned_at__isnull=True)
    names = set(live.exclude(head_file="").values_list("head_file", flat=True))
    names |= {backbone.partition("@")[2] for backbone in live.values_list("backbone", flat=True) if "@" in backbone}
    names |= set(IndexVersion.objects.values_list("path", flat=True))
    names |= set(ConsumerCursor.objects.exclude(artifact="").values_list("artifact", flat=True))
    return names


def prune(dry_run: bool = True, keep: int | None = None, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> PruneReport:
    report = PruneReport(dry_run=dry_run)
    kept = kept_versions(keep)
    doomed = ModelVersion.objects.filter(pruned_at__isnull=True).exclude(pk__in=kept)
    report.versions = list(doomed.values_list("id", flat=True))
    old_indexes = IndexVersion.objects.filter(is_active=False).filter(
        Q(model_version_id__in=report.versions) | ~Q(pk__in=_newest_index_per_version(kept)))
    report.indexes = list(old_indexes.values_list("id", flat=True))
    with transaction.atomic():  # a dry run makes the row changes, reads what stays referenced, rolls back
        old_indexes.delete()
        doomed.update(pruned_at=timezone.now())
        referenced = referenced_names()
        transaction.set_rollback(dry_run)
    store = artifacts.storage()
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    for name in _stored_names(store):
        if name in referenced or _created(store, name) > cutoff:
            continue
        report.files.append(name)
        report.bytes += _size(store, name)
        if not dry_run:
            store.delete(name)
            _drop_cached(name)
    report.feature_folders = _prune_feature_folders(dry_run)
    logger.info("prune_artifacts: %s", report.summary())
    return report


def _newest_index_per_version(versions: set[int]) -> list[int]:
    newest: dict[int, int] = {}
    for pk, version in IndexVersion.objects.filter(model_version_id__in=versions).values_list("id", "model_version_id"):
        newest[version] = max(pk, newest.get(version, 0))
    return list(newest.values())


def _stored_names(store) -> list[str]:
    names = []
    for folder in FOLDERS:
        try:
            _, files = store.listdir(folder)
        except (FileNotFoundError, NotImplementedError):
            continue
        names.extend(f"{folder}/{name}" for name in files if not name.endswith(".part"))
    return sorted(names)


def _created(store, name: str) -> datetime:
    """When the artifact was published: the UTC stamp in its name (artifacts.new_name), else the storage's time."""
    match = _STAMP.search(name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    moment = store.get_modified_time(name)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _size(store, name: str) -> int:
    try:
        return store.size(name)
    except (OSError, NotImplementedError):
        return 0


def _drop_cached(name: str) -> None:
    cached = Path(settings.CACHE_DIR) / name
    cached.unlink(missing_ok=True)


def _prune_feature_folders(dry_run: bool) -> list[str]:
    """This host's feature folders of tuned backbones no live model version uses."""
    root = Path(settings.FEATURES_DIR)
    live = {re.sub(r"[^A-Za-z0-9_.-]", "_", b)
            for b in ModelVersion.objects.filter(pruned_at__isnull=True).values_list("backbone", flat=True)}
    live.add(re.sub(r"[^A-Za-z0-9_.-]", "_", settings.BACKBONE))
    gone = [folder for folder in sorted(root.iterdir()) if folder.is_dir() and "@" in _backbone_of(folder)
            and folder.name not in live] if root.is_dir() else []
    if not dry_run:
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
    return [folder.name for folder in gone]


def _backbone_of(folder: Path) -> str:
    meta = folder / "meta.json"
    try:
        return json.loads(meta.read_text()).get("backbone", "")
    except (OSError, ValueError):
        return ""
