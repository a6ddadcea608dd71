"""Backbone fine-tuning: learns, leaves the input model and BatchNorm statistics alone, resumes exactly."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.training.triplet_factory import triplets
from training.backbone_tuning import extract_features, fine_tune_backbone


def tiny_backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()


def toy_images(count: int = 48, classes: int = 4) -> tuple[torch.Tensor, np.ndarray]:
    """Noise images whose class sets a faint colour cast: separable, but not by the random network."""
    generator = torch.Generator().manual_seed(1)
    labels = np.arange(count) % classes
    casts = torch.randn(classes, 3, 1, 1, generator=generator) * 0.3
    images = torch.randn(count, 3, 12, 12, generator=generator) + casts[torch.as_tensor(labels)]
    return images, labels


def loader(images: torch.Tensor):
    return lambda indices, train: images[torch.as_tensor(np.asarray(indices))]


def class_separation(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean same-class cosine minus mean different-class cosine."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = x @ x.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    different = labels[:, None] != labels[None, :]
    return float(sims[same].mean() - sims[different].mean())


def test_labels_training_separates_classes_and_leaves_the_input_model_alone():
    model = tiny_backbone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = toy_images()
    start = class_separation(extract_features(model, loader(images), len(labels), device="cpu"), labels)
    result = fine_tune_backbone(model, loader(images), len(labels), labels, loss="multi_similarity",
                                steps=60, batch_size=16, lr=3e-3, device="cpu")
    after = class_separation(extract_features(result.model, loader(images), len(labels), device="cpu"), labels)
    assert after > start + 0.1
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    tuned_bn = result.model[1]
    assert torch.equal(tuned_bn.running_mean, before["1.running_mean"])  # statistics frozen
    assert torch.equal(tuned_bn.running_var, before["1.running_var"])


def test_triplets_alone_train_through_click_groups():
    model = tiny_backbone()
    images, labels = toy_images()
    rows = triplets(labels, 60)
    start = class_separation(extract_features(model, loader(images), len(labels), device="cpu"), labels)
    result = fine_tune_backbone(model, loader(images), len(labels), triplets=rows, loss="triplet",
                                steps=40, batch_size=24, lr=3e-3, device="cpu")
    after = class_separation(extract_features(result.model, loader(images), len(labels), device="cpu"), labels)
    assert after > start


def test_checkpoint_resume_repeats_the_uninterrupted_run(tmp_path):
    images, labels = toy_images()
    params = dict(loss="multi_similarity", batch_size=16, lr=3e-3, device="cpu", seed=3)
    whole = fine_tune_backbone(tiny_backbone(), loader(images), len(labels), labels, steps=12, **params)
    checkpoint = tmp_path / "bb.ckpt"
    fine_tune_backbone(tiny_backbone(), loader(images), len(labels), labels, steps=6,
                       checkpoint_path=checkpoint, checkpoint_every=6, **params)
    resumed = fine_tune_backbone(tiny_backbone(), loader(images), len(labels), labels, steps=12,
                                 checkpoint_path=checkpoint, checkpoint_every=6, **params)
    assert resumed.losses == whole.losses
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
