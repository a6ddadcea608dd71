"""Rocchio's adjusted query, skipped-above negatives, and the αDBA / αQE re-weightings."""

from __future__ import annotations

import numpy as np

from retrieval.augment import database_side_augmentation, l2_normalise, query_expansion
from retrieval.relevance import rocchio, skipped_above


def test_rocchio_moves_the_query_towards_positives_and_away_from_negatives() -> None:
    rng = np.random.default_rng(0)
    query, positives, negatives = l2_normalise(rng.normal(size=(1, 32))), rng.normal(size=(3, 32)), rng.normal(
        size=(2, 32))
    adjusted = rocchio(query, positives, negatives)
    assert np.isclose(np.linalg.norm(adjusted), 1.0)
    centre = l2_normalise(positives).mean(axis=0)
    anti = l2_normalise(negatives).mean(axis=0)
    assert adjusted[0] @ centre > query[0] @ centre and adjusted[0] @ anti < query[0] @ anti
    expected = l2_normalise(query + centre - 0.5 * anti)
    assert np.allclose(adjusted, expected, atol=1e-6)
    assert np.allclose(rocchio(query, np.empty((0, 32)), np.empty((0, 32))), query)


def test_skipped_above_are_the_unchosen_results_above_the_lowest_positive_nearest_first() -> None:
    shown = [10, 11, 12, 13, 14, 15]
    assert skipped_above(shown, {12, 14}) == [13, 11, 10]
    assert skipped_above(shown, {12, 14}, limit=2) == [13, 11]
    assert skipped_above(shown, set()) == [] and skipped_above(shown, {10}) == []


def test_dba_and_qe_average_with_the_nearest_neighbours() -> None:
    rng = np.random.default_rng(1)
    centres = l2_normalise(rng.normal(size=(4, 16)))
    vectors = l2_normalise(np.repeat(centres, 5, axis=0) + 0.3 * rng.normal(size=(20, 16)))
    augmented = database_side_augmentation(vectors, k=3)
    assert np.allclose(np.linalg.norm(augmented, axis=1), 1.0)
    own = np.repeat(centres, 5, axis=0)
    assert np.mean(np.sum(augmented * own, axis=1)) > np.mean(np.sum(vectors * own, axis=1))  # nearer the centres
    assert np.allclose(database_side_augmentation(vectors, k=0), vectors)
    query = vectors[0]
    sims = vectors[1:4] @ query
    expanded = query_expansion(query, vectors[1:4], sims)
    weights = np.clip(sims, 0, None) ** 3
    assert np.allclose(expanded, l2_normalise(query + (weights[:, None] * vectors[1:4]).sum(axis=0))[None], atol=1e-6)
    assert np.allclose(query_expansion(query, np.empty((0, 16)), np.empty(0)), query[None])


def test_dba_through_an_index_equals_the_exact_version() -> None:
    from retrieval.augment import augment_with_index
    from retrieval.index import build_index, search

    vectors = l2_normalise(np.random.default_rng(2).normal(size=(50, 8)))
    ids = np.arange(500, 550, dtype=np.int64)
    index = build_index(vectors, ids)
    for k in (1, 3):
        through_index = augment_with_index(lambda q, n: search(index, q, n), vectors, ids, k, batch=16)
        assert np.allclose(through_index, database_side_augmentation(vectors, k), atol=1e-5)
