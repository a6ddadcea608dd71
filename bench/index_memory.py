"""Bytes per vector of FAISS index types, measured from serialized indexes, extrapolated to 100M images.

python -m bench.index_memory [--n 50000] [--dim 128]
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from retrieval.heads import l2_normalise
from retrieval.index import build_index

FACTORIES = ["Flat", "SQ8", "HNSW32", "IVF1024,Flat", "IVF1024,SQ8", "IVF1024,PQ32", "IVF1024,PQ16"]


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim))
    return l2_normalise(centres[rng.integers(0, 1000, n)] + 0.35 * rng.normal(size=(n, dim)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    vectors = clustered(args.n, args.dim)
    ids = np.arange(args.n, dtype=np.int64)
    print(f"{args.n} clustered {args.dim}-d vectors")
    print(f"{'factory':<16}{'bytes/vector':>14}{'100M images (GB)':>18}{'build s':>9}")
    for factory in FACTORIES:
        started = time.perf_counter()
        index = build_index(vectors, ids, factory)
        seconds = time.perf_counter() - started
        per_vector = faiss.serialize_index(index).size / args.n
        print(f"{factory:<16}{per_vector:>14.1f}{per_vector * 1e8 / 1e9:>18.1f}{seconds:>9.1f}")


if __name__ == "__main__":
    main()
