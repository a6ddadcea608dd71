"""One drawing of Recall@1 against clicks for the learning benchmarks (docs/img)."""

from __future__ import annotations

from pathlib import Path


def save_recall_against_clicks(series: dict[str, list[tuple[int, float]]], zero: float | None, path: Path,
                               title: str, xlabel: str = "clicks", ylabel: str = "Recall@1 (%)") -> None:
    """A line per learner (points sorted by clicks), the zero-click figure dashed, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.4))
    for name, points in series.items():
        if points:
            axes.plot(*zip(*sorted(points), strict=True), marker="o", label=name)
    if zero is not None:
        axes.axhline(zero, color="grey", linestyle="--", linewidth=1, label="zero-click")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
