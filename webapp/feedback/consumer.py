"""Exactly-once triplet consumption for learners.

Triplet ids grow in commit order (insertion holds the TripletLog row lock), so "every triplet with
id > watermark" is exactly what a consumer has not seen. A learner:

1. ``cursor = open_cursor(name)``; load its state from ``cursor.artifact`` (it includes the watermark);
2. ``batch = read_batch(cursor.watermark, limit)``; update its state with the batch;
3. save the new state atomically to a *new* artifact that records ``batch.last_id``;
4. ``advance(name, expected=cursor.watermark, watermark=batch.last_id, artifact=new)``.

A crash before step 4 leaves the cursor on the old artifact and watermark, so the batch is applied
again to the old state after a restart — never twice to the same state, never skipped. `advance` is a
compare-and-swap: a second learner that read the same cursor loses and must reload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webapp.feedback.models import ConsumerCursor, Triplet
from webapp.feedback.usable import usable_triplets


@dataclass(frozen=True)
class TripletBatch:
    ids: np.ndarray
    anchors: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    impressions: np.ndarray  # the impression each triplet came from, -1 for none (e.g. labels)
    sources: np.ndarray  # Triplet.Source values ("click", "explicit", "transitive", "label")

    @property
    def last_id(self) -> int | None:
        return int(self.ids[-1]) if len(self.ids) else None

    def __len__(self) -> int:
        return len(self.ids)


def open_cursor(name: str) -> ConsumerCursor:
    cursor, _ = ConsumerCursor.objects.get_or_create(name=name)
    return cursor


def read_batch(watermark: int, limit: int = 10_000) -> TripletBatch:
    """The next `limit` usable triplets after `watermark`, in id order (retracted ones are skipped)."""
    rows = list(usable_triplets(Triplet.objects.filter(id__gt=watermark)).order_by("id").values_list(
        "id", "anchor_id", "positive_id", "negative_id", "judgement__impression_id", "source")[:limit])
    columns = np.array([(*row[:4], -1 if row[4] is None else row[4]) for row in rows], dtype=np.int64)
    columns = columns.reshape(-1, 5)
    return TripletBatch(*(columns[:, i] for i in range(5)), sources=np.array([row[5] for row in rows], dtype=str))


def pending(watermark: int) -> int:
    return usable_triplets(Triplet.objects.filter(id__gt=watermark)).count()


def advance(name: str, *, expected: int, watermark: int, artifact: str) -> bool:
    """Move the cursor from `expected` to `watermark` (with its new artifact); False if someone else moved it."""
    if watermark < expected:
        raise ValueError(f"A watermark only moves forward ({expected} -> {watermark}).")
    updated = ConsumerCursor.objects.filter(name=name, watermark=expected).update(
        watermark=watermark, artifact=artifact
    )
    return updated == 1
