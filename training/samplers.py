"""Batch construction for fine-tuning: m-per-class batches (pytorch-metric-learning) and triplet batches."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils import common_functions as c_f


def m_per_class_batches(
    labels: np.ndarray, m: int, batch_size: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """One epoch of batches from pml's MPerClassSampler, reproducible from (seed, epoch)."""
    c_f.NUMPY_RANDOM = np.random.RandomState((seed * 1_000_003 + epoch) % (2**32))
    sampler = MPerClassSampler(labels, m=m, batch_size=batch_size, length_before_new_iter=len(labels))
    order = np.fromiter(iter(sampler), dtype=np.int64)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def drop_contradictions(triplets: np.ndarray) -> np.ndarray:
    """Rows (anchor, positive, negative) minus those whose pair is also judged the other way for that anchor.

    Feedback can contradict itself (an image clicked once and marked "not similar" another time); pair
    losses cannot take a pair that is both positive and negative, and neither direction is trustworthy.
    """
    triplets = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
    positive = {(int(a), int(p)) for a, p, _ in triplets}
    negative = {(int(a), int(n)) for a, _, n in triplets}
    both = positive & negative
    if not both:
        return triplets
    keep = [(int(a), int(p)) not in both and (int(a), int(n)) not in both for a, p, n in triplets]
    return triplets[np.array(keep, dtype=bool)]


def triplet_batches(num_triplets: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch of shuffled triplet-row batches, reproducible from (seed, epoch)."""
    order = np.random.default_rng((seed, epoch)).permutation(num_triplets)
    return [order[i : i + batch_size] for i in range(0, num_triplets, batch_size)]


def click_groups(triplets: np.ndarray, num_items: int) -> np.ndarray:
    """Pseudo-labels from feedback alone: connected components of the (anchor, positive) graph.

    Items never seen in a triplet get their own singleton group. Groups never merge two items that
    a triplet marks dissimilar unless clicks chain them (then the clicks themselves disagree).
    """
    parent = np.arange(num_items)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, p in np.asarray(triplets)[:, :2]:
        ra, rp = find(int(a)), find(int(p))
        if ra != rp:
            parent[max(ra, rp)] = min(ra, rp)
    roots = np.fromiter((find(i) for i in range(num_items)), dtype=np.int64, count=num_items)
    _, groups = np.unique(roots, return_inverse=True)
    return groups


def batch_from_triplets(
    rows: np.ndarray,
) -> tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Unique item indices of a triplet batch and the (a, p, n) indices_tuple into them."""
    items, inverse = np.unique(rows.reshape(-1), return_inverse=True)
    local = torch.as_tensor(inverse.reshape(-1, 3))
    return items, (local[:, 0], local[:, 1], local[:, 2])
