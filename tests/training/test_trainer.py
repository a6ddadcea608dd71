"""Fine-tuning: starts from the pretrained metric, learns, resumes exactly, reports progress."""

from pathlib import Path

import numpy as np
import pytest

from tests.training.triplet_factory import triplets
from training.device import resolve_device
from training.evaluation import evaluate
from training.samplers import click_groups, drop_contradictions
from training.trainer import LinearHead, fine_tune


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(8), 12)
    centres = rng.normal(size=(8, 16))
    feats = 0.6 * centres[labels] + rng.normal(size=(len(labels), 16)) + 2.0
    return feats.astype(np.float32), labels


def test_head_starts_at_pretrained_metric() -> None:
    feats, _ = data()
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    np.testing.assert_allclose(LinearHead(16).embed(feats), x, atol=1e-6)


def test_labelled_fine_tuning_improves_recall() -> None:
    feats, labels = data()
    before = evaluate(feats / np.linalg.norm(feats, axis=1, keepdims=True), labels, include_nmi=False)
    seen = []
    result = fine_tune(
        feats,
        labels,
        loss="multi_similarity",
        steps=60,
        batch_size=32,
        lr=1e-2,
        progress=lambda step, total, loss: seen.append((step, total)),
    )
    after = evaluate(result.head.embed(feats), labels, include_nmi=False)
    assert after["recall@1"] > before["recall@1"]
    assert seen[-1] == (60, 60) and len(seen) == 60


def test_triplet_fine_tuning_with_proxy_loss_uses_click_groups() -> None:
    feats, labels = data()
    t = triplets(labels, 300)
    result = fine_tune(feats, triplets=t, loss="proxy_anchor", steps=30, batch_size=32, lr=1e-2)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])


def test_click_groups_follow_positive_pairs() -> None:
    groups = click_groups(np.array([[0, 1, 5], [1, 2, 5], [3, 4, 0]]), 6)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4] != groups[0]
    assert len({groups[5], groups[0], groups[3]}) == 3


@pytest.mark.parametrize("use_triplets", [False, True])
def test_checkpoint_resume_is_exact(tmp_path: Path, use_triplets: bool) -> None:
    feats, labels = data()
    kwargs = {"loss": "triplet", "batch_size": 32, "lr": 1e-2, "checkpoint_every": 5, "seed": 3}
    if use_triplets:
        kwargs["triplets"] = triplets(labels, 200)
    else:
        kwargs["labels"] = labels
    full = fine_tune(feats, steps=14, checkpoint_path=tmp_path / "full.pt", **kwargs)
    fine_tune(feats, steps=7, checkpoint_path=tmp_path / "part.pt", **kwargs)
    resumed = fine_tune(feats, steps=14, checkpoint_path=tmp_path / "part.pt", **kwargs)
    assert resumed.losses == pytest.approx(full.losses)
    np.testing.assert_allclose(resumed.head.embed(feats), full.head.embed(feats), atol=1e-6)


def test_seeded_runs_repeat() -> None:
    feats, labels = data()
    a = fine_tune(feats, labels, loss="contrastive", steps=8, batch_size=32, seed=1)
    b = fine_tune(feats, labels, loss="contrastive", steps=8, batch_size=32, seed=1)
    assert a.losses == b.losses


def test_device_auto_is_cpu_or_cuda() -> None:
    assert resolve_device("auto").type in {"cpu", "cuda"}
    assert resolve_device("cpu").type == "cpu"


def test_contradicting_feedback_is_dropped_before_pair_losses() -> None:
    rows = np.array([(0, 1, 2), (0, 2, 3), (0, 4, 5), (6, 7, 8)])  # for anchor 0, image 2 is both + and -
    np.testing.assert_array_equal(drop_contradictions(rows), [(0, 4, 5), (6, 7, 8)])
    feats, labels = data()
    noisy = np.concatenate([triplets(labels, 60), [(0, 1, 2), (0, 2, 1)]])
    result = fine_tune(feats, None, noisy, loss="multi_similarity", steps=3, batch_size=16)
    assert result.steps_done == 3
