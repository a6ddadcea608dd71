"""Learners consume every triplet exactly once, also across a crash and a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.atomic import atomic_write_bytes
from tests.webapp.feedback_factory import make_images, make_impression
from webapp.feedback import consumer
from webapp.feedback.models import Triplet
from webapp.feedback.triplets import record_judgement
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db


class Crash(Exception):
    pass


def _make_triplets(rounds: int) -> None:
    for _ in range(rounds):
        query = make_images(1, role=Image.Role.QUERY)[0]
        shown = make_images(5)
        record_judgement(make_impression(query, shown), shown[4].pk, "click")  # 4 triplets


def _learn_step(folder: Path, crash_before_advance: bool = False) -> int:
    """A toy learner whose state is the list of triplet ids it has applied."""
    cursor = consumer.open_cursor("toy")
    seen = json.loads(Path(cursor.artifact).read_text())["seen"] if cursor.artifact else []
    batch = consumer.read_batch(cursor.watermark, limit=6)
    if not len(batch):
        return 0
    seen += batch.ids.tolist()
    artifact = folder / f"state-{batch.last_id}.json"
    atomic_write_bytes(artifact, json.dumps({"seen": seen, "watermark": batch.last_id}).encode())
    if crash_before_advance:
        raise Crash
    assert consumer.advance("toy", expected=cursor.watermark, watermark=batch.last_id, artifact=str(artifact))
    return len(batch)


def test_exactly_once_across_a_crash_and_new_arrivals(tmp_path: Path) -> None:
    _make_triplets(5)
    assert _learn_step(tmp_path) == 6
    with pytest.raises(Crash):
        _learn_step(tmp_path, crash_before_advance=True)  # state saved, cursor not moved
    while _learn_step(tmp_path):
        pass
    _make_triplets(2)  # feedback keeps arriving after the restart
    while _learn_step(tmp_path):
        pass
    cursor = consumer.open_cursor("toy")
    seen = json.loads(Path(cursor.artifact).read_text())["seen"]
    assert seen == list(Triplet.objects.order_by("id").values_list("id", flat=True))
    assert len(seen) == len(set(seen)) == 28
    assert consumer.pending(cursor.watermark) == 0


def test_advance_is_a_compare_and_swap() -> None:
    _make_triplets(1)
    cursor = consumer.open_cursor("cas")
    batch = consumer.read_batch(cursor.watermark)
    assert consumer.advance("cas", expected=0, watermark=batch.last_id, artifact="a")
    assert not consumer.advance("cas", expected=0, watermark=batch.last_id, artifact="b")  # a second learner loses
    assert consumer.open_cursor("cas").artifact == "a"
    with pytest.raises(ValueError, match="only moves forward"):
        consumer.advance("cas", expected=batch.last_id, watermark=0, artifact="c")


def test_batches_carry_the_triplet_members_in_id_order() -> None:
    _make_triplets(2)
    batch = consumer.read_batch(0, limit=100)
    rows = list(Triplet.objects.order_by("id").values_list("id", "anchor_id", "positive_id", "negative_id"))
    assert [tuple(r) for r in zip(batch.ids, batch.anchors, batch.positives, batch.negatives, strict=True)] == rows
