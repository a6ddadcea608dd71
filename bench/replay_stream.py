"""Replay the triplet stream an app_learning run recorded into a fresh OAHU learner, with variants.

Reads the run's PostgreSQL database (triplets, images, split) and feature store; consumes the triplets
in id order in chunks as the app's online learner does (held-out impressions skipped) and prints R@1 of
the held-out half against the whole gallery at each budget (budgets count *all* triplets, like the app):

    python -m bench.replay_stream --database refind_app_learning_20k --data /tmp/refind-app-learning-20k \
        --sources click,explicit --lr 1
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import psycopg

from retrieval.feature_store import FeatureStore
from training.evaluation import evaluate
from training.oahu import OAHU

BASIS_SAMPLE = 4096  # as webapp/learning/online.py
HELDOUT_EVERY = 5  # as REFIND_HELDOUT_IMPRESSION_EVERY


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="PostgreSQL database of an app_learning run")
    parser.add_argument("--data", required=True, help="REFIND_DATA_DIR of that run")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/")
    parser.add_argument("--sources", default="click,explicit,transitive")
    parser.add_argument("--lr", type=float, default=3.0)
    parser.add_argument("--chunk", type=int, default=10, help="triplets per online run (the app: ~10)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--budgets", default="500,1000,5000,20000")
    args = parser.parse_args(argv)

    with psycopg.connect(args.dsn + args.database) as conn:
        images = conn.execute("select id, label, split from gallery_image where role = 'gallery' "
                              "order by id").fetchall()
        triplets = conn.execute(
            "select t.id, t.anchor_id, t.positive_id, t.negative_id, t.source, j.impression_id "
            "from feedback_triplet t join feedback_judgement j on j.id = t.judgement_id order by t.id").fetchall()
    store = FeatureStore(f"{args.data}/features", "efficientnet_lite0", 1280)
    ids = np.array([row[0] for row in images])
    labels = np.unique([row[1] for row in images], return_inverse=True)[1]
    held_out = np.array([row[2] == "heldout" for row in images])
    features = store.get(ids)
    basis = np.sort(np.random.default_rng(0).choice(ids, min(BASIS_SAMPLE, len(ids)), replace=False))
    learner = OAHU(1280, basis_features=store.get(basis), lr=args.lr)
    sources = set(args.sources.split(","))
    used = {row[0]: row for row in triplets if row[5] % HELDOUT_EVERY and row[4] in sources}
    order = [row[0] for row in triplets]
    results, position = {}, 0
    for budget in (int(b) for b in args.budgets.split(",")):
        if budget > len(order):
            break
        while position < budget:
            chunk = [used[i] for i in order[position:min(position + args.chunk, budget)] if i in used]
            position = min(position + args.chunk, budget)
            if chunk:
                rows = np.array([row[1:4] for row in chunk])
                learner.partial_fit(store.get(rows[:, 0]), store.get(rows[:, 1]), store.get(rows[:, 2]),
                                    batch_size=args.batch_size)
        embedded = learner.embed(features)
        results[budget] = round(100 * evaluate(embedded, labels, held_out, ks=(1,), include_nmi=False)["recall@1"], 2)
        print(f"{budget:>6} triplets ({learner.triplets_seen} learned): R@1 {results[budget]}", flush=True)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    pretrained = round(100 * evaluate(unit, labels, held_out, ks=(1,), include_nmi=False)["recall@1"], 2)
    print(json.dumps({"sources": sorted(sources), "lr": args.lr, "pretrained": pretrained, "r1": results}))


if __name__ == "__main__":
    main()
