"""Flat vs HNSW at 1M synthetic 128-d vectors: single-query latency p50/p95 and recall@10 against Flat.

    python -m bench.hnsw                      # 1M vectors, HNSW32, efSearch sweep
    python -m bench.hnsw --n 100000 --factories HNSW16,HNSW32

Data: clustered, not uniform (uniform random 128-d vectors have no real neighbours and make every
approximate index look bad): `--clusters` unit-norm centres, each vector = centre + Gaussian noise of
norm ~`--noise`, L2-normalised, searched by inner product like the app. Queries are fresh vectors
from the same clusters (not in the index). The HNSW graph is built once through
`retrieval.index.build_index` and cached under --cache (keyed by the data parameters and factory).
Queries run one at a time, as the app does. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import faiss
import numpy as np

from retrieval.index import build_index, search
from retrieval.index_tuning import set_parameter

DEFAULT_CACHE = Path(os.environ.get("REFIND_CACHE", "/tmp/refind-cache")) / "bench-hnsw"
CHUNK = 100_000


def noise_scales(dim: int, noise: float, decay: float) -> np.ndarray:
    """Per-dimension noise scales with variance ~ 1/j**decay (j = 1..dim), total expected norm `noise`.

    decay=0 is isotropic noise; decay=1 gives ~18 effective dimensions out of 128, like the decaying
    spectrum of PCA-reduced CNN features.
    """
    variance = np.arange(1, dim + 1, dtype=np.float64) ** -decay
    return (noise * np.sqrt(variance / variance.sum())).astype(np.float32)


def clustered_vectors(n: int, centres: np.ndarray, scales: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`n` L2-normalised vectors around randomly chosen `centres` (float32, built in chunks to save memory)."""
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        which = rng.integers(0, len(centres), stop - start)
        chunk = rng.standard_normal((stop - start, dim), dtype=np.float32) * scales
        chunk += centres[which]
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def make_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(gallery, queries), deterministic for the arguments."""
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scales = noise_scales(args.dim, args.noise, args.decay)
    return clustered_vectors(args.n, centres, scales, rng), clustered_vectors(args.queries, centres, scales, rng)


def cached_index(vectors: np.ndarray, factory: str, path: Path) -> tuple[faiss.Index, float | None]:
    """The index from `path`, or built with build_index and saved there; also the build seconds (None: cached)."""
    if path.exists():
        return faiss.read_index(str(path)), None
    start = time.perf_counter()
    index = build_index(vectors, np.arange(len(vectors), dtype=np.int64), factory)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path) + ".part")
    os.replace(str(path) + ".part", path)
    return index, seconds


def latencies_ms(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query latency (ms) of one-at-a-time search, and the found ids."""
    times = np.empty(len(queries))
    found = np.empty((len(queries), k), dtype=np.int64)
    for i in range(len(queries)):
        start = time.perf_counter()
        _, ids = search(index, queries[i : i + 1], k)
        times[i] = (time.perf_counter() - start) * 1000
        found[i] = ids[0]
    return times, found


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-k that the approximate top-k contains."""
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth[: len(found)], strict=True)]))


def rss_gb() -> float:
    """Peak resident memory of this process (GB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=5000)
    parser.add_argument("--noise", type=float, default=1.0, help="noise norm relative to the unit-norm centre")
    parser.add_argument("--decay", type=float, default=1.0, help="noise spectrum decay (0: isotropic, hardest)")
    parser.add_argument("--search-threads", default="1,2", help="FAISS OpenMP threads while searching")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--flat-queries", type=int, default=200, help="one-at-a-time Flat queries timed")
    parser.add_argument("--factories", default="HNSW32")
    parser.add_argument("--ef", default="64,128,192,256,384,512")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()

    start = time.perf_counter()
    gallery, queries = make_data(args)
    print(f"data: {args.n} x {args.dim}, {args.clusters} clusters, noise {args.noise}, decay {args.decay}: "
          f"{time.perf_counter() - start:.1f} s; FAISS {faiss.__version__}, {faiss.omp_get_max_threads()} threads")

    threads = [int(t) for t in args.search_threads.split(",")]
    flat = build_index(gallery, np.arange(args.n, dtype=np.int64), "Flat")
    _, truth = search(flat, queries, args.k)  # batched: exact ground truth
    rows = []
    for t in threads:
        faiss.omp_set_num_threads(t)
        flat_ms, flat_found = latencies_ms(flat, queries[: args.flat_queries], args.k)
        rows.append(("Flat", t, "-", None, flat_ms, recall_at(flat_found, truth, args.k)))
    del flat

    ef_values = [int(e) for e in args.ef.split(",")]
    for factory in args.factories.split(","):
        key = f"n{args.n}_d{args.dim}_c{args.clusters}_s{args.noise}_a{args.decay}_seed{args.seed}_{factory}.faiss"
        faiss.omp_set_num_threads(max(threads))
        index, build_s = cached_index(gallery, factory, args.cache / key)
        origin = f"built in {build_s:.0f} s" if build_s else "loaded from cache"
        print(f"{factory}: {origin}; peak RSS {rss_gb():.1f} GB", flush=True)
        settings = [(t, ef) for t in threads for ef in ef_values]
        times: dict[tuple[int, int], list[np.ndarray]] = {s: [] for s in settings}
        found: dict[tuple[int, int], np.ndarray] = {}
        for r in range(args.rounds):  # rotate the order so drifting load hits every setting alike
            for t, ef in settings[r % len(settings) :] + settings[: r % len(settings)]:
                faiss.omp_set_num_threads(t)
                set_parameter(index, "efSearch", ef)
                measured, found[t, ef] = latencies_ms(index, queries, args.k)
                times[t, ef].append(measured)
        for t, ef in settings:
            recall = recall_at(found[t, ef], truth, args.k)
            rows.append((factory, t, str(ef), build_s, np.concatenate(times[t, ef]), recall))

    print(f"\n| index | FAISS threads | efSearch | p50 ms | p95 ms | recall@{args.k} vs Flat | build s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for factory, t, ef, build_s, measured, recall in rows:
        build = "" if build_s is None else f"{build_s:.0f}"
        p50, p95 = statistics.median(measured), float(np.percentile(measured, 95))
        print(f"| {factory} | {t} | {ef} | {p50:.2f} | {p95:.2f} | {recall:.3f} | {build} |")
    print(f"\npeak RSS {rss_gb():.1f} GB")


if __name__ == "__main__":
    main()
