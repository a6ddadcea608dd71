"""Training data from *every* click, not only from clicks that have a skipped result above them.

A search with clicks says three things: the query and each clicked result belong together (a positive
pair, whatever its rank), results shown above a click and not clicked do not (skip-above negatives), and
results marked "not similar" do not (explicit negatives). Skip-above triplets alone drop every click on the
first results — with a good pretrained model, most clicks (benchmarks §8: 380 anchors from 3,524 clicks).

- :func:`components`: pseudo-labels, the connected components of the positive-pair graph (query ~ click,
  so two results clicked for the same query share a component);
- :func:`every_click_triplets`: one triplet per positive pair — its skip-above/explicit negatives when
  the query has some, else a sampled image of another component — plus every given negative triplet,
  so each click teaches the online learner (OAHU) something and none is counted twice.

All indices are rows of one feature matrix; no Django here (webapp/learning/clicks.py reads the app's
judgements into these arrays).
"""

from __future__ import annotations

import numpy as np

from training.samplers import click_groups


def components(pairs: np.ndarray, num_items: int) -> np.ndarray:
    """Component id per item of the graph whose edges are the positive pairs (singletons for the rest)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return click_groups(pairs, num_items)


def every_click_triplets(
    pairs: np.ndarray,
    negatives: np.ndarray,
    num_items: int,
    pool: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """(a, p, n) rows: for each positive pair (a, p), a negative of `a` from `negatives` ((query, negative)
    rows: skip-above or "not similar") when it has one — all of them, one triplet each — else one image of
    `pool` (default: every item) outside a's component. Rows keep the order of `pairs`."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    negatives = np.asarray(negatives, dtype=np.int64).reshape(-1, 2)
    groups = components(pairs, num_items)
    pool = np.arange(num_items) if pool is None else np.asarray(pool, dtype=np.int64)
    by_query: dict[int, list[int]] = {}
    for query, negative in negatives.tolist():
        by_query.setdefault(query, []).append(negative)
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int]] = []
    for anchor, positive in pairs.tolist():
        if anchor == positive:
            continue
        known = [n for n in by_query.get(anchor, []) if groups[n] != groups[anchor] and n != positive]
        if known:
            rows += [(anchor, positive, n) for n in known]
            continue
        for _ in range(8):  # a random other-component image; pools are large, so this rarely loops
            n = int(pool[rng.integers(len(pool))])
            if groups[n] != groups[anchor]:
                rows.append((anchor, positive, n))
                break
    return np.array(rows, dtype=np.int64).reshape(-1, 3)
