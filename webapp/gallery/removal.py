"""Remove images: out of every result at once, files and features deleted, the row kept as a tombstone.

Triplets, judgements and impressions are append-only history and point to image rows, so a removed
image keeps its row with role ``removed``: its original and thumbnail are deleted from the media
storage, its features are erased from this host's feature store (other hosts erase theirs at their next
index build, `erase_removed_features`), its SHA-256 and file name are forgotten (the same bytes
uploaded again become a new image), and learners skip triplets that mention it
(webapp/feedback/usable.py). Searches filter it from the serving index until the next build leaves it
out (webapp/search/service.py, `removed_since`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import faiss
import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from retrieval.feature_store import FeatureStore
from retrieval.index import LoadedIndex
from retrieval.index_tuning import excluding
from webapp.gallery.models import Image, IndexVersion
from webapp.runtime import runtime

logger = logging.getLogger(__name__)
# A removal committed while a build read the gallery may be in that build: filter a little further back.
BUILD_RACE_MARGIN = timedelta(minutes=5)


def remove_images(ids: Iterable[int], *, roles: Iterable[str] = (Image.Role.GALLERY, Image.Role.QUERY)) -> int:
    """Remove the images with these ids (only those whose role is in `roles`); returns how many were removed."""
    ids = sorted({int(i) for i in ids})
    removed: list[tuple[int, str, str]] = []
    for start in range(0, len(ids), 5000):
        with transaction.atomic():
            rows = list(Image.objects.select_for_update().filter(pk__in=ids[start : start + 5000], role__in=list(roles))
                        .values_list("id", "file", "thumbnail"))
            Image.objects.filter(pk__in=[r[0] for r in rows]).update(
                role=Image.Role.REMOVED, removed_at=timezone.now(), file="", thumbnail="", original_name="",
                source="", split="", updated_at=timezone.now(),
            )
            for pk, _, _ in rows:  # forget the content hash: the same bytes may come back as a new image
                Image.objects.filter(pk=pk).update(sha256=f"removed:{pk}")
        removed.extend(rows)
    for _, file, thumbnail in removed:
        for name in (file, thumbnail):
            _delete_file(name)
    erase_removed_features(np.array([r[0] for r in removed], dtype=np.int64))
    if removed:
        logger.info("Removed %d images", len(removed))
    return len(removed)


def _delete_file(name: str) -> None:
    if not name:
        return
    try:
        default_storage.delete(name)
    except OSError as exc:  # the row is a tombstone already; the file is gone from every listing
        logger.warning("Could not delete %s from the media storage: %s", name, exc)


def erase_removed_features(ids: np.ndarray | None = None) -> int:
    """Erase removed images' features from this host's feature stores (all removed images when `ids` is None)."""
    if ids is None:
        ids = np.fromiter(Image.objects.filter(role=Image.Role.REMOVED).values_list("id", flat=True), dtype=np.int64)
    if not len(ids):
        return 0
    return sum(store.erase(ids) for store in _local_feature_stores())


def _local_feature_stores() -> list[FeatureStore]:
    """Every feature store under this host's FEATURES_DIR (one per backbone, tuned ones included)."""
    root = Path(settings.FEATURES_DIR)
    stores = []
    for meta in sorted(root.glob("*/meta.json")) if root.is_dir() else []:
        info = json.loads(meta.read_text())
        stores.append(FeatureStore(root, info["backbone"], int(info["dim"])))
    return stores


def removed_since(moment: datetime | None) -> np.ndarray:
    """Ids of images removed after `moment` (minus the build race margin); every removed image if None."""
    removed = Image.objects.filter(role=Image.Role.REMOVED)
    if moment is not None:
        removed = removed.filter(removed_at__gte=moment - BUILD_RACE_MARGIN)
    return np.fromiter(removed.values_list("id", flat=True), dtype=np.int64)


@dataclass(frozen=True)
class Removed:
    """What a search must leave out: FAISS parameters excluding the ids inside the index, and the ids."""

    params: faiss.SearchParameters | None
    ids: frozenset[int]


class RemovedFilter:
    """Per process: the images removed since the served index read the gallery (IndexVersion.gallery_as_of).

    Refreshed at most every INDEX_CHECK_SECONDS (the same bound as noticing a new index), so a removal is
    out of every result within about a second, before any rebuild."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._value = Removed(None, frozenset())

    def current(self, loaded: LoadedIndex) -> Removed:
        key, now = (id(loaded.index), loaded.version), time.monotonic()
        if key != self._key or now - self._checked_at >= settings.INDEX_CHECK_SECONDS:
            as_of = IndexVersion.objects.filter(pk=loaded.version).values_list("gallery_as_of", flat=True).first()
            ids = removed_since(as_of)
            self._value = Removed(excluding(loaded.index, ids), frozenset(ids.tolist()))
            self._key, self._checked_at = key, now
        return self._value


def removed_filter() -> RemovedFilter:
    """This process's filter (held by the runtime, so runtime.reset() forgets it)."""
    return runtime.view("removed_filter", RemovedFilter)
