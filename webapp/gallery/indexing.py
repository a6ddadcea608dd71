"""Build a FAISS index of the gallery for a model version, save it atomically and activate it."""

from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings

from retrieval.index import build_index, save_index
from retrieval.index_tuning import apply_search_params
from webapp.gallery import pipeline
from webapp.gallery.models import Image, IndexVersion, ModelVersion

logger = logging.getLogger(__name__)
EMBED_CHUNK = 8192


def indexable_ids(store) -> np.ndarray:
    """Ids of gallery images whose features are cached (what an index holds)."""
    gallery = np.fromiter(
        Image.objects.filter(role=Image.Role.GALLERY).values_list("id", flat=True), dtype=np.int64
    )
    return gallery[store.contains(gallery)] if len(gallery) else gallery


def gallery_vectors(version: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every gallery image with cached features, embedded by `version`."""
    store = pipeline.feature_store(version.backbone)
    ids = indexable_ids(store)
    dim = pipeline.head_for(version).output_dim(store.dim)
    vectors = np.empty((len(ids), dim), dtype=np.float32)
    for start in range(0, len(ids), EMBED_CHUNK):
        chunk = ids[start : start + EMBED_CHUNK]
        vectors[start : start + len(chunk)] = pipeline.embed(version, store.get(chunk))
    return ids, vectors


def build_and_activate(
    version: ModelVersion | None = None, factory: str | None = None,
    gallery: tuple[np.ndarray, np.ndarray] | None = None,
) -> IndexVersion:
    """Index the gallery under `version` (default: the active model) and make it the served index.

    `gallery` = gallery_vectors(version) when the caller has it already."""
    started = time.perf_counter()
    version = version or pipeline.active_model_version()
    factory = factory or settings.INDEX_FACTORY
    ids, vectors = gallery if gallery is not None else gallery_vectors(version)
    index = apply_search_params(build_index(vectors, ids, factory), settings.HNSW_EF_SEARCH)
    record = IndexVersion.objects.create(
        model_version=version, path="", factory=factory, dim=vectors.shape[1], ntotal=len(ids)
    )
    relative = f"indexes/index-{record.pk:06d}.faiss"
    save_index(index, settings.DATA_DIR / relative)
    IndexVersion.objects.filter(pk=record.pk).update(path=relative)
    record.path = relative
    record.activate()
    logger.info("Activated %s in %.2fs", record, time.perf_counter() - started)
    return record


def index_is_stale() -> bool:
    """True when gallery images with features are missing from the active index (or none is active)."""
    active = IndexVersion.objects.filter(is_active=True).first()
    if active is None:
        return Image.objects.filter(role=Image.Role.GALLERY).exists()
    return len(indexable_ids(pipeline.feature_store(active.model_version.backbone))) != active.ntotal
