"""Process-wide retrieval objects (backbones, extractors, feature stores, heads): loaded once, shared."""

from __future__ import annotations

import dataclasses
import threading
from functools import lru_cache

import numpy as np
import torch
from django.conf import settings

from retrieval.backbones import Backbone, load_backbone
from retrieval.extraction import FeatureExtractor
from retrieval.feature_store import FeatureStore
from retrieval.heads import MetricHead, load_head
from retrieval.inference import Forward, make_forward
from webapp import artifacts
from webapp.gallery.models import ModelVersion

_lock = threading.RLock()


TUNED = "@"  # "<base backbone>@<weights artifact>": a backbone fine-tuned by a batch run


def backbone(name: str | None = None) -> Backbone:
    """The configured backbone, or the named one (tuned weights come from the artifact storage)."""
    return _cached(_backbones, name or settings.BACKBONE, _load_backbone)


def extractor(name: str | None = None) -> FeatureExtractor:
    """The named (default: configured) backbone's extractor on the configured inference path (``REFIND_INFERENCE``)."""
    return _cached(_extractors, name or settings.BACKBONE, lambda key: FeatureExtractor(
        backbone(key), settings.EXTRACT_BATCH_SIZE, parallel=settings.EXTRACT_PARALLEL, forward=forward(key)))


def forward(name: str, path: str | None = None) -> Forward:
    """The forward pass of backbone `name` on `path` (default: configured). Exported models live in this
    host's EXPORTS_DIR; a tuned backbone's is fetched from beside its weights when its run published it."""
    weights = name.partition(TUNED)[2]

    def published(key: str):
        artifact = exported_artifact_name(weights, key)
        return artifacts.fetch(artifact) if weights and artifacts.exists(artifact) else None

    return make_forward(backbone(name), path or settings.INFERENCE, settings.EXPORTS_DIR, published)


def exported_artifact_name(weights: str, key: str) -> str:
    """Where a backbone run publishes the exported model (`retrieval.inference.export_key`) of its tuned weights."""
    return f"{weights}.{key}.onnx"


def base_backbone_name(name: str) -> str:
    return name.partition(TUNED)[0]


_backbones: dict[str, Backbone] = {}
_extractors: dict[str, FeatureExtractor] = {}


def _cached(cache: dict, key: str, make):
    with _lock:
        if key not in cache:
            cache[key] = make(key)
        return cache[key]


def _load_backbone(name: str) -> Backbone:
    base, _, weights = name.partition(TUNED)
    loaded = load_backbone(base)
    if weights:
        state = torch.load(artifacts.fetch(weights), map_location="cpu", weights_only=True)
        loaded.model.load_state_dict(state)
        loaded = dataclasses.replace(loaded, name=name)
    return loaded


def feature_dim(backbone_name: str) -> int:
    return backbone(backbone_name).dim


def feature_store(backbone_name: str | None = None) -> FeatureStore:
    return _feature_store(backbone_name or settings.BACKBONE)


@lru_cache(maxsize=4)
def _feature_store(name: str) -> FeatureStore:
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
    return version if version is not None else configured_model_version()


def configured_model_version() -> ModelVersion:
    """The pretrained model (identity head) over the configured features (``REFIND_BACKBONE`` + ``REFIND_POOLING``)."""
    with _lock:
        version, _ = ModelVersion.objects.get_or_create(
            backbone=settings.BACKBONE, head_kind="identity", parent=None,
            defaults={"config": {"note": "pretrained backbone features"}},
        )
    return version


def features_outdated(version: ModelVersion) -> bool:
    """True when `version` runs on other features than configured: another network or pooling.

    A backbone a run fine-tuned from the configured one (``<configured>@<weights>``) is not outdated.
    """
    return base_backbone_name(version.backbone) != settings.BACKBONE


def serving_model_version() -> ModelVersion:
    """What the served index should use: the active model, unless its features are outdated (the pooling or
    the network setting changed), then the pretrained model over the configured features."""
    active = active_model_version()
    return configured_model_version() if features_outdated(active) else active


def reset_data_caches() -> None:
    """Forget objects tied to the data directory (tests switch directories; the backbone stays loaded)."""
    _feature_store.cache_clear()
    _head.cache_clear()
    with _lock:
        for cache in (_backbones, _extractors):
            for name in [name for name in cache if TUNED in name]:  # tuned weights live in the storage
                del cache[name]
