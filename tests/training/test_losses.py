"""Registry losses: each lowers its loss on a toy problem; facility location and Magnet by hand."""

from itertools import combinations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from training.losses.facility_location import (
    FacilityLocationLoss,
    augmented_objective,
    exhaustive_inference,
    loss_augmented_inference,
    nmi,
)
from training.losses.magnet import MagnetClusterIndex, MagnetLoss, cluster_within_classes
from training.losses.registry import LOSSES, build_loss

EXPECTED = {
    "contrastive",
    "triplet",
    "lifted_structure",
    "n_pair",
    "multi_similarity",
    "proxy_nca",
    "proxy_anchor",
    "soft_triple",
    "arcface",
    "cosface",
    "abtl",
    "facility_location",
    "magnet",
}


def toy(
    seed: int = 0, classes: int = 4, per_class: int = 6, dim: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.randn(classes, dim, generator=g)
    x = centres[labels] + 1.2 * torch.randn(len(labels), dim, generator=g)
    return x, labels


def test_registry_names() -> None:
    assert set(LOSSES) == EXPECTED
    with pytest.raises(KeyError):
        build_loss("nope", 8)
    with pytest.raises(ValueError):
        build_loss("proxy_anchor", 8)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_loss_decreases_on_toy_problem(name: str) -> None:
    torch.manual_seed(0)
    x, labels = toy()
    head = torch.nn.Linear(8, 8)
    loss_fn = build_loss(name, embedding_dim=8, num_classes=4)
    params = list(head.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.Adam(params, lr=0.01)

    def value() -> float:
        with torch.no_grad():
            return float(loss_fn(head(x), labels))

    start = value()
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(head(x), labels)
        loss.backward()
        opt.step()
    end = value()
    assert start > 0
    assert end < start


@pytest.mark.parametrize("name", ["contrastive", "triplet", "lifted_structure", "multi_similarity", "abtl"])
def test_triplet_capable_losses_take_indices_tuple(name: str) -> None:
    x, labels = toy()
    loss_fn = build_loss(name, embedding_dim=8)
    idx = (torch.tensor([0, 6]), torch.tensor([1, 7]), torch.tensor([12, 18]))
    emb = x.clone().requires_grad_(True)
    loss = loss_fn(emb, None, idx)
    loss.backward()
    touched = emb.grad.abs().sum(1) > 0
    assert set(torch.nonzero(touched).flatten().tolist()) <= {0, 1, 6, 7, 12, 18}


def test_abtl_batch_uses_all_valid_triplets() -> None:
    x, labels = toy(classes=2, per_class=3)
    loss = build_loss("abtl", 8)(x, labels)
    f = F.normalize(x, dim=-1)
    from training.abtl import abtl

    values = []
    for a in range(6):
        for p in range(6):
            for n in range(6):
                if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
                    values.append(abtl((f[a] - f[p]).norm()[None], (f[a] - f[n]).norm()[None], 0.5))
    assert loss.item() == pytest.approx(torch.cat(values).mean().item(), abs=1e-5)


# ------------------------------------------------------------------------------------------ facility location
def brute_force_loss(f: np.ndarray, labels: np.ndarray, gamma: float) -> float:
    dist = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
    k = len(np.unique(labels))
    best = max(
        -dist[:, list(s)].min(1).sum() + gamma * (1 - nmi(dist[:, list(s)].argmin(1), labels))
        for s in combinations(range(len(f)), k)
    )
    oracle = 0.0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        oracle += max(-dist[np.ix_(members, [j])].sum() for j in members)
    return max(0.0, best - oracle)


def test_nmi_matches_sklearn() -> None:
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(0)
    for _ in range(10):
        a, b = rng.integers(0, 4, 30), rng.integers(0, 3, 30)
        assert nmi(a, b) == pytest.approx(normalized_mutual_info_score(b, a, average_method="geometric"))


@pytest.mark.parametrize("seed", range(6))
def test_facility_location_against_brute_force(seed: int) -> None:
    x, labels = toy(seed, classes=3, per_class=3, dim=4)
    f = F.normalize(x, dim=-1).double()
    for gamma in (0.0, 1.0):
        want = brute_force_loss(f.numpy(), labels.numpy(), gamma)
        exact = FacilityLocationLoss(gamma=gamma, exhaustive=True)(x.double(), labels)
        assert exact.item() == pytest.approx(want, abs=1e-6)
        greedy = FacilityLocationLoss(gamma=gamma)(x.double(), labels)
        assert greedy.item() <= want + 1e-6  # inference maximises, so it can only under-estimate
        assert greedy.item() >= want - 0.25 * abs(want) - 1e-6


def test_greedy_pam_finds_exhaustive_optimum_on_tiny_sets() -> None:
    found = 0
    for seed in range(10):
        x, labels = toy(seed, classes=3, per_class=3, dim=4)
        f = F.normalize(x, dim=-1).double().numpy()
        dist = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
        y = labels.numpy()
        greedy = augmented_objective(dist, y, loss_augmented_inference(dist, y, 1.0), 1.0)
        best = augmented_objective(dist, y, exhaustive_inference(dist, y, 1.0), 1.0)
        assert greedy <= best + 1e-9
        found += greedy >= best - 1e-9
    assert found >= 8


def test_facility_location_zero_for_well_separated_clusters() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [1.0, -0.01], [-1.0, 0.0], [-1.0, 0.01], [-1.0, -0.01]])
    assert FacilityLocationLoss(gamma=1.0)(x, labels).item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------------- magnet
def test_magnet_by_hand_on_toy_set() -> None:
    # two classes, one cluster each (clusters_per_class=1): centres are class means
    r = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    loss = MagnetLoss(alpha=0.5, clusters_per_class=1)(r, labels)
    mu = torch.stack([r[:2].mean(0), r[2:].mean(0)])
    d2 = ((r[:, None] - mu[None]) ** 2).sum(-1)
    own = d2[torch.arange(4), labels]
    var = own.sum() / 3
    other = d2[torch.arange(4), 1 - labels]
    want = torch.clamp(-(-own / (2 * var) - 0.5) + (-other / (2 * var)), min=0).mean()
    assert loss.item() == pytest.approx(want.item())


def test_magnet_clusters_and_sampler() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (10, 2)) + [5, 0], rng.normal(0, 0.1, (10, 2)) + [-5, 0]])
    labels = np.zeros(20, dtype=int)
    ids = cluster_within_classes(x, labels, 2)
    assert len(set(ids[:10])) == 1 and len(set(ids[10:])) == 1 and ids[0] != ids[10]
    index = MagnetClusterIndex(np.repeat(np.arange(4), 10), clusters_per_class=2)
    index.refresh(rng.normal(size=(40, 3)))
    batch = index.sample(rng, clusters=3, per_cluster=4)
    assert len(batch) == 12
    seed_label = index.labels[batch[0]]
    assert len({int(index.labels[b]) for b in batch[4:]} - {int(seed_label)}) >= 1
