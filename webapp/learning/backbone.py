"""Batch mode with ``backbone: true``: fine-tune the CNN itself on triplets and/or labels, then re-extract.

The tuned weights are published as an artifact; the new model version names its backbone
``<base>@<artifact>`` with an identity head, so every host loads the tuned weights from the storage and
extracts query features with them. On the ONNX Runtime paths (``REFIND_INFERENCE``) the run also publishes
the tuned backbone's exported model beside the weights (``<artifact>.<export key>.onnx``), so hosts fetch it
instead of exporting (and, for int8, calibrating) it themselves. This host re-extracts the gallery as every
host extracts it: on the training device for the full-precision paths (float32, so its rows equal what a
CPU host extracts), with the published int8 model on the int8 path; other hosts re-extract from the stored
originals when they first need the features (webapp/gallery/features.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import numpy as np
import torch
from django.conf import settings

from retrieval.atomic import atomic_torch_save
from retrieval.backbones import Backbone
from retrieval.extraction import preprocess
from retrieval.inference import ExportOptions, export_key, export_model
from training.backbone_tuning import extract_features, fine_tune_backbone
from webapp import artifacts
from webapp.gallery.features import ensure_features
from webapp.gallery.indexing import indexable_ids
from webapp.gallery.models import TUNED, Image, ModelVersion, base_backbone_name
from webapp.gallery.storing import read_stored_rgb
from webapp.learning.batch import checkpoint_path, prepare
from webapp.learning.parameters import RunParameters
from webapp.runtime import exported_artifact_name, runtime


class StoredImages:
    """Preprocessed batches of stored images (decoded in threads); training batches are randomly flipped."""

    def __init__(self, ids: np.ndarray, backbone: Backbone, seed: int = 0) -> None:
        self.backbone = backbone
        files = dict(Image.objects.filter(pk__in=ids.tolist()).values_list("id", "file"))
        self.files = [files[int(image_id)] for image_id in ids]
        self.pool = ThreadPoolExecutor(max_workers=settings.EXTRACT_PARALLEL)
        self.rng = np.random.default_rng(seed)
        mean, std = torch.tensor(backbone.mean), torch.tensor(backbone.std)
        self.mean, self.std = mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)

    def _crop(self, name: str) -> np.ndarray:
        return preprocess(read_stored_rgb(name), self.backbone)

    def close(self) -> None:
        self.pool.shutdown()

    def __call__(self, indices: np.ndarray, train: bool) -> torch.Tensor:
        crops = np.stack(list(self.pool.map(self._crop, [self.files[i] for i in indices])))
        if train:
            flip = self.rng.random(len(crops)) < 0.5
            crops[flip] = crops[flip][:, :, ::-1]
        batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255)
        return (batch - self.mean) / self.std


def publish_export(tuned: Backbone, weights: str) -> str:
    """Export `tuned` for the configured inference path and publish it beside its `weights` artifact."""
    options = ExportOptions(precision=settings.INFERENCE)
    name = exported_artifact_name(weights, export_key(tuned, options))
    return artifacts.publish(name, lambda path: export_model(tuned, options, path))


def backbone_retrain(run_id: int, parameters: RunParameters, progress: Callable[[float, str], None]) -> ModelVersion:
    """Fine-tune the active backbone (batch.prepare's data), publish it, re-extract the gallery with it."""
    setup = prepare(parameters)
    active = setup.active
    start = runtime.backbone(active.backbone)
    with closing(StoredImages(setup.ids, start, seed=parameters.seed)) as images:
        result = fine_tune_backbone(
            start.model, images, len(setup.ids), setup.labels, setup.triplet_rows, loss=parameters.loss,
            steps=setup.steps, batch_size=setup.batch_size, lr=parameters.lr, device=parameters.device,
            seed=parameters.seed, checkpoint_path=checkpoint_path(run_id, "-backbone"),
            progress=setup.progress(progress, 0.6),
        )
    tuned = result.model.cpu().eval()
    artifact = artifacts.publish(artifacts.new_name("models", f"backbone-run{run_id:06d}", ".pt"),
                                 lambda path: atomic_torch_save(tuned.state_dict(), path))
    name = f"{base_backbone_name(active.backbone)}{TUNED}{artifact}"
    if settings.INFERENCE != "torch":
        progress(0.62, f"exporting the tuned backbone ({settings.INFERENCE})")
        publish_export(dataclasses.replace(start, model=tuned, name=name), artifact)
    gallery = indexable_ids(active.backbone)
    progress(0.65, f"re-extracting {len(gallery)} gallery images with the tuned backbone")
    if settings.INFERENCE == "int8":
        ensure_features(gallery, name)
    else:
        with closing(StoredImages(gallery, start)) as images:
            features = extract_features(tuned, images, len(gallery), batch_size=64, device=parameters.device,
                                        bf16=False)
        runtime.feature_store(name).append(gallery, features)
    return ModelVersion.objects.create(
        backbone=name, head_kind="identity", parent=active, triplet_watermark=setup.watermark,
        config=setup.config(parameters),
    )
