"""Feature-extraction throughput on CPU (images/s at 224 px), model only and end to end with JPEG decoding.

    python -m bench.extraction --dataset ../shared/datasets/cub100 --images 512

The machine is shared, so absolute numbers drift with other people's jobs: every configuration is
measured in each of ``--rounds`` interleaved rounds and the table shows the median and the ratio to
the chosen default measured in the same rounds. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retrieval.backbones import Backbone, load_backbone
from retrieval.extraction import FeatureExtractor, open_rgb, preprocess

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "cub100"


@dataclass(frozen=True)
class Config:
    """One way of running extraction: model variant, images per forward pass, torch and decode threads."""

    name: str
    optimize: bool
    micro_batch: int
    torch_threads: int
    decode_threads: int = 1
    batch_size: int = 16
    parallel: int = 1


def sample_paths(root: Path, count: int) -> list[str]:
    """`count` JPEGs spread evenly over the sorted dataset (all species, not the first few)."""
    paths = sorted(str(p) for p in (root / "images").glob("*/*.jpg"))
    if not paths:
        raise SystemExit(f"No JPEGs under {root / 'images'}")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def model_configs() -> list[Config]:
    configs = []
    for threads in (1, 2):
        for optimize in (True, False):
            for micro in (1, 4, 32):
                label = "optimised" if optimize else "eager"
                configs.append(Config(f"{label} mb={micro} t={threads} parallel=1", optimize, micro, threads))
    configs.append(Config("optimised mb=1 t=1 parallel=2", True, 1, 1, parallel=2))
    return configs


def end_to_end_configs() -> list[Config]:
    """The default first (ratios are relative to it), then the naive loop and the alternatives we rejected."""
    return [
        Config("default: optimised mb=1 t=1 decode=1 parallel=2", True, 1, 1, 1, parallel=2),
        Config("optimised mb=1 t=1 decode=1 parallel=1", True, 1, 1, 1),
        Config("optimised mb=1 t=2 decode=1", True, 1, 2, 1),
        Config("optimised mb=2 t=1 decode=1", True, 2, 1, 1),
        Config("optimised mb=4 t=2 decode=1", True, 4, 2, 1),
        Config("optimised mb=1 t=1 decode=2", True, 1, 1, 2),
        Config("eager mb=1 t=1 decode=1", False, 1, 1, 1),
        Config("naive: eager batch=1 t=2 decode=4", False, 1, 2, 4, batch_size=1),
        Config("naive: eager batch=16 t=2 decode=4", False, 16, 2, 4),
        Config("naive: eager batch=32 t=2 decode=4", False, 32, 2, 4, batch_size=32),
    ]


def time_model(extractor: FeatureExtractor, crops: list[np.ndarray], max_seconds: float) -> float:
    """Images/s of `features` on ready crops (no decoding), after one warm-up pass; stops after `max_seconds`."""
    extractor.features(crops[: extractor.micro_batch])
    done, start = 0, time.perf_counter()
    while done < len(crops) and time.perf_counter() - start < max_seconds:
        done += len(extractor.features(crops[done : done + extractor.micro_batch]))
    return done / (time.perf_counter() - start)


def time_end_to_end(extractor: FeatureExtractor, paths: list[str], decode_threads: int, max_seconds: float) -> float:
    """Images/s of `stream` over JPEG files (open, decode, resize, crop, normalise, forward).

    Stops after the first batch that ends past `max_seconds` (t=2 under load can be 50x slower).
    """
    extractor.features([np.zeros((224, 224, 3), np.uint8)] * extractor.micro_batch)
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


def interleave(
    configs: list[Config], rounds: int, measure: Callable[[Config], float]
) -> dict[str, list[float]]:
    """Run every config once per round, in a rotating order, so drifting load hits all of them alike."""
    results: dict[str, list[float]] = {c.name: [] for c in configs}
    for r in range(rounds):
        shift = r % len(configs)
        for config in configs[shift:] + configs[:shift]:
            results[config.name].append(measure(config))
            print(f"  round {r + 1}: {config.name:45s} {results[config.name][-1]:7.1f} img/s", flush=True)
    return results


def print_table(title: str, results: dict[str, list[float]], reference: str) -> None:
    """Markdown table: median img/s, min-max, and the per-round median ratio to `reference`."""
    print(f"\n### {title}\n\n| configuration | img/s (median) | min-max | ratio to {reference} |\n|---|---:|---:|---:|")
    ref = results[reference]
    for name, values in results.items():
        ratio = statistics.median(v / r for v, r in zip(values, ref, strict=True))
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} | {ratio:.2f} |")


def startup_seconds(backbone: Backbone) -> float:
    start = time.perf_counter()
    FeatureExtractor(backbone)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--images", type=int, default=512, help="JPEGs per end-to-end measurement")
    parser.add_argument("--model-images", type=int, default=32, help="crops per model-only measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-model", action="store_true", help="only the end-to-end table")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="cap per measurement")
    args = parser.parse_args()

    backbone = load_backbone()
    paths = sample_paths(args.dataset, args.images)
    print(f"{len(paths)} JPEGs from {args.dataset}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}")
    print(f"optimize_for_cpu + extractor startup: {startup_seconds(backbone):.2f} s")
    extractors = {opt: FeatureExtractor(backbone, optimize=opt) for opt in (False, True)}

    def extractor_for(config: Config) -> FeatureExtractor:
        extractor = extractors[config.optimize]
        extractor.micro_batch, extractor.batch_size = config.micro_batch, config.batch_size
        extractor.threads, extractor.parallel = config.torch_threads, config.parallel
        return extractor

    decode_rate = statistics.median(time_decode(backbone, paths) for _ in range(args.rounds))
    print(f"decode + preprocess alone, 1 thread: {decode_rate:.0f} img/s")

    if not args.skip_model:
        crops = [preprocess(open_rgb(p), backbone) for p in paths[: args.model_images]]
        model = interleave(
            model_configs(), args.rounds, lambda c: time_model(extractor_for(c), crops, args.max_seconds)
        )
        print_table(f"Model only ({len(crops)} crops, no decoding)", model, "optimised mb=1 t=1 parallel=1")

    configs = end_to_end_configs()
    e2e = interleave(
        configs, args.rounds, lambda c: time_end_to_end(extractor_for(c), paths, c.decode_threads, args.max_seconds)
    )
    print_table(f"End to end with JPEG decoding ({len(paths)} images)", e2e, configs[0].name)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
