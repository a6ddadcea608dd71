"""A click is stored by one INSERT and no transaction of its own (no BEGIN / COMMIT round trips on the click's
path, docs/benchmarks.md §11); a repeat is still recognised, inside a transaction too, which stays usable."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.webapp.feedback_factory import make_images, make_impression
from webapp.feedback import memory
from webapp.feedback.models import Judgement
from webapp.feedback.triplets import store_judgement


@pytest.mark.django_db(transaction=True)
def test_a_click_outside_a_transaction_is_one_statement_and_a_repeat_finds_it(monkeypatch) -> None:
    monkeypatch.setattr(memory, "after_commit", lambda: None)  # the click memory's own queries: not the click's
    query, *shown = make_images(4)
    impression = make_impression(query, shown)
    with CaptureQueriesContext(connection) as queries:
        first = store_judgement(impression, shown[1].pk, Judgement.Kind.CLICK)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]  # no BEGIN, no COMMIT
    assert first.created and first.judgement.rank == 2 and not first.judgement.derived

    repeat = store_judgement(impression, shown[1].pk, Judgement.Kind.CLICK)
    assert not repeat.created and repeat.judgement.pk == first.judgement.pk
    assert Judgement.objects.count() == 1


@pytest.mark.django_db
def test_a_repeated_click_inside_a_transaction_leaves_it_usable() -> None:
    query, *shown = make_images(4)
    impression = make_impression(query, shown)
    with transaction.atomic():
        store_judgement(impression, shown[0].pk, Judgement.Kind.CLICK)
        assert not store_judgement(impression, shown[0].pk, Judgement.Kind.CLICK).created
        store_judgement(impression, shown[2].pk, Judgement.Kind.CLICK)  # the transaction still works
    assert sorted(Judgement.objects.values_list("image_id", flat=True)) == [shown[0].pk, shown[2].pk]
