"""Search: turn an upload or a stored image into a query vector and rank the gallery with the active index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from retrieval.extraction import preprocess
from retrieval.images import ImageRejected, decode_image
from retrieval.index import LoadedIndex
from retrieval.priority import LowerPriority
from webapp.gallery.features import ensure_features
from webapp.gallery.models import Image, ModelVersion
from webapp.gallery.storing import store_image
from webapp.runtime import runtime
from webapp.search import ranking
from webapp.search.refine import SessionFeedback, adjusted_query

# Decoding and embedding an upload run below the request threads' priority (REFIND_EMBED_NICE): a click in the
# same process gets a core before a forward pass does (docs/benchmarks.md §11).
embedding_priority = LowerPriority(settings.EMBED_NICE, name="embed")


class SearchUnavailable(RuntimeError):
    """No index is active yet (the gallery is empty or still being imported)."""


@dataclass(frozen=True)
class Hit:
    image: Image
    score: float
    rank: int


@dataclass(frozen=True)
class SearchResult:
    query: Image
    model_version: ModelVersion
    index_version: int
    hits: list[Hit]
    offset: int
    has_more: bool
    feedback: SessionFeedback | None = None  # set when the page was ranked with the adjusted query


def served() -> tuple[LoadedIndex, ModelVersion]:
    """The index this process serves and the model version it was built for, resolved once per search."""
    try:
        loaded = runtime.served_index()
    except (RuntimeError, OSError) as exc:
        raise SearchUnavailable("The search index cannot be loaded right now; staff have been told.") from exc
    if loaded is None:
        raise SearchUnavailable("No index is active yet: import images first.")
    return loaded, ModelVersion.objects.get(indexes__pk=loaded.version)


def store_query(data: bytes, original_name: str = "", backbone: str | None = None) -> Image:
    """Validate an upload and store it as a query image (or reuse the stored image with the same bytes),
    with its features under `backbone` (default: the active model's).

    Raises ImageRejected before anything is written.
    """
    decoded = embedding_priority.run(lambda: decode_image(
        data, max_bytes=settings.MAX_UPLOAD_BYTES, min_side=settings.MIN_IMAGE_SIDE,
        max_pixels=settings.MAX_IMAGE_PIXELS,
    ))
    image, _ = store_image(decoded, data, role=Image.Role.QUERY, original_name=original_name)
    name = backbone or ModelVersion.active().backbone  # a tuned backbone once a run fine-tuned one
    store = runtime.feature_store(name)
    if not store.contains(np.array([image.pk]))[0]:
        model, extractor = runtime.backbone(name), runtime.extractor(name)  # the database is asked here, not there
        store.append(np.array([image.pk]), embedding_priority.run(
            lambda: extractor.features([preprocess(decoded.rgb, model)])))
    return image


def search_similar(
    query: Image, k: int = settings.SEARCH_DEFAULT_K, offset: int = 0,
    index: tuple[LoadedIndex, ModelVersion] | None = None, feedback: SessionFeedback | None = None,
) -> SearchResult:
    """Rank the gallery for a stored image with `index` (default: served()); the query itself (same
    SHA-256) is never a result.

    With `feedback` (what the requester marked on earlier pages of this query), the page is the best
    `k` results not shown to them yet under the adjusted query (webapp/search/refine.py), numbered on
    from `offset`."""
    loaded, version = index or served()
    query_id = np.array([query.pk])
    vector = runtime.embed(version, ensure_features(query_id, version.backbone).get(query_id))
    if feedback:
        vector = adjusted_query(version, vector, feedback)
        ranked = ranking.rank(loaded, version, vector, k + 1, exclude={query.pk, *feedback.shown}, expand=False)
        page = ranked[:k]
    else:
        feedback = None
        ranked = ranking.rank(loaded, version, vector, offset + k + 1, exclude={query.pk})
        page = ranked[offset : offset + k]
    images = Image.objects.in_bulk([i for i, _ in page])
    hits = [
        Hit(images[i], score, offset + rank + 1)
        for rank, (i, score) in enumerate(page)
        if i in images and images[i].role == Image.Role.GALLERY
    ]
    has_more = len(ranked) > (k if feedback else offset + k)
    return SearchResult(query, version, loaded.version, hits, offset, has_more, feedback)


def search_upload(data: bytes, original_name: str = "", k: int = settings.SEARCH_DEFAULT_K) -> SearchResult:
    """Store the upload and search with it: the served index, its model version and that version's backbone
    are resolved once, so the query is extracted once, with the backbone the index was built with."""
    index = served()
    query = store_query(data, original_name, backbone=index[1].backbone)
    return search_similar(query, k=k, index=index)


__all__ = ["ImageRejected", "SearchResult", "SearchUnavailable", "search_similar", "search_upload", "served",
           "store_query"]
