"""Recall@K of what search actually serves: each held-out query ranked by `search.ranking.rank` on the active
index, as an upload is — with αDBA in the index, the click memory's moved images, αQE if on, and removals.

`evaluation.labelled_report` scores a model version (its head over the stored features); this scores the
served result lists, so the effect of click memory and database-side augmentation is in the figure."""

from __future__ import annotations

import numpy as np

from training.evaluation import DEFAULT_KS
from webapp.learning.evaluation import labelled_set
from webapp.runtime import runtime
from webapp.search import ranking, service


def served_report() -> dict | None:
    """Recall@K of the served index's result lists for the held-out queries, or None without any."""
    loaded, version = service.served()
    found = labelled_set(version.backbone)
    if found is None or found.leave_one_out:
        return None
    labels = dict(zip(found.reference_ids.tolist(), found.reference_labels, strict=True))  # what may be served
    queries = runtime.embed(version, runtime.feature_store(version.backbone).get(found.query_ids))
    wanted = max(DEFAULT_KS)
    first_right = []
    for query_id, label, vector in zip(found.query_ids.tolist(), found.query_labels, queries, strict=True):
        hits = ranking.rank(loaded, version, vector, wanted, exclude={query_id})
        ranks = [rank for rank, (image_id, _) in enumerate(hits, 1) if labels.get(image_id) == label]
        first_right.append(ranks[0] if ranks else None)
    return {**{f"recall@{k}": float(np.mean([r is not None and r <= k for r in first_right])) for k in DEFAULT_KS},
            "queries": len(first_right), "model_version": version.pk, "index_version": loaded.version,
            "protocol": "held-out queries ranked as served (index augmentation, click memory, removals)"}
