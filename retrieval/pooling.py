"""Global pooling of a backbone's last feature map into one vector per image.

``avg`` is global average pooling (what the backbones were trained with); ``gem`` is generalised mean
pooling, ``(mean(x ** p)) ** (1 / p)`` over the spatial positions (Radenović et al., 2018), which weighs
strongly activated positions more: p = 1 is the average, p → ∞ the maximum; p = 3 is the standard choice
for retrieval with a frozen backbone (docs/benchmarks.md §10 measures it).

A pooling has a short `key` (``avg``, ``gem3``) that names the features it produces. Backbone names carry
it as a suffix, ``<backbone>+gem3``, so features of different poolings never share a feature store, a
model version or an index (`pooled_name`, `split_pooled_name`); average pooling has no suffix, which keeps
the names (and stored features) of galleries built before pooling was configurable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

POOLINGS = ("avg", "gem")
DEFAULT_GEM_P = 3.0
GEM_EPS = 1e-6  # GeM clamps activations from below: x ** p needs x > 0
SEPARATOR = "+"
_KEY = re.compile(r"^(avg|gem(\d+(?:\.\d+)?))$")


class PoolingError(ValueError):
    """An unknown pooling, or a GeM exponent outside (0, 32]."""


@dataclass(frozen=True)
class Pooling:
    """How a (N, C, H, W) feature map becomes (N, C) features."""

    kind: str = "avg"
    p: float = DEFAULT_GEM_P

    def __post_init__(self) -> None:
        if self.kind not in POOLINGS:
            raise PoolingError(f"Unknown pooling {self.kind!r}; use one of {', '.join(POOLINGS)}.")
        if self.kind == "gem" and not (math.isfinite(self.p) and 0 < self.p <= 32):
            raise PoolingError(f"GeM exponent must be in (0, 32], not {self.p!r}.")

    @property
    def key(self) -> str:
        """``avg`` or ``gem<p>`` (``gem3``, ``gem2.5``): part of the names of the features it produces."""
        return "avg" if self.kind == "avg" else f"gem{self.p:g}"

    def __call__(self, fmap: torch.Tensor) -> torch.Tensor:
        """Pool a (N, C, H, W) tensor to (N, C) in its dtype."""
        if self.kind == "avg":
            return fmap.mean(dim=(2, 3))
        return fmap.clamp(min=GEM_EPS).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)

    def numpy(self, fmap: np.ndarray) -> np.ndarray:
        """Pool a (N, C, H, W) array (e.g. a cached float16 map, or an ONNX Runtime output) to float32 (N, C)."""
        fmap = np.asarray(fmap, dtype=np.float32)
        if self.kind == "avg":
            return fmap.mean(axis=(2, 3))
        return np.power(np.power(np.maximum(fmap, GEM_EPS), self.p).mean(axis=(2, 3)), 1.0 / self.p)


AVG = Pooling("avg")


def parse_pooling(kind: str, p: str | float | None = None) -> Pooling:
    """A pooling from setting values (``REFIND_POOLING``, ``REFIND_GEM_P``); PoolingError when invalid.

    The exponent is only read for ``gem``; it must be a plain number (no ``nan``/``inf``).
    """
    kind = kind.strip().lower()
    if kind != "gem":
        return Pooling(kind)
    if p is None or (isinstance(p, str) and not p.strip()):
        return Pooling("gem", DEFAULT_GEM_P)
    try:
        value = float(p)
    except ValueError as exc:
        raise PoolingError(f"GeM exponent must be a number, not {p!r}.") from exc
    return Pooling("gem", value)


def pooling_from_key(key: str) -> Pooling:
    """Inverse of `Pooling.key`."""
    match = _KEY.match(key)
    if match is None:
        raise PoolingError(f"Unknown pooling {key!r}; expected 'avg' or 'gem<p>' (e.g. gem3).")
    return AVG if match.group(1) == "avg" else Pooling("gem", float(match.group(2)))


def pooled_name(backbone: str, pooling: Pooling) -> str:
    """The name of `backbone`'s features under `pooling`: ``efficientnet_lite0+gem3`` (average: no suffix)."""
    return backbone if pooling.kind == "avg" else f"{backbone}{SEPARATOR}{pooling.key}"


def split_pooled_name(name: str) -> tuple[str, Pooling]:
    """(backbone, pooling) of a name made by `pooled_name`."""
    base, sep, key = name.rpartition(SEPARATOR)
    if not sep:
        return name, AVG
    return base, pooling_from_key(key)


class PoolingLayer(nn.Module):
    """A pooling as a module; ``keepdim`` returns (N, C, 1, 1), as torchvision's ``avgpool`` layers do."""

    def __init__(self, pooling: Pooling, keepdim: bool = False) -> None:
        super().__init__()
        self.pooling = pooling
        self.keepdim = keepdim

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        pooled = self.pooling(fmap)
        return pooled[:, :, None, None] if self.keepdim else pooled
