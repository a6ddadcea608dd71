"""Issue 14 item 4: the dashboard's plots have whole-number version ticks and an α axis that cannot exaggerate."""

from __future__ import annotations

import pytest
from matplotlib import pyplot as plt

from webapp.gallery.models import ModelVersion
from webapp.learning import plots
from webapp.learning.models import AlphaSnapshot

pytestmark = pytest.mark.django_db


def test_recall_plot_ticks_are_whole_versions() -> None:
    for recall in (0.5, 0.6, 0.62):
        ModelVersion.objects.create(backbone="b", head_kind="identity",
                                    metrics={"labelled": {"recall@1": recall}})
    figure = plots.recall_figure()
    ticks = figure.axes[0].get_xticks()
    plt.close(figure)
    assert len(ticks) and all(float(tick).is_integer() for tick in ticks)


def test_alpha_axis_spans_the_weights_range_not_a_tiny_wobble() -> None:
    for seen, alpha in ((16, [0.4999, 0.5001]), (32, [0.5001, 0.4999])):
        AlphaSnapshot.objects.create(triplets_seen=seen, alpha=alpha)
    figure = plots.alpha_figure()
    low, high = figure.axes[0].get_ylim()
    ticks = figure.axes[0].get_xticks()
    plt.close(figure)
    assert (low, high) == (0, 1)
    assert all(float(tick).is_integer() for tick in ticks)
