"""Batched feature extraction: preprocessed RGB images in, pooled backbone features out.

The forward pass is one of the inference paths of `retrieval.inference` (ONNX Runtime fp32 or int8,
or PyTorch: a CPU-optimised copy, `retrieval.backbones.optimize_for_cpu`), over *micro-batches* of
one image: on a small CPU a larger forward batch is slower per image, because MobileNet-style networks
are memory-bound and a batch's activations no longer fit in cache (docs/benchmarks.md). ``batch_size``
is only the grouping of `stream`'s output (how many images are decoded ahead and stored together).

Every path runs single-threaded per call (ONNX Runtime: one intra-op thread; torch: one OpenMP
thread): with two, every one of the ~100 parallel regions per image ends in a barrier that stalls for
a scheduler time slice whenever anything else wants a core (our decode thread, a web or Celery worker,
other jobs): measured 5-20x slower on this 2-core machine. Decoding and resizing run in a one-thread
pool (Pillow releases the GIL) while the backbone runs; more decode threads only compete with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps

from retrieval.backbones import Backbone
from retrieval.images import to_rgb
from retrieval.inference import Forward, TorchForward

T = TypeVar("T")
DEFAULT_BATCH_SIZE = 16
DEFAULT_MICRO_BATCH = 1
DEFAULT_DECODE_THREADS = 1
DEFAULT_TORCH_THREADS = 1
DEFAULT_PARALLEL = os.cpu_count() or 1  # single-threaded forward passes side by side: ~2x on 2 cores


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


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class FeatureExtractor:
    """Runs a backbone over preprocessed images.

    `forward` is the inference path (`retrieval.inference.make_forward`; default: the torch path,
    CPU-optimised, or the backbone's own eager model with `optimize=False`). `micro_batch` is the number
    of images per forward pass (1 is fastest on CPU, see the module docstring); `threads` the torch
    intra-op threads while `features` runs (the process setting is restored afterwards; None leaves it alone).
    """

    def __init__(
        self, backbone: Backbone, batch_size: int = DEFAULT_BATCH_SIZE, *,
        micro_batch: int = DEFAULT_MICRO_BATCH, threads: int | None = DEFAULT_TORCH_THREADS, optimize: bool = True,
        parallel: int = DEFAULT_PARALLEL, forward: Forward | None = None,
    ) -> None:
        self.backbone = backbone
        self.batch_size = max(1, batch_size)
        self.micro_batch = max(1, micro_batch)
        self.threads = threads
        self.parallel = max(1, parallel)
        self.forward = forward if forward is not None else TorchForward(backbone, optimize)

    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        """Pooled features (N x dim, float32) for HxWx3 uint8 crops; micro-batches run on `parallel` threads."""
        out = np.empty((len(crops), self.backbone.dim), dtype=np.float32)
        starts = range(0, len(crops), self.micro_batch)
        with torch_threads(self.threads):
            if self.parallel > 1 and len(starts) > 1:
                with ThreadPoolExecutor(max_workers=min(self.parallel, len(starts))) as pool:
                    list(pool.map(lambda start: self._forward_into(out, crops, start), starts))
            else:
                for start in starts:
                    self._forward_into(out, crops, start)
        return out

    def _to_input(self, chunk: np.ndarray) -> torch.Tensor:
        """The torch path's input for NHWC uint8 crops (normalised, channels_last), whatever path runs."""
        forward = self.forward if isinstance(self.forward, TorchForward) else TorchForward(self.backbone, False)
        return forward.to_input(chunk)

    def _forward_into(self, out: np.ndarray, crops: list[np.ndarray], start: int) -> None:
        chunk = np.stack(crops[start : start + self.micro_batch])
        out[start : start + len(chunk)] = self.forward(chunk)

    def stream(
        self, items: Iterable[T], load: Callable[[T], Image.Image | None], threads: int | None = None
    ) -> Iterator[tuple[list[T], np.ndarray]]:
        """Yield (items, features) per batch of `batch_size`; `load` decodes one item or returns None to drop it.

        `load` runs in a pool of `threads` threads (default 1), up to two batches ahead of the backbone.
        """
        with ThreadPoolExecutor(max_workers=threads or DEFAULT_DECODE_THREADS) as pool:
            pending: list[Future[tuple[T, np.ndarray | None]]] = []
            for item in items:
                pending.append(pool.submit(self._prepare, load, item))
                if len(pending) >= 2 * self.batch_size:
                    yield self._run(pending[: self.batch_size])
                    pending = pending[self.batch_size :]
            while pending:
                yield self._run(pending[: self.batch_size])
                pending = pending[self.batch_size :]

    def _prepare(self, load: Callable[[T], Image.Image | None], item: T) -> tuple[T, np.ndarray | None]:
        rgb = load(item)
        return item, None if rgb is None else preprocess(rgb, self.backbone)

    def _run(self, futures: list[Future[tuple[T, np.ndarray | None]]]) -> tuple[list[T], np.ndarray]:
        done = [future.result() for future in futures]
        kept = [(item, crop) for item, crop in done if crop is not None]
        if not kept:
            return [], np.empty((0, self.backbone.dim), dtype=np.float32)
        return [item for item, _ in kept], self.features([crop for _, crop in kept])


def open_rgb(path: str) -> Image.Image:
    """Decode an image file to RGB (JPEG draft mode: decoded at reduced size when it is much larger)."""
    with Image.open(path) as image:
        image.draft("RGB", (512, 512))
        return to_rgb(ImageOps.exif_transpose(image))


def extract_paths(paths: list[str], backbone: Backbone, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Features for image files in order (for benchmarks and scripts; the app imports via webapp)."""
    extractor = FeatureExtractor(backbone, batch_size)
    rows = [feats for _, feats in extractor.stream(paths, open_rgb)]
    return np.concatenate(rows) if rows else np.empty((0, backbone.dim), dtype=np.float32)
