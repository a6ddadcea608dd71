"""Dashboard plots as PNG bytes: Recall@1 over model versions and against clicks, OAHU's α per depth."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from webapp.gallery.models import ModelVersion  # noqa: E402
from webapp.learning.models import AlphaSnapshot  # noqa: E402


def _png(figure) -> bytes:
    out = io.BytesIO()
    figure.tight_layout()
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return out.getvalue()


def recall_plot() -> bytes:
    return _png(recall_figure())


def recall_figure():
    figure, axes = plt.subplots(figsize=(6, 3))
    points = []
    for version in ModelVersion.objects.order_by("id"):
        for kind, marker in (("labelled", "o"), ("feedback", "s")):
            report = (version.metrics or {}).get(kind)
            if report:
                points.append((version.pk, report["recall@1"] * 100, kind, marker, version.promotion))
    for kind, marker in (("labelled", "o"), ("feedback", "s")):
        mine = [p for p in points if p[2] == kind]
        if mine:
            axes.plot([p[0] for p in mine], [p[1] for p in mine], marker=marker, label=f"Recall@1 ({kind})")
            rejected = [p for p in mine if p[4] == "rejected"]
            axes.scatter([p[0] for p in rejected], [p[1] for p in rejected], color="red", zorder=3,
                         label="rejected" if kind == "labelled" else None)
    axes.set_xlabel("model version")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # versions are whole numbers
    axes.set_ylabel("Recall@1 (%)")
    axes.grid(alpha=0.3)
    if points:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no evaluated versions yet", ha="center", va="center", transform=axes.transAxes)
    return figure


def alpha_plot() -> bytes:
    return _png(alpha_figure())


def alpha_figure():
    figure, axes = plt.subplots(figsize=(6, 3))
    snapshots = list(AlphaSnapshot.objects.order_by("triplets_seen", "id"))
    if snapshots:
        xs = [s.triplets_seen for s in snapshots]
        for depth in range(len(snapshots[-1].alpha)):
            axes.plot(xs, [s.alpha[depth] if depth < len(s.alpha) else None for s in snapshots],
                      marker=".", label=f"depth {depth}")
        axes.legend(fontsize=8, ncol=3)
    else:
        axes.text(0.5, 0.5, "no online updates yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("triplets learned")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, 1)  # weights in [0, 1]: a tiny change must not look like a swing across the whole axis
    axes.set_ylabel("α (depth weight)")
    axes.grid(alpha=0.3)
    return figure


def clicks_plot() -> bytes:
    """Recall@1 (labelled report, else feedback) of every evaluated version against the clicks given before it
    was made; promoted versions joined by a line, rejected ones in red, the zero-click version dashed."""
    from bisect import bisect_right

    from webapp.feedback.models import Judgement

    times = sorted(Judgement.objects.exclude(kind=Judgement.Kind.DISSIMILAR).values_list("created_at", flat=True))
    figure, axes = plt.subplots(figsize=(6, 3))
    served, rejected, zero = [], [], None
    for version in ModelVersion.objects.order_by("id"):
        report = (version.metrics or {}).get("labelled") or (version.metrics or {}).get("feedback")
        if not report:
            continue
        point = (bisect_right(times, version.created_at), report["recall@1"] * 100)
        if version.parent_id is None and zero is None:
            zero = point[1]
        (rejected if version.promotion == ModelVersion.Promotion.REJECTED else served).append(point)
    if served or rejected:
        if served:
            axes.plot(*zip(*served, strict=True), marker="o", label="served (zero-click + promoted)")
        if rejected:
            axes.scatter(*zip(*rejected, strict=True), color="red", marker="x", zorder=3, label="rejected by the guard")
        if zero is not None:
            axes.axhline(zero, color="grey", linestyle="--", linewidth=1, label="zero-click")
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no evaluated versions yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("clicks and similar-marks so far")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("Recall@1 (%)")
    axes.grid(alpha=0.3)
    return _png(figure)
