"""Rank the gallery for a query vector as served: the index, the click memory's moved images, optional αQE."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from retrieval.augment import query_expansion
from retrieval.click_memory import search_with_overlay
from retrieval.index import LoadedIndex, search
from webapp.feedback import memory
from webapp.gallery.models import ModelVersion


def rank(loaded: LoadedIndex, version: ModelVersion, vector: np.ndarray, wanted: int,
         exclude: set[int] = frozenset(), expand: bool = True) -> list[tuple[int, float]]:
    """The `wanted` best (image id, score) not in `exclude`, best first.

    `expand`: αQE with the top REFIND_QUERY_EXPANSION results (not for a query that relevance feedback
    adjusted already: expanding it with unjudged results measured worse, docs/benchmarks.md §10)."""
    vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    index = loaded.index
    overlay = memory.overlay(version, vector.shape[1])

    def ranked(query: np.ndarray, count: int) -> list[tuple[int, float]]:
        hits = search_with_overlay(lambda q, n: search(index, q, n), index.ntotal, overlay, query, count + len(exclude))
        return [(i, s) for i, s in hits if i not in exclude][:count]

    if expand and settings.QUERY_EXPANSION > 0:
        top = ranked(vector, settings.QUERY_EXPANSION)
        if top:
            ids = np.array([i for i, _ in top], dtype=np.int64)
            neighbours = memory.served_vectors(version, ids)
            vector = query_expansion(vector, neighbours, np.array([s for _, s in top], np.float32))
    return ranked(vector, wanted)
