"""Process-wide retrieval objects for the configured backbone: loaded once, shared by requests and tasks."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
from django.conf import settings

from retrieval.backbones import Backbone, load_backbone
from retrieval.extraction import FeatureExtractor
from retrieval.feature_store import FeatureStore
from retrieval.heads import MetricHead, load_head
from webapp import artifacts
from webapp.gallery.models import ModelVersion

_lock = threading.Lock()


@lru_cache(maxsize=1)
def backbone() -> Backbone:
    return load_backbone(settings.BACKBONE)


@lru_cache(maxsize=1)
def extractor() -> FeatureExtractor:
    return FeatureExtractor(backbone(), settings.EXTRACT_BATCH_SIZE, parallel=settings.EXTRACT_PARALLEL)


def feature_dim(backbone_name: str) -> int:
    return backbone().dim if backbone_name == settings.BACKBONE else load_backbone(backbone_name).dim


@lru_cache(maxsize=4)
def feature_store(backbone_name: str | None = None) -> FeatureStore:
    name = backbone_name or settings.BACKBONE
    return FeatureStore(settings.FEATURES_DIR, name, feature_dim(name))


@lru_cache(maxsize=8)
def _head(kind: str, head_file: str) -> MetricHead:
    return load_head(kind, artifacts.fetch(head_file) if head_file else None)


def head_for(version: ModelVersion) -> MetricHead:
    return _head(version.head_kind, version.head_file)


def embed(version: ModelVersion, features: np.ndarray) -> np.ndarray:
    """Indexed vectors for backbone features under a model version."""
    return head_for(version).apply(features)


def active_model_version() -> ModelVersion:
    """The active model; on a new installation, an identity head over the configured backbone."""
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is not None:
        return version
    with _lock:
        version, _ = ModelVersion.objects.get_or_create(
            backbone=settings.BACKBONE, head_kind="identity", parent=None,
            defaults={"config": {"note": "pretrained backbone features"}},
        )
    return version


def reset_data_caches() -> None:
    """Forget objects tied to the data directory (tests switch directories; the backbone stays loaded)."""
    feature_store.cache_clear()
    _head.cache_clear()
