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


# -- backends ------------------------------------------------------------------------------------
def _triton_interpreted() -> bool:
    """Make the Triton kernels importable for a test without a GPU: the interpreter
    (``TRITON_INTERPRET=1``) must be set when triton and the kernels are first imported, so
    they are imported afresh under it once (the same procedure as test_triton_kernels)."""
    import importlib
    import os
    import sys

    hm = sys.modules.get("vqgeom.kernels.triton.hamming")
    if hm is not None and type(hm._popc_hamming_kernel).__name__ == "InterpretedFunction":
        return True
    prev = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    for mod in [m for m in sys.modules if m == "triton" or m.startswith(("triton.", "vqgeom.kernels.triton"))]:
        del sys.modules[mod]
    try:
        try:
            importlib.import_module("triton")
        except ImportError:
            return False
        try:
            importlib.import_module("triton.experimental.gluon")
        except ImportError:
            pass
        for name in ("_popcount", "int8", "hamming", "encode", "reductions"):
            importlib.import_module(f"vqgeom.kernels.triton.{name}")
        return True
    finally:
        if prev is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = prev


@pytest.fixture(params=("numpy", "cpu", "triton", "cupy"))
def backend(request, monkeypatch):
    """Each test taking ``backend`` runs once per backend of ``available_backends()``
    (POT-style), against the oracle. Without a GPU, ``triton`` runs in the interpreter;
    a backend that cannot run here is skipped, saying why."""
    from vqgeom import _backend

    name = request.param
    if name == "triton" and not torch.cuda.is_available():
        if not _triton_interpreted():
            pytest.skip("triton is not installed")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    _backend._triton_ok.cache_clear()
    if name not in _backend.available_backends():
        pytest.skip(f"backend {name!r} is not available here ({_backend.available_backends()})")
    yield name
    _backend._triton_ok.cache_clear()


def backend_codes(codes, backend: str):
    """``codes`` moved to where ``backend`` computes: CPU torch tensors for triton without a
    GPU (the interpreter), CUDA tensors with one, cupy arrays for cupy, as they are otherwise."""
    if backend == "triton":
        return codes.to(torch.zeros(1, device="cuda" if torch.cuda.is_available() else "cpu"))
    if backend == "cupy":
        import cupy

        return codes.to(cupy.zeros(1))
    return codes


def as_numpy(a):
    """A result as a host numpy array (torch and cupy results copied back)."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def seed_of(*parts) -> int:
    """A replayable seed from the test's parameters (zlib.crc32, not the salted hash())."""
    import zlib

    return zlib.crc32(repr(parts).encode())


# Float tolerances, derived (one place). A float sum of L layer terms, each term rounded once and the
# terms added in layer order, is within L roundings of the exact value: L * 2**-52 relative in
# float64 (one ulp = 2**-52 relative at most), L * 2**-23 in float32 (the Triton k-NN keys with real
# weights). The Triton heat reductions add exp2 per entry and M-term float32 sums (tf32x3 products):
# 1e-5 of the largest entry (about 100 float32 ulps).
def rtol_float64_sum(n_terms: int) -> float:
    return max(1, n_terms) * 2.0**-52


def rtol_float32_sum(n_terms: int) -> float:
    return max(1, n_terms) * 2.0**-23


def atol_float32_reduction(want) -> float:
    return 1e-5 * float(np.abs(np.asarray(want)).max(initial=0.0))
