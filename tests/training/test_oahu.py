"""OAHU: gradients and their routing, zero-feedback equivalence, α, persistence."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.triplet_factory import triplets
from training.evaluation import evaluate
from training.oahu import OAHU
from training.oahu_backprop import forward_backward

DIM = 24
SMALL = {"basis_dim": 8, "embedding_dim": 8, "hidden_dim": 16, "num_hidden": 3}


def data(seed: int = 0, n: int = 120, classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n // classes)
    centres = rng.normal(size=(classes, DIM))
    feats = centres[labels] + 0.9 * rng.normal(size=(n, DIM)) + 3.0  # positive offset like pooled features
    return np.abs(feats).astype(np.float32), labels


def model(feats: np.ndarray, **params: object) -> OAHU:
    return OAHU(DIM, basis_features=feats, **{**SMALL, **params})


def parameter_list(m: OAHU) -> list[torch.nn.Parameter]:
    net = m.network
    return [
        *(layer.weight for layer in net.hidden),
        *(layer.bias for layer in net.hidden),
        *(layer.weight for layer in net.embeddings),
        *(layer.bias for layer in net.embeddings),
    ]


@pytest.mark.parametrize("init", ["identity", "random", "skip"])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("self_weighted", [False, True])
def test_fast_gradients_equal_autograd(init: str, residual: bool, self_weighted: bool) -> None:
    feats, labels = data()
    params = {"skip": True, "hidden_dim": 6} if init == "skip" else {"init": init}
    m = model(feats, residual=residual, self_weighted=self_weighted, **params)
    if init in ("identity", "skip"):  # move away from the exact identity so every path carries gradient
        m.partial_fit(*(feats[triplets(labels, 30, 5)[:, i]] for i in range(3)), batch_size=4)
    t = triplets(labels, 7, 1)
    a, p, n = feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]]
    losses = m.depth_losses(a, p, n)
    alpha = torch.as_tensor(m.alpha, dtype=losses.dtype)
    grads = torch.autograd.grad((losses * alpha).sum(1).mean(), parameter_list(m))
    z, scale, rest_pos, rest_neg = m._prepare(a, p, n)
    values, fast = forward_backward(
        m._params,
        z.reshape(-1, z.shape[2]),
        scale.reshape(-1),
        rest_pos,
        rest_neg,
        m.alpha,
        m.config.tau,
        self_weighted,
        m.config.skip,
    )
    np.testing.assert_allclose(values, losses.detach().numpy(), atol=1e-5)
    for want, got in zip(grads, fast, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-4)


def test_gradient_routing() -> None:
    """Hidden layer l gets gradient only from losses j ≥ l; E_l only from its own loss."""
    feats, labels = data()
    m = model(feats, init="random")
    t = triplets(labels, 5)
    losses = m.depth_losses(feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]]).mean(0)
    net = m.network
    depths = net.num_depths
    for j in range(depths):
        for l_hidden, layer in enumerate(net.hidden, start=1):
            grad = torch.autograd.grad(losses[j], layer.weight, retain_graph=True, allow_unused=True)[0]
            if j < l_hidden:
                assert grad is None or torch.count_nonzero(grad) == 0
            else:
                assert grad is not None and torch.count_nonzero(grad) > 0
        for l_embed, embed in enumerate(net.embeddings):
            grad = torch.autograd.grad(losses[j], embed.weight, retain_graph=True, allow_unused=True)[0]
            if l_embed != j:
                assert grad is None or torch.count_nonzero(grad) == 0
            else:
                assert grad is not None and torch.count_nonzero(grad) > 0
    # and the fast path gives E_l exactly α_l ∇L_l and W_l exactly Σ_{j≥l} α_j ∇L_j
    alpha = m.alpha
    z, scale, rest_pos, rest_neg = m._prepare(feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]])
    _, fast = forward_backward(
        m._params, z.reshape(-1, z.shape[2]), scale.reshape(-1), rest_pos, rest_neg, alpha, m.config.tau
    )
    hidden_w = fast[: len(net.hidden)]
    embed_w = fast[2 * len(net.hidden) : 2 * len(net.hidden) + depths]
    for l_embed, embed in enumerate(net.embeddings):
        own = torch.autograd.grad(losses[l_embed], embed.weight, retain_graph=True)[0].numpy()
        np.testing.assert_allclose(embed_w[l_embed], alpha[l_embed] * own, atol=1e-6)
    for l_hidden, layer in enumerate(net.hidden, start=1):
        want = sum(
            alpha[j] * torch.autograd.grad(losses[j], layer.weight, retain_graph=True)[0].numpy()
            for j in range(l_hidden, depths)
        )
        np.testing.assert_allclose(hidden_w[l_hidden - 1], want, atol=1e-6)


@pytest.mark.parametrize("params", [{}, {"skip": True, "hidden_dim": 6}])
def test_zero_feedback_equivalence(params: dict) -> None:
    feats, labels = data()
    m = model(feats, **params)
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    emb = m.embed(feats)
    assert emb.dtype == np.float32 and emb.shape == (len(feats), m.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb @ emb.T, x @ x.T, atol=1e-5)  # same geometry as the backbone
    for f in m.embed_depths(feats):
        np.testing.assert_allclose(f @ f.T, x @ x.T, atol=1e-5)
    mask = np.arange(len(labels)) % 2 == 0
    before = evaluate(x, labels, mask, include_nmi=False)
    after = evaluate(emb, labels, mask, include_nmi=False)
    assert after == pytest.approx(before)


def test_embedding_is_alpha_weighted_concatenation() -> None:
    feats, labels = data()
    m = model(feats)
    t = triplets(labels, 200)
    m.partial_fit(feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]], batch_size=8)
    emb = m.embed(feats[:10])
    depths = m.embed_depths(feats[:10])
    want = sum(a * (f @ f.T) for a, f in zip(m.alpha, depths, strict=True))
    np.testing.assert_allclose(emb @ emb.T, want, atol=1e-5)


def test_learning_moves_alpha_and_lowers_loss() -> None:
    feats, labels = data()
    m = model(feats, lr=0.5)
    t = triplets(labels, 1500, 3)
    first = m.partial_fit(feats[t[:300, 0]], feats[t[:300, 1]], feats[t[:300, 2]])
    for _ in range(3):
        last = m.partial_fit(feats[t[300:, 0]], feats[t[300:, 1]], feats[t[300:, 2]])
    assert last.mean_loss < first.mean_loss
    assert m.triplets_seen == 300 + 3 * 1200
    assert m.alpha.sum() == pytest.approx(1.0)
    assert m.alpha.min() >= m.config.s / m.num_depths / (1 + m.config.s)
    assert not np.allclose(m.alpha, 1 / m.num_depths)


def test_save_load_round_trip(tmp_path: Path) -> None:
    feats, labels = data()
    t = triplets(labels, 300, 7)
    a, p, n = feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]]
    m = model(feats, momentum=0.9, lr=0.3)
    m.partial_fit(a[:100], p[:100], n[:100], batch_size=10)
    path = tmp_path / "oahu.pt"
    m.save(path)
    assert path.exists() and not (tmp_path / "oahu.pt.part").exists()
    loaded = OAHU.load(path)
    assert loaded.triplets_seen == 100
    np.testing.assert_array_equal(loaded.alpha, m.alpha)
    np.testing.assert_array_equal(loaded.embed(feats), m.embed(feats))
    # the optimiser state came along: both continue identically
    m.partial_fit(a[100:], p[100:], n[100:], batch_size=10)
    loaded.partial_fit(a[100:], p[100:], n[100:], batch_size=10)
    np.testing.assert_array_equal(loaded.embed(feats), m.embed(feats))
    np.testing.assert_array_equal(loaded.alpha, m.alpha)
    assert loaded.triplets_seen == m.triplets_seen == 300


def test_load_state_dict_rejects_other_config() -> None:
    feats, _ = data()
    with pytest.raises(ValueError):
        model(feats, tau=0.3).load_state_dict(model(feats).state_dict())


def test_per_triplet_and_batch_modes_both_learn() -> None:
    feats, labels = data()
    t = triplets(labels, 400, 2)
    args = (feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]])
    single, batched = model(feats), model(feats)
    single.partial_fit(*args, batch_size=1)
    batched.partial_fit(*args, batch_size=64)
    assert single.triplets_seen == batched.triplets_seen == 400
    assert not np.allclose(single.embed(feats), batched.embed(feats))


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        OAHU(DIM, **{**SMALL, "tau": 0.7})
    with pytest.raises(ValueError):
        OAHU(DIM, **{**SMALL, "beta": 1.0})
    with pytest.raises(ValueError):
        OAHU(DIM)  # the default basis (256) is larger than this input
    with pytest.raises(ValueError):
        OAHU(DIM, basis_dim=8, embedding_dim=8, hidden_dim=10)


def test_skip_config_rules_and_learning() -> None:
    feats, labels = data()
    with pytest.raises(ValueError):
        OAHU(DIM, basis_features=feats, basis_dim=8, embedding_dim=6, hidden_dim=4, skip=True)
    m = OAHU(DIM, basis_features=feats, basis_dim=8, embedding_dim=8, hidden_dim=12, skip=True)  # narrow hidden
    t = triplets(labels, 200, 4)
    m.partial_fit(feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]], batch_size=8)
    assert not np.allclose(m.network.embeddings[1].weight.detach().numpy(), 0.0)


def test_anchor_decay_pulls_towards_the_initial_weights() -> None:
    feats, labels = data()
    t = triplets(labels, 400, 6)
    args = (feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]])
    free, anchored = model(feats, lr=0.5), model(feats, lr=0.5, anchor_decay=0.5)
    start = [p.copy() for p in free._params.all()]
    free.partial_fit(*args, batch_size=8)
    anchored.partial_fit(*args, batch_size=8)

    def drift(m: OAHU) -> float:
        return sum(float(np.square(p - s).sum()) for p, s in zip(m._params.all(), start, strict=True))

    assert 0.0 < drift(anchored) < drift(free)
