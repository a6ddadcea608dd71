"""Tiny tensors run fastest on one thread; keeps the suite quick and deterministic on 2 cores."""

import torch

torch.set_num_threads(1)
