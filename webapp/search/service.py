"""Search: turn an upload or a stored image into a query vector and rank the gallery with the active index."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from retrieval.extraction import preprocess
from retrieval.images import ImageRejected, decode_image
from retrieval.index import IndexHolder, load_index, search
from retrieval.index_tuning import apply_search_params, set_search_threads
from webapp import artifacts
from webapp.gallery import pipeline
from webapp.gallery.features import ensure_features
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.gallery.removal import RemovedFilter
from webapp.gallery.storing import store_image

logger = logging.getLogger(__name__)


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


class _ActiveIndex:
    """Resolve the active index (version, artifact name) at most every INDEX_CHECK_SECONDS per process."""

    def __init__(self) -> None:
        self._checked_at = 0.0
        self._value: tuple[int, str] | None = None

    def __call__(self) -> tuple[int, str] | None:
        now = time.monotonic()
        if self._value is None or now - self._checked_at >= settings.INDEX_CHECK_SECONDS:
            row = IndexVersion.objects.filter(is_active=True).values_list("id", "path").first()
            self._value = None if row is None else (row[0], row[1])  # the artifact's name in the storage
            self._checked_at = now
        return self._value


def _report_unloadable(version: int, exc: Exception) -> None:
    """Log it and show it to staff (dashboard); the previously loaded index keeps serving."""
    logger.error("Index version %s cannot be loaded; still serving the previous one: %s", version, exc)
    IndexVersion.objects.filter(pk=version).update(load_error=f"{type(exc).__name__}: {exc}"[:2000])


def new_holder() -> IndexHolder:
    """What a process serves from: the active index, fetched from the artifact storage into this host's cache."""
    return IndexHolder(
        _ActiveIndex(), prepare=lambda index: apply_search_params(index, settings.HNSW_EF_SEARCH, settings.IVF_NPROBE),
        on_error=_report_unloadable, load=lambda name: load_index(artifacts.fetch(name)),
    )


_holder = new_holder()
_removed = RemovedFilter()  # images removed since the served index was built (webapp/gallery/removal.py)
_threads_set = False


def _search_threads_once() -> None:
    """FAISS threads for searching, set on this process's first search (docs/benchmarks.md)."""
    global _threads_set
    if not _threads_set:
        set_search_threads(settings.SEARCH_THREADS)
        _threads_set = True


def store_query(data: bytes, original_name: str = "") -> Image:
    """Validate an upload and store it as a query image (or reuse the stored image with the same bytes).

    Raises ImageRejected before anything is written.
    """
    decoded = decode_image(
        data, max_bytes=settings.MAX_UPLOAD_BYTES, min_side=settings.MIN_IMAGE_SIDE,
        max_pixels=settings.MAX_IMAGE_PIXELS,
    )
    image, _ = store_image(decoded, data, role=Image.Role.QUERY, original_name=original_name)
    name = pipeline.active_model_version().backbone  # a tuned backbone once a run fine-tuned one
    store = pipeline.feature_store(name)
    if not store.contains(np.array([image.pk]))[0]:
        crop = preprocess(decoded.rgb, pipeline.backbone(name))
        store.append(np.array([image.pk]), pipeline.extractor(name).features([crop]))
    return image


def search_similar(query: Image, k: int = settings.SEARCH_DEFAULT_K, offset: int = 0) -> SearchResult:
    """Rank the gallery for a stored image; the query itself (same SHA-256) is never a result."""
    _search_threads_once()
    try:
        loaded = _holder.current()
    except (RuntimeError, OSError) as exc:
        raise SearchUnavailable("The search index cannot be loaded right now; staff have been told.") from exc
    if loaded is None:
        raise SearchUnavailable("No index is active yet: import images first.")
    index_version = IndexVersion.objects.select_related("model_version").get(pk=loaded.version)
    version = index_version.model_version
    query_id = np.array([query.pk])
    vector = pipeline.embed(version, ensure_features(query_id, version.backbone).get(query_id))
    wanted = offset + k + 1  # one more: the query may be in the gallery
    scores, ids = search(loaded.index, vector, wanted + 1, params=_removed.params(loaded.index, index_version))
    ranked = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0 and i != query.pk]
    page = ranked[offset : offset + k]
    images = Image.objects.in_bulk([i for i, _ in page])
    hits = [
        Hit(images[i], score, offset + rank + 1)
        for rank, (i, score) in enumerate(page)
        if i in images and images[i].role == Image.Role.GALLERY
    ]
    has_more = len(ranked) > offset + k
    return SearchResult(query, version, loaded.version, hits, offset, has_more)


def search_upload(data: bytes, original_name: str = "", k: int = settings.SEARCH_DEFAULT_K) -> SearchResult:
    if not IndexVersion.objects.filter(is_active=True).exists():
        raise SearchUnavailable("No index is active yet: import images first.")
    return search_similar(store_query(data, original_name), k=k)


__all__ = ["ImageRejected", "SearchResult", "SearchUnavailable", "search_similar", "search_upload", "store_query"]
