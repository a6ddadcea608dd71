"""IVF `nprobe` (applied through FAISS's ParameterSpace, REFIND_IVF_NPROBE): recall@10 against Flat and latency.

    nice -n 5 python -m bench.ivf_nprobe [--n 200000] [--factory IVF1024,Flat] [--nprobe 1,4,16,64]

Same clustered synthetic 128-d data as bench/hnsw.py; the index is built by `retrieval.index.build_index`,
parameters set by `retrieval.index_tuning.apply_search_params`, queries searched one at a time (as the
app does) with one FAISS thread. nprobe=1 is what an IVF index searched before the setting existed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import faiss
import numpy as np

from bench.hnsw import make_data
from retrieval.index import build_index, search
from retrieval.index_tuning import apply_search_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=5000)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--decay", type=float, default=1.0)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--factory", default="IVF1024,Flat")
    parser.add_argument("--nprobe", default="1,4,16,64")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    gallery, queries = make_data(args)
    ids = np.arange(len(gallery), dtype=np.int64)
    _, truth = search(build_index(gallery, ids, "Flat"), queries, args.k)
    started = time.perf_counter()
    index = build_index(gallery, ids, args.factory)
    report = {"n": args.n, "factory": args.factory, "build_seconds": round(time.perf_counter() - started, 1),
              "load": os.getloadavg(), "rows": []}
    for nprobe in [int(v) for v in args.nprobe.split(",")]:
        apply_search_params(index, nprobe=nprobe)
        found, latencies = [], []
        for query in queries:
            t0 = time.perf_counter()
            found.append(search(index, query[None], args.k)[1][0])
            latencies.append(time.perf_counter() - t0)
        recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, truth, strict=True)]))
        latencies.sort()
        report["rows"].append({"nprobe": nprobe, "recall@10": round(recall, 3),
                               "p50_ms": round(1000 * statistics.median(latencies), 3),
                               "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 3)})
        print(json.dumps(report["rows"][-1]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
