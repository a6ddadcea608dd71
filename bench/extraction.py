"""Feature extraction on CPU per inference path (retrieval/inference.py): speed and quality, CUB-100.

    python -m bench.extraction --dataset ../shared/datasets/cub100 --images 400 --rounds 3
    python -m bench.extraction --quality-only          # R@1 and cosines of every path on all 5,902 images

Speed: end to end (open, JPEG decode, resize, crop, forward, pool) over `--images` files, and the model
alone on ready crops. The machine is shared, so absolute numbers drift with other people's jobs: every
configuration is measured once in each of ``--rounds`` interleaved rounds (rotating order) and the
table shows the median and the per-round ratio to the reference, today's default (``torch``, two
single-threaded forward passes side by side), measured in the same rounds.

Quality: the features of every CUB-100 image on each path (crops decoded once and cached under
``--cache``, never in the repository), under average and GeM pooling; R@1 of the pretrained features on
the feedback protocol (held-out half of each species as queries, whole gallery) and the unseen-species
protocol (species 50-99 only), as bench/learning.py defines them, and the cosine of each image's features
to the torch path's. Results: docs/benchmarks.md §11.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retrieval.backbones import Backbone, feature_map, load_backbone
from retrieval.extraction import FeatureExtractor, open_rgb, preprocess
from retrieval.inference import PATHS, OnnxForward, TorchForward, make_forward
from retrieval.pooling import AVG, Pooling

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "cub100"
DEFAULT_CACHE = Path(os.environ.get("REFIND_CACHE", "/tmp/refind-cache"))
REFERENCE = "today: torch parallel=2"


@dataclass(frozen=True)
class Config:
    """One way of running extraction: inference path, forward passes side by side, decode threads."""

    name: str
    path: str
    parallel: int = 2
    decode_threads: int = 1
    micro_batch: int = 1
    batch_size: int = 16


def configs() -> list[Config]:
    """Today's default first (the reference), then the ONNX Runtime paths and their one-core variants."""
    return [
        Config(REFERENCE, "torch"),
        Config("fp32 parallel=2", "fp32"),
        Config("int8 parallel=2", "int8"),
        Config("int8 parallel=1", "int8", parallel=1),
        Config("int8 parallel=2 decode=2", "int8", decode_threads=2),
    ]


def sample_paths(root: Path, count: int) -> list[str]:
    """`count` JPEGs spread evenly over the sorted dataset (all species, not the first few)."""
    paths = sorted(str(p) for p in (root / "images").glob("*/*.jpg"))
    if not paths:
        raise SystemExit(f"No JPEGs under {root / 'images'}")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def time_model(extractor: FeatureExtractor, crops: list[np.ndarray], max_seconds: float) -> float:
    """Images/s of `features` on ready crops (no decoding), after one warm-up pass; stops after `max_seconds`."""
    extractor.features(crops[:2])
    done, start = 0, time.perf_counter()
    chunk = 2 * extractor.parallel
    while done < len(crops) and time.perf_counter() - start < max_seconds:
        done += len(extractor.features(crops[done : done + chunk]))
    return done / (time.perf_counter() - start)


def time_end_to_end(extractor: FeatureExtractor, paths: list[str], decode_threads: int, max_seconds: float) -> float:
    """Images/s of `stream` over JPEG files (open, decode, resize, crop, normalise, forward, pool).

    Stops after the first batch that ends past `max_seconds`.
    """
    extractor.features([np.zeros((224, 224, 3), np.uint8)] * 2)
    done, start = 0, time.perf_counter()
    for items, _ in extractor.stream(paths, open_rgb, threads=decode_threads):
        done += len(items)
        if time.perf_counter() - start > max_seconds:
            break
    return done / (time.perf_counter() - start)


def time_decode(backbone: Backbone, paths: list[str]) -> float:
    """Images/s of decoding + preprocessing alone, one thread."""
    start = time.perf_counter()
    for path in paths:
        preprocess(open_rgb(path), backbone)
    return len(paths) / (time.perf_counter() - start)


def interleave(configs: list[Config], rounds: int, measure: Callable[[Config], float]) -> dict[str, list[float]]:
    """Run every config once per round, in a rotating order, so drifting load hits all of them alike."""
    results: dict[str, list[float]] = {c.name: [] for c in configs}
    for r in range(rounds):
        shift = r % len(configs)
        for config in configs[shift:] + configs[:shift]:
            results[config.name].append(measure(config))
            print(f"  round {r + 1}: {config.name:32s} {results[config.name][-1]:7.1f} img/s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return results


def print_table(title: str, results: dict[str, list[float]], reference: str) -> None:
    """Markdown table: median img/s, min-max, and the per-round median ratio to `reference`."""
    print(f"\n### {title}\n\n| configuration | img/s (median) | min-max | ratio to {reference} |\n|---|---:|---:|---:|")
    ref = results[reference]
    for name, values in results.items():
        ratio = statistics.median(v / r for v, r in zip(values, ref, strict=True))
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} | {ratio:.2f} |")


# ---------------------------------------------------------------------------------------------- quality


def cached_crops(root: Path, cache: Path, backbone: Backbone) -> tuple[np.ndarray, np.ndarray]:
    """All CUB-100 crops (N x 224 x 224 x 3 uint8, memory-mapped) and labels, decoded once into `cache`."""
    from bench.learning import list_dataset

    crops_file, labels_file = cache / "cub100_crops224.npy", cache / "cub100_labels.npy"
    if not crops_file.exists():
        paths, labels, _ = list_dataset(root)
        cache.mkdir(parents=True, exist_ok=True)
        part = cache / "cub100_crops224.part.npy"
        out = np.lib.format.open_memmap(part, mode="w+", dtype=np.uint8,
                                        shape=(len(paths), backbone.input_size, backbone.input_size, 3))
        for i, path in enumerate(paths):
            out[i] = preprocess(open_rgb(path), backbone)
        out.flush()
        del out
        np.save(labels_file, labels)
        os.replace(part, crops_file)
    return np.load(crops_file, mmap_mode="r"), np.load(labels_file)


def map_runner(backbone: Backbone, path: str, exports: Path) -> Callable[[np.ndarray], np.ndarray]:
    """crops (N,H,W,3 uint8) -> last feature maps (N,C,h,w) on `path`, exactly as the app computes them."""
    forward = make_forward(backbone, path, exports)
    if isinstance(forward, OnnxForward):
        return lambda crops: forward.session.run(None, {"crops": np.ascontiguousarray(crops)})[0]
    assert isinstance(forward, TorchForward)
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(backbone.std).view(1, 3, 1, 1) * 255.0

    @torch.inference_mode()
    def run(crops: np.ndarray) -> np.ndarray:
        batch = (torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() - mean) / std
        return feature_map(forward.model, batch.contiguous(memory_format=torch.channels_last)).numpy()

    return run


def path_features(crops: np.ndarray, backbone: Backbone, path: str, poolings: list[Pooling], cache: Path,
                  exports: Path) -> dict[str, np.ndarray]:
    """Pooled features of every crop on `path`, per pooling key (cached in `cache`)."""
    file = cache / f"features_{path}_{len(crops)}.npz"
    if file.exists():
        data = np.load(file)
        if all(p.key in data for p in poolings):
            return {p.key: data[p.key] for p in poolings}
    run = map_runner(backbone, path, exports)
    out = {p.key: np.empty((len(crops), backbone.dim), np.float32) for p in poolings}
    start = time.perf_counter()
    with torch.inference_mode():
        torch.set_num_threads(1)
        for i in range(len(crops)):
            fmap = run(crops[i : i + 1])
            for pooling in poolings:
                out[pooling.key][i] = pooling.numpy(fmap)[0]
    print(f"  {path}: {len(crops)} images in {time.perf_counter() - start:.0f} s (load {os.getloadavg()[0]:.1f})",
          flush=True)
    np.savez(file, **out)
    return out


def quality(root: Path, cache: Path, exports: Path) -> None:
    from bench.clicks import split_per_class
    from bench.learning import pretrained, recall1

    backbone = load_backbone()
    crops, labels = cached_crops(root, cache, backbone)
    poolings = [AVG, Pooling("gem", 3.0)]
    features = {path: path_features(crops, backbone, path, poolings, cache, exports) for path in PATHS}
    held_out = split_per_class(labels, seed=0)
    unseen = labels >= 50
    print(f"\n### Quality on {len(labels)} CUB-100 images (pretrained features)\n")
    print("| path | pooling | feedback R@1 | unseen R@1 | cosine to torch: mean | min |\n|---|---|---:|---:|---:|---:|")
    for pooling in poolings:
        reference = pretrained(features["torch"][pooling.key])
        for path in PATHS:
            embedded = pretrained(features[path][pooling.key])
            cos = np.sum(embedded * reference, axis=1)
            print(f"| {path} | {pooling.key} | {recall1(embedded, labels, held_out):.2f} | "
                  f"{recall1(embedded[unseen], labels[unseen]):.2f} | {cos.mean():.5f} | {cos.min():.4f} |")
        mixed = pretrained(features["int8"][pooling.key])
        mixed[~held_out] = reference[~held_out]  # gallery extracted by torch/fp32, queries by int8
        print(f"| int8 queries, full-precision gallery | {pooling.key} | "
              f"{recall1(mixed, labels, held_out):.2f} | - | - | - |")


def flops_per_image(backbone: Backbone) -> float:
    """Multiply-accumulates x 2 of one forward pass (convolutions only: the rest is negligible)."""
    total = 0

    def hook(module: torch.nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += 2 * kernel * output.numel()

    handles = [m.register_forward_hook(hook) for m in backbone.model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        backbone.model(torch.zeros(1, 3, backbone.input_size, backbone.input_size))
    for handle in handles:
        handle.remove()
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="crops and features (not the repo)")
    parser.add_argument("--exports", type=Path, default=Path(tempfile.gettempdir()) / "refind-bench-exports")
    parser.add_argument("--images", type=int, default=400, help="JPEGs per end-to-end measurement")
    parser.add_argument("--model-images", type=int, default=64, help="crops per model-only measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-model", action="store_true", help="no model-only table")
    parser.add_argument("--quality", action="store_true", help="also R@1 and cosines on all CUB-100 images")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="cap per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    if args.quality or args.quality_only:
        quality(args.dataset, args.cache, args.exports)
        if args.quality_only:
            return

    backbone = load_backbone()
    print(f"{flops_per_image(backbone) / 1e9:.2f} GFLOP per image ({backbone.name}, {backbone.input_size} px)")
    paths = sample_paths(args.dataset, args.images)
    start = time.perf_counter()
    forwards = {path: make_forward(backbone, path, args.exports) for path in PATHS}
    print(f"{len(paths)} JPEGs; forward passes ready (exports cached in {args.exports}) in "
          f"{time.perf_counter() - start:.1f} s")
    extractor = FeatureExtractor(backbone)

    def extractor_for(config: Config) -> FeatureExtractor:
        extractor.forward = forwards[config.path]
        extractor.micro_batch, extractor.batch_size = config.micro_batch, config.batch_size
        extractor.parallel, extractor.threads = config.parallel, 1
        return extractor

    decode_rate = statistics.median(time_decode(backbone, paths) for _ in range(args.rounds))
    print(f"decode + preprocess alone, 1 thread: {decode_rate:.0f} img/s")
    if not args.skip_model:
        crops = [preprocess(open_rgb(p), backbone) for p in paths[: args.model_images]]
        model = [c for c in configs() if c.decode_threads == 1]
        results = interleave(model, args.rounds, lambda c: time_model(extractor_for(c), crops, args.max_seconds))
        print_table(f"Model only ({len(crops)} crops, no decoding)", results, REFERENCE)
    e2e = interleave(configs(), args.rounds,
                     lambda c: time_end_to_end(extractor_for(c), paths, c.decode_threads, args.max_seconds))
    print_table(f"End to end with JPEG decoding ({len(paths)} images)", e2e, REFERENCE)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
