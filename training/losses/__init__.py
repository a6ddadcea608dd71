"""Batch metric-learning losses behind one registry (see training.losses.registry)."""

from training.losses.registry import LOSSES, build_loss

__all__ = ["LOSSES", "build_loss"]
