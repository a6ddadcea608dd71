"""Promotion guard, rollback, one run at a time, dead runs, and batch fine-tuning."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from retrieval.heads import PCAHead, save_head
from tests.webapp.learning_support import give_feedback
from webapp.gallery.models import IndexVersion, ModelVersion
from webapp.learning import claims
from webapp.learning.evaluation import guard_query_rows
from webapp.learning.models import TrainingLock, TrainingRun
from webapp.learning.parameters import RunParameters
from webapp.learning.promotion import promote_or_reject, rollback
from webapp.learning.runs import execute, reap_stale_runs, start_run
from webapp.runtime import runtime

pytestmark = pytest.mark.django_db


def _worse_version(data_dir: Path) -> ModelVersion:
    """A deliberately bad metric: 2 principal components of 1280."""
    _, features = runtime.feature_store().all()
    save_head(PCAHead.fit(np.asarray(features), 2), data_dir / "models" / "bad.npz")
    active = ModelVersion.active()
    return ModelVersion.objects.create(backbone=active.backbone, head_kind="pca", head_file="models/bad.npz",
                                       parent=active)


def test_the_guard_rejects_a_worse_candidate_and_keeps_serving_the_active_one(split_demo, data_dir, eager_tasks):
    active, index = ModelVersion.objects.get(is_active=True), IndexVersion.objects.get(is_active=True)
    candidate = _worse_version(data_dir)
    assert promote_or_reject(candidate) is False
    candidate.refresh_from_db()
    assert candidate.promotion == "rejected" and "Rejected" in candidate.promotion_note
    assert candidate.metrics["labelled"]["recall@1"] < active.__class__.objects.get(pk=active.pk).metrics[
        "labelled"]["recall@1"] - 0.005
    assert ModelVersion.objects.get(is_active=True) == active
    assert IndexVersion.objects.get(is_active=True) == index


def test_the_guard_queries_are_spread_over_the_whole_heldout_half() -> None:
    heldout = np.zeros(6000, dtype=bool)
    heldout[1::2] = True  # rows are in import order: the first held-out rows would be the first labels only
    rows = guard_query_rows(heldout, 500)
    assert len(rows) == 500 and len(set(rows.tolist())) == 500 and heldout[rows].all()
    assert rows.min() < 600 and rows.max() > 5400  # from the first tenth to the last
    assert np.array_equal(rows, guard_query_rows(heldout, 500))  # the same sample every time: like for like
    assert np.array_equal(guard_query_rows(heldout[:800], 500), np.flatnonzero(heldout[:800]))  # fewer: all


def test_rollback_reactivates_an_earlier_version(split_demo, data_dir, settings) -> None:
    original = ModelVersion.objects.get(is_active=True)
    settings.PROMOTION_GUARD = "off"
    candidate = _worse_version(data_dir)
    assert promote_or_reject(candidate) is True
    assert ModelVersion.objects.get(is_active=True) == candidate
    index = rollback(original)
    assert index.model_version_id == original.pk and index.is_active
    assert ModelVersion.objects.get(is_active=True) == original


def test_a_second_trigger_is_refused_while_a_run_holds_the_claim(db) -> None:
    first = start_run(RunParameters.of(TrainingRun.Mode.BATCH, loss="triplet"))  # broker not eager: stays queued
    with pytest.raises(claims.TrainingBusy, match=f"run {first.pk}"):
        start_run(RunParameters.of(TrainingRun.Mode.OAHU))
    assert TrainingRun.objects.count() == 1
    assert TrainingLock.objects.get().run == first


def test_a_run_whose_worker_died_is_failed_and_frees_the_claim(db, settings) -> None:
    silent_since = timezone.now() - timedelta(seconds=settings.LEARNING_STALE_SECONDS + 5)
    run = TrainingRun.objects.create(mode="batch", status=TrainingRun.Status.RUNNING, heartbeat_at=silent_since)
    claims.claim(run)
    assert reap_stale_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and "stopped responding" in run.message
    assert claims.holder() is None
    assert execute(run.pk) == "failed"  # a late redelivery of the killed task does nothing


@pytest.mark.parametrize("loss", ["triplet", "multi_similarity", "abtl"])
def test_batch_fine_tuning_on_feedback_produces_a_candidate(split_demo, eager_tasks, settings, loss) -> None:
    settings.PROMOTION_GUARD = "off"
    give_feedback()
    run = start_run(RunParameters.of(TrainingRun.Mode.BATCH, loss=loss, epochs=2, lr=1e-3, data="triplets"))
    run.refresh_from_db()
    assert run.status == "promoted", (run.message, run.error)
    version = run.candidate
    assert version.head_kind == "linear" and version.config["loss"] == loss and version.config["triplets"] > 0
    assert version.duration_seconds is not None and "recall@1" in version.metrics["labelled"]
    assert claims.holder() is None


def test_batch_fine_tuning_on_labels_never_uses_held_out_labels(split_demo, eager_tasks, settings) -> None:
    from webapp.learning import batch

    seen = {}
    real = batch.fine_tune

    def spy(features, labels, triplets, **kwargs):
        seen["rows"] = len(features)
        return real(features, labels, triplets, **kwargs)

    settings.PROMOTION_GUARD = "off"
    import unittest.mock

    with unittest.mock.patch.object(batch, "fine_tune", spy):
        run = start_run(RunParameters.of(TrainingRun.Mode.BATCH, loss="multi_similarity", epochs=1, data="labels"))
    run.refresh_from_db()
    assert run.status == "promoted", run.error
    assert seen["rows"] == 24  # the feedback half only (12 held-out images excluded)
