"""The runtime object: bounded caches of backbones, one reset(), and a search that extracts its query once."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.atomic import atomic_torch_save
from retrieval.extraction import FeatureExtractor
from tests.imagefactory import image_bytes
from webapp import artifacts
from webapp.gallery import indexing
from webapp.gallery.models import TUNED, ModelVersion
from webapp.runtime import Runtime, runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


def _tuned_copy(name: str) -> str:
    """A 'tuned' backbone name whose weights (a copy of the pretrained ones) live in the artifact storage."""
    state = runtime.backbone().model.state_dict()
    artifact = artifacts.publish(artifacts.new_name("models", f"backbone-{name}", ".pt"),
                                 lambda path: atomic_torch_save(state, path))
    return f"{runtime.backbone().name}{TUNED}{artifact}"


def test_backbones_are_evicted_least_recently_used_first(settings) -> None:
    settings.LOADED_BACKBONES = 2
    mine = Runtime()
    base = settings.BACKBONE
    first, second = _tuned_copy("a"), _tuned_copy("b")
    mine.backbone(base)
    mine.backbone(first)
    assert mine.loaded_backbones() == [base, first]
    mine.backbone(base)  # used again: now the first tuned one is the least recently used
    mine.backbone(second)
    assert mine.loaded_backbones() == [base, second]
    assert mine.extractor(second).backbone is mine.backbone(second)  # an extractor goes with its backbone
    assert mine.backbone(first).name == first  # loaded again on demand
    assert mine.loaded_backbones() == [second, first]


def test_reset_forgets_what_depends_on_data_and_storage(settings, gallery) -> None:
    mine = Runtime()
    tuned = _tuned_copy("c")
    mine.backbone(tuned)
    store, holder = mine.feature_store(), mine.index_holder
    assert mine.served_index() is not None
    mine.reset()
    assert mine.loaded_backbones() == [settings.BACKBONE]  # a pretrained backbone stays loaded
    assert mine.feature_store() is not store and mine.index_holder is not holder
    assert mine.index_holder._current is None


def _count_forward_passes(monkeypatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    features = FeatureExtractor.features

    def counting(self, crops):
        calls.append((self.backbone.name, len(crops)))
        return features(self, crops)

    monkeypatch.setattr(FeatureExtractor, "features", counting)
    return calls


def test_a_search_right_after_a_promotion_extracts_its_query_once(gallery, settings, monkeypatch) -> None:
    settings.INDEX_CHECK_SECONDS = 3600.0  # this process has not noticed the promotion yet
    old = ModelVersion.active()
    assert service.search_upload(image_bytes(colour=(10, 200, 30)), "warm.jpg", k=3).model_version == old
    tuned = ModelVersion.objects.create(backbone=_tuned_copy("d"), head_kind="identity", parent=old)
    indexing.build_and_activate(tuned)  # promoted: the database says `tuned`, this process serves `old`

    calls = _count_forward_passes(monkeypatch)
    result = service.search_upload(image_bytes(colour=(30, 30, 220)), "query.jpg", k=3)
    assert result.model_version == old and len(result.hits) == 3
    assert calls == [(old.backbone, 1)]  # one forward pass, with the backbone of the index it searches
    query = np.array([result.query.pk])
    assert not runtime.feature_store(tuned.backbone).contains(query)[0]

    settings.INDEX_CHECK_SECONDS = 0.0  # the process notices the new index
    calls.clear()
    result = service.search_upload(image_bytes(colour=(220, 220, 20)), "next.jpg", k=3)
    assert result.model_version == tuned
    assert calls == [(tuned.backbone, 1)]
