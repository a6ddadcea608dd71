"""In-session relevance feedback over HTTP on CUB-100: next-page R@1 after 0 / 1 / 3 similar-marks.

A fresh app (bench/stack.py: gunicorn on 127.0.0.1, SQLite, no workers: nothing here trains) whose index
holds the feedback half of each species (seed S) with the configured pooling, features taken from the
cached feature maps (bench/feature_maps.py) instead of being extracted again. A sample of held-out photos
are uploaded as queries (never in the index); the app's simulated person (webapp/feedback/simulated_user.py,
HTTP only) marks the first `marks` same-species results of page 1 similar and asks for the next page
(POST /api/v1/search/refine/); a hit is a same-species first result. Each condition is a separate person.

python -m bench.refine_http [--queries 300] [--seed 0] [--marks 0,1,3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.clicks import split_per_class
from bench.feature_maps import DEFAULT_CACHE, load_feature_maps
from bench.learning import DEFAULT_DATASET, list_dataset
from bench.stack import Stack


def populate(dataset: str, cache: str, seed: int) -> None:
    """Inside Django: store the feedback half as labelled gallery images with cached features; index them."""
    from django.conf import settings

    from retrieval.images import decode_image
    from retrieval.pooling import split_pooled_name
    from webapp.gallery import indexing
    from webapp.gallery.models import Image
    from webapp.gallery.storing import store_image
    from webapp.runtime import runtime

    maps, labels = load_feature_maps(Path(dataset), Path(cache))
    paths, _, names = list_dataset(Path(dataset))
    rows = np.flatnonzero(~split_per_class(labels, seed))
    pooling = split_pooled_name(settings.BACKBONE)[1]
    ids = []
    for row in rows:
        data = Path(paths[row]).read_bytes()
        decoded = decode_image(data, max_bytes=settings.MAX_UPLOAD_BYTES)
        image, _ = store_image(decoded, data, role=Image.Role.GALLERY, label=names[labels[row]],
                               original_name=Path(paths[row]).name)
        ids.append(image.pk)
    features = np.concatenate([pooling.numpy(maps[rows[i : i + 256]]) for i in range(0, len(rows), 256)])
    runtime.feature_store(settings.BACKBONE).append(np.array(ids, np.int64), features)
    indexing.build_and_activate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--marks", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 3])
    parser.add_argument("--pooling", default="gem")
    args = parser.parse_args()
    from webapp.feedback.simulated_user import SimulatedUser

    paths, labels, names = list_dataset(args.dataset)
    held = np.flatnonzero(split_per_class(labels, args.seed))
    sample = np.random.default_rng(args.seed).choice(held, size=min(args.queries, len(held)), replace=False)
    with tempfile.TemporaryDirectory(prefix="refind-refine-") as tmp:
        env = {"REFIND_ONLINE_LEARNING": "0", "REFIND_POOLING": args.pooling,
               "REFIND_THROTTLE_SEARCH": "100000/min", "REFIND_THROTTLE_FEEDBACK": "100000/min"}
        stack = Stack(Path(tmp), f"sqlite:///{tmp}/refind.sqlite3", "filesystem://", env)
        try:
            stack.manage("migrate", "--noinput")
            started = time.perf_counter()
            stack.manage("shell", "-c", f"from bench.refine_http import populate; "
                                        f"populate({str(args.dataset)!r}, {str(args.cache)!r}, {args.seed})")
            print(f"gallery stored and indexed in {time.perf_counter() - started:.0f} s", flush=True)
            url = stack.start_web(workers=1)
            stack.wait_ready()
            for marks in args.marks:
                person = SimulatedUser(url, seed=marks)
                started = time.perf_counter()
                found = [person.next_page_hit(Path(paths[i]).read_bytes(), names[labels[i]], marks) for i in sample]
                first, hits = (100 * sum(column) / len(sample) for column in zip(*found, strict=True))
                print(f"pooling {args.pooling}, seed {args.seed}, {len(sample)} held-out queries, {marks} marks: "
                      f"page-1 R@1 {first:.2f}, next-page R@1 {hits:.2f} ({time.perf_counter() - started:.0f} s, "
                      f"load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
