"""Retrieval metrics: Recall@K, NMI, MAP@R and precision@1.

NMI, MAP@R and precision@1 come from pytorch-metric-learning's AccuracyCalculator; Recall@K (a query is
a hit when any of its K nearest neighbours, itself excluded, shares its label) is added to it as a
custom metric. Distances are Euclidean (faiss IndexFlatL2); pass L2-normalised embeddings for cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator, try_getting_not_lone_labels

DEFAULT_KS = (1, 2, 4, 8, 16, 32)


class RecallAccuracyCalculator(AccuracyCalculator):
    """AccuracyCalculator plus ``recall_at_<k>`` metrics; k neighbours = max(R, largest K)."""

    def __init__(self, ks: Sequence[int] = DEFAULT_KS, **kwargs: Any) -> None:
        self.ks = tuple(int(k) for k in ks)
        for k in self.ks:
            setattr(self, f"calculate_recall_at_{k}", partial(self._recall_at, k=k))
        kwargs.setdefault("k", "max_bin_count")
        kwargs.setdefault("device", torch.device("cpu"))
        super().__init__(**kwargs)

    def requires_knn(self) -> list[str]:
        return [*super().requires_knn(), *(f"recall_at_{k}" for k in self.ks)]

    def determine_k(
        self, bin_counts: torch.Tensor, num_reference_embeddings: int, ref_includes_query: bool
    ) -> int:
        k = super().determine_k(bin_counts, num_reference_embeddings, ref_includes_query)
        available = num_reference_embeddings - int(ref_includes_query)
        return max(1, min(max(k, *self.ks), available))

    def _recall_at(
        self,
        knn_labels: torch.Tensor,
        query_labels: torch.Tensor,
        not_lone_query_mask: torch.Tensor,
        k: int,
        **kwargs: Any,
    ) -> float:
        knn_labels, query_labels = try_getting_not_lone_labels(knn_labels, query_labels, not_lone_query_mask)
        if knn_labels is None:
            return float("nan")
        hits = (knn_labels[:, :k] == query_labels[:, None]).any(dim=1)
        return float(hits.double().mean().item())


def evaluate(
    embeddings: np.ndarray,
    labels: np.ndarray,
    query_mask: np.ndarray | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    include_nmi: bool = True,
) -> dict[str, float]:
    """Metrics for queries (rows where ``query_mask``; all rows by default) against all rows, self excluded.

    Returns ``recall@k`` for each k, ``nmi`` (k-means on the query embeddings), ``map@r`` and
    ``precision@1``; queries whose label occurs nowhere else are left out, as in the AccuracyCalculator.
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if query_mask is None:
        query_mask = np.ones(len(labels), dtype=bool)
    query_mask = np.asarray(query_mask, dtype=bool)
    order = np.concatenate([np.flatnonzero(query_mask), np.flatnonzero(~query_mask)])
    reference = embeddings[order]
    reference_labels = labels[order]
    num_queries = int(query_mask.sum())
    return _metrics(reference[:num_queries], reference_labels[:num_queries], reference, reference_labels,
                    True, ks, include_nmi)


def evaluate_against(
    queries: np.ndarray,
    query_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    include_nmi: bool = True,
) -> dict[str, float]:
    """The same metrics for queries that are *not* in the reference set (held-out queries searched
    against an index that never held them); nothing is excluded."""
    return _metrics(np.ascontiguousarray(queries, dtype=np.float32), np.asarray(query_labels),
                    np.ascontiguousarray(reference, dtype=np.float32), np.asarray(reference_labels),
                    False, ks, include_nmi)


def _metrics(queries: np.ndarray, query_labels: np.ndarray, reference: np.ndarray, reference_labels: np.ndarray,
             ref_includes_query: bool, ks: Sequence[int], include_nmi: bool) -> dict[str, float]:
    exclude = () if include_nmi else ("NMI",)
    calculator = RecallAccuracyCalculator(
        ks=ks,
        include=("precision_at_1", "mean_average_precision_at_r", "NMI", *(f"recall_at_{k}" for k in ks)),
        exclude=exclude,
    )
    raw = calculator.get_accuracy(
        queries, query_labels, reference, reference_labels, ref_includes_query=ref_includes_query,
    )
    result = {f"recall@{k}": raw[f"recall_at_{k}"] for k in ks}
    if include_nmi:
        result["nmi"] = float(raw["NMI"])
    result["map@r"] = float(raw["mean_average_precision_at_r"])
    result["precision@1"] = float(raw["precision_at_1"])
    return result
