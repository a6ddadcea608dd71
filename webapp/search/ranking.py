"""Rank the gallery for a query vector as served: the index, the click memory's moved images, optional αQE."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class _Augmented:
    """The αDBA copy of one overlay, and what it needs to be updated for the next one."""

    key: tuple[int, int, int]  # (index version, model version, k)
    source: Overlay  # the moved images' served vectors it was computed from
    result: Overlay  # their averaged copies
    neighbours: dict[int, list[tuple[int, float]]]  # each moved image's nearest index rows (id, score)


def augmented_overlay(loaded: LoadedIndex, version: ModelVersion, overlay: Overlay) -> Overlay:
    """With αDBA on (REFIND_DBA), the index rows are averaged with their nearest neighbours; the moved images
    get the same treatment, with their neighbours in this index. Held by the runtime and updated, not redone,
    when the overlay changes: only images that moved again, or whose neighbours did, are averaged anew."""
    k = settings.DBA_K
    if k <= 0 or not len(overlay):
        return overlay
    held: list[_Augmented] = runtime.view("dba_overlay", list)
    key = (loaded.version, version.pk, k)
    last = held[0] if held and held[0].key == key else None
    if last is None or last.source is not overlay:
        held[:] = [_augment(loaded, version, overlay, k, last, key)]
    return held[0].result


def _augment(loaded: LoadedIndex, version: ModelVersion, overlay: Overlay, k: int, last: _Augmented | None,
             key: tuple[int, int, int]) -> _Augmented:
    ids = overlay.ids.tolist()
    before = {} if last is None else {image: n for n, image in enumerate(last.source.ids.tolist())}
    changed = {image for n, image in enumerate(ids)
               if image not in before or not np.array_equal(overlay.vectors[n], last.source.vectors[before[image]])}
    neighbours = {} if last is None else {image: pairs for image, pairs in last.neighbours.items() if image in before}
    redo = changed | {image for image, pairs in neighbours.items() if any(i in changed for i, _ in pairs)}
    vectors = overlay.vectors.copy()
    for n, image in enumerate(ids):
        if image not in redo:
            vectors[n] = last.result.vectors[before[image]]
    rows = [n for n, image in enumerate(ids) if image in redo]
    if rows:
        scores, found = search(loaded.index, overlay.vectors[rows], k + 1)
        for row, n in enumerate(rows):
            neighbours[ids[n]] = [(int(i), float(s)) for i, s in zip(found[row], scores[row], strict=True)
                                  if i >= 0 and i != ids[n]][:k]
        # every neighbour's served vector in one call (one per moved image made a search wait for seconds)
        wanted = np.unique(np.array([i for n in rows for i, _ in neighbours[ids[n]]], np.int64))
        kept, served = memory.served_rows(version, wanted)
        row_of = {image: m for m, image in enumerate(kept.tolist())}
        for n in rows:
            pairs = neighbours[ids[n]]
            if pairs and all(i in row_of for i, _ in pairs):
                vectors[n] = weighted_average(overlay.vectors[n : n + 1], served[[row_of[i] for i, _ in pairs]][None],
                                              np.array([[s for _, s in pairs]], np.float32))[0]
    return _Augmented(key, overlay, Overlay(overlay.ids, vectors), neighbours)
