"""OAHU: online metric learning with the Adaptive Hedge Update (Gao et al., WWW 2019).

Input pipeline. A backbone feature x is L2-normalised, x̂ = x / ‖x‖, and split along a fixed orthonormal
basis B (the top principal directions of unlabelled features, :meth:`OAHU.fit_basis`) into the network
input z = B x̂ and the frozen residual r = x̂ − Bᵀz; ‖z‖² + ‖r‖² = 1.

Network (the paper's). L hidden layers h_l = ReLU(W_l h_{l−1} + b_l), h_0 = z; embedding layers E_0..E_L,
E_0 linear from z, E_l from h_l. Depth l embeds x as f_l(x) = [‖z‖ · normalise(E_l h_l) ; r], a unit
vector; with ``residual=False`` it is the paper's plain normalise(E_l h_l). Each depth has its own ABTL
loss; the depth weights α follow the Adaptive Hedge Update; the gradient of Σ α_l L_l (α held constant)
routes α_l ∇L_l to E_l and Σ_{j≥l} α_j ∇L_j to hidden layer l.

Starting from the pretrained metric ("identity" init): E_0 = I, hidden layer 1 = [I; −I] (both signs
survive the ReLU), deeper hidden layers = I, E_l = [I, −I] (ReLU(z) − ReLU(−z) = z). Every depth then
gives f_l(x) = [z ; r], an isometric image of x̂, so retrieval equals the backbone's cosine retrieval
exactly before any feedback, whatever the basis size. With ``skip=True`` every depth instead adds its
input, f_l = normalise(z + E_l h_l) (E_l zero-initialised, hidden layers random, any width), which is
equally exact at zero feedback. See docs/training.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from retrieval.atomic import atomic_torch_save
from training.abtl import abtl_terms, check_tau, combine_terms, triplet_distances
from training.hedge import hedge_sequence, hedge_step, uniform_alpha
from training.oahu_backprop import Params, forward_backward, sgd_update

FORMAT_VERSION = 1


@dataclass
class OAHUConfig:
    """Hyper-parameters of :class:`OAHU`; defaults were chosen on the CUB-100 benchmark."""

    input_dim: int
    basis_dim: int = 256
    embedding_dim: int = 256
    hidden_dim: int = 512
    num_hidden: int = 1
    beta: float = 0.99
    s: float = 0.1
    tau: float = 0.5
    lr: float = 3.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    self_weighted: bool = False
    init: str = "identity"
    residual: bool = True
    skip: bool = False
    anchor_decay: float = 0.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check_tau(self.tau)
        if not 0.0 < self.beta < 1.0:
            raise ValueError("beta must lie in (0, 1)")
        if not 0.0 <= self.s < 1.0:
            raise ValueError("s must lie in [0, 1)")
        if self.num_hidden < 0:
            raise ValueError("num_hidden must be >= 0")
        if self.basis_dim > self.input_dim:
            raise ValueError("basis_dim cannot exceed input_dim")
        if self.init not in ("identity", "random"):
            raise ValueError("init must be 'identity' or 'random'")
        if self.anchor_decay < 0:
            raise ValueError("anchor_decay must be >= 0")
        if self.skip:
            if self.embedding_dim != self.basis_dim:
                raise ValueError("skip connections need embedding_dim == basis_dim")
        elif self.init == "identity":
            if self.embedding_dim > self.basis_dim:
                raise ValueError("identity init needs embedding_dim <= basis_dim")
            if self.residual and self.embedding_dim != self.basis_dim:
                raise ValueError("identity init with the residual needs embedding_dim == basis_dim")
            if self.num_hidden and self.hidden_dim < 2 * self.basis_dim:
                raise ValueError("identity init needs hidden_dim >= 2 * basis_dim")


class OAHUNetwork(nn.Module):
    """Hidden layers h_l = ReLU(W_l h_{l−1}) and embedding layers E_0..E_L, each output L2-normalised."""

    def __init__(
        self, in_dim: int, hidden_dim: int, embedding_dim: int, num_hidden: int, skip: bool = False
    ) -> None:
        super().__init__()
        self.skip = skip
        dims = [in_dim] + [hidden_dim] * num_hidden
        self.hidden = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(num_hidden))
        self.embeddings = nn.ModuleList(nn.Linear(d, embedding_dim) for d in dims)

    @property
    def num_depths(self) -> int:
        return len(self.embeddings)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Normalised embeddings f_0(z), ..., f_L(z)."""
        skip = z if self.skip else 0.0
        outputs = [F.normalize(self.embeddings[0](z) + skip, dim=-1)]
        h = z
        for layer, embed in zip(self.hidden, self.embeddings[1:], strict=True):
            h = torch.relu(layer(h))
            outputs.append(F.normalize(embed(h) + skip, dim=-1))
        return outputs

    @torch.no_grad()
    def skip_init(self) -> None:
        """Zero embedding layers: with the skip, f_l = normalise(z + E_l h_l) = normalise(z) exactly."""
        for embed in self.embeddings:
            embed.weight.zero_()
            embed.bias.zero_()

    @torch.no_grad()
    def identity_init(self, generator: torch.Generator) -> None:
        """Make every depth reproduce its input direction exactly (see module docstring)."""
        in_dim = self.embeddings[0].in_features
        emb = self.embeddings[0].out_features
        eye = torch.eye(emb, in_dim)
        self.embeddings[0].weight.copy_(eye)
        self.embeddings[0].bias.zero_()
        for depth, layer in enumerate(self.hidden):
            width, fan_in = layer.weight.shape
            weight = torch.zeros(width, fan_in)
            if depth == 0:
                weight[:in_dim] = torch.eye(in_dim)
                weight[in_dim : 2 * in_dim] = -torch.eye(in_dim)
            else:
                weight[: 2 * in_dim, : 2 * in_dim] = torch.eye(2 * in_dim)
            if width > 2 * in_dim:  # spare units: small random rows, read by nobody at the start
                spare = torch.randn(width - 2 * in_dim, fan_in, generator=generator) / math.sqrt(fan_in)
                weight[2 * in_dim :] = spare
            layer.weight.copy_(weight)
            layer.bias.zero_()
            embed = self.embeddings[depth + 1]
            recombine = torch.zeros(emb, width)
            recombine[:, :in_dim] = eye
            recombine[:, in_dim : 2 * in_dim] = -eye
            embed.weight.copy_(recombine)
            embed.bias.zero_()


@dataclass
class PartialFitStats:
    """What one :meth:`OAHU.partial_fit` call did."""

    triplets: int
    mean_loss: float
    depth_losses: list[float]
    alpha: list[float]


class OAHU:
    """Online metric learner over backbone features; see the module docstring and docs/training.md."""

    def __init__(self, input_dim: int, basis_features: np.ndarray | None = None, **params: Any) -> None:
        self.config = OAHUConfig(input_dim=input_dim, **params)
        self.config.validate()
        cfg = self.config
        self._generator = torch.Generator().manual_seed(cfg.seed)
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)
        self.network = OAHUNetwork(cfg.basis_dim, cfg.hidden_dim, cfg.embedding_dim, cfg.num_hidden, cfg.skip)
        torch.random.set_rng_state(torch_state)
        if cfg.skip:
            self.network.skip_init()
        elif cfg.init == "identity":
            self.network.identity_init(self._generator)
        self.basis = _default_basis(cfg.basis_dim, input_dim, self._generator)
        if basis_features is not None:
            self.fit_basis(basis_features)
        self._params = Params(
            hidden_w=[layer.weight.detach().numpy() for layer in self.network.hidden],
            hidden_b=[layer.bias.detach().numpy() for layer in self.network.hidden],
            embed_w=[layer.weight.detach().numpy() for layer in self.network.embeddings],
            embed_b=[layer.bias.detach().numpy() for layer in self.network.embeddings],
        )
        self._momentum: list[np.ndarray | None] = [None] * len(self._params.all())
        # the initial weights (the pretrained metric), for the anchor_decay regulariser; deterministic
        # from the config, so they need not be saved
        self._anchor = [p.copy() for p in self._params.all()] if cfg.anchor_decay else None
        self._alpha = uniform_alpha(self.network.num_depths)
        self.triplets_seen = 0
        self.device, self.engine = torch.device("cpu"), "numpy"

    # ----------------------------------------------------------------------------------------- basis
    def fit_basis(self, features: np.ndarray) -> None:
        """Set the fixed basis to the top principal directions (uncentred) of unlabelled features."""
        x = F.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=-1).double()
        if x.shape[0] < self.config.basis_dim:
            raise ValueError(f"need at least {self.config.basis_dim} features to fit the basis")
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        self.basis = vh[: self.config.basis_dim].float().contiguous()

    def split(self, features: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, r): network input B x̂ and frozen residual x̂ − Bᵀz of raw backbone features."""
        x = F.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=-1)
        z = x @ self.basis.T
        return z, x - z @ self.basis

    def project(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Network input z = B x̂ for raw backbone features."""
        x = F.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=-1)
        return x @ self.basis.T

    # ------------------------------------------------------------------------------------- learning
    @property
    def alpha(self) -> np.ndarray:
        """Current depth weights α (a copy; sums to 1)."""
        return self._alpha.copy()

    @property
    def num_depths(self) -> int:
        return self.network.num_depths

    def depth_embeddings(self, features: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """Differentiable per-depth embeddings f_l(x) (the autograd reference of the fast path)."""
        z, r = self.split(features)
        outputs = self.network(z)
        if not self.config.residual:
            return outputs
        scale = z.norm(dim=-1, keepdim=True)
        return [torch.cat([u * scale, r], dim=-1) for u in outputs]

    def depth_losses(
        self, anchor_feats: np.ndarray, pos_feats: np.ndarray, neg_feats: np.ndarray
    ) -> torch.Tensor:
        """ABTL local losses, shape (triplets, depths), through autograd (reference implementation)."""
        n = len(anchor_feats)
        stacked = np.concatenate([anchor_feats, pos_feats, neg_feats]).astype(np.float32)
        losses = []
        for f in self.depth_embeddings(stacked):
            d_pos, d_neg = triplet_distances(f[:n], f[n : 2 * n], f[2 * n :])
            attr, rep = abtl_terms(d_pos, d_neg, self.config.tau)
            losses.append(combine_terms(attr, rep, self.config.self_weighted))
        return torch.stack(losses, dim=1)

    def partial_fit(
        self,
        anchor_feats: np.ndarray,
        pos_feats: np.ndarray,
        neg_feats: np.ndarray,
        batch_size: int = 1,
    ) -> PartialFitStats:
        """Learn from triplets (rows): per triplet (batch_size=1, the paper) or in mini-batches."""
        if not len(anchor_feats) == len(pos_feats) == len(neg_feats):
            raise ValueError("anchor, positive and negative arrays need the same number of rows")
        total = len(anchor_feats)
        if total == 0:
            return PartialFitStats(0, 0.0, [0.0] * self.num_depths, self._alpha.tolist())
        cfg = self.config
        z_all, scale_all, rest_pos, rest_neg = self._prepare(anchor_feats, pos_feats, neg_feats)
        if self.device.type != "cpu" or self.engine == "torch":
            return self._partial_fit_torch(z_all, scale_all, rest_pos, rest_neg, batch_size)
        params = self._params.all()
        loss_sum = 0.0
        depth_sum = np.zeros(self.num_depths)
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            z = z_all[:, start:stop].reshape(-1, z_all.shape[2])
            scale = scale_all[:, start:stop].reshape(-1)
            values, grads = forward_backward(
                self._params,
                z,
                scale,
                rest_pos[start:stop],
                rest_neg[start:stop],
                self._alpha,
                cfg.tau,
                cfg.self_weighted,
                cfg.skip,
            )
            sgd_update(
                params, grads, self._momentum, cfg.lr, cfg.momentum, cfg.weight_decay, self._anchor, cfg.anchor_decay
            )
            loss_sum += self._after_step(values)
            depth_sum += values.sum(0)
        return PartialFitStats(total, loss_sum / total, (depth_sum / total).tolist(), self._alpha.tolist())

    def _after_step(self, values: np.ndarray) -> float:
        """Hedge-update α with one step's depth losses (n × depths) and count its triplets; the step's weighted loss."""
        cfg = self.config
        loss = float((values @ self._alpha).sum())
        if len(values) == 1:
            self._alpha = hedge_step(self._alpha, values[0], cfg.beta, cfg.s)
        else:
            self._alpha = hedge_sequence(self._alpha, values, cfg.beta, cfg.s)
        self.triplets_seen += len(values)
        return loss

    def use_device(self, device: str | torch.device, engine: str | None = None) -> OAHU:
        """Where partial_fit runs: "cpu" (the NumPy pass, default) or a torch device such as "cuda" (the
        torch pass, training/oahu_torch.py). ``engine="torch"`` forces the torch pass on the CPU too (tests).
        Not saved with the state: whoever loads a learner chooses its device."""
        self.device = torch.device(device)
        self.engine = engine or ("numpy" if self.device.type == "cpu" else "torch")
        if self.engine not in ("numpy", "torch"):
            raise ValueError("engine must be 'numpy' or 'torch'")
        return self

    def _partial_fit_torch(self, z_all: np.ndarray, scale_all: np.ndarray, rest_pos: np.ndarray,
                           rest_neg: np.ndarray, batch_size: int) -> PartialFitStats:
        """partial_fit's loop with the torch pass on self.device; weights copied there and back once."""
        from training import oahu_torch

        cfg, device = self.config, self.device
        host = self._params.all()
        params = [torch.from_numpy(p).to(device, copy=True) for p in host]
        buffers = [None if b is None else torch.from_numpy(b).to(device, copy=True) for b in self._momentum]
        anchor = None if self._anchor is None else [torch.from_numpy(a).to(device) for a in self._anchor]
        hidden_count, depths = len(self._params.hidden_w), self.num_depths
        z_dev = torch.from_numpy(np.ascontiguousarray(z_all)).to(device)
        scale_dev = torch.from_numpy(np.ascontiguousarray(scale_all, dtype=np.float32)).to(device)
        rest_pos_dev = torch.from_numpy(np.ascontiguousarray(rest_pos, dtype=np.float32)).to(device)
        rest_neg_dev = torch.from_numpy(np.ascontiguousarray(rest_neg, dtype=np.float32)).to(device)
        total = z_all.shape[1]
        loss_sum, depth_sum = 0.0, np.zeros(depths)
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            hidden = list(zip(params[:hidden_count], params[hidden_count : 2 * hidden_count], strict=True))
            embeds = list(zip(params[2 * hidden_count : 2 * hidden_count + depths],
                              params[2 * hidden_count + depths :], strict=True))
            values_t, grads = oahu_torch.forward_backward(
                hidden, embeds, z_dev[:, start:stop].reshape(-1, z_all.shape[2]),
                scale_dev[:, start:stop].reshape(-1), rest_pos_dev[start:stop], rest_neg_dev[start:stop],
                self._alpha, cfg.tau, cfg.self_weighted, cfg.skip)
            oahu_torch.sgd_update(params, grads, buffers, cfg.lr, cfg.momentum, cfg.weight_decay, anchor,
                                  cfg.anchor_decay)
            values = values_t.cpu().numpy()
            loss_sum += self._after_step(values)
            depth_sum += values.sum(0)
        for target, tensor in zip(host, params, strict=True):
            target[...] = tensor.cpu().numpy()
        self._momentum = [None if b is None else b.cpu().numpy() for b in buffers]
        return PartialFitStats(total, loss_sum / total, (depth_sum / total).tolist(), self._alpha.tolist())

    def _prepare(
        self, anchor_feats: np.ndarray, pos_feats: np.ndarray, neg_feats: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Inputs (3, n, d), learnable-part norms (3, n) and squared residual distances of the pairs.

        The raw features are projected first and divided by their norms afterwards (no normalised copy
        of the wide features); the residual distances use ‖r_a − r_b‖² = ‖x̂_a − x̂_b‖² − ‖z_a − z_b‖²
        with ‖x̂_a − x̂_b‖² = 2 − 2 x̂_a·x̂_b (orthogonal split, unit inputs).
        """
        n = len(anchor_feats)
        stacked = np.concatenate([anchor_feats, pos_feats, neg_feats]).astype(np.float32, copy=False)
        inv = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", stacked, stacked)), 1e-12)
        z = stacked @ self.basis.numpy().T
        z *= inv[:, None]
        zn = z.reshape(3, n, -1)
        if not self.config.residual:
            zeros = np.zeros(n, dtype=np.float32)
            return zn, np.ones((3, n), dtype=np.float32), zeros, zeros
        xs = stacked.reshape(3, n, -1)
        inv3 = inv.reshape(3, n)
        cos_pos = np.einsum("ij,ij->i", xs[0], xs[1]) * inv3[0] * inv3[1]
        cos_neg = np.einsum("ij,ij->i", xs[0], xs[2]) * inv3[0] * inv3[2]
        dz_pos = zn[0] - zn[1]
        dz_neg = zn[0] - zn[2]
        rest_pos = 2.0 - 2.0 * cos_pos - np.einsum("ij,ij->i", dz_pos, dz_pos)
        rest_neg = 2.0 - 2.0 * cos_neg - np.einsum("ij,ij->i", dz_neg, dz_neg)
        scale = np.sqrt(np.einsum("tij,tij->ti", zn, zn))
        return zn, scale, np.maximum(rest_pos, 0.0), np.maximum(rest_neg, 0.0)

    # ------------------------------------------------------------------------------------ retrieval
    @torch.no_grad()
    def embed_depths(self, features: np.ndarray, chunk: int = 4096) -> list[np.ndarray]:
        """Per-depth unit embeddings f_l(x) (float32), residual included; for analysis and tests."""
        parts: list[list[np.ndarray]] = [[] for _ in range(self.num_depths)]
        self.network.eval()
        for start in range(0, len(features), chunk):
            for depth, f in enumerate(self.depth_embeddings(features[start : start + chunk])):
                parts[depth].append(f.numpy())
        return [np.concatenate(p) for p in parts]

    @torch.no_grad()
    def embed(self, features: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """One unit-norm float32 vector per row for FAISS: [√α_0 ‖z‖u_0, ..., √α_L ‖z‖u_L, r].

        Squared distances between these vectors are Σ_l α_l D_l², and inner products Σ_l α_l cos_l,
        because the residual r is shared by all depths and Σ α_l = 1.
        """
        features = np.asarray(features, dtype=np.float32)
        out = np.empty((len(features), self.embed_dim), dtype=np.float32)
        weights = torch.as_tensor(np.sqrt(self._alpha), dtype=torch.float32)
        self.network.eval()
        for start in range(0, len(features), chunk):
            z, r = self.split(features[start : start + chunk])
            outputs = self.network(z)
            scale = z.norm(dim=-1, keepdim=True) if self.config.residual else 1.0
            parts = [u * (scale * weights[d]) for d, u in enumerate(outputs)]
            if self.config.residual:
                parts.append(r)
            combined = torch.cat(parts, dim=1)
            out[start : start + len(combined)] = combined.numpy()
        return out

    @property
    def embed_dim(self) -> int:
        """Length of the combined vector returned by :meth:`embed`."""
        learned = self.config.embedding_dim * self.num_depths
        return learned + (self.config.input_dim if self.config.residual else 0)

    # ---------------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: config, weights, basis, α, optimiser, triplets seen."""
        return {
            "format": FORMAT_VERSION,
            "config": asdict(self.config),
            "network": {k: v.detach().clone() for k, v in self.network.state_dict().items()},
            "basis": self.basis.clone(),
            "alpha": torch.as_tensor(self._alpha, dtype=torch.float64),
            "optimizer": {
                "momentum_buffers": [
                    None if b is None else torch.from_numpy(b.copy()) for b in self._momentum
                ]
            },
            "triplets_seen": int(self.triplets_seen),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported OAHU state format {state.get('format')!r}")
        config = dict(state["config"])
        if config != asdict(self.config):
            raise ValueError("state was saved with a different configuration; use OAHU.from_state")
        self.network.load_state_dict(state["network"])
        self.basis = state["basis"].clone()
        self._alpha = state["alpha"].double().numpy().copy()
        self._momentum = [
            None if b is None else b.numpy().astype(np.float32)
            for b in state["optimizer"]["momentum_buffers"]
        ]
        self.triplets_seen = int(state["triplets_seen"])
        self._generator.set_state(state["generator"])

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OAHU:
        """Build a learner with the saved configuration and load the state into it."""
        config = dict(state["config"])
        model = cls(**config)
        model.load_state_dict(state)
        return model

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic save: write ``path + '.part'``, fsync, then os.replace onto ``path``."""
        return atomic_torch_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> OAHU:
        return cls.from_state(torch.load(path, map_location="cpu", weights_only=True))


def _default_basis(basis_dim: int, input_dim: int, generator: torch.Generator) -> torch.Tensor:
    """Identity when nothing is dropped, else a seeded random orthonormal basis (call fit_basis instead)."""
    if basis_dim == input_dim:
        return torch.eye(input_dim)
    q, _ = torch.linalg.qr(torch.randn(input_dim, basis_dim, generator=generator))
    return q.T.contiguous()
