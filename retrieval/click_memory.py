"""Click memory: what people judged moves gallery images at once, without a training run.

Each gallery image may carry an *offset* δ in the space of L2-normalised backbone features; it is served
as ``f + ||f|| δ`` (then the active model's head maps it, so the offsets compose with any learned head).
One judgement (anchor a = the query; positives P = results marked similar or clicked; negatives N =
results marked not similar or skipped above a positive) moves, with the current positions x = u + δ:

- a and the positives (all that the same results page has so far) towards their centroid c:
  ``δ_i += step * (c - x_i)`` (a only when it is a gallery image: an uploaded query never moves);
- each negative n away from a: ``δ_n += negative_step * (x_n - x_a)``;

and every offset is then clipped to ``||δ|| <= max_shift``, so a few bad clicks can move an image only
a bounded distance whatever they say (docs/feedback.md). The rule is applied once per judgement (the app
keeps a cursor over judgements, webapp/feedback/memory.py); `ClickMemory` holds the offsets of one
feature space and `Overlay` searches an index together with the moved images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from retrieval.augment import l2_normalise


@dataclass(frozen=True)
class MemoryConfig:
    """Step sizes and the bound (in units of a normalised feature vector; docs/benchmarks.md §10)."""

    step: float = 0.3
    negative_step: float = 0.03
    max_shift: float = 0.1

    def __post_init__(self) -> None:
        if not (0 <= self.step <= 1 and 0 <= self.negative_step <= 1 and 0 <= self.max_shift <= 2):
            raise ValueError(f"Click memory needs steps in [0, 1] and max_shift in [0, 2], not {self}.")


def clip_norm(offset: np.ndarray, bound: float) -> np.ndarray:
    norm = float(np.linalg.norm(offset))
    return offset if norm <= bound else offset * (bound / norm)


@dataclass
class ClickMemory:
    """The offsets of one feature space: image id → δ (float32, unit-feature space)."""

    config: MemoryConfig = field(default_factory=MemoryConfig)
    offsets: dict[int, np.ndarray] = field(default_factory=dict)

    def position(self, image: int, unit: np.ndarray) -> np.ndarray:
        offset = self.offsets.get(image)
        return unit if offset is None else unit + offset

    def apply(
        self, anchor: int, positives: Iterable[int], negatives: Iterable[int],
        features: Callable[[list[int]], np.ndarray],
        movable: Callable[[int], bool] = lambda _image: True,
    ) -> set[int]:
        """Apply one judgement; `features(ids)` gives raw backbone features, `movable` says which images
        are gallery images (queries that are only uploads never move). Returns the ids whose offset changed."""
        positives = [p for p in dict.fromkeys(positives) if p != anchor]
        negatives = [n for n in dict.fromkeys(negatives) if n != anchor and n not in positives]
        if not positives and not negatives:
            return set()
        ids = [anchor, *positives, *negatives]
        units = dict(zip(ids, l2_normalise(features(ids)), strict=True))
        at = {i: self.position(i, units[i]) for i in ids}
        moves: dict[int, np.ndarray] = {}
        if positives:  # the query and its positives move together towards their centroid
            group = [anchor, *positives]
            centre = np.mean([at[i] for i in group], axis=0)
            for image in group:
                moves[image] = self.config.step * (centre - at[image])
        for n in negatives:
            moves[n] = moves.get(n, 0) + self.config.negative_step * (at[n] - at[anchor])
        changed: set[int] = set()
        for image, move in moves.items():
            if not movable(image) or not np.any(move):
                continue
            current = self.offsets.get(image, np.zeros_like(units[image]))
            self.offsets[image] = clip_norm(current + move, self.config.max_shift).astype(np.float32)
            changed.add(image)
        return changed


def shifted_features(features: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Served backbone features ``f + ||f|| δ`` for rows of raw features and their unit-space offsets."""
    features = np.asarray(features, dtype=np.float32)
    return features + np.linalg.norm(features, axis=1, keepdims=True) * offsets


@dataclass(frozen=True)
class Overlay:
    """Embedded vectors of the moved images; they replace those images' rows of the index when searching."""

    ids: np.ndarray
    vectors: np.ndarray

    @staticmethod
    def empty(dim: int) -> Overlay:
        return Overlay(np.empty(0, np.int64), np.empty((0, dim), np.float32))

    def __len__(self) -> int:
        return len(self.ids)


def search_with_overlay(
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]], ntotal: int, overlay: Overlay,
    query: np.ndarray, wanted: int,
) -> list[tuple[int, float]]:
    """The `wanted` best (id, score) for one query over the index with the overlay's rows replacing the
    index rows of the same ids (exact: when the first answer holds too few rows that did not move, the index
    is asked once more for as many as can be needed: one search instead of a doubling series when most of
    the gallery moved)."""
    query = np.asarray(query, dtype=np.float32).reshape(1, -1)
    moved = set(overlay.ids.tolist())
    fetch = min(ntotal, wanted + min(len(moved), wanted) + 1)
    while True:
        scores, ids = search(query, max(fetch, 1))
        kept = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0 and int(i) not in moved]
        if len(kept) >= wanted or fetch >= ntotal:
            break
        fetch = min(ntotal, wanted + len(moved))  # enough whatever moved: the moved can take len(moved) places
    if len(overlay):
        extra = overlay.vectors @ query[0]
        kept += [(int(i), float(s)) for i, s in zip(overlay.ids, extra, strict=True)]
    kept.sort(key=lambda pair: -pair[1])
    return kept[:wanted]
