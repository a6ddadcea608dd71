"""The process's runtime: every object a web or worker process loads once and shares, in one place.

Backbones (with their feature extractors), feature stores, metric heads and the index holder live in
bounded least-recently-used caches of the one `runtime` object; the search path's other per-process views
(click memory's moved images, the removed-image filter, their αDBA copy) are held here too, through
`runtime.view(name, factory)`, so they are forgotten by the same reset. A long-lived web process that
has served several tuned backbones keeps only the last few (REFIND_LOADED_BACKBONES). `runtime.reset()`
forgets everything tied to the data directory and the storage (tests switch both); backbones that come
from installed packages (not from the storage) are kept, since loading them again would give the same
weights.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import cached_property
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
from django.conf import settings

from retrieval.backbones import Backbone, load_backbone
from retrieval.extraction import FeatureExtractor
from retrieval.feature_store import FeatureStore
from retrieval.heads import MetricHead, load_head
from retrieval.index import IndexHolder, LoadedIndex, load_index
from retrieval.index_tuning import apply_search_params, set_search_threads
from retrieval.inference import Forward, make_forward
from webapp import artifacts
from webapp.gallery.models import TUNED, IndexVersion, ModelVersion

logger = logging.getLogger(__name__)

FEATURE_STORES = 4
HEADS = 8

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A thread-safe mapping that makes missing values on demand and keeps at most `maxsize` of them."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(1, maxsize)
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: K, make: Callable[[K], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = make(key)
            self._items[key] = value
            while len(self._items) > self.maxsize:
                evicted, _ = self._items.popitem(last=False)
                logger.info("Runtime cache: evicted %s", evicted)
            return value

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._items)

    def discard(self, keep: Callable[[K], bool]) -> None:
        """Forget every entry whose key `keep` rejects."""
        with self._lock:
            for key in [key for key in self._items if not keep(key)]:
                del self._items[key]


class LoadedBackbone:
    """A backbone and, made on first use, its feature extractor."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    @cached_property
    def extractor(self) -> FeatureExtractor:
        """The extractor on the configured inference path (``REFIND_INFERENCE``, retrieval/inference.py)."""
        return FeatureExtractor(self.backbone, settings.EXTRACT_BATCH_SIZE, parallel=settings.EXTRACT_PARALLEL,
                                forward=forward(self.backbone))


def forward(backbone: Backbone, path: str | None = None) -> Forward:
    """`backbone`'s forward pass on `path` (default: configured). Exported models live in this host's
    EXPORTS_DIR; a tuned backbone's is fetched from beside its weights when its run published it."""
    weights = backbone.name.partition(TUNED)[2]

    def published(key: str) -> Path | None:
        artifact = exported_artifact_name(weights, key)
        return artifacts.fetch(artifact) if weights and artifacts.exists(artifact) else None

    return make_forward(backbone, path or settings.INFERENCE, settings.EXPORTS_DIR, published)


def exported_artifact_name(weights: str, key: str) -> str:
    """Where a backbone run publishes the exported model (`retrieval.inference.export_key`) of its tuned weights."""
    return f"{weights}.{key}.onnx"


def _load_backbone(name: str) -> LoadedBackbone:
    base, _, weights = name.partition(TUNED)
    loaded = load_backbone(base)
    if weights:  # tuned weights come from the artifact storage
        state = torch.load(artifacts.fetch(weights), map_location="cpu", weights_only=True)
        loaded.model.load_state_dict(state)
        loaded = dataclasses.replace(loaded, name=name)
    return LoadedBackbone(loaded)


class _ActiveIndex:
    """Resolve the active index (version, artifact name) at most every INDEX_CHECK_SECONDS."""

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


def _load_servable(name: str):
    """Load an index, and first the head and backbone of its model version: a version whose artifacts cannot
    be fetched never replaces the one being served (RuntimeError/OSError: reported, the previous one serves)."""
    row = IndexVersion.objects.select_related("model_version").filter(path=name).first()
    if row is not None:
        version = row.model_version
        try:
            runtime.head(version)
            runtime.backbone(version.backbone)
        except OSError:
            raise
        except Exception as exc:  # a corrupt artifact: whatever its loader raised
            raise RuntimeError(f"model version {version.pk} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return load_index(artifacts.fetch(name))


def new_index_holder() -> IndexHolder:
    """What a process serves from: the active index, fetched from the artifact storage into this host's cache
    (with its model version's head and backbone: `_load_servable`)."""
    return IndexHolder(
        _ActiveIndex(), prepare=lambda index: apply_search_params(index, settings.HNSW_EF_SEARCH, settings.IVF_NPROBE),
        on_error=_report_unloadable, load=_load_servable,
    )


class Runtime:
    """The caches of one process (see the module docstring); use the module's `runtime`."""

    def __init__(self) -> None:
        self._backbones: LRU[str, LoadedBackbone] = LRU(settings.LOADED_BACKBONES)
        self._stores: LRU[tuple[str, str], FeatureStore] = LRU(FEATURE_STORES)
        self._heads: LRU[tuple[str, str], MetricHead] = LRU(HEADS)
        self.index_holder = new_index_holder()
        self._threads_set = False
        self._views: dict[str, object] = {}

    def view(self, name: str, factory: Callable[[], V]) -> V:
        """A per-process view another module keeps (made by `factory` on first use, dropped by reset())."""
        if name not in self._views:
            self._views[name] = factory()
        return self._views[name]  # type: ignore[return-value]

    def forget(self, name: str) -> None:
        """Drop one view (the next use makes it anew)."""
        self._views.pop(name, None)

    def backbone(self, name: str | None = None) -> Backbone:
        """The configured backbone, or the named one (tuned weights come from the artifact storage)."""
        return self._backbones.get(name or settings.BACKBONE, _load_backbone).backbone

    def extractor(self, name: str | None = None) -> FeatureExtractor:
        return self._backbones.get(name or settings.BACKBONE, _load_backbone).extractor

    def loaded_backbones(self) -> list[str]:
        """Names of the backbones held now, least recently used first."""
        return self._backbones.keys()

    def feature_store(self, backbone: str | None = None) -> FeatureStore:
        """This host's feature store of a backbone (default: the configured one)."""
        name = backbone or settings.BACKBONE
        return self._stores.get((str(settings.FEATURES_DIR), name),
                                lambda key: FeatureStore(settings.FEATURES_DIR, name, self.backbone(name).dim))

    def head(self, version: ModelVersion) -> MetricHead:
        """The metric head of a model version (its artifact fetched from the storage once)."""
        return self._heads.get((version.head_kind, version.head_file), lambda key: load_head(
            key[0], artifacts.fetch(key[1]) if key[1] else None))

    def embed(self, version: ModelVersion, features: np.ndarray) -> np.ndarray:
        """Indexed vectors for backbone features under a model version."""
        return self.head(version).apply(features)

    def served_index(self) -> LoadedIndex | None:
        """The index this process serves (swapped when a newer one is active); FAISS threads set once."""
        if not self._threads_set:
            set_search_threads(settings.SEARCH_THREADS)
            self._threads_set = True
        return self.index_holder.current()

    def reset(self) -> None:
        """Forget what is tied to the data directory and the storage: feature stores, heads, tuned
        backbones, the loaded index. Pretrained backbones stay loaded."""
        self._backbones.discard(lambda name: TUNED not in name)
        self._backbones.maxsize = settings.LOADED_BACKBONES
        self._stores.discard(lambda key: False)
        self._heads.discard(lambda key: False)
        self.index_holder = new_index_holder()
        self._threads_set = False
        self._views.clear()


runtime = Runtime()
