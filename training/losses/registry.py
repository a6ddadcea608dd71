"""Batch losses by name, all called as ``loss(embeddings, labels=None, indices_tuple=None)``.

``embeddings`` (batch × dim, any norm), ``labels`` (batch,) integer classes, ``indices_tuple`` either
(anchor, positive, negative) index tensors into the batch or pytorch-metric-learning's pair tuple
(a1, p, a2, n). Losses with a miner mine from ``labels`` when no ``indices_tuple`` is given. Losses marked
``needs_labels`` (proxies, classifiers, clustering) cannot train from triplets alone; the trainer derives
click-group labels for them (see training.trainer). Losses with parameters (proxies, class centres) must
be optimised together with the model: ``list(loss.parameters())``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from torch import nn

from training.losses.abtl_batch import ABTLLoss
from training.losses.facility_location import FacilityLocationLoss
from training.losses.magnet import MagnetLoss


class MetricLoss(nn.Module):
    """Uniform wrapper: optional miner (used only when no indices_tuple is given) + loss."""

    def __init__(self, name: str, loss: nn.Module, miner: nn.Module | None, needs_labels: bool) -> None:
        super().__init__()
        self.name = name
        self.loss = loss
        self.miner = miner
        self.needs_labels = needs_labels

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        if self.needs_labels and labels is None:
            raise ValueError(f"loss {self.name!r} needs labels")
        if labels is None and indices_tuple is None:
            raise ValueError(f"loss {self.name!r} needs labels or an indices_tuple")
        if indices_tuple is None and self.miner is not None:
            indices_tuple = self.miner(embeddings, labels)
        if self.needs_labels:
            return self.loss(embeddings, labels)
        return self.loss(embeddings, labels, indices_tuple)

    def step_epoch(self) -> None:
        """Per-epoch schedule hook (the facility-location γ decay)."""
        if hasattr(self.loss, "step_epoch"):
            self.loss.step_epoch()


@dataclass(frozen=True)
class LossSpec:
    """How to build one registry loss, and its defaults."""

    build: Callable[..., nn.Module]
    miner: Callable[..., nn.Module] | None
    needs_labels: bool
    defaults: dict[str, Any]
    miner_defaults: dict[str, Any]
    description: str


def _with_classes(cls: type) -> Callable[..., nn.Module]:
    def build(embedding_dim: int, num_classes: int, **params: Any) -> nn.Module:
        return cls(num_classes=num_classes, embedding_size=embedding_dim, **params)

    return build


def _plain(cls: type) -> Callable[..., nn.Module]:
    def build(embedding_dim: int, num_classes: int, **params: Any) -> nn.Module:
        return cls(**params)

    return build


REGISTRY: dict[str, LossSpec] = {
    "contrastive": LossSpec(
        _plain(pml_losses.ContrastiveLoss),
        None,
        False,
        {"pos_margin": 0.0, "neg_margin": 1.0},
        {},
        "Hadsell et al. 2006, all pairs of the batch (pml ContrastiveLoss)",
    ),
    "triplet": LossSpec(
        _plain(pml_losses.TripletMarginLoss),
        pml_miners.TripletMarginMiner,
        False,
        {"margin": 0.1},
        {"margin": 0.1, "type_of_triplets": "semihard"},
        "FaceNet triplet margin loss with semi-hard mining (pml)",
    ),
    "lifted_structure": LossSpec(
        _plain(pml_losses.LiftedStructureLoss),
        None,
        False,
        {"neg_margin": 1.0, "pos_margin": 0.0},
        {},
        "Song et al. 2016 (pml LiftedStructureLoss)",
    ),
    "n_pair": LossSpec(_plain(pml_losses.NPairsLoss), None, True, {}, {}, "Sohn 2016 (pml NPairsLoss)"),
    "multi_similarity": LossSpec(
        _plain(pml_losses.MultiSimilarityLoss),
        pml_miners.MultiSimilarityMiner,
        False,
        {"alpha": 2.0, "beta": 50.0, "base": 0.5},
        {"epsilon": 0.1},
        "Wang et al. 2019 with its miner (pml)",
    ),
    "proxy_nca": LossSpec(
        _with_classes(pml_losses.ProxyNCALoss),
        None,
        True,
        {"softmax_scale": 1},
        {},
        "Movshovitz-Attias et al. 2017 (pml)",
    ),
    "proxy_anchor": LossSpec(
        _with_classes(pml_losses.ProxyAnchorLoss),
        None,
        True,
        {"margin": 0.1, "alpha": 32},
        {},
        "Kim et al. 2020 (pml)",
    ),
    "soft_triple": LossSpec(
        _with_classes(pml_losses.SoftTripleLoss),
        None,
        True,
        {"centers_per_class": 10},
        {},
        "Qian et al. 2019 (pml)",
    ),
    "arcface": LossSpec(
        _with_classes(pml_losses.ArcFaceLoss),
        None,
        True,
        {"margin": 28.6, "scale": 64},
        {},
        "Deng et al. 2019 additive angular margin (pml)",
    ),
    "cosface": LossSpec(
        _with_classes(pml_losses.CosFaceLoss),
        None,
        True,
        {"margin": 0.35, "scale": 64},
        {},
        "Wang et al. 2018 additive cosine margin (pml)",
    ),
    "abtl": LossSpec(
        _plain(ABTLLoss),
        None,
        False,
        {"tau": 0.5},
        {},
        "OAHU's adaptive-bound triplet loss over all batch triplets or given triplets (ours)",
    ),
    "facility_location": LossSpec(
        _plain(FacilityLocationLoss),
        None,
        True,
        {"gamma": 1.0, "gamma_decay": 0.94},
        {},
        "Song et al. 2017 clustering loss, greedy + PAM loss-augmented inference (ours)",
    ),
    "magnet": LossSpec(
        _plain(MagnetLoss),
        None,
        True,
        {"alpha": 1.0, "clusters_per_class": 2},
        {},
        "Rippel et al. 2016 (ours)",
    ),
}

LOSSES: tuple[str, ...] = tuple(REGISTRY)
CLASS_PARAMETER_LOSSES = frozenset({"proxy_nca", "proxy_anchor", "soft_triple", "arcface", "cosface"})


def build_loss(
    name: str, embedding_dim: int, num_classes: int = 0, miner: dict[str, Any] | None = None, **params: Any
) -> MetricLoss:
    """Build the registry loss ``name``; ``params`` override its defaults, ``miner`` its miner's."""
    if name not in REGISTRY:
        raise KeyError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    spec = REGISTRY[name]
    if name in CLASS_PARAMETER_LOSSES and num_classes <= 0:
        raise ValueError(f"loss {name!r} needs num_classes > 0")
    loss = spec.build(embedding_dim, num_classes, **{**spec.defaults, **params})
    built_miner = spec.miner(**{**spec.miner_defaults, **(miner or {})}) if spec.miner else None
    return MetricLoss(name, loss, built_miner, spec.needs_labels)
