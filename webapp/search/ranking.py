"""Rank the gallery for a query vector as served: the index, the click memory's moved images, optional αQE."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from retrieval.augment import query_expansion, weighted_average
from retrieval.click_memory import Overlay, search_with_overlay
from retrieval.index import LoadedIndex, search
from webapp.feedback import memory
from webapp.gallery.models import ModelVersion
from webapp.gallery.removal import removed_filter
from webapp.runtime import runtime


def rank(loaded: LoadedIndex, version: ModelVersion, vector: np.ndarray, wanted: int,
         exclude: set[int] = frozenset(), expand: bool = True) -> list[tuple[int, float]]:
    """The `wanted` best (image id, score) not in `exclude`, best first.

    `expand`: αQE with the top REFIND_QUERY_EXPANSION results (not for a query that relevance feedback
    adjusted already: expanding it with unjudged results measured worse, docs/benchmarks.md §10)."""
    vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    index = loaded.index
    overlay = augmented_overlay(loaded, version, memory.overlay(version, vector.shape[1]))
    removed = removed_filter().current(loaded)  # images removed since this index was built (gallery/removal.py)

    def ranked(query: np.ndarray, count: int) -> list[tuple[int, float]]:
        hits = search_with_overlay(lambda q, n: search(index, q, n, params=removed.params), index.ntotal, overlay,
                                   query, count + len(exclude))
        return [(i, s) for i, s in hits if i not in exclude and i not in removed.ids][:count]

    if expand and settings.QUERY_EXPANSION > 0:
        top = ranked(vector, settings.QUERY_EXPANSION)
        if top:
            ids = np.array([i for i, _ in top], dtype=np.int64)
            neighbours = memory.served_vectors(version, ids)
            vector = query_expansion(vector, neighbours, np.array([s for _, s in top], np.float32))
    return ranked(vector, wanted)


def augmented_overlay(loaded: LoadedIndex, version: ModelVersion, overlay: Overlay) -> Overlay:
    """With αDBA on (REFIND_DBA), the index rows are averaged with their nearest neighbours; the moved images
    get the same treatment, with their neighbours in this index (cached per index and overlay)."""
    k = settings.DBA_K
    if k <= 0 or not len(overlay):
        return overlay
    # (index version, overlay, its augmented copy): the last one, held by the runtime
    augmented: list[tuple[int, Overlay, Overlay]] = runtime.view("dba_overlay", list)
    if not (augmented and augmented[0][0] == loaded.version and augmented[0][1] is overlay):
        scores, found = search(loaded.index, overlay.vectors, k + 1)
        neighbours_of = [
            [(int(i), float(s)) for i, s in zip(found[n], scores[n], strict=True) if i >= 0 and i != own][:k]
            for n, own in enumerate(overlay.ids.tolist())
        ]
        # every neighbour's served vector in one call (one per moved image made a search wait for seconds)
        wanted = np.unique(np.array([i for pairs in neighbours_of for i, _ in pairs], np.int64))
        kept, served = memory.served_rows(version, wanted)
        row_of = {image: n for n, image in enumerate(kept.tolist())}
        vectors = overlay.vectors.copy()
        for n, pairs in enumerate(neighbours_of):
            if pairs and all(i in row_of for i, _ in pairs):
                neighbours = served[[row_of[i] for i, _ in pairs]]
                vectors[n] = weighted_average(vectors[n : n + 1], neighbours[None],
                                              np.array([[s for _, s in pairs]], np.float32))[0]
        augmented[:] = [(loaded.version, overlay, Overlay(overlay.ids, vectors))]
    return augmented[0][2]
