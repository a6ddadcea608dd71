"""Fast library-level replay of the app's protocol, for designing learners (no Django, cached features).

Leak-free like the app since issue 12: each species split 50/50 (seed 0) into a feedback half — the only
images the index holds, shown and clicked — and a held-out half, the evaluation queries, searched against
the feedback half. The simulated person is the app's (`simulate_feedback`): a random feedback photo as the
query, the top 20 results of the *pretrained* ranking shown (the app serves a new ranking only on promotion),
the first `clicks_per_query` same-species results clicked in rank order (with `noise`, each click lands on
a random wrong-species result instead); every 5th search is a held-out impression, never trained on.
Budgets count clicks, held-out ones included, as the app's Judgement table does.

    python -m bench.click_replay --budgets 1000,5000 [--noise 0.1] [--learners oahu_skip,batch_ms_every]
    python -m bench.click_replay --unseen          # clicks among species 0-49, test 50-99 all-vs-all

Learners: see LEARNERS (skip-above triplets only = today's app; components and every-click triplets = issue 12).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.learning import DEFAULT_CACHE, DEFAULT_DATASET, load_features
from bench.recall_plot import save_recall_against_clicks
from training.click_graph import components, every_click_triplets
from training.evaluation import evaluate, evaluate_against
from training.oahu import OAHU
from training.paired_test import compare
from training.trainer import fine_tune

HELDOUT_EVERY = 5  # as REFIND_HELDOUT_IMPRESSION_EVERY
SHOWN = 20


@dataclass
class Stream:
    """Clicks of the simulated person, as rows of the feature matrix."""

    pairs: np.ndarray  # (query, clicked) of every click, in order
    negatives: np.ndarray  # (query, skipped-above result)
    skip_triplets: np.ndarray  # (query, clicked, skipped-above): what the app's triplet table holds
    clicks: np.ndarray  # cumulative clicks (held-out impressions included) after each pair / triplet
    neg_clicks: np.ndarray
    triplet_clicks: np.ndarray


def split_half(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """True for the feedback half: per label (rows in order), a seeded permutation's first half."""
    rng = np.random.default_rng(seed)
    feedback = np.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)[rng.permutation(int((labels == label).sum()))]
        feedback[rows[: int(round(len(rows) * 0.5))]] = True
    return feedback


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def simulate(features: np.ndarray, labels: np.ndarray, gallery: np.ndarray, clicks: int,
             clicks_per_query: int = 3, noise: float = 0.0, seed: int = 0) -> Stream:
    rng = np.random.default_rng(seed)
    embedded = unit(features[gallery])
    pairs, negatives, triplets, pair_at, neg_at, trip_at = [], [], [], [], [], []
    given, searches = 0, 0
    while given < clicks:
        searches += 1
        q_pos = int(rng.integers(len(gallery)))
        query = int(gallery[q_pos])
        scores = embedded @ embedded[q_pos]
        scores[q_pos] = -np.inf
        shown = gallery[np.argsort(-scores)[:SHOWN]]
        right = [int(i) for i in shown if labels[i] == labels[query]]
        wrong = [int(i) for i in shown if labels[i] != labels[query]]
        chosen: list[int] = []
        for i in right[:clicks_per_query]:
            chosen.append(int(rng.choice(wrong)) if wrong and rng.random() < noise else i)
        chosen = sorted(set(chosen), key=lambda i: list(shown).index(i))
        heldout = searches % HELDOUT_EVERY == 0
        for i in chosen:
            given += 1
            if heldout:
                continue
            rank = list(shown).index(i)
            pairs.append((query, i))
            pair_at.append(given)
            for n in shown[:rank][::-1]:
                if int(n) not in chosen:
                    negatives.append((query, int(n)))
                    neg_at.append(given)
                    triplets.append((query, i, int(n)))
                    trip_at.append(given)
    as_rows = lambda rows, width: np.array(rows, dtype=np.int64).reshape(-1, width)  # noqa: E731
    return Stream(as_rows(pairs, 2), as_rows(negatives, 2), as_rows(triplets, 3),
                  np.array(pair_at), np.array(neg_at), np.array(trip_at))


def upto(stream: Stream, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (stream.pairs[stream.clicks <= budget], stream.negatives[stream.neg_clicks <= budget],
            stream.skip_triplets[stream.triplet_clicks <= budget])


def batch_steps(items: int) -> int:
    """As bench/learning.py: 3 epochs of 64-item batches, clipped to 60-300 steps."""
    return max(60, min(300, math.ceil(3 * items / 64)))


def learn(name: str, features: np.ndarray, gallery: np.ndarray, pairs: np.ndarray, negatives: np.ndarray,
          skip: np.ndarray, basis: np.ndarray, params: dict):
    """An embedding function (features -> unit vectors) trained by learner `name` on this much feedback."""
    n = len(features)
    if name.startswith("oahu"):
        rows = skip if name == "oahu_skip" else every_click_triplets(pairs, negatives, n, pool=gallery)
        learner = OAHU(features.shape[1], basis_features=basis, lr=params.get("oahu_lr", 1.0))
        for start in range(0, len(rows), 10):  # the app's online runs: ~10 triplets each
            chunk = rows[start : start + 10]
            learner.partial_fit(features[chunk[:, 0]], features[chunk[:, 1]], features[chunk[:, 2]], batch_size=16)
        return learner.embed
    loss = params.get("loss", "multi_similarity")
    if name == "batch_skip":  # today's batch mode: triplets only, abtl
        members = np.unique(skip)
        local = np.searchsorted(members, skip)
        result = fine_tune(features[members], None, local, loss="abtl", steps=batch_steps(len(skip)),
                           batch_size=64, lr=1e-4)
        return result.head.embed
    every = every_click_triplets(pairs, negatives, n, pool=gallery)
    members = np.unique(np.concatenate([pairs.reshape(-1), every.reshape(-1)]))
    groups = components(np.searchsorted(members, pairs), len(members))
    if name == "batch_components":  # pseudo-labels alone, m-per-class batches
        result = fine_tune(features[members], groups, None, loss=loss, steps=batch_steps(len(members)),
                           batch_size=64, lr=params.get("lr", 1e-4))
    else:  # batch_every: components as labels inside batches of every-click triplets
        result = fine_tune(features[members], groups, np.searchsorted(members, every), loss=loss,
                           steps=batch_steps(len(every)), batch_size=64, lr=params.get("lr", 1e-4))
    return result.head.embed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--budgets", default="1000,5000")
    parser.add_argument("--learners", default="oahu_skip,oahu_every,batch_skip,batch_components,batch_every")
    parser.add_argument("--clicks-per-query", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", default="{}", help="JSON: loss, lr, oahu_lr")
    parser.add_argument("--unseen", action="store_true", help="clicks on species 0-49, test 50-99 all-vs-all")
    parser.add_argument("--plot", type=Path, help="PNG of R@1 against clicks")
    parser.add_argument("--plot-from", type=Path, help="only draw --plot from a JSON summary line saved earlier")
    args = parser.parse_args(argv)
    if args.plot_from:
        plot(json.loads(args.plot_from.read_text().strip().splitlines()[-1]), args.plot)
        return
    features, labels = load_features(args.dataset, args.cache)
    params = json.loads(args.params)
    budgets = [int(b) for b in args.budgets.split(",")]
    if args.unseen:
        seen = labels < 50
        gallery = np.flatnonzero(seen)
        test = np.flatnonzero(~seen)

        def hits(embed) -> np.ndarray:
            x = embed(features[test])
            similarity = x @ x.T
            np.fill_diagonal(similarity, -np.inf)
            return labels[test][similarity.argmax(axis=1)] == labels[test]

        def score(embed) -> float:
            return 100 * evaluate(embed(features[test]), labels[test], ks=(1,), include_nmi=False)["recall@1"]
    else:
        feedback = split_half(labels)
        gallery, heldout = np.flatnonzero(feedback), np.flatnonzero(~feedback)

        def hits(embed) -> np.ndarray:
            nearest = (embed(features[heldout]) @ embed(features[gallery]).T).argmax(axis=1)
            return labels[gallery][nearest] == labels[heldout]

        def score(embed) -> float:
            return 100 * evaluate_against(embed(features[heldout]), labels[heldout], embed(features[gallery]),
                                          labels[gallery], ks=(1,), include_nmi=False)["recall@1"]
    basis = features[np.sort(np.random.default_rng(0).choice(gallery, min(4096, len(gallery)), replace=False))]
    zero, zero_hits = score(unit), hits(unit)
    print(f"zero-click R@1 {zero:.2f} ({'unseen' if args.unseen else 'held-out vs feedback half'})", flush=True)
    stream = simulate(features, labels, gallery, max(budgets), args.clicks_per_query, args.noise, args.seed)
    results: dict[str, dict[int, float]] = {}
    for name in args.learners.split(","):
        for budget in budgets:
            pairs, negatives, skip = upto(stream, budget)
            started = time.perf_counter()
            embed = learn(name, features, gallery, pairs, negatives, skip, basis, params)
            r1, paired = score(embed), compare(hits(embed), zero_hits)
            results.setdefault(name, {})[budget] = round(r1, 2)
            print(f"{name:<18} {budget:>6} clicks ({len(pairs)} trained pairs, {len(skip)} skip-above triplets): "
                  f"R@1 {r1:.2f} ({r1 - zero:+.2f}; paired 95% interval {paired.low:+.2f} to {paired.high:+.2f}, "
                  f"{paired.better} better / {paired.worse} worse) [{time.perf_counter() - started:.0f} s]", flush=True)
    summary = {"zero": round(zero, 2), "noise": args.noise, "unseen": args.unseen, "params": params,
               "results": results}
    print(json.dumps(summary))
    if args.plot:
        plot(summary, args.plot)


def plot(summary: dict, path: Path) -> None:
    """R@1 against clicks per learner, the zero-click figure dashed."""
    series = {name: [(0, summary["zero"]), *((int(b), r) for b, r in by_budget.items())]
              for name, by_budget in summary["results"].items()}
    protocol = "unseen species" if summary["unseen"] else "held-out queries vs feedback half"
    save_recall_against_clicks(series, summary["zero"], path,
                               f"bench.click_replay, CUB-100, {protocol}, noise {summary['noise']}",
                               xlabel="clicks (3 per search)")

if __name__ == "__main__":
    main()
