"""The rules that turn judgements into triplets: skip-above, explicit verdicts, transitivity, bounds."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from tests.webapp.feedback_factory import make_images, make_impression
from webapp.feedback import consumer
from webapp.feedback.models import Judgement, Triplet
from webapp.feedback.triplets import (
    FeedbackRejected,
    derive_pending,
    live_verdicts,
    record_judgement,
    store_judgement,
    undo_verdict,
)
from webapp.feedback.usable import usable_triplets
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db


def _triplets(source: str | None = None) -> set[tuple[int, int, int]]:
    rows = Triplet.objects.all() if source is None else Triplet.objects.filter(source=source)
    return set(rows.values_list("anchor_id", "positive_id", "negative_id"))


def test_a_click_makes_every_unclicked_result_above_it_a_negative() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(6)
    impression = make_impression(query, r)
    record_judgement(impression, r[1].pk, "click")
    recorded = record_judgement(impression, r[4].pk, "click")
    q = query.pk
    assert _triplets("click") == {
        (q, r[1].pk, r[0].pk),
        (q, r[4].pk, r[3].pk), (q, r[4].pk, r[2].pk), (q, r[4].pk, r[0].pk),  # r[1] was clicked: not a negative
    }
    assert recorded.triplets_created == 3


def test_derivation_later_gives_what_derivation_on_arrival_gives_exactly_once() -> None:
    """Clicks stored before any derivation (the worker is behind) get the triplets they get when each is derived
    on arrival: each judgement sees only what was stored before it; a second derivation finds nothing."""
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(6)
    impression = make_impression(query, r)
    late = store_judgement(impression, r[4].pk, "click")  # rank 5 first: r[0..3] are all skipped
    store_judgement(impression, r[1].pk, "click")
    store_judgement(impression, r[0].pk, "dissimilar")
    assert Triplet.objects.count() == 0 and not late.judgement.derived
    assert derive_pending() == 5 and derive_pending() == 0
    q = query.pk
    assert _triplets() == {
        (q, r[4].pk, r[3].pk), (q, r[4].pk, r[2].pk), (q, r[4].pk, r[1].pk), (q, r[4].pk, r[0].pk),  # r[1] later
        (q, r[1].pk, r[0].pk),  # r[0] "not similar" then pairs with both positives: triplets already stored
    }
    ids = list(Triplet.objects.order_by("id").values_list("judgement_id", flat=True))
    assert ids == sorted(ids)  # derived in judgement order: triplet ids follow it
    assert Judgement.objects.filter(derived=False).count() == 0


def test_skip_above_respects_the_page_offset_and_the_bound(settings) -> None:
    settings.FEEDBACK_MAX_SKIP_ABOVE = 2
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(5)
    impression = make_impression(query, r, offset=20)  # ranks 21..25
    record_judgement(impression, r[4].pk, "click")
    assert _triplets() == {(query.pk, r[4].pk, r[3].pk), (query.pk, r[4].pk, r[2].pk)}  # nearest two above


def test_explicit_only_strategy_ignores_skips(settings) -> None:
    settings.FEEDBACK_NEGATIVES = "explicit_only"
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(4)
    impression = make_impression(query, r)
    record_judgement(impression, r[3].pk, "click")
    assert _triplets() == set()
    record_judgement(impression, r[0].pk, "dissimilar")
    assert _triplets("explicit") == {(query.pk, r[3].pk, r[0].pk)}


def test_explicit_verdicts_pair_every_similar_with_every_dissimilar() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(5)
    impression = make_impression(query, r)
    record_judgement(impression, r[3].pk, "dissimilar")
    assert _triplets() == set()  # no positive yet
    record_judgement(impression, r[0].pk, "similar")
    record_judgement(impression, r[4].pk, "dissimilar")
    q = query.pk
    assert _triplets("explicit") == {(q, r[0].pk, r[3].pk), (q, r[0].pk, r[4].pk)}


def _usable() -> set[tuple[int, int, int]]:
    return set(usable_triplets(Triplet.objects.all()).values_list("anchor_id", "positive_id", "negative_id"))


def test_judgements_are_idempotent_and_a_changed_verdict_replaces_the_earlier_one() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(3)
    impression = make_impression(query, r)
    first = record_judgement(impression, r[2].pk, "click")
    again = record_judgement(impression, r[2].pk, "click")
    assert first.created and not again.created and again.triplets_created == 0
    assert again.judgement.pk == first.judgement.pk
    record_judgement(impression, r[2].pk, "similar")  # a click and an explicit verdict can coexist
    changed = record_judgement(impression, r[2].pk, "dissimilar")
    assert changed.created and live_verdicts(impression) == {r[2].pk: "dissimilar"}
    assert impression.judgements.count() == 3 and impression.judgements.filter(retracted_at__isnull=False).count() == 1


def test_changing_a_verdict_retracts_its_triplets_and_the_ones_paired_with_it() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(5)
    impression = make_impression(query, r)
    q = query.pk
    record_judgement(impression, r[1].pk, "dissimilar")
    record_judgement(impression, r[3].pk, "similar")  # (q, r3, r1) explicit; (q, r3, r2), (q, r3, r0) skip-above
    assert (q, r[3].pk, r[1].pk) in _usable()
    changed = record_judgement(impression, r[1].pk, "similar")  # r1 was similar after all
    assert changed.triplets_retracted >= 1
    assert (q, r[3].pk, r[1].pk) not in _usable()  # it needed "r1 not similar"
    assert (q, r[3].pk, r[1].pk) in _triplets()  # still stored: append-only
    assert (q, r[1].pk, r[0].pk) in _usable()  # the new verdict's own skip-above triplet


def test_undo_removes_the_verdict_and_a_repeated_verdict_makes_fresh_triplets() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(3)
    impression = make_impression(query, r)
    record_judgement(impression, r[2].pk, "similar")
    before = _usable()
    assert before and undo_verdict(impression, r[2].pk) == len(before)
    assert _usable() == set() and live_verdicts(impression) == {}
    assert undo_verdict(impression, r[2].pk) is None  # nothing left to undo
    again = record_judgement(impression, r[2].pk, "similar")
    assert again.created and _usable() == before  # new rows (generation 1) that learners will read
    assert Triplet.objects.filter(generation=1).count() == len(before)
    assert Judgement.objects.filter(image=r[2], retracted_at__isnull=True).count() == 1


def test_learners_that_have_not_read_a_retracted_triplet_skip_it() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(4)
    impression = make_impression(query, r)
    record_judgement(impression, r[3].pk, "click")
    record_judgement(impression, r[2].pk, "dissimilar")
    assert consumer.pending(0) == len(_usable()) > 0
    undo_verdict(impression, r[2].pk)
    batch = consumer.read_batch(0)
    read = set(zip(batch.anchors.tolist(), batch.positives.tolist(), batch.negatives.tolist(), strict=True))
    assert read == _usable() and all(negative != r[2].pk or source != "explicit"
                                     for (_, _, negative), source in zip(read, batch.sources, strict=True))
    assert consumer.pending(0) == len(read)


def test_a_result_that_was_not_shown_is_rejected() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    shown, other = make_images(2), make_images(1)[0]
    with pytest.raises(FeedbackRejected, match="was not shown"):
        record_judgement(make_impression(query, shown), other.pk, "click")


def test_a_gallery_query_gives_no_triplet_with_itself() -> None:
    r = make_images(4)
    impression = make_impression(r[0], r[1:])  # a gallery image used as the query
    record_judgement(impression, r[3].pk, "click")
    for anchor, positive, negative in _triplets():
        assert len({anchor, positive, negative}) == 3


def _transitive_setup() -> tuple[Image, list[Image]]:
    """g0 was itself a query: g7 clicked under g4, so g0 ~ g7 and g0 ≁ g4 (triplet (g0, g7, g4))."""
    q1 = make_images(1, role=Image.Role.QUERY)[0]
    g = make_images(8)
    record_judgement(make_impression(g[0], [g[4], g[7]], session_key="s0"), g[7].pk, "click")
    return q1, g


def test_transitive_a_similar_p_and_p_dissimilar_m_gives_a_dissimilar_m() -> None:
    q1, g = _transitive_setup()
    recorded = record_judgement(make_impression(q1, [g[0]]), g[0].pk, "click")  # q1 ~ g0, nothing skipped
    assert _triplets("transitive") == {(q1.pk, g[0].pk, g[4].pk)}
    assert recorded.triplets_created == 1


def test_transitive_a_similar_p_and_p_similar_q_gives_a_similar_q() -> None:
    q1, g = _transitive_setup()
    record_judgement(make_impression(q1, [g[0]]), g[0].pk, "click")
    record_judgement(make_impression(q1, [g[3], g[0]]), g[0].pk, "click")  # direct (q1, g0, g3): q1 ≁ g3
    # q1 ~ g0 and g0 ~ g7 give q1 ~ g7, paired with q1's negatives g3 and g4.
    assert _triplets("transitive") == {
        (q1.pk, g[0].pk, g[4].pk), (q1.pk, g[7].pk, g[3].pk), (q1.pk, g[7].pk, g[4].pk)
    }


def test_transitive_a_dissimilar_n_and_q_similar_a_gives_q_dissimilar_n() -> None:
    _, g = _transitive_setup()
    record_judgement(make_impression(g[0], [g[2]], session_key="s0"), g[2].pk, "dissimilar")
    # g0 ≁ g2 and g7 ~ g0 give (g7, g0, g2)
    assert (g[7].pk, g[0].pk, g[2].pk) in _triplets("transitive")


def test_transitive_triplets_per_judgement_are_bounded(settings) -> None:
    q1, g = _transitive_setup()
    record_judgement(make_impression(q1, [g[0]]), g[0].pk, "click")
    settings.FEEDBACK_MAX_TRANSITIVE = 1
    recorded = record_judgement(make_impression(q1, [g[3], g[0]]), g[0].pk, "click")
    assert recorded.triplets_created == 2  # the direct one and a single transitive one
    settings.FEEDBACK_MAX_TRANSITIVE = 0
    record_judgement(make_impression(q1, [g[5], g[0]]), g[0].pk, "similar")
    assert len(_triplets("transitive")) == 2


def test_triplets_are_append_only() -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    r = make_images(2)
    record_judgement(make_impression(query, r), r[1].pk, "click")
    triplet = Triplet.objects.first()
    with pytest.raises(TypeError, match="append-only"):
        triplet.save()
    with pytest.raises(TypeError, match="append-only"):
        Triplet.objects.all().delete()
    with pytest.raises(TypeError, match="append-only"):
        Triplet.objects.update(source="label")
    with pytest.raises(IntegrityError), transaction.atomic():
        Triplet.objects.create(anchor=query, positive=r[0], negative=r[0], source="label")
