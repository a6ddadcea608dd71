"""Learning benchmark on CUB-100: feedback adaptation and unseen species (see docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.clicks import ClickSimulator, split_per_class
from training.evaluation import evaluate
from training.losses.registry import LOSSES
from training.oahu import OAHU
from training.trainer import fine_tune

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "cub100"
DEFAULT_CACHE = Path(os.environ.get("REFIND_CACHE", "/tmp/refind-cache"))


def list_dataset(root: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """Image paths, integer labels (sorted species folders = 0..99) and species names."""
    images = root / "images"
    species = sorted(p.name for p in images.iterdir() if p.is_dir())
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(species):
        for file in sorted((images / name).glob("*.jpg")):
            paths.append(str(file))
            labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64), species


def load_features(
    root: Path, cache_dir: Path, backbone_name: str = "efficientnet_lite0"
) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of every image, extracted once and cached outside the repository."""
    cache = cache_dir / f"cub100_{backbone_name}.npz"
    if not (root / "images").is_dir() and cache.exists():  # e.g. on a GPU machine the dataset never reaches
        data = np.load(cache)
        return data["features"].astype(np.float32), data["labels"]
    paths, labels, _ = list_dataset(root)
    if cache.exists():
        data = np.load(cache)
        if len(data["labels"]) == len(labels) and np.array_equal(data["labels"], labels):
            return data["features"].astype(np.float32), labels
    from retrieval.backbones import load_backbone
    from retrieval.extraction import extract_paths

    backbone = load_backbone(backbone_name)
    start = time.perf_counter()
    features = extract_paths(paths, backbone)
    print(f"extracted {len(paths)} images in {time.perf_counter() - start:.0f} s")
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = cache.with_name(cache.name + ".part.npz")
    np.savez(part, features=features, labels=labels)
    os.replace(part, cache)
    return features, labels


LOSS_STEPS_PER_TRIPLET = 3 / 64  # three epochs of 64-triplet batches ...
MIN_STEPS, MAX_STEPS = 60, 300  # ... clipped to this range


def pretrained(features: np.ndarray) -> np.ndarray:
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def recall1(embeddings: np.ndarray, labels: np.ndarray, query_mask: np.ndarray | None = None) -> float:
    return 100.0 * evaluate(embeddings, labels, query_mask, ks=(1,), include_nmi=False)["recall@1"]


def run_oahu_stream(
    features: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
    budgets: list[int],
    params: dict,
    eval_fn,
    batch_size: int = 1,
    refresh: int = 250,
    curve_every: int = 500,
) -> tuple[OAHU, np.ndarray, dict[int, float], list[tuple[int, float]], float]:
    """OAHU learning from simulated clicks; R@1 at each budget, the curve, the triplet stream, fit speed."""
    model = OAHU(features.shape[1], basis_features=features, **params)
    simulator = ClickSimulator(labels, pool, top_k=20, seed=0)
    stream: list[np.ndarray] = []
    at_budget: dict[int, float] = {}
    curve = [(0, eval_fn(model))]
    fit_time = 0.0
    marks = sorted(set(budgets) | set(range(curve_every, budgets[-1] + 1, curve_every)))
    while model.triplets_seen < budgets[-1]:
        next_mark = next(m for m in marks if m > model.triplets_seen)
        count = min(refresh, next_mark - model.triplets_seen)
        rows = simulator.triplets(lambda idx: model.embed(features[idx]), count)
        stream.append(rows)
        start = time.perf_counter()
        model.partial_fit(
            features[rows[:, 0]], features[rows[:, 1]], features[rows[:, 2]], batch_size=batch_size
        )
        fit_time += time.perf_counter() - start
        if model.triplets_seen in marks:
            score = eval_fn(model)
            curve.append((model.triplets_seen, score))
            if model.triplets_seen in budgets:
                at_budget[model.triplets_seen] = score
                print(
                    f"  OAHU {model.triplets_seen:>6} triplets: R@1 {score:.2f} α {np.round(model.alpha, 3)}",
                    flush=True,
                )
    return model, np.concatenate(stream), at_budget, curve, model.triplets_seen / fit_time


def loss_steps(num_triplets: int) -> int:
    return int(np.clip(round(num_triplets * LOSS_STEPS_PER_TRIPLET), MIN_STEPS, MAX_STEPS))


def feedback_protocol(features, labels, budgets, losses, oahu_params, batch_size) -> dict:
    held_out = split_per_class(labels, seed=0)
    feedback = np.flatnonzero(~held_out)
    base = recall1(pretrained(features), labels, held_out)
    print(
        f"feedback protocol: pretrained R@1 {base:.2f} "
        f"({held_out.sum()} held-out queries, {len(labels)} gallery)"
    )
    _, stream, oahu_scores, curve, speed = run_oahu_stream(
        features,
        labels,
        feedback,
        budgets,
        oahu_params,
        lambda m: recall1(m.embed(features), labels, held_out),
        batch_size=batch_size,
    )
    table: dict[str, dict[int, float]] = {"OAHU": oahu_scores}
    for name in losses:
        table[name] = {}
        for budget in budgets:
            result = fine_tune(
                features,
                triplets=stream[:budget],
                loss=name,
                steps=loss_steps(budget),
                batch_size=64,
                lr=1e-4,
                seed=0,
            )
            table[name][budget] = recall1(result.head.embed(features), labels, held_out)
        print(f"  {name:<18} " + "  ".join(f"{b}: {table[name][b]:.2f}" for b in budgets), flush=True)
    return {"pretrained": base, "table": table, "curve": curve, "fit_speed": speed, "batch_size": batch_size}


def unseen_protocol(features, labels, budget, losses, oahu_params, steps, batch_size: int = 1) -> dict:
    train = labels < 50
    test_feats, test_labels = features[~train], labels[~train]
    base = recall1(pretrained(test_feats), test_labels)
    print(f"unseen-species protocol: pretrained R@1 {base:.2f}")
    scores: dict[str, float] = {}
    _, _, oahu_scores, _, _ = run_oahu_stream(
        features,
        labels,
        np.flatnonzero(train),
        [budget],
        oahu_params,
        lambda m: recall1(m.embed(test_feats), test_labels),
        batch_size=batch_size,
        curve_every=budget,
    )
    scores[f"OAHU ({budget} click triplets)"] = oahu_scores[budget]
    for name in losses:
        result = fine_tune(
            features[train],
            labels[train],
            loss=name,
            steps=steps,
            batch_size=64,
            m_per_class=4,
            lr=1e-4,
            seed=0,
        )
        scores[name] = recall1(result.head.embed(test_feats), test_labels)
        print(f"  {name:<18} R@1 {scores[name]:.2f}", flush=True)
    return {"pretrained": base, "scores": scores}


def throughput(
    features: np.ndarray, oahu_params: dict, count: int = 5000, batch_sizes: tuple[int, ...] = (512, 4096)
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    idx = rng.integers(len(features), size=(3, 4 * count))
    a, p, n = features[idx[0]], features[idx[1]], features[idx[2]]
    model = OAHU(features.shape[1], basis_features=features, **oahu_params)
    model.partial_fit(a[:200], p[:200], n[:200])
    start = time.perf_counter()
    model.partial_fit(a[:count], p[:count], n[:count], batch_size=1)
    single = count / (time.perf_counter() - start)
    speeds = {"per_triplet": single}
    for size in batch_sizes:
        start = time.perf_counter()
        model.partial_fit(a, p, n, batch_size=size)
        speeds[f"batch_{size}"] = len(a) / (time.perf_counter() - start)
    return speeds


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    steps, scores = zip(*result["curve"], strict=True)
    mode = "per triplet" if result.get("batch_size", 1) == 1 else f"mini-batches of {result['batch_size']}"
    ax.plot(steps, scores, marker="o", ms=3, label=f"OAHU ({mode})")
    for extra_label, extra_curve in result.get("extra_curves", {}).items():
        ax.plot(*zip(*extra_curve, strict=True), marker=".", ms=3, label=extra_label)
    ax.axhline(result["pretrained"], color="grey", ls="--", label="pretrained")
    budgets = sorted(result["table"]["OAHU"])
    others = [v for k, v in result["table"].items() if k != "OAHU"]
    if others:
        best = [max(v[b] for v in others) for b in budgets]
        ax.plot(budgets, best, marker="s", ms=3, label="best batch loss (same triplets)")
    ax.set_xscale("symlog", linthresh=500)
    ax.set_xlabel("click triplets")
    ax.set_ylabel("R@1 (%)")
    ax.set_title("CUB-100 feedback adaptation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--budgets", default="500,1000,5000,20000")
    parser.add_argument("--losses", default=",".join(LOSSES), help="registry losses to compare")
    parser.add_argument("--oahu", default="{}", help="OAHU parameters as JSON")
    parser.add_argument("--batch-size", type=int, default=1, help="OAHU partial_fit batch size")
    parser.add_argument("--unseen-steps", type=int, default=300)
    parser.add_argument("--unseen-budget", type=int, default=5000)
    parser.add_argument("--skip", default="", help="comma list of: feedback,unseen,throughput")
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "docs" / "img" / "learning_r1.png")
    parser.add_argument("--json", type=Path, default=DEFAULT_CACHE / "learning_results.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    features, labels = load_features(args.dataset, args.cache)
    if args.extract_only:
        print(features.shape)
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    losses = [name for name in args.losses.split(",") if name]
    oahu_params = json.loads(args.oahu)
    skip = set(args.skip.split(","))
    results: dict = {"oahu_params": oahu_params, "budgets": budgets}
    if "throughput" not in skip:
        results["throughput"] = throughput(features, oahu_params)
        print(f"throughput: {results['throughput']}")
    if "feedback" not in skip:
        results["feedback"] = feedback_protocol(
            features, labels, budgets, losses, oahu_params, args.batch_size
        )
        plot(results["feedback"], args.plot)
    if "unseen" not in skip:
        results["unseen"] = unseen_protocol(
            features, labels, args.unseen_budget, losses, oahu_params, args.unseen_steps, args.batch_size
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
