"""Batch runs that fine-tune the backbone: a tuned-backbone version that searches with its own weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from django.core.files.storage import default_storage

from retrieval.extraction import preprocess
from retrieval.images import decode_image
from retrieval.inference import ExportOptions, export_key
from tests.webapp.learning_support import give_feedback
from webapp import artifacts
from webapp.gallery.models import Image, IndexVersion
from webapp.learning.models import TrainingRun
from webapp.learning.parameters import RunParameters
from webapp.learning.runs import start_run
from webapp.runtime import exported_artifact_name, runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


@pytest.fixture
def backbone_run(split_demo, eager_tasks, settings) -> TrainingRun:
    """A finished batch run with `backbone: true` on feedback over the demo gallery (the guard let through)."""
    settings.PROMOTION_GUARD = "off"
    give_feedback(queries=6, clicks=1)
    run = start_run(RunParameters.of(TrainingRun.Mode.BATCH, loss="triplet", epochs=1, batch_size=12, lr=1e-3,
                                     data="triplets", backbone=True, device="cpu"))
    run.refresh_from_db()
    return run


def test_a_backbone_run_publishes_tuned_weights_and_the_index_searches_with_them(backbone_run, settings) -> None:
    run = backbone_run
    assert run.status == "promoted", (run.message, run.error)
    base = run.candidate.parent
    version = run.candidate
    name, _, weights = version.backbone.partition("@")
    assert name == base.backbone and artifacts.exists(weights) and version.head_kind == "identity"
    assert IndexVersion.objects.get(is_active=True).model_version == version

    tuned = runtime.backbone(version.backbone).model
    pretrained = runtime.backbone(base.backbone).model
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(),
                                                    pretrained.state_dict().values(), strict=True))
    gallery = Image.objects.filter(role=Image.Role.GALLERY).order_by("id").values_list("id", flat=True)
    ids = np.array(list(gallery))
    store = runtime.feature_store(version.backbone)
    assert store.contains(ids).all()
    # The GPU/CPU re-extraction of the run equals what the CPU extractor of any host computes.
    stored = store.get(ids[:3])
    runtime.reset()
    crops = []
    for image in Image.objects.filter(pk__in=ids[:3].tolist()).order_by("id"):
        with default_storage.open(image.file.name, "rb") as handle:
            data = handle.read()
            crops.append(preprocess(decode_image(data, max_bytes=len(data) + 1).rgb,
                                    runtime.backbone(version.backbone)))
    extractor = runtime.extractor(version.backbone)
    fresh = extractor.features(crops)
    np.testing.assert_allclose(stored, fresh, rtol=1e-3, atol=1e-4)
    # The run published the tuned backbone's exported model beside its weights; hosts run that file.
    key = export_key(runtime.backbone(version.backbone), ExportOptions(precision=settings.INFERENCE))
    published = exported_artifact_name(weights, key)
    assert settings.INFERENCE != "torch" and artifacts.exists(published)
    assert extractor.forward.model_path == artifacts.fetch(published)


def test_a_query_upload_is_embedded_with_the_active_tuned_backbone(backbone_run, demo_folder) -> None:
    version = backbone_run.candidate
    upload = next(path for path in sorted(demo_folder.rglob("*")) if path.is_file()).read_bytes()
    result = service.search_upload(upload, "query.png", k=5)
    assert runtime.feature_store(version.backbone).contains(np.array([result.query.pk]))[0]
    assert len(result.hits) == 5
