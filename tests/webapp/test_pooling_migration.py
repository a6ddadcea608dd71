"""Changing the pooling (or network) setting re-extracts the gallery and the index refresh switches to it."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from webapp.gallery import indexing, tasks
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.runtime import runtime
from webapp.search import service


@pytest.mark.django_db
def test_a_gallery_built_with_average_pooling_moves_to_gem_on_the_next_refresh(demo_folder, settings) -> None:
    from webapp.gallery.jobs import import_tree

    settings.BACKBONE = "efficientnet_lite0"  # a gallery from before pooling was configurable
    import_tree(demo_folder, labels_from_dirs=True)
    old = IndexVersion.objects.get(is_active=True)
    assert old.model_version.backbone == "efficientnet_lite0" and not indexing.index_is_stale()
    query = Image.objects.filter(role=Image.Role.GALLERY).first()
    before = service.search_similar(query, k=5)

    settings.BACKBONE = "efficientnet_lite0+gem3"  # REFIND_POOLING=gem
    assert indexing.index_is_stale()
    new_id = tasks.refresh_index()
    new = IndexVersion.objects.get(is_active=True)
    assert new.pk == new_id != old.pk and new.ntotal == old.ntotal
    assert (new.model_version.backbone, new.model_version.head_kind) == ("efficientnet_lite0+gem3", "identity")
    assert not indexing.index_is_stale() and tasks.refresh_index() is None

    gallery = np.array(sorted(Image.objects.filter(role=Image.Role.GALLERY).values_list("id", flat=True)))
    avg = runtime.feature_store("efficientnet_lite0").get(gallery)
    gem = runtime.feature_store("efficientnet_lite0+gem3").get(gallery)  # re-extracted from the originals
    assert gem.shape == avg.shape and not np.allclose(gem, avg, rtol=1e-2)
    after = service.search_similar(query, k=5)
    assert (after.index_version, after.model_version.pk) == (new.pk, new.model_version_id)
    assert before.model_version.pk != after.model_version.pk


@pytest.mark.django_db
def test_a_backbone_tuned_from_the_configured_features_is_not_outdated(gallery) -> None:
    active = ModelVersion.active()
    assert active.backbone == settings.BACKBONE
    active.backbone = f"{settings.BACKBONE}@models/backbone-x.pt"
    assert not active.features_outdated()
    active.backbone = "torchvision:resnet50"
    assert active.features_outdated()
