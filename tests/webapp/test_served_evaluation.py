"""`evaluate --served`: Recall@K of the result lists search serves for the held-out queries."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from webapp.feedback.splits import split_gallery
from webapp.gallery.models import Image, ModelVersion
from webapp.gallery.removal import remove_images
from webapp.learning.evaluation import labelled_report
from webapp.learning.served import served_report

pytestmark = pytest.mark.django_db


def test_without_augmentation_or_clicks_the_served_lists_score_as_the_version(gallery, settings) -> None:
    settings.DBA_K, settings.QUERY_EXPANSION = 0, 0
    split_gallery(seed=0)  # rebuilds the index without the held-out half, now without αDBA
    served, version = served_report(), labelled_report(ModelVersion.active())
    assert served["queries"] == version["queries"] == 12
    for k in (1, 2, 4, 8):
        assert served[f"recall@{k}"] == pytest.approx(version[f"recall@{k}"])


def test_removed_images_are_never_counted_as_right(split_demo) -> None:
    assert served_report()["recall@32"] == 1  # 24 indexed images: every list holds every image
    one_label = Image.objects.filter(role="gallery", split="feedback", label="gold-stars")
    remove_images(list(one_label.values_list("pk", flat=True)))  # that label's query has no right answer left
    assert served_report()["recall@32"] == pytest.approx(11 / 12)


def test_the_command_prints_the_served_report(split_demo, capsys) -> None:
    call_command("evaluate", "--served")
    printed = json.loads(capsys.readouterr().out)["served"]
    assert printed["queries"] == 12 and 0 <= printed["recall@1"] <= 1
