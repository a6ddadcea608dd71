"""With αDBA on, the click memory's moved images are averaged with their neighbours like the index rows,
with every neighbour's served vector read in one go (one query per moved image made searches take seconds),
and updated, not redone, when more images move."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.augment import weighted_average
from retrieval.index import search
from webapp.feedback import memory
from webapp.feedback.models import Impression
from webapp.feedback.triplets import record_judgement
from webapp.gallery.models import Image
from webapp.search import ranking, service

pytestmark = pytest.mark.django_db


def _expected(loaded, version, overlay, k: int) -> np.ndarray:
    """The rule one moved image at a time, as written before."""
    scores, found = search(loaded.index, overlay.vectors, k + 1)
    vectors = overlay.vectors.copy()
    for n, own in enumerate(overlay.ids.tolist()):
        pairs = [(int(i), float(s)) for i, s in zip(found[n], scores[n], strict=True) if i >= 0 and i != own][:k]
        neighbours = memory.served_vectors(version, np.array([i for i, _ in pairs], np.int64))
        vectors[n] = weighted_average(vectors[n : n + 1], neighbours[None], np.array([[s for _, s in pairs]]))[0]
    return vectors


def test_moved_images_are_augmented_with_one_read_of_their_neighbours(
        gallery, settings, django_assert_max_num_queries, monkeypatch) -> None:
    settings.DBA_K = 2
    memory.reset()
    images = list(Image.objects.filter(role=Image.Role.GALLERY).order_by("id"))
    _mark_similar(images[:8])  # 8 searches, each marking 3 results similar: many moved images
    loaded, version = service.served()
    overlay = memory.overlay(version, loaded.index.d)
    assert len(overlay) > 10

    with django_assert_max_num_queries(2):  # the moved neighbours' offsets, once (not once per moved image)
        augmented = ranking.augmented_overlay(loaded, version, overlay)

    assert augmented.ids.tolist() == overlay.ids.tolist()
    assert np.allclose(augmented.vectors, _expected(loaded, version, overlay, 2), atol=1e-5)
    assert not np.allclose(augmented.vectors, overlay.vectors)  # the averaging did happen

    _mark_similar(images[20:21])  # one more search's marks: a few images move (again)
    moved_again = memory.overlay(version, loaded.index.d)
    assert moved_again is not overlay
    searched: list[int] = []
    real_search = ranking.search
    monkeypatch.setattr(ranking, "search", lambda index, q, n, **kw: searched.append(len(q)) or real_search(
        index, q, n, **kw))
    updated = ranking.augmented_overlay(loaded, version, moved_again)
    assert np.allclose(updated.vectors, _expected(loaded, version, moved_again, 2), atol=1e-5)  # as if redone
    assert searched and 0 < searched[0] < len(moved_again) / 2  # only the changed rows and those next to them
    memory.reset()


def _mark_similar(queries: list[Image]) -> None:
    for query in queries:
        result = service.search_similar(query, k=10)
        impression = Impression.objects.create(query=query, model_version=result.model_version,
                                               index_version=result.index_version, session_key="s",
                                               shown=[hit.image.pk for hit in result.hits])
        for hit in result.hits[:3]:
            record_judgement(impression, hit.image.pk, "similar")
    memory.apply_pending()
