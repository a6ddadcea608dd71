"""Trained heads from training/ as retrieval metric heads (registered at startup)."""

from __future__ import annotations

import io

import numpy as np
import torch

from retrieval.heads import l2_normalise, register_head
from training.oahu import OAHU
from training.trainer import LinearHead


class OAHUHead:
    """Indexed vector = OAHU's α-weighted concatenation of its depths (docs/training.md)."""

    kind = "oahu"

    def __init__(self, learner: OAHU) -> None:
        self.learner = learner

    def output_dim(self, input_dim: int) -> int:
        return self.learner.embed_dim

    def apply(self, features: np.ndarray) -> np.ndarray:
        return l2_normalise(self.learner.embed(np.asarray(features, dtype=np.float32)))

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        torch.save(self.learner.state_dict(), out)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> OAHUHead:
        return cls(OAHU.from_state(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)))


class LinearMetricHead:
    """A fine-tuned linear head (batch mode)."""

    kind = "linear"

    def __init__(self, head: LinearHead) -> None:
        self.head = head.cpu().eval()

    def output_dim(self, input_dim: int) -> int:
        return self.head.linear.out_features

    def apply(self, features: np.ndarray) -> np.ndarray:
        return l2_normalise(self.head.embed(np.asarray(features, dtype=np.float32)))

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        weight = self.head.linear.weight.detach().cpu()
        torch.save({"weight": weight}, out)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearMetricHead:
        weight = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["weight"]
        out_dim, in_dim = weight.shape
        head = LinearHead(in_dim) if out_dim == in_dim else LinearHead(in_dim, out_dim, np.eye(out_dim, in_dim))
        with torch.no_grad():
            head.linear.weight.copy_(weight)
        return cls(head)


register_head(OAHUHead.kind, OAHUHead.from_bytes)
register_head(LinearMetricHead.kind, LinearMetricHead.from_bytes)
