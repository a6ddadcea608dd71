"""Cache the backbone's last feature map of every CUB-100 image once (float16, outside the repository).

Pooling, database-side augmentation and query expansion can then be compared on the same maps in seconds
(bench/zero_click.py). EfficientNet-Lite0: 5,902 x 1280 x 7 x 7 float16 = 740 MB.

python -m bench.feature_maps [--dataset ../shared/datasets/cub100] [--cache /work/cache]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bench.learning import DEFAULT_DATASET, list_dataset
from retrieval.backbones import feature_map, load_backbone, optimize_for_cpu
from retrieval.extraction import FeatureExtractor, open_rgb, preprocess, torch_threads

DEFAULT_CACHE = Path(os.environ.get("REFIND_BENCH_CACHE", "/work/cache"))


def cache_path(cache: Path, backbone: str) -> Path:
    return cache / f"cub100_{backbone}_fmap_f16.npy"


def load_feature_maps(dataset: Path, cache: Path, backbone_name: str = "efficientnet_lite0",
                      batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(memory-mapped float16 N x C x H x W maps, labels); extracted on the first call."""
    paths, labels, _ = list_dataset(dataset)
    path = cache_path(cache, backbone_name)
    if path.exists():
        maps = np.load(path, mmap_mode="r")
        if len(maps) == len(labels):
            return maps, labels
    backbone = load_backbone(backbone_name)
    helper = FeatureExtractor(backbone, optimize=False, parallel=1)
    model = optimize_for_cpu(backbone.model)
    with torch.inference_mode():
        shape = feature_map(model, helper._to_input(np.zeros((1, 224, 224, 3), np.uint8))).shape[1:]
    cache.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part.npy")
    out = np.lib.format.open_memmap(part, mode="w+", dtype=np.float16, shape=(len(paths), *shape))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool, torch_threads(1), torch.inference_mode():
        crops = pool.map(lambda p: preprocess(open_rgb(p), backbone), paths)
        chunk: list[np.ndarray] = []
        done = 0
        for crop in crops:
            chunk.append(crop)
            if len(chunk) == batch or done + len(chunk) == len(paths):
                out[done : done + len(chunk)] = feature_map(model, helper._to_input(np.stack(chunk))).numpy()
                done += len(chunk)
                chunk = []
                if done % 800 < batch:
                    print(f"{done}/{len(paths)} in {time.perf_counter() - started:.0f} s", flush=True)
    out.flush()
    del out
    os.replace(part, path)
    print(f"cached {len(paths)} feature maps in {time.perf_counter() - started:.0f} s -> {path}")
    return np.load(path, mmap_mode="r"), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    maps, labels = load_feature_maps(args.dataset, args.cache, args.backbone)
    print(maps.shape, maps.dtype, len(np.unique(labels)), "classes")


if __name__ == "__main__":
    main()
