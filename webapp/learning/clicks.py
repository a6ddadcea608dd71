"""Every click as training data: the app's judgements read into the arrays of training/click_graph.py.

Positive pairs: (query, result) of every click or "similar" mark on a training impression (held-out
impressions are never used), whatever its rank — with a good model most clicks are on the first results and
make no skip-above triplet. Negatives: the (anchor, negative) of the usable click/explicit triplets
(skip-above and "not similar"; retracted ones excluded by usable_triplets). Only images with features under
the backbone take part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.click_graph import components, every_click_triplets
from webapp.feedback.models import Judgement, Triplet
from webapp.feedback.splits import is_heldout_impression
from webapp.feedback.usable import usable_triplets
from webapp.gallery.features import ensure_features
from webapp.gallery.indexing import indexable_ids


@dataclass(frozen=True)
class ClickData:
    ids: np.ndarray  # image ids; the arrays below index into them
    labels: np.ndarray  # click-graph component per image (pseudo-labels)
    triplets: np.ndarray  # every-click triplets (a, p, n)
    pairs: int


def _usable_judgements():
    """Positive judgements not retracted (a changed or undone verdict no longer counts)."""
    return Judgement.objects.exclude(kind=Judgement.Kind.DISSIMILAR).filter(retracted_at__isnull=True)


def click_data(backbone: str, triplet_watermark: int, seed: int = 0) -> ClickData | None:
    """Pairs of every usable click up to the triplet watermark's moment, components and every-click triplets."""
    pairs = [(q, i) for impression, q, i in _usable_judgements().order_by("id")
             .values_list("impression_id", "impression__query_id", "image_id") if not is_heldout_impression(impression)]
    negatives = [(a, n) for a, n, impression in usable_triplets(Triplet.objects.filter(
        id__lte=triplet_watermark, source__in=[Triplet.Source.CLICK, Triplet.Source.EXPLICIT]))
        .values_list("anchor_id", "negative_id", "judgement__impression_id")
        if impression is None or not is_heldout_impression(impression)]
    if not pairs:
        return None
    pool = indexable_ids(backbone)
    members = np.unique(np.concatenate([np.array(pairs).reshape(-1), np.array(negatives, dtype=np.int64).reshape(-1),
                                        pool]))
    members = members[ensure_features(members, backbone).contains(members)]
    row = {int(image_id): n for n, image_id in enumerate(members.tolist())}
    local_pairs = np.array([(row[a], row[b]) for a, b in pairs if a in row and b in row], dtype=np.int64)
    local_negatives = np.array([(row[a], row[b]) for a, b in negatives if a in row and b in row], dtype=np.int64)
    if not len(local_pairs):
        return None
    local_pool = np.array([row[int(i)] for i in pool if int(i) in row], dtype=np.int64)
    triplets = every_click_triplets(local_pairs, local_negatives, len(members), pool=local_pool, seed=seed)
    used = np.unique(np.concatenate([local_pairs.reshape(-1), triplets.reshape(-1)]))
    remap = np.full(len(members), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    labels = components(remap[local_pairs], len(used))
    return ClickData(members[used], labels, remap[triplets], len(local_pairs))
