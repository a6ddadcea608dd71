"""Batched feature extraction: preprocessed RGB images in, pooled backbone features out.

Decoding and resizing run in a small thread pool (Pillow releases the GIL) while the backbone runs
the previous batch; see docs/benchmarks.md for how batch size, threads and memory format were chosen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps

from retrieval.backbones import Backbone
from retrieval.images import to_rgb

T = TypeVar("T")
DEFAULT_BATCH_SIZE = 16


def preprocess(rgb: Image.Image, backbone: Backbone) -> np.ndarray:
    """Resize the shorter side to the backbone's resize size, centre-crop, return HxWx3 uint8."""
    width, height = rgb.size
    scale = backbone.resize_size / min(width, height)
    side = backbone.input_size
    new_size = (max(side, round(width * scale)), max(side, round(height * scale)))
    resized = rgb.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    left = (resized.width - backbone.input_size) // 2
    top = (resized.height - backbone.input_size) // 2
    crop = resized.crop((left, top, left + backbone.input_size, top + backbone.input_size))
    return np.asarray(crop, dtype=np.uint8)


class FeatureExtractor:
    """Runs a backbone over batches of preprocessed images."""

    def __init__(self, backbone: Backbone, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.backbone = backbone
        self.batch_size = batch_size
        self.model = backbone.model.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(backbone.std).view(1, 3, 1, 1) * 255.0

    @torch.inference_mode()
    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        """Pooled features (N x dim, float32) for HxWx3 uint8 crops, in batches."""
        out = np.empty((len(crops), self.backbone.dim), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            chunk = np.stack(crops[start : start + self.batch_size])
            batch = torch.from_numpy(chunk).permute(0, 3, 1, 2).float()
            batch = ((batch - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
            out[start : start + len(chunk)] = self.model(batch).numpy()
        return out

    def stream(
        self, items: Iterable[T], load: Callable[[T], Image.Image | None], threads: int | None = None
    ) -> Iterator[tuple[list[T], np.ndarray]]:
        """Yield (items, features) per batch; `load` decodes one item or returns None to drop it.

        `load` runs in a thread pool, one batch ahead of the backbone.
        """
        threads = threads or min(4, os.cpu_count() or 1)

        def prepare(item: T) -> tuple[T, np.ndarray | None]:
            rgb = load(item)
            return item, None if rgb is None else preprocess(rgb, self.backbone)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending: list = []
            for item in items:
                pending.append(pool.submit(prepare, item))
                if len(pending) >= 2 * self.batch_size:
                    yield self._run(pending[: self.batch_size])
                    pending = pending[self.batch_size :]
            while pending:
                yield self._run(pending[: self.batch_size])
                pending = pending[self.batch_size :]

    def _run(self, futures: list) -> tuple[list, np.ndarray]:
        done = [future.result() for future in futures]
        kept = [(item, crop) for item, crop in done if crop is not None]
        if not kept:
            return [], np.empty((0, self.backbone.dim), dtype=np.float32)
        return [item for item, _ in kept], self.features([crop for _, crop in kept])


def _open_rgb(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.draft("RGB", (512, 512))
        return to_rgb(ImageOps.exif_transpose(image))


def extract_paths(paths: list[str], backbone: Backbone, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Features for image files in order (for benchmarks and scripts; the app imports via webapp)."""
    extractor = FeatureExtractor(backbone, batch_size)
    rows = [feats for _, feats in extractor.stream(paths, _open_rgb)]
    return np.concatenate(rows) if rows else np.empty((0, backbone.dim), dtype=np.float32)
