"""Shared builders for the core tests: random float64 networks with their reference specs, and random codes.

Fixtures are session-scoped factories so that hypothesis tests can call them (hypothesis refuses
function-scoped fixtures). Nothing here sets environment variables: backend-specific test files
configure themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

# Activation kinds the random MLPs draw from, each with the spec vqgeom.kernels.reference understands.
ACT_KINDS = ("relu", "leaky", "prelu", "prelu1", "relu6", "hardtanh")


def _activation(kind: str, width: int, rng: np.random.Generator) -> tuple[nn.Module, object]:
    if kind == "relu":
        return nn.ReLU(), "relu"
    if kind == "leaky":
        s = float(rng.uniform(0.0, 0.5))
        return nn.LeakyReLU(s), ("leaky", s)
    if kind in ("prelu", "prelu1"):
        m = nn.PReLU(width if kind == "prelu" else 1).double()
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(rng.uniform(-0.5, 0.9, size=m.weight.shape)))
        w = m.weight.detach().numpy().copy()
        return m, (("prelu", w) if kind == "prelu" else ("leaky", float(w[0])))
    if kind == "relu6":
        return nn.ReLU6(), ("hardtanh", 0.0, 6.0)
    if kind == "hardtanh":
        lo = float(rng.uniform(-1.5, 0.0))
        hi = float(lo + rng.uniform(0.2, 2.0))
        return nn.Hardtanh(lo, hi), ("hardtanh", lo, hi)
    raise ValueError(kind)


def build_mlp(seed: int, widths, *, bias: bool = True, kinds=None, head: int | None = 1):
    """A float64 ``nn.Sequential`` MLP and its ``[(A, b, act), ...]`` reference spec.

    ``widths = [d_in, h_1, ..., h_L]``; each hidden layer gets an activation drawn from ``kinds``
    (default: all of :data:`ACT_KINDS`); ``head`` adds a final Linear with no activation.
    Weights are scaled so pre-activations of a standard-normal input have spread ~2, which makes
    the ReLU6 and Hardtanh upper kinks reachable.
    """
    rng = np.random.default_rng(seed)
    kinds = ACT_KINDS if kinds is None else tuple(kinds)
    mods: list[nn.Module] = []
    spec: list[tuple] = []
    dims = list(widths) + ([head] if head else [])
    for i in range(len(dims) - 1):
        d_in, d_out = dims[i], dims[i + 1]
        lin = nn.Linear(d_in, d_out, bias=bias, dtype=torch.float64)
        A = rng.normal(0.0, 2.0 / np.sqrt(d_in), size=(d_out, d_in))
        b = rng.normal(0.0, 0.5, size=d_out) if bias else None
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(A))
            if bias:
                lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if head and i == len(dims) - 2:
            spec.append((A, b, None))
        else:
            act, s = _activation(kinds[int(rng.integers(len(kinds)))], d_out, rng)
            mods.append(act)
            spec.append((A, b, s))
    return nn.Sequential(*mods), spec


def random_bits(seed: int, n: int, layer_sizes, p: float | None = None) -> np.ndarray:
    """Random boolean codes ``(n, sum(layer_sizes))``; ``p`` (default random) is the share of set bits."""
    rng = np.random.default_rng(seed)
    p = float(rng.uniform(0.1, 0.9)) if p is None else p
    return rng.random((n, int(sum(layer_sizes)))) < p


@pytest.fixture(scope="session")
def make_mlp():
    """Factory: ``make_mlp(seed, widths, bias=True, kinds=None, head=1) -> (net, reference_spec)``."""
    return build_mlp


@pytest.fixture(scope="session")
def make_bits():
    """Factory: ``make_bits(seed, n, layer_sizes, p=None) -> bool array (n, B)``."""
    return random_bits
