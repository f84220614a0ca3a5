"""vqgeom.models: architecture, seeding, the stopping rule of train(), checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vqgeom import models
from vqgeom.paper import data
from vqgeom.kernels import reference


def layers_of(model):
    """The (A, b, act) list of vqgeom.kernels.reference for a relu MLP (output layer: act None)."""
    lins = [m for m in model if isinstance(m, nn.Linear)]
    return [
        (l.weight.detach().double().numpy(), l.bias.detach().double().numpy(), "relu" if i < len(lins) - 1 else None)
        for i, l in enumerate(lins)
    ]


@pytest.mark.parametrize("in_dim, width, depth, out_dim", [(2, 96, 3, 1), (784, 16, 6, 10), (1, 1, 1, 1)])
def test_mlp_structure(in_dim, width, depth, out_dim):
    m = models.mlp(in_dim, width, depth, out_dim)
    lins = [l for l in m if isinstance(l, nn.Linear)]
    acts = [l for l in m if isinstance(l, nn.ReLU)]
    assert len(lins) == depth + 1 and len(acts) == depth
    assert [l.in_features for l in lins] == [in_dim] + [width] * depth
    assert [l.out_features for l in lins] == [width] * depth + [out_dim]
    assert m.config == dict(in_dim=in_dim, width=width, depth=depth, out_dim=out_dim, activation="relu", dtype="float32")


@pytest.mark.parametrize("activation, cls", [("leaky_relu", nn.LeakyReLU), ("relu6", nn.ReLU6), ("hardtanh", nn.Hardtanh)])
def test_mlp_other_activations(activation, cls):
    m = models.mlp(3, 4, 2, 1, activation)
    assert sum(isinstance(l, cls) for l in m) == 2


def test_mlp_dtype_and_seed_leave_global_rng_alone():
    state = torch.random.get_rng_state()
    a = models.mlp(2, 8, 2, 1, seed=7, dtype="float64")
    b = models.mlp(2, 8, 2, 1, seed=7, dtype=torch.float64)
    c = models.mlp(2, 8, 2, 1, seed=8, dtype=torch.float64)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(p.dtype == torch.float64 for p in a.parameters())
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize(
    "args, kwargs, err, word",
    [
        ((0, 4, 2, 1), {}, ValueError, "in_dim"),
        ((2, 4, 0, 1), {}, ValueError, "depth"),
        ((2, 4.0, 2, 1), {}, TypeError, "width"),
        ((2, 4, 2, 1), dict(activation="gelu"), ValueError, "activation"),
        ((2, 4, 2, 1), dict(dtype="float16"), ValueError, "dtype"),
        ((2, 4, 2, 1), dict(dtype=torch.int32), TypeError, "dtype"),
    ],
)
def test_mlp_bad_input(args, kwargs, err, word):
    with pytest.raises(err, match=word):
        models.mlp(*args, **kwargs)


def test_predict_matches_the_float64_reference_forward():
    m = models.mlp(2, 5, 2, 3, dtype="float64", seed=1)
    X = np.random.default_rng(0).normal(size=(17, 2))
    z = X
    for A, b, act in layers_of(m):
        z = reference.activate(z @ A.T + b, act)
    np.testing.assert_array_equal(models.predict(m, X), z.argmax(1))
    m1 = models.mlp(2, 5, 2, 1, dtype="float64", seed=1)
    z = X
    for A, b, act in layers_of(m1):
        z = reference.activate(z @ A.T + b, act)
    np.testing.assert_array_equal(models.predict(m1, X), (z[:, 0] >= 0).astype(np.int64))
    assert models.predict(m1, np.zeros((0, 2))).shape == (0,)


def test_train_two_moons_converges_fast_and_says_why():
    X, y = data.two_moons(seed=0)
    m = models.mlp(2, 96, 3, 1, seed=0)
    r = models.train(m, X, y, "bce", lr=1e-2, progress=False)
    assert r.stop_reason == "converged"
    assert r.accuracy == 1.0 == models.accuracy(m, X, y)
    assert r.loss < 1e-3 and r.loss == r.history[-1] and r.epochs == len(r.history)
    assert r.seconds < 30


def test_train_stopping_rule_plateau_and_budget():
    X, y = data.two_moons(40, seed=0)
    # lr = 0: the loss never moves, so the plateau rule fires exactly `patience` epochs after the first
    m = models.mlp(2, 8, 1, 1, seed=0)
    r = models.train(m, X, y, lr=0.0, patience=5, progress=False)
    assert r.stop_reason == "plateau" and r.epochs == 6
    assert len(set(r.history)) == 1
    r = models.train(models.mlp(2, 8, 1, 1, seed=0), X, y, max_epochs=3, progress=False)
    assert r.stop_reason == "max_epochs" and r.epochs == 3


def test_train_cross_entropy_minibatch_is_seeded():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4)).astype(np.float32)
    y = np.argmax(X[:, :3], 1)
    runs = []
    for _ in range(2):
        m = models.mlp(4, 16, 2, 3, seed=3)
        r = models.train(m, X, y, "ce", lr=1e-2, batch_size=32, max_epochs=30, seed=5, progress=False)
        runs.append((m, r))
    (a, ra), (b, rb) = runs
    assert ra.history == rb.history
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert ra.accuracy > 0.8  # a linearly separable 3-class problem


def test_train_accepts_images_and_torch_input():
    X = torch.rand(12, 3, 3)
    y = torch.arange(12) % 2
    r = models.train(models.mlp(9, 4, 1, 1), X, y, max_epochs=2, progress=False)
    assert r.epochs == 2


@pytest.mark.parametrize(
    "X, y, kwargs, err, word",
    [
        (np.zeros((4, 2)), np.zeros(3), {}, ValueError, "y"),
        (np.zeros((0, 2)), np.zeros(0), {}, ValueError, "X"),
        (np.full((2, 2), np.nan), np.zeros(2), {}, ValueError, "X"),
        (np.zeros((2, 2)), np.array([0, 2]), {}, ValueError, "y"),
        (np.zeros((2, 2)), np.zeros(2), dict(loss="mse"), ValueError, "loss"),
        (np.zeros((2, 2)), np.zeros(2), dict(max_epochs=0), ValueError, "max_epochs"),
        (np.zeros((2, 2)), np.zeros(2), dict(batch_size=0), ValueError, "batch_size"),
        (np.zeros((2, 2)), np.zeros(2), dict(threads=0), ValueError, "threads"),
    ],
)
def test_train_bad_input(X, y, kwargs, err, word):
    with pytest.raises(err, match=word):
        models.train(models.mlp(2, 3, 1, 1), X, y, progress=False, **kwargs)


def test_train_threads_are_restored():
    before = torch.get_num_threads()
    X, y = data.two_moons(20, seed=0)
    models.train(models.mlp(2, 4, 1, 1), X, y, max_epochs=2, threads=1, progress=False)
    assert torch.get_num_threads() == before


def test_train_progress_bar_can_be_shown(capsys):
    X, y = data.two_moons(20, seed=0)
    models.train(models.mlp(2, 4, 1, 1), X, y, max_epochs=2, progress=True, desc="moons")
    assert "moons" in capsys.readouterr().err


def test_checkpoint_round_trip(tmp_path):
    m = models.mlp(3, 7, 2, 2, "leaky_relu", dtype="float64", seed=4)
    X = np.random.default_rng(1).normal(size=(11, 3))
    models.save_checkpoint(m, tmp_path / "m.pt", meta={"epochs": 5, "note": "x"})
    state = torch.random.get_rng_state()
    back, meta = models.load_checkpoint(tmp_path / "m.pt")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert meta == {"epochs": 5, "note": "x"}
    assert back.config == m.config and not back.training
    for (k, p), (k2, q) in zip(m.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(p, q)
    np.testing.assert_array_equal(models.predict(back, X), models.predict(m, X))


def test_checkpoint_bad_input(tmp_path):
    with pytest.raises(TypeError, match="model"):
        models.save_checkpoint(nn.Linear(2, 2), tmp_path / "x.pt")
    torch.save({"weights": 1}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a vqgeom checkpoint"):
        models.load_checkpoint(tmp_path / "y.pt")
