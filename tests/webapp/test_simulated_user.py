"""simulate_feedback acts like a person over real HTTP against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from webapp.feedback.models import EvaluationSplit, Judgement, Triplet
from webapp.feedback.simulated_user import SimulatedUser
from webapp.feedback.splits import split_gallery
from webapp.feedback.triplets import derive_pending
from webapp.gallery.jobs import import_tree
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def split_demo(demo_folder: Path) -> None:
    import_tree(demo_folder, labels_from_dirs=True)
    split_gallery(seed=0)


def test_split_is_per_label_seeded_and_stored(split_demo) -> None:
    split = EvaluationSplit.objects.get()
    assert (split.feedback_count, split.heldout_count) == (24, 12)  # 2 + 1 of each label's 3
    for label in set(Image.objects.values_list("label", flat=True)):
        halves = sorted(Image.objects.filter(label=label).values_list("split", flat=True))
        assert halves == ["feedback", "feedback", "heldout"]
    before = dict(Image.objects.values_list("id", "split"))
    split_gallery(seed=0)
    assert dict(Image.objects.values_list("id", "split")) == before


def test_simulated_user_clicks_same_label_results_over_http(split_demo, live_server, capsys) -> None:
    call_command("simulate_feedback", queries=6, clicks_per_query=1, noise=0.0, seed=1, base_url=live_server.url)
    out = capsys.readouterr().out
    judgements = list(Judgement.objects.select_related("impression__query", "image"))
    # each feedback query has one other image of its label in the index (the held-out third is kept out of it)
    assert len(judgements) == 6
    for judgement in judgements:
        assert judgement.kind == "click"
        assert judgement.image.label == judgement.impression.query.label
        assert judgement.impression.query.split == "feedback"
    assert "6 queries, 6 clicks (0 on a wrong label)" in out
    derive_pending()  # what the worker does after each click
    skipped_above = sum(len([i for i in j.impression.shown[: j.rank - 1]
                             if not j.impression.judgements.filter(image_id=i, id__lt=j.id).exists()])
                        for j in judgements)
    assert Triplet.objects.filter(source="click").count() == skipped_above


def test_noise_clicks_wrong_labels_and_the_run_is_deterministic(split_demo, live_server) -> None:
    first = SimulatedUser(live_server.url, seed=7).run(queries=4, clicks_per_query=1, noise=1.0)
    second = SimulatedUser(live_server.url, seed=7).run(queries=4, clicks_per_query=1, noise=1.0)
    assert first.wrong_clicks == first.clicks == 4
    assert first.clicked == second.clicked
    for judgement in Judgement.objects.select_related("impression__query", "image"):
        assert judgement.image.label != judgement.impression.query.label


def test_without_a_split_the_command_says_what_to_do(demo_folder: Path, live_server) -> None:
    import_tree(demo_folder, labels_from_dirs=True)
    with pytest.raises(Exception, match="split_gallery"):
        call_command("simulate_feedback", queries=1, base_url=live_server.url)
