"""αQE at search time (REFIND_QUERY_EXPANSION): the query is averaged with its top results, then searched again."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.augment import l2_normalise, query_expansion
from webapp.feedback import memory
from webapp.gallery.models import Image, ModelVersion
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plain_index(settings) -> None:
    """Scores compared with vectors computed here: no database-side augmentation of the index rows."""
    settings.DBA_K = 0


def test_search_ranks_with_the_expanded_query_and_zero_turns_it_off(gallery, settings) -> None:
    query = Image.objects.get(original_name="teal-rings-000.jpg")
    version = ModelVersion.active()
    plain_query = runtime.embed(version, runtime.feature_store(version.backbone).get(np.array([query.pk])))
    settings.QUERY_EXPANSION = 0
    plain = service.search_similar(query, k=35)
    settings.QUERY_EXPANSION = 3
    expanded = service.search_similar(query, k=35)
    top = np.array([hit.image.pk for hit in plain.hits[:3]])
    vectors = memory.served_vectors(version, top)
    expected_query = query_expansion(plain_query, vectors, np.array([hit.score for hit in plain.hits[:3]]))
    ids = np.array([hit.image.pk for hit in expanded.hits])
    expected = l2_normalise(memory.served_vectors(version, ids)) @ expected_query[0]
    assert np.allclose([hit.score for hit in expanded.hits], expected, atol=1e-4)
    assert list(np.argsort(-expected, kind="stable")) == list(range(len(ids)))
    assert {hit.image.pk for hit in plain.hits} == {hit.image.pk for hit in expanded.hits}  # the same gallery
    assert not np.allclose([h.score for h in plain.hits], [h.score for h in expanded.hits])


def test_the_index_holds_augmented_rows_when_dba_is_on(gallery, settings) -> None:
    from retrieval.augment import database_side_augmentation
    from webapp.gallery import indexing

    settings.DBA_K = 2
    record = indexing.build_and_activate()
    ids, plain = indexing.gallery_vectors(record.model_version)
    expected = database_side_augmentation(plain, 2)  # the exact N x N version of the same rule
    query = Image.objects.get(original_name="teal-rings-000.jpg")
    result = service.search_similar(query, k=35)
    row = {int(i): n for n, i in enumerate(ids)}
    own = expected[row[query.pk]]
    version = ModelVersion.active()
    vector = runtime.embed(version, runtime.feature_store(version.backbone).get(np.array([query.pk])))[0]
    scores = [expected[row[hit.image.pk]] @ vector for hit in result.hits]
    assert np.allclose([hit.score for hit in result.hits], scores, atol=1e-4)
    assert not np.allclose(own, plain[row[query.pk]])
