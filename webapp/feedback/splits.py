"""Evaluation splits: a labelled gallery, per label and seeded, into a feedback half and a held-out half; and
held-out impressions (every REFIND_HELDOUT_IMPRESSION_EVERY-th), whose clicks are never learned from.

The held-out half leaves the served index (webapp/gallery/indexing.py): its images are the evaluation
queries, searched as uploads are, and can never be shown, clicked or learned from."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from django.conf import settings
from django.db import transaction

from webapp.feedback.models import EvaluationSplit
from webapp.gallery import indexing
from webapp.gallery.models import Image, IndexVersion


def is_heldout_impression(impression_id: int) -> bool:
    """Impressions kept for evaluation only (feedback Recall@K); learners skip their clicks."""
    every = settings.LEARNING_HELDOUT_IMPRESSION_EVERY
    return every > 0 and impression_id % every == 0


def split_gallery(seed: int = 0, feedback_fraction: float = 0.5) -> EvaluationSplit:
    """Within each label (images in id order), a seeded permutation's first share is feedback."""
    if not 0.0 < feedback_fraction < 1.0:
        raise ValueError("feedback_fraction must be between 0 and 1.")
    by_label: dict[str, list[int]] = defaultdict(list)
    labelled = Image.objects.filter(role=Image.Role.GALLERY).exclude(label="").order_by("id")
    for image_id, label in labelled.values_list("id", "label"):
        by_label[label].append(image_id)
    if not by_label:
        raise ValueError("The gallery has no labelled images to split.")
    rng = np.random.default_rng(seed)
    feedback: list[int] = []
    heldout: list[int] = []
    for label in sorted(by_label):
        ids = np.array(by_label[label])[rng.permutation(len(by_label[label]))]
        cut = int(round(len(ids) * feedback_fraction))
        feedback += ids[:cut].tolist()
        heldout += ids[cut:].tolist()
    split = _store(seed, feedback_fraction, feedback, heldout)
    if IndexVersion.objects.filter(is_active=True).exists():
        indexing.build_and_activate()  # the index of the feedback half only
    return split


@transaction.atomic
def _store(seed: int, feedback_fraction: float, feedback: list[int], heldout: list[int]) -> EvaluationSplit:
    Image.objects.filter(role=Image.Role.GALLERY).update(split=Image.Split.NONE)
    for chunk in range(0, len(feedback), 5000):
        Image.objects.filter(pk__in=feedback[chunk : chunk + 5000]).update(split=Image.Split.FEEDBACK)
    for chunk in range(0, len(heldout), 5000):
        Image.objects.filter(pk__in=heldout[chunk : chunk + 5000]).update(split=Image.Split.HELDOUT)
    return EvaluationSplit.objects.create(
        seed=seed, feedback_fraction=feedback_fraction, feedback_count=len(feedback), heldout_count=len(heldout)
    )
