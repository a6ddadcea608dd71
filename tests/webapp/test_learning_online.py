"""Online mode: feedback → OAHU update (exactly once) → a new active index → that query's results change."""

from __future__ import annotations

import numpy as np
import pytest
from django.db.models import Count

from tests.webapp.learning_support import give_feedback
from training.oahu import OAHU
from webapp import artifacts
from webapp.feedback import consumer
from webapp.feedback.models import Triplet
from webapp.feedback.splits import is_heldout_impression
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning.models import AlphaSnapshot, TrainingRun
from webapp.learning.online import CURSOR
from webapp.learning.parameters import RunParameters
from webapp.learning.runs import start_run
from webapp.search import service

pytestmark = pytest.mark.django_db


def test_an_online_run_learns_every_triplet_and_activates_a_new_index(split_demo, eager_tasks, settings) -> None:
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    settings.PROMOTION_GUARD = "off"  # this test is about the loop; the guard has its own
    query = Image.objects.filter(split=Image.Split.FEEDBACK).order_by("id").first()
    before = service.search_similar(query, k=10)
    assert give_feedback() > 0
    run = start_run(RunParameters.of(TrainingRun.Mode.OAHU))
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.PROMOTED, (run.message, run.error)
    version = run.candidate
    assert version.head_kind == "oahu" and version.is_active and version.parent_id == before.model_version.pk
    assert version.triplet_watermark == Triplet.objects.latest("id").pk
    assert consumer.open_cursor(CURSOR).watermark == version.triplet_watermark
    assert IndexVersion.objects.get(is_active=True).model_version_id == version.pk
    assert AlphaSnapshot.objects.count() == 1
    assert version.metrics["labelled"]["recall@1"] >= 0.0
    after = service.search_similar(query, k=10)
    assert after.model_version.pk == version.pk
    assert not np.allclose([h.score for h in before.hits], [h.score for h in after.hits])


def test_a_run_without_new_triplets_changes_nothing(split_demo, eager_tasks) -> None:
    active = ModelVersion.objects.get(is_active=True)
    run = start_run(RunParameters.of(TrainingRun.Mode.OAHU))
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.UNCHANGED
    assert ModelVersion.objects.get(is_active=True) == active


def test_below_the_publish_threshold_the_learner_advances_without_a_version(split_demo, eager_tasks, settings):
    settings.ONLINE_MIN_NEW_TRIPLETS = 10_000
    made = give_feedback(queries=3)
    run = start_run(RunParameters.of(TrainingRun.Mode.OAHU))
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.UNCHANGED and made > 0
    assert consumer.open_cursor(CURSOR).watermark == Triplet.objects.latest("id").pk
    assert not ModelVersion.objects.filter(head_kind="oahu").exists()


def test_the_online_learner_consumes_transitive_triplets_without_learning_from_them(split_demo, eager_tasks,
                                                                                    settings) -> None:
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    give_feedback(queries=4)
    by_source = dict(Triplet.objects.values_list("source").annotate(n=Count("id")).values_list("source", "n"))
    assert by_source.get("transitive", 0) > 0 and by_source.get("click", 0) + by_source.get("explicit", 0) > 0
    run = start_run(RunParameters.of(TrainingRun.Mode.OAHU))
    run.refresh_from_db()
    learner = OAHU.load(artifacts.fetch(consumer.open_cursor(CURSOR).artifact))
    direct = Triplet.objects.exclude(source="transitive")
    assert learner.triplets_seen == sum(1 for t in direct.select_related("judgement")
                                        if not is_heldout_impression(t.judgement.impression_id))
    assert consumer.open_cursor(CURSOR).watermark == Triplet.objects.latest("id").pk  # all consumed
