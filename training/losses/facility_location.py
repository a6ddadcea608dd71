"""Facility-location clustering loss (Song, Jegelka, Rathod, Murphy, CVPR 2017).

F(X, S) = −Σ_i min_{j∈S} ‖f_i − f_j‖ scores a medoid set S; the oracle F̃ takes the best medoid of
every true class. The loss is [max_{|S| = C} {F(X, S) + γ (1 − NMI(g(S), y))} − F̃]₊, where g(S)
assigns each point to its nearest medoid. The inner maximisation ("loss-augmented inference") runs
greedily (add the medoid with the best gain), then PAM-style swaps of each medoid with the points of
its cluster. Medoid choices carry no gradient; distances do. NMI is MI / sqrt(H(y) H(y*)).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def _entropy(counts: np.ndarray, axis: int) -> np.ndarray:
    total = counts.sum(axis=axis, keepdims=True)
    p = np.where(total > 0, counts / np.maximum(total, 1), 0.0)
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(axis=axis)


def nmi_from_contingency(table: np.ndarray) -> np.ndarray:
    """NMI (geometric normalisation) of contingency tables (..., clusters, classes)."""
    n = table.sum(axis=(-2, -1))
    p = table / n[..., None, None]
    pc = p.sum(-1, keepdims=True)
    py = p.sum(-2, keepdims=True)
    ratio = np.where(p > 0, p / np.where(pc * py > 0, pc * py, 1.0), 1.0)
    mi = (p * np.log(ratio)).sum(axis=(-2, -1))
    h_c = _entropy(table.sum(-1), -1)
    h_y = _entropy(table.sum(-2), -1)
    denom = np.sqrt(h_c * h_y)
    return np.where(
        denom > 0, mi / np.where(denom > 0, denom, 1.0), np.where((h_c == 0) & (h_y == 0), 1.0, 0.0)
    )


def nmi(assignment: np.ndarray, labels: np.ndarray) -> float:
    """NMI between a clustering and the labels (geometric normalisation)."""
    _, a = np.unique(assignment, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    table = np.zeros((a.max() + 1, y.max() + 1))
    np.add.at(table, (a, y), 1.0)
    return float(nmi_from_contingency(table))


def facility_score(dist: np.ndarray, medoids: list[int] | np.ndarray) -> float:
    """F(X, S) = −Σ_i min_{j∈S} d(i, j)."""
    return float(-dist[:, list(medoids)].min(axis=1).sum())


def augmented_objective(dist: np.ndarray, labels: np.ndarray, medoids: list[int], gamma: float) -> float:
    """F(X, S) + γ (1 − NMI(g(S), y))."""
    assignment = dist[:, medoids].argmin(axis=1)
    return facility_score(dist, medoids) + gamma * (1.0 - nmi(assignment, labels))


def _candidate_objectives(
    dist: np.ndarray, y_onehot: np.ndarray, medoids: list[int], gamma: float
) -> np.ndarray:
    """Objective of S ∪ {j} for every j at once (vectorised greedy step)."""
    n = dist.shape[0]
    if medoids:
        current = dist[:, medoids]
        nearest = current.min(axis=1)
        cluster = np.eye(len(medoids))[current.argmin(axis=1)]  # n × |S|
    else:
        nearest = np.full(n, np.inf)
        cluster = np.zeros((n, 0))
    moved = dist < nearest[:, None]  # moved[i, j]: point i joins candidate j
    new_min = np.minimum(dist, nearest[:, None])
    scores = -new_min.sum(axis=0)
    stay = (~moved).astype(np.float64)
    old_tables = np.einsum("ij,ia,ic->jac", stay, cluster, y_onehot)
    new_rows = (moved.astype(np.float64).T @ y_onehot)[:, None, :]
    tables = np.concatenate([old_tables, new_rows], axis=1)
    return scores + gamma * (1.0 - nmi_from_contingency(tables))


def loss_augmented_inference(
    dist: np.ndarray, labels: np.ndarray, gamma: float, pam_iterations: int = 10
) -> list[int]:
    """Greedy medoid selection for F + γΔ, then PAM swaps within clusters while they improve it."""
    _, y = np.unique(labels, return_inverse=True)
    num_classes = int(y.max()) + 1
    y_onehot = np.eye(num_classes)[y]
    medoids: list[int] = []
    for _ in range(num_classes):
        gains = _candidate_objectives(dist, y_onehot, medoids, gamma)
        gains[medoids] = -np.inf
        medoids.append(int(np.argmax(gains)))
    best = augmented_objective(dist, labels, medoids, gamma)
    for _ in range(pam_iterations):
        improved = False
        for slot in range(len(medoids)):
            assignment = dist[:, medoids].argmin(axis=1)
            for candidate in np.flatnonzero(assignment == slot):
                if candidate in medoids:
                    continue
                trial = medoids.copy()
                trial[slot] = int(candidate)
                value = augmented_objective(dist, labels, trial, gamma)
                if value > best + 1e-12:
                    best, medoids, improved = value, trial, True
        if not improved:
            break
    return medoids


def exhaustive_inference(dist: np.ndarray, labels: np.ndarray, gamma: float) -> list[int]:
    """Exact maximiser of F + γΔ over all medoid sets of size C (tiny batches only; for tests)."""
    num_classes = len(np.unique(labels))
    best, best_set = -np.inf, None
    for subset in combinations(range(dist.shape[0]), num_classes):
        value = augmented_objective(dist, labels, list(subset), gamma)
        if value > best:
            best, best_set = value, list(subset)
    assert best_set is not None
    return best_set


def oracle_medoids(dist: np.ndarray, labels: np.ndarray) -> list[int]:
    """Per class, the member minimising the summed distance to its class: the oracle's medoids."""
    medoids = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        within = dist[np.ix_(members, members)].sum(axis=0)
        medoids.append(int(members[np.argmin(within)]))
    return medoids


def pairwise_distances(f: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distance matrix with a safe gradient at zero."""
    sq = (f * f).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * f @ f.T).clamp_min(0.0)
    return torch.sqrt(d2 + eps) * (1.0 - torch.eye(len(f), dtype=f.dtype, device=f.device))


class FacilityLocationLoss(nn.Module):
    """Structured facility-location loss; γ decays geometrically by ``gamma_decay`` per :meth:`step_epoch`."""

    def __init__(
        self,
        gamma: float = 1.0,
        gamma_decay: float = 0.94,
        pam_iterations: int = 10,
        exhaustive: bool = False,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.gamma_decay = gamma_decay
        self.pam_iterations = pam_iterations
        self.exhaustive = exhaustive

    def step_epoch(self) -> None:
        self.gamma *= self.gamma_decay

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        if labels is None:
            raise ValueError("FacilityLocationLoss needs labels")
        f = F.normalize(embeddings, dim=-1)
        dist = pairwise_distances(f)
        d = dist.detach().double().cpu().numpy()
        y = labels.detach().cpu().numpy()
        if self.exhaustive:
            medoids = exhaustive_inference(d, y, self.gamma)
        else:
            medoids = loss_augmented_inference(d, y, self.gamma, self.pam_iterations)
        assignment = d[:, medoids].argmin(axis=1)
        margin = self.gamma * (1.0 - nmi(assignment, y))
        score = -dist[:, medoids].min(dim=1).values.sum()
        oracle = 0.0
        for medoid, label in zip(oracle_medoids(d, y), np.unique(y), strict=True):
            members = torch.as_tensor(np.flatnonzero(y == label), device=dist.device)
            oracle = oracle - dist[members, medoid].sum()
        return torch.clamp(score + margin - oracle, min=0.0)
