"""Leak-free evaluation (held-out images never indexed, searched as uploads) and the guard's paired evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.test import Client

from retrieval.heads import PCAHead, save_head
from tests.webapp.learning_support import _Request
from webapp.feedback import impressions
from webapp.feedback.triplets import record_judgement
from webapp.gallery.jobs import import_tree
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning.evaluation import evaluate_version, guard_queries, heldout_clicks
from webapp.learning.promotion import promote_or_reject
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


def _pca_version(dims: int, data_dir: Path) -> ModelVersion:
    _, features = runtime.feature_store().all()
    save_head(PCAHead.fit(np.asarray(features), dims), data_dir / "models" / f"pca{dims}.npz")
    active = ModelVersion.active()
    return ModelVersion.objects.create(backbone=active.backbone, head_kind="pca", head_file=f"models/pca{dims}.npz",
                                       parent=active)


def test_held_out_images_leave_the_index_and_are_never_shown(split_demo) -> None:
    heldout = set(Image.objects.filter(split=Image.Split.HELDOUT).values_list("id", flat=True))
    assert len(heldout) == 12 and IndexVersion.objects.get(is_active=True).ntotal == 24
    for query in Image.objects.filter(split=Image.Split.FEEDBACK):
        assert not {hit.image.pk for hit in service.search_similar(query, k=50).hits} & heldout
    query = Image.objects.filter(split=Image.Split.HELDOUT).first()
    shown = [hit.image.pk for hit in service.search_similar(query, k=50).hits]  # searched as an upload is
    assert len(shown) == 24 and query.pk not in shown


def test_the_labelled_report_searches_held_out_queries_against_the_feedback_half(split_demo) -> None:
    report = evaluate_version(ModelVersion.active())["labelled"]
    assert report["protocol"] == "held-out queries, not in the index"
    assert (report["queries"], report["gallery"]) == (12, 24)
    store = runtime.feature_store()
    rows = list(Image.objects.exclude(split="").values_list("id", "label", "split"))
    queries = [(i, label) for i, label, split in rows if split == Image.Split.HELDOUT]
    reference = [(i, label) for i, label, split in rows if split == Image.Split.FEEDBACK]
    q = store.get(np.array([i for i, _ in queries]))
    r = store.get(np.array([i for i, _ in reference]))
    q, r = q / np.linalg.norm(q, axis=1, keepdims=True), r / np.linalg.norm(r, axis=1, keepdims=True)
    nearest = (q @ r.T).argmax(axis=1)
    by_hand = np.mean([reference[n][1] == label for n, (_, label) in zip(nearest, queries, strict=True)])
    assert report["recall@1"] == pytest.approx(by_hand)


def test_the_guard_promotes_a_better_candidate_with_its_paired_evidence_on_the_dashboard(
        split_demo, data_dir, eager_tasks, settings, admin_client: Client) -> None:
    settings.GUARD_MIN_DISCORDANT = 3  # the demo gallery has 12 queries
    worse = _pca_version(2, data_dir)
    settings.PROMOTION_GUARD = "off"
    assert promote_or_reject(worse)
    settings.PROMOTION_GUARD = "paired"
    better = ModelVersion.objects.create(backbone=worse.backbone, head_kind="identity", parent=worse)
    assert promote_or_reject(better) is True
    better.refresh_from_db()
    evidence = better.metrics["promotion_evidence"]
    assert evidence["queries"] == 12 and evidence["kind"] == "labelled" and evidence["active_version"] == worse.pk
    assert evidence["better"] >= 3 and evidence["difference"] > 0 and evidence["low"] > -0.5
    assert better.promotion_note.startswith("Promoted") and "paired bootstrap interval" in better.promotion_note
    page = admin_client.get("/dashboard/").content.decode()
    assert f"{evidence['difference']:+.2f} pts" in page and "guard evidence" in page


def test_on_an_unlabelled_gallery_one_held_out_click_is_not_evidence(db, data_dir, demo_folder, eager_tasks,
                                                                    settings) -> None:
    import_tree(demo_folder, labels_from_dirs=False)
    settings.LEARNING_HELDOUT_IMPRESSION_EVERY = 5
    request = _Request()
    for query in Image.objects.order_by("id")[:5]:
        impression = impressions.record(request, service.search_similar(query, k=10))
        if impression.pk % 5 == 0:
            record_judgement(impression, impression.shown[0], "click")
    assert len(heldout_clicks()) == 1 and guard_queries(ModelVersion.active().backbone).kind == "feedback"
    candidate = ModelVersion.objects.create(backbone=ModelVersion.active().backbone, head_kind="identity",
                                            parent=ModelVersion.active())
    assert promote_or_reject(candidate) is False
    candidate.refresh_from_db()
    assert candidate.promotion == "rejected" and "not enough evidence" in candidate.promotion_note
    assert candidate.metrics["promotion_evidence"]["queries"] == 1


def test_without_any_evaluation_set_nothing_is_promoted(db, data_dir, demo_folder, eager_tasks) -> None:
    import_tree(demo_folder, labels_from_dirs=False)
    active = ModelVersion.active()
    candidate = ModelVersion.objects.create(backbone=active.backbone, head_kind="identity", parent=active)
    assert promote_or_reject(candidate) is False
    candidate.refresh_from_db()
    assert "no evaluation queries" in candidate.promotion_note
    assert ModelVersion.objects.get(is_active=True) == active


def test_the_clicks_plot_is_a_png(split_demo, admin_client: Client) -> None:
    evaluate_version(ModelVersion.active())
    response = admin_client.get("/dashboard/plots/clicks.png")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_batch_training_on_every_click_uses_components_and_clicks_without_skipped_results(
        split_demo, eager_tasks, settings) -> None:
    from tests.webapp.learning_support import give_feedback
    from webapp.feedback.models import Judgement, Triplet
    from webapp.learning.clicks import click_data
    from webapp.learning.models import TrainingRun
    from webapp.learning.runs import start_run

    settings.PROMOTION_GUARD = "off"
    give_feedback()
    data = click_data(ModelVersion.active().backbone, Triplet.objects.order_by("-id").first().pk)
    clicks = Judgement.objects.filter(kind="click").exclude(impression_id__in=[
        i for i in Judgement.objects.values_list("impression_id", flat=True) if i % 5 == 0])
    assert data.pairs == clicks.count()  # every training click, also those with nothing skipped above
    assert {tuple(p) for p in data.ids[data.triplets[:, :2]].tolist()} == set(
        clicks.values_list("impression__query_id", "image_id"))
    assert not np.isin(data.ids, list(Image.objects.filter(split="heldout").values_list("id", flat=True))).any()
    grouped = {}
    for image_id, label in zip(data.ids.tolist(), data.labels.tolist(), strict=True):
        grouped.setdefault(label, set()).add(Image.objects.get(pk=image_id).label)
    assert all(len(names) == 1 for names in grouped.values())  # the demo clicks follow labels: pure components
    from webapp.learning.parameters import RunParameters

    run = start_run(RunParameters.of(TrainingRun.Mode.BATCH, loss="multi_similarity", epochs=2, lr=1e-3,
                                     data="clicks"))
    run.refresh_from_db()
    assert run.status == "promoted", (run.message, run.error)
    assert run.candidate.config["triplets"] == len(data.triplets)
