"""Zero-click retrieval, in-session relevance feedback and click memory on cached CUB-100 feature maps.

Leak-free: each species' photos are split 50/50 (seed S); the index holds the feedback half only, the
held-out half are the queries (searched as uploads are: never in the index, never clicked). "unseen" runs
the same on species 50-99 alone, and click memory there learns from clicks on species 0-49 only.

- pooling: average vs GeM (p = 2, 3, 4) of the last feature map;
- dba / qe: αDBA over the index (k nearest, α = 3) and αQE of the query (top k, α = 3), on GeM p = 3;
- feedback: next-page R@1 (the best result not among the 20 shown) after marking the first 0 / 1 / 3
  same-species results of page 1 similar (Rocchio; skipped-above results are the negatives);
- memory: R@1 after simulated clicks (a feedback-half photo as query, top 20 shown, up to 3 same-species
  clicks top-down, or with probability `noise` a wrong one; skipped-above results as negatives), applied
  with retrieval.click_memory exactly as the app does.

python -m bench.zero_click [--seeds 0,1] [--parts pooling,dba,qe,feedback,memory] [--budgets 500,1000,5000]
(run python -m bench.feature_maps first; it caches the maps in /work/cache)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from bench.clicks import split_per_class
from bench.feature_maps import DEFAULT_CACHE, load_feature_maps
from bench.learning import DEFAULT_DATASET
from retrieval.augment import database_side_augmentation, l2_normalise, query_expansion
from retrieval.click_memory import ClickMemory, MemoryConfig, shifted_features
from retrieval.pooling import Pooling
from retrieval.relevance import rocchio, skipped_above

PAGE = 20


def pooled(maps: np.ndarray, pooling: Pooling, chunk: int = 256) -> np.ndarray:
    return np.concatenate([pooling.numpy(maps[i : i + chunk]) for i in range(0, len(maps), chunk)])


def recall1(queries: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray) -> float:
    top = np.argmax(l2_normalise(queries) @ gallery.T, axis=1)
    return 100.0 * float(np.mean(g_labels[top] == q_labels))


def protocol(labels: np.ndarray, seed: int, species: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(gallery rows, query rows): per-species 50/50 split, optionally restricted to some species."""
    rows = np.arange(len(labels)) if species is None else np.flatnonzero(np.isin(labels, species))
    held = split_per_class(labels[rows], seed)
    return rows[~held], rows[held]


def qe_recall(q: np.ndarray, ql: np.ndarray, g: np.ndarray, gl: np.ndarray, k: int) -> float:
    q = l2_normalise(q)
    sims = q @ g.T
    top = np.argsort(-sims, axis=1)[:, :k]
    expanded = np.concatenate([query_expansion(q[i], g[top[i]], sims[i, top[i]]) for i in range(len(q))])
    return recall1(expanded, ql, g, gl)


def next_page_recall(q: np.ndarray, ql: np.ndarray, g: np.ndarray, gl: np.ndarray, marks: int) -> float:
    """R@1 of the page after page 1, after marking the first `marks` same-species results of page 1 similar."""
    q = l2_normalise(q)
    hits = 0
    for i in range(len(q)):
        sims = g @ q[i]
        shown = list(np.argsort(-sims)[:PAGE])
        positives = [r for r in shown if gl[r] == ql[i]][:marks]
        negatives = skipped_above(shown, set(positives))
        query = rocchio(q[i], g[positives], g[negatives])[0] if positives else q[i]
        ranked = np.argsort(-(g @ query))
        best = next(r for r in ranked if r not in set(shown))
        hits += gl[best] == ql[i]
    return 100.0 * hits / len(q)


def simulate_memory(
    features: np.ndarray, labels: np.ndarray, gallery: np.ndarray, clickers: np.ndarray, budgets: list[int],
    evaluate, config: MemoryConfig, noise: float, seed: int,
) -> list[tuple[int, float]]:
    """Clicks by feedback-half photos (`clickers`, gallery images) on the gallery; R@1 (`evaluate`) per budget."""
    rng = np.random.default_rng(seed)
    memory = ClickMemory(config)
    raw = features[gallery]
    row = {int(image): n for n, image in enumerate(gallery)}
    served = l2_normalise(raw)

    def lookup(ids: list[int]) -> np.ndarray:
        return features[ids]

    out: list[tuple[int, float]] = []
    clicks = 0
    for budget in sorted(budgets):
        while clicks < budget:
            anchor = int(rng.choice(clickers))
            sims = served @ l2_normalise(features[anchor : anchor + 1])[0]
            sims[row[anchor]] = -np.inf  # the query photo itself is not a result
            shown = [int(gallery[r]) for r in np.argsort(-sims)[:PAGE]]
            right = [s for s in shown if labels[s] == labels[anchor]]
            wrong = [s for s in shown if labels[s] != labels[anchor]]
            chosen: list[int] = []
            for _ in range(3):
                if wrong and rng.random() < noise:
                    chosen.append(wrong.pop(int(rng.integers(len(wrong)))))
                elif right:
                    chosen.append(right.pop(0))
            for n, clicked in enumerate(chosen):  # one judgement per click, as the app records them
                negatives = skipped_above(shown, set(chosen[: n + 1]))
                negatives = [x for x in negatives if shown.index(x) < shown.index(clicked)]
                changed = memory.apply(anchor, chosen[: n + 1], negatives, lookup)  # the page's positives so far
                for image in changed:
                    r = row[image]
                    served[r] = l2_normalise(shifted_features(raw[r : r + 1], memory.offsets[image][None]))[0]
            clicks += len(chosen)
        out.append((budget, evaluate(served)))
    return out


def run(args) -> dict:
    maps, labels = load_feature_maps(args.dataset, args.cache)
    started = time.perf_counter()
    feats = {p.key: pooled(maps, p) for p in (Pooling("avg"), Pooling("gem", 2), Pooling("gem", 3), Pooling("gem", 4))}
    print(f"pooled in {time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {}
    species = np.unique(labels)
    for seed in args.seeds:
        for split_name, subset in (("all", None), ("unseen", species[50:])):
            g_rows, q_rows = protocol(labels, seed, subset)
            gl, ql = labels[g_rows], labels[q_rows]
            key = f"seed{seed}/{split_name}"
            res: dict = {}
            gem = feats["gem3"]
            g = l2_normalise(gem[g_rows])
            if "pooling" in args.parts:
                res["pooling"] = {k: recall1(f[q_rows], ql, l2_normalise(f[g_rows]), gl) for k, f in feats.items()}
            if "dba" in args.parts:
                res["dba"] = {k: recall1(gem[q_rows], ql, database_side_augmentation(g, k), gl) for k in (1, 2, 4, 8)}
            if "qe" in args.parts:
                res["qe"] = {k: qe_recall(gem[q_rows], ql, g, gl, k) for k in (1, 2, 3, 5)}
                res["dba1+qe3"] = qe_recall(gem[q_rows], ql, database_side_augmentation(g, 1), gl, 3)
            if "feedback" in args.parts:
                res["feedback"] = {
                    name: {m: next_page_recall(f[q_rows], ql, l2_normalise(f[g_rows]), gl, m) for m in (0, 1, 3)}
                    for name, f in (("avg", feats["avg"]), ("gem3", gem))
                }
            if "memory" in args.parts:
                if split_name == "all":
                    clickers = g_rows
                    evaluate = lambda served, q=gem[q_rows], ql=ql, gl=gl: recall1(q, ql, served, gl)  # noqa: E731
                    sim_gallery = g_rows
                else:  # clicks on species 0-49 (their own gallery), test 50-99 all-vs-all
                    seen_g, _ = protocol(labels, seed, species[:50])
                    unseen_rows = np.flatnonzero(np.isin(labels, species[50:]))
                    sim_gallery = np.concatenate([seen_g, unseen_rows])
                    clickers = seen_g
                    n_seen = len(seen_g)

                    def evaluate(served, n_seen=n_seen, rows=unseen_rows):
                        vectors = served[n_seen:]
                        sims = vectors @ vectors.T
                        np.fill_diagonal(sims, -np.inf)
                        return 100.0 * float(np.mean(labels[rows][np.argmax(sims, axis=1)] == labels[rows]))
                res["memory"] = {}
                for noise in (0.0, 0.1):
                    curve = simulate_memory(gem, labels, sim_gallery, clickers, args.budgets, evaluate,
                                            MemoryConfig(), noise, seed)
                    res["memory"][f"noise{noise}"] = {"0": evaluate(l2_normalise(gem[sim_gallery])), **{
                        str(b): r for b, r in curve}}
            results[key] = res
            print(key, json.dumps(res), f"load {os.getloadavg()[0]:.1f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    parser.add_argument("--parts", type=lambda s: s.split(","), default=["pooling", "dba", "qe", "feedback", "memory"])
    parser.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[500, 1000, 5000])
    args = parser.parse_args()
    print(json.dumps(run(args), indent=1))


if __name__ == "__main__":
    main()
