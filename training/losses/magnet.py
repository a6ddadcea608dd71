"""Magnet loss (Rippel, Paluri, Dollár, Bourdev, ICLR 2016).

Each class is represented by K clusters (k-means in embedding space). For a sample r with own cluster
centre μ(r), L(r) = [−log( e^{−‖r−μ(r)‖²/2σ² − α} / Σ_{c ∉ class(r)} e^{−‖r−μ_c‖²/2σ²} )]₊ where σ² is
the variance of the distances of the batch to their own centres.

Cluster assignments come either from the caller (``cluster_ids``, e.g. from :class:`MagnetClusterIndex`,
which clusters the whole training set and is refreshed periodically, and samples batches of a seed
cluster plus its nearest impostor clusters) or, with the uniform call ``loss(embeddings, labels)``,
from k-means on each class inside the batch. Centres are means of the batch members of each cluster.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def kmeans(x: np.ndarray, k: int, iterations: int = 20, seed: int = 0) -> np.ndarray:
    """Small deterministic k-means (k-means++ seeding); returns an assignment per row."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
    c = np.asarray(centres, dtype=np.float64)
    assign = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        assign = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return assign


def cluster_within_classes(
    embeddings: np.ndarray, labels: np.ndarray, clusters_per_class: int, seed: int = 0
) -> np.ndarray:
    """Global cluster id per row: k-means with ``clusters_per_class`` clusters inside every class."""
    out = np.empty(len(labels), dtype=np.int64)
    next_id = 0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        assign = kmeans(embeddings[rows].astype(np.float64), clusters_per_class, seed=seed + int(next_id))
        _, assign = np.unique(assign, return_inverse=True)
        out[rows] = assign + next_id
        next_id += int(assign.max()) + 1
    return out


class MagnetLoss(nn.Module):
    """Magnet loss with margin α; clusters per class K for in-batch clustering."""

    def __init__(self, alpha: float = 1.0, clusters_per_class: int = 2, seed: int = 0) -> None:
        super().__init__()
        self.alpha = alpha
        self.clusters_per_class = clusters_per_class
        self.seed = seed

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        cluster_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if labels is None:
            raise ValueError("MagnetLoss needs labels")
        r = F.normalize(embeddings, dim=-1)
        y = labels.detach().cpu().numpy()
        if cluster_ids is None:
            ids = cluster_within_classes(
                r.detach().double().cpu().numpy(), y, self.clusters_per_class, self.seed
            )
        else:
            _, ids = np.unique(cluster_ids.detach().cpu().numpy(), return_inverse=True)
        num_clusters = int(ids.max()) + 1
        ids_t = torch.as_tensor(ids, device=r.device)
        one_hot = F.one_hot(ids_t, num_clusters).to(r.dtype)  # n × clusters
        centres = (one_hot.T @ r) / one_hot.sum(0)[:, None]
        cluster_label = np.zeros(num_clusters, dtype=y.dtype)
        cluster_label[ids] = y
        d2 = ((r[:, None, :] - centres[None]) ** 2).sum(-1)  # n × clusters
        own = d2.gather(1, ids_t[:, None]).squeeze(1)
        n = len(r)
        variance = own.sum() / max(n - 1, 1)
        scale = -1.0 / (2.0 * variance.clamp_min(1e-8))
        other = torch.as_tensor(cluster_label[None, :] != y[:, None], device=r.device)
        if not bool(other.any()):
            return embeddings.sum() * 0.0
        logits = (d2 * scale).masked_fill(~other, float("-inf"))
        numerator = own * scale - self.alpha
        loss = torch.clamp(torch.logsumexp(logits, dim=1) - numerator, min=0.0)
        return loss.mean()


class MagnetClusterIndex:
    """Whole-training-set clusters for the Magnet loss, and its neighbourhood batch sampling."""

    def __init__(self, labels: np.ndarray, clusters_per_class: int = 2, seed: int = 0) -> None:
        self.labels = np.asarray(labels)
        self.clusters_per_class = clusters_per_class
        self.seed = seed
        self.cluster_ids = np.zeros(len(self.labels), dtype=np.int64)
        self.centres = np.zeros((0, 0))
        self.cluster_labels = np.zeros(0, dtype=self.labels.dtype)

    def refresh(self, embeddings: np.ndarray) -> None:
        """Re-run per-class k-means on the current embeddings of the whole training set."""
        x = np.asarray(embeddings, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        self.cluster_ids = cluster_within_classes(x, self.labels, self.clusters_per_class, self.seed)
        count = int(self.cluster_ids.max()) + 1
        self.centres = np.stack([x[self.cluster_ids == c].mean(0) for c in range(count)])
        self.cluster_labels = np.asarray([self.labels[self.cluster_ids == c][0] for c in range(count)])

    def sample(self, rng: np.random.Generator, clusters: int = 8, per_cluster: int = 8) -> np.ndarray:
        """Dataset indices: a random seed cluster, its nearest clusters of other classes, D samples each."""
        seed_cluster = int(rng.integers(len(self.centres)))
        d2 = ((self.centres - self.centres[seed_cluster]) ** 2).sum(1)
        impostors = np.flatnonzero(self.cluster_labels != self.cluster_labels[seed_cluster])
        chosen = [seed_cluster, *impostors[np.argsort(d2[impostors])][: clusters - 1].tolist()]
        rows = []
        for c in chosen:
            members = np.flatnonzero(self.cluster_ids == c)
            rows.append(rng.choice(members, size=per_cluster, replace=len(members) < per_cluster))
        return np.concatenate(rows)
