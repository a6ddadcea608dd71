"""Build a FAISS index of the gallery for a model version, publish it to the artifact storage, activate it."""

from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from retrieval.augment import augment_with_index
from retrieval.index import build_index, save_index, search
from retrieval.index_tuning import apply_search_params
from webapp import artifacts
from webapp.gallery.features import ensure_features
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.gallery.removal import erase_removed_features
from webapp.runtime import runtime

logger = logging.getLogger(__name__)
EMBED_CHUNK = 8192


def indexable_ids(backbone: str) -> np.ndarray:
    """Ids of gallery images with features (what an index holds); features stored by other hosts are
    extracted on this one first (webapp/gallery/features.py). Held-out images of an evaluation split are
    never indexed: they are the evaluation queries, searched as uploads are, so they can never be shown,
    clicked or learned from (docs/learning.md)."""
    gallery = np.fromiter(
        Image.objects.filter(role=Image.Role.GALLERY).exclude(split=Image.Split.HELDOUT)
        .values_list("id", flat=True), dtype=np.int64
    )
    return gallery[ensure_features(gallery, backbone).contains(gallery)] if len(gallery) else gallery


def gallery_vectors(version: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every gallery image with features, embedded by `version`."""
    store = runtime.feature_store(version.backbone)
    ids = indexable_ids(version.backbone)
    dim = runtime.head(version).output_dim(store.dim)
    vectors = np.empty((len(ids), dim), dtype=np.float32)
    for start in range(0, len(ids), EMBED_CHUNK):
        chunk = ids[start : start + EMBED_CHUNK]
        vectors[start : start + len(chunk)] = runtime.embed(version, store.get(chunk))
    return ids, vectors


def build_and_activate(
    version: ModelVersion | None = None, factory: str | None = None,
    gallery: tuple[np.ndarray, np.ndarray] | None = None,
) -> IndexVersion:
    """Index the gallery under `version` (default: the active model) and make it the served index.

    Without `version`, a model whose features are outdated (REFIND_BACKBONE or REFIND_POOLING changed) is
    replaced by the pretrained model over the configured features, extracted here from the stored originals.
    `gallery` = gallery_vectors(version) when the caller has it already."""
    started = time.perf_counter()
    as_of = timezone.now()  # images removed after this are filtered at search time until the next build
    erase_removed_features()  # removals made on other hosts: this host's feature cache forgets them too
    version = version or ModelVersion.serving()
    factory = factory or settings.INDEX_FACTORY
    ids, vectors = gallery if gallery is not None else gallery_vectors(version)
    index = apply_search_params(build_index(vectors, ids, factory), settings.HNSW_EF_SEARCH, settings.IVF_NPROBE)
    if settings.DBA_K > 0 and len(ids) > 1:  # αDBA: each row averaged with its nearest (docs/benchmarks.md §10)
        vectors = augment_with_index(lambda q, n: search(index, q, n), vectors, ids, settings.DBA_K)
        index = apply_search_params(build_index(vectors, ids, factory), settings.HNSW_EF_SEARCH, settings.IVF_NPROBE)
    # Stored first under a new name (raises ArtifactError, e.g. disk full, with nothing published);
    # only then does a row point to it and become active.
    name = artifacts.publish(artifacts.new_name("indexes", "index", ".faiss"), lambda path: save_index(index, path))
    with transaction.atomic():
        record = IndexVersion.objects.create(
            model_version=version, path=name, factory=factory, dim=vectors.shape[1], ntotal=len(ids),
            gallery_as_of=as_of,
        )
        record.activate()
    logger.info("Activated %s in %.2fs", record, time.perf_counter() - started)
    return record


def index_is_stale() -> bool:
    """True when gallery images with features are missing from the active index (or none is active), or when
    the active index was built from other features than configured (a changed network or pooling)."""
    active = IndexVersion.objects.filter(is_active=True).first()
    if active is None:
        return Image.objects.filter(role=Image.Role.GALLERY).exists()
    if active.model_version.features_outdated():
        return True
    return len(indexable_ids(active.model_version.backbone)) != active.ntotal
