"""Retention: storage stays flat under many online updates once pruned; kept versions still roll back."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from django.core.management import call_command

from webapp import artifacts
from webapp.feedback.models import ConsumerCursor, Triplet
from webapp.gallery import indexing
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.gallery.retention import prune
from webapp.learning.online import CURSOR, online_update
from webapp.learning.promotion import VersionUnavailable, rollback
from webapp.search import service

pytestmark = pytest.mark.django_db
UPDATES = 200


def _storage_bytes(root: Path) -> int:
    return sum(p.stat().st_size for folder in ("models", "indexes") for p in (root / folder).rglob("*") if p.is_file())


def _label_triplets():
    """Endless distinct (anchor, positive, negative) triplets that follow the demo labels."""
    by_label: dict[str, list[int]] = {}
    for pk, label in Image.objects.filter(role=Image.Role.GALLERY).values_list("id", "label"):
        by_label.setdefault(label, []).append(pk)
    labels = sorted(by_label)
    for a_label, n_label in itertools.permutations(labels, 2):
        for anchor, positive in itertools.permutations(by_label[a_label], 2):
            for negative in by_label[n_label]:
                yield anchor, positive, negative


def _online_update(triplets) -> ModelVersion:
    anchor, positive, negative = next(triplets)
    Triplet.objects.create(anchor_id=anchor, positive_id=positive, negative_id=negative, source="label")
    version = online_update(lambda fraction, message: None)
    indexing.build_and_activate(version)  # what the promotion guard does for a promoted candidate
    ModelVersion.objects.filter(pk=version.pk).update(promotion=ModelVersion.Promotion.PROMOTED)
    return version


def test_storage_is_flat_after_pruning_200_online_updates_and_kept_versions_roll_back(gallery, settings,
                                                                                      data_dir: Path) -> None:
    settings.ONLINE_TRIPLET_SOURCES = ["label"]
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    settings.KEEP_ROLLBACK_VERSIONS = 3
    triplets = _label_triplets()
    after_pruning = []
    for update in range(1, UPDATES + 1):
        _online_update(triplets)
        if update % 25 == 0:
            grown = _storage_bytes(data_dir)
            report = prune(dry_run=False, grace_seconds=0)
            after_pruning.append(_storage_bytes(data_dir))
            assert after_pruning[-1] < grown and report.files
    assert ModelVersion.objects.filter(head_kind="oahu").count() == UPDATES
    # flat: the storage after each pruning stays within 10% of the first one, although 200 versions were made
    assert max(after_pruning) <= 1.1 * after_pruning[0], after_pruning
    kept = list(ModelVersion.objects.filter(pruned_at__isnull=True).order_by("-id"))
    assert len(kept) == 3 and kept[0].is_active
    cursor = ConsumerCursor.objects.get(name=CURSOR)
    assert artifacts.exists(cursor.artifact)  # the learner's current state is never pruned
    query = Image.objects.get(original_name="gravel-000.jpg")
    for version in reversed(kept):
        assert rollback(version).model_version_id == version.pk
        assert service.search_similar(query, k=5).model_version.pk == version.pk
    pruned = ModelVersion.objects.filter(pruned_at__isnull=False).first()
    with pytest.raises(VersionUnavailable):
        rollback(pruned)
    assert not IndexVersion.objects.filter(model_version=pruned).exists()
    _online_update(triplets)  # the learner goes on from its kept state
    assert ConsumerCursor.objects.get(name=CURSOR).watermark == Triplet.objects.latest("id").pk


def test_the_command_is_a_dry_run_by_default(gallery, settings, data_dir: Path, capsys) -> None:
    settings.ONLINE_TRIPLET_SOURCES = ["label"]
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    triplets = _label_triplets()
    for _ in range(4):
        _online_update(triplets)
    before = _storage_bytes(data_dir)
    call_command("prune_artifacts", "--keep", "1", "--grace-seconds", "0")
    out = capsys.readouterr().out
    assert "Would delete" in out and "Dry run" in out
    assert _storage_bytes(data_dir) == before and not ModelVersion.objects.filter(pruned_at__isnull=False).exists()
    call_command("prune_artifacts", "--keep", "1", "--grace-seconds", "0", "--delete")
    assert _storage_bytes(data_dir) < before
    assert ModelVersion.objects.filter(pruned_at__isnull=True).count() == 1  # the active one


def test_young_unreferenced_files_survive_the_grace_period(gallery, data_dir: Path) -> None:
    name = artifacts.publish(artifacts.new_name("models", "in-flight", ".pt"), lambda p: Path(p).write_bytes(b"x"))
    prune(dry_run=False)  # default grace: an artifact published before its row is written
    assert artifacts.exists(name)
    prune(dry_run=False, grace_seconds=0)
    assert not artifacts.exists(name)
