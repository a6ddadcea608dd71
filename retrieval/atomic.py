"""Atomic file writes (bytes, FAISS indexes, torch artifacts): write ``<path>.part``, fsync, rename over the
target, fsync the folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(part_path)`, then publish the file at `path` in one rename.

    A crash or a full disk leaves at most a stray ``.part`` file, never a half-written `path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        write(str(part))
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(part: str) -> None:
        with open(part, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save, atomically (checkpoints, learner states, tuned backbones)."""
    def write(part: str) -> None:
        with open(part, "wb") as handle:
            torch.save(obj, handle)

    return atomic_write(path, write)
