"""Opt-in GPU kernels (issue 12 items 4 and 5) and cupy codes on every Triton entry point
(item 2), without a GPU.

* ``heat_matmat(method="sym")``: tiles i <= j applied to both sides with atomic adds,
  integer distances converted without I2F (``small_int_to_float``, checked exactly).
* ``heat_cosine(magic=True)``: the fused cosine without I2F.
* ``knn(method="select")``: threshold-filtered top-k, exact against the oracle with its tie
  rule (smaller index), across tiles, with ``k`` beyond one tile and many ties.
* cupy codes: a stand-in array library (a numpy subclass registered as ``cupy``; it speaks
  DLPack like cupy) through ``pairwise_distances``, ``knn``, ``heat_matmat``,
  ``heat_embedding`` and ``compare``: Triton kernels (interpreter) on zero-copy views,
  results of the caller's array type; naming ``backend="cupy"`` still reaches the CUDA C
  loader.

The interpreter modules are those of ``test_triton_kernels`` (loaded once per session).
Tolerances: ``conftest.atol_float32_reduction`` (float32 exp2 per entry and float32 sums).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import test_triton_kernels as ttk  # noqa: E402  (the interpreter-loaded kernel modules)
from conftest import _triton_interpreted, atol_float32_reduction, seed_of  # noqa: E402

import vqgeom  # noqa: E402
from vqgeom.codes import Codes, pack_bits  # noqa: E402
from vqgeom.kernels import reference as R  # noqa: E402

reductions = ttk.reductions
DEV = ttk.DEV
SIZES = [(288,), (33, 5, 64), (20, 30)]


def _codes(rng, n, sizes, p=0.5):
    bits = rng.random((n, sum(sizes))) < p
    return bits, torch.from_numpy(pack_bits(bits, sizes).view(np.int32)).to(DEV)


def _weights(kind, n_layers):
    return {"none": None, "int": np.arange(1, n_layers + 1, dtype=np.int64),
            "real": np.linspace(0.5, 1.5, n_layers)}[kind]


# ------------------------------------------------------------------ small_int_to_float
def test_small_int_to_float_is_exact():
    import triton
    import triton.language as tl

    prev = os.environ.get("TRITON_INTERPRET")
    if not ttk.ON_GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    try:

        @triton.jit
        def _conv(X, Y, n, MAGIC: tl.constexpr, B: tl.constexpr):
            o = tl.program_id(0) * B + tl.arange(0, B)
            tl.store(Y + o, reductions.small_int_to_float(tl.load(X + o, mask=o < n), MAGIC), mask=o < n)

    finally:
        if prev is None:
            os.environ.pop("TRITON_INTERPRET", None)
    rng = np.random.default_rng(seed_of("magic"))
    x = np.concatenate([np.arange(0, 300), [2**23 - 1, 2**23 - 2, 2**22, 2**22 + 1, 12345678 % 2**23],
                        rng.integers(0, 2**23, 500)]).astype(np.int32)
    xt = torch.from_numpy(x).to(DEV)
    for magic in (True, False):
        y = torch.empty(x.size, dtype=torch.float32, device=DEV)
        _conv[(triton.cdiv(x.size, 128),)](xt, y, x.size, MAGIC=magic, B=128)
        np.testing.assert_array_equal(ttk._np(y), x.astype(np.float32))
    assert reductions.MAGIC_LIMIT == 2**23


# ------------------------------------------------------------------------ heat, sym
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("wkind", ["none", "int", "real"])
def test_heat_sym_matches_oracle(sizes, wkind):
    rng = np.random.default_rng(seed_of("heat sym", sizes, wkind))
    w = _weights(wkind, len(sizes))
    for n, kv, squared in ((150, 1, False), (150, 3, True), (97, 8, False), (1, 1, False), (64, 2, False)):
        bits, wx = _codes(rng, n, sizes)
        D = R.hamming(bits, bits, sizes, None if w is None else list(w))
        V = rng.standard_normal((n, kv))
        s2 = 40.0 if not squared else 900.0
        want = R.heat_kernel(D * D if squared else D, s2) @ V
        got = ttk._np(reductions.heat_matmat(wx, sizes, torch.from_numpy(V).to(DEV), s2, weights=w,
                                             squared=squared, method="sym"))
        np.testing.assert_allclose(got, want, rtol=0, atol=atol_float32_reduction(want))
        if kv == 1:  # vector in, vector out
            got1 = reductions.heat_matmat(wx, sizes, torch.from_numpy(V[:, 0]).to(DEV), s2, weights=w,
                                          squared=squared, method="sym")
            assert got1.shape == (n,)


def test_heat_sym_divisor_and_wide_integer_sums():
    """Integer sums >= 2^23 take the ordinary conversion (no magic); the divisor scales sigma2."""
    rng = np.random.default_rng(seed_of("heat sym wide"))
    sizes = (288,)
    bits, wx = _codes(rng, 130, sizes)
    w = np.array([40000], dtype=np.int64)  # sums up to 11.5e6 > 2^23
    assert not reductions._magic(sizes, w, 0) and reductions._magic(sizes, None, 0)
    D = R.hamming(bits, bits, sizes, [40000])
    V = rng.standard_normal(130)
    want = R.heat_kernel(D / 2, 4e5) @ V
    got = ttk._np(reductions.heat_matmat(wx, sizes, torch.from_numpy(V), 4e5, weights=w, divisor=2, method="sym"))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol_float32_reduction(want))


def test_heat_sym_sm75_configuration(monkeypatch):
    """The sm_75 configuration (float16 dots, looped K) of the symmetric kernel."""
    monkeypatch.setattr(importlib.import_module("vqgeom.kernels.triton._device"), "INTERPRETER_TARGET", 75)
    rng = np.random.default_rng(seed_of("heat sym 75"))
    sizes = (33, 5, 64)
    bits, wx = _codes(rng, 140, sizes)
    D = R.hamming(bits, bits, sizes)
    V = rng.standard_normal((140, 6))
    want = R.heat_kernel(D, 20.0) @ V
    got = ttk._np(reductions.heat_matmat(wx, sizes, torch.from_numpy(V), 20.0, method="sym"))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol_float32_reduction(want))


def test_heat_sym_bad_arguments():
    rng = np.random.default_rng(seed_of("heat sym bad"))
    _, wx = _codes(rng, 10, (7,))
    with pytest.raises(ValueError, match="method: 'sym' needs one code set"):
        reductions.heat_matmat(wx, (7,), torch.ones(10), 1.0, wy=wx, method="sym")
    with pytest.raises(ValueError, match="method: expected 'full' or 'sym'"):
        reductions.heat_matmat(wx, (7,), torch.ones(10), 1.0, method="half")
    with pytest.raises(ValueError, match="block: method 'sym' takes square tiles"):
        reductions.heat_matmat(wx, (7,), torch.ones(10), 1.0, method="sym", block=(64, 32))


def test_sym_stages_fit_each_target():
    from vqgeom.kernels.triton._device import TARGETS

    for cc, info in TARGETS.items():
        for kt, kvp, dot in ((288, 1, False), (288, 16, True), (1024, 16, True), (0, 2, False)):
            s = reductions._sym_stages(info, 64, kt, 64, kvp, dot)
            assert 1 <= s <= 3
    assert reductions._sym_stages(TARGETS[90], 64, 288, 32, 1, False) == 3  # compiled: 123 KB of 227
    assert reductions._sym_stages(TARGETS[86], 64, 288, 32, 16, True) == 1  # 2 stages: 127 KB > 99 KB


# ---------------------------------------------------------------------- cosine, magic
@pytest.mark.parametrize("wkind", ["none", "int", "real"])
def test_cosine_magic_matches_oracle(wkind):
    rng = np.random.default_rng(seed_of("cosine magic", wkind))
    sa, sb = (288,), (20, 30)
    n = 140
    ba, wa = _codes(rng, n, sa)
    bb, wb = _codes(rng, n, sb)
    w = _weights(wkind, len(sb))
    Da = R.hamming(ba, ba, sa)
    Db = R.hamming(bb, bb, sb, None if w is None else list(w))
    s2s = [5.0, 50.0]
    want = []
    for s2 in s2s:
        Ka, Kb = R.heat_kernel(Da, s2), R.heat_kernel(Db, s2)
        want.append(np.vdot(Ka, Kb) / (np.linalg.norm(Ka) * np.linalg.norm(Kb)))
    got = reductions.heat_cosine(wa, sa, wb, sb, s2s, weights_b=w, magic=True)
    # float32 kernel entries and float32 row partials summed in float64: cosines to 1e-5
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# -------------------------------------------------------------------------- knn, select
@pytest.mark.parametrize("sizes,p,wkind", [((288,), 0.5, "none"), ((5,), 0.5, "none"), ((33, 5, 64), 0.2, "int"),
                                            ((33, 5, 64), 0.5, "real")])
def test_knn_select_matches_oracle(sizes, p, wkind):
    """Exact distances and indices, ties to the smaller index ((5,) codes: nearly all ties)."""
    rng = np.random.default_rng(seed_of("knn select", sizes, wkind))
    w = _weights(wkind, len(sizes))
    bx, wx = _codes(rng, 70, sizes, p)
    by, wy = _codes(rng, 150, sizes, p)
    for k in (1, 5, 70):  # 70: more than one 64-column tile fills the first rows
        d, i = reductions.knn(wx, sizes, k, wy=wy, weights=w, method="select")
        rd, ri = R.knn(R.hamming(bx, by, sizes, None if w is None else list(w)), k)
        np.testing.assert_array_equal(ttk._np(i), ri)
        np.testing.assert_array_equal(ttk._np(d), rd.astype(ttk._np(d).dtype))
    d, i = reductions.knn(wx, sizes, 3, weights=w, method="select")  # one code set: self first
    rd, ri = R.knn(R.hamming(bx, bx, sizes, None if w is None else list(w)), 3)
    np.testing.assert_array_equal(ttk._np(i), ri)
    np.testing.assert_array_equal(ttk._np(d), rd.astype(ttk._np(d).dtype))


def test_knn_select_bad_method():
    rng = np.random.default_rng(seed_of("knn bad"))
    _, wx = _codes(rng, 10, (7,))
    with pytest.raises(ValueError, match="method: expected 'passes' or 'select'"):
        reductions.knn(wx, (7,), 2, method="warp")


# --------------------------------------------------------------- public options (triton)
@pytest.fixture
def interpreted(monkeypatch):
    from vqgeom import _backend

    if not ttk.ON_GPU:
        assert _triton_interpreted()
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    _backend._triton_ok.cache_clear()
    yield
    _backend._triton_ok.cache_clear()


def test_public_options(interpreted):
    rng = np.random.default_rng(seed_of("public"))
    sizes = (40, 9, 70)
    bits = rng.random((120, sum(sizes))) < 0.5
    codes = Codes(torch.from_numpy(pack_bits(bits, sizes).view(np.int32)).to(DEV), sizes)
    D = R.hamming(bits, bits, sizes)
    V = rng.standard_normal((120, 2))
    want = R.heat_kernel(D, 30.0) @ V
    got = ttk._np(vqgeom.heat_matmat(codes, V, 30.0, backend="triton", method="sym"))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol_float32_reduction(want))
    d, i = vqgeom.knn(codes, k=4, backend="triton", method="select")
    rd, ri = R.knn(D, 5)  # exclude_self: drop each row's own index
    keep = ri != np.arange(120)[:, None]
    keep[keep.all(axis=1), -1] = False
    np.testing.assert_array_equal(ttk._np(i), ri[keep].reshape(120, 4))
    np.testing.assert_array_equal(ttk._np(d), rd[keep].reshape(120, 4))
    emb = vqgeom.heat_embedding(codes, 30.0, 2, backend="triton", method="sym")
    lam = np.linalg.eigvalsh(R.heat_kernel(D, 30.0))[::-1][:2]
    # Lanczos on float32 products (1e-5 of the largest entry of each product)
    np.testing.assert_allclose(emb.eigenvalues, lam, rtol=1e-4)
    bits2 = rng.random((120, 33)) < 0.5
    codes2 = Codes(torch.from_numpy(pack_bits(bits2, (33,)).view(np.int32)).to(DEV), (33,))
    cmp = vqgeom.compare([codes, codes2], sigma2s=[10.0], backend="triton", method="sym")
    Ka, Kb = R.heat_kernel(D, 10.0), R.heat_kernel(R.hamming(bits2, bits2, (33,)), 10.0)
    assert cmp.route == "triton"
    np.testing.assert_allclose(cmp.similarity[0, 0, 1], np.vdot(Ka, Kb) / (np.linalg.norm(Ka) * np.linalg.norm(Kb)),
                               rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="method: 'sym' is the fused Triton cosine"):
        vqgeom.compare([codes, codes2], sigma2s=[10.0], backend="cpu", method="sym")
    with pytest.raises(ValueError, match="method: expected 'auto' or 'select'"):
        vqgeom.knn(codes, k=2, method="sym")
    with pytest.raises(ValueError, match="method: expected 'auto' or 'sym'"):
        vqgeom.heat_matmat(codes, V, 1.0, method="select")
    with pytest.raises(ValueError, match="method: expected 'auto' or 'sym'"):
        vqgeom.heat_embedding(codes, 1.0, 2, method="x")


# ------------------------------------------------------------------- cupy via DLPack
class _FakeCupyArray(np.ndarray):
    """A host array that passes for a cupy array: the ``cupy.ndarray`` type of the fake
    module below, speaking DLPack (numpy's), with ``.get()`` and ``.device.id``; its
    ``__module__`` names the library results are handed back to."""

    __module__ = "cupy"

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def get(self):
        return np.asarray(self).copy()


@pytest.fixture
def fake_cupy(monkeypatch, interpreted):
    if ttk.ON_GPU:
        pytest.skip("the stand-in cupy holds host memory, which compiled GPU kernels cannot read; on a GPU, "
                    "benchmarks/gpu_check.py runs real cupy codes through the same route")
    """``cupy`` is a numpy-backed module whose arrays are :class:`_FakeCupyArray`; cupy and
    Triton count as available (Triton runs in the interpreter on the DLPack views)."""
    from vqgeom import _backend

    fake = types.ModuleType("cupy")
    fake.ndarray = _FakeCupyArray
    fake.from_dlpack = lambda t: np.from_dlpack(t).view(_FakeCupyArray)
    fake.asarray = lambda a, dtype=None: np.asarray(a, dtype=dtype).view(_FakeCupyArray)
    fake.cuda = types.SimpleNamespace(Device=lambda index: contextlib.nullcontext())
    fake.__getattr__ = lambda name: getattr(np, name)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    monkeypatch.setattr(_backend, "_cupy_ok", lambda: True)
    yield fake


def _cupy_codes(bits, sizes):
    return Codes(pack_bits(bits, sizes).view(_FakeCupyArray), sizes)


def _no_cuda_c(monkeypatch):
    from vqgeom.kernels.cuda import loader

    def refuse(*a, **k):
        raise AssertionError("the CUDA C kernel was called on the Triton route")

    monkeypatch.setattr(loader, "pairwise_hamming", refuse)


def test_cupy_codes_take_the_triton_kernels(fake_cupy, monkeypatch):
    _no_cuda_c(monkeypatch)
    rng = np.random.default_rng(seed_of("fake cupy"))
    sizes = (40, 9, 70)
    bits = rng.random((90, sum(sizes))) < 0.5
    codes = _cupy_codes(bits, sizes)
    assert codes.array_type == "cupy"
    D = R.hamming(bits, bits, sizes)
    seen = []
    real_view = vqgeom._backend.torch_view
    monkeypatch.setattr(vqgeom._backend, "torch_view", lambda a: seen.append(a) or real_view(a))

    got = vqgeom.pairwise_distances(codes)
    assert type(got) is _FakeCupyArray and got.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(got), D)
    cond = vqgeom.pairwise_distances(codes, condensed=True)
    assert type(cond) is _FakeCupyArray
    np.testing.assert_array_equal(np.asarray(cond), D[np.triu_indices(90, 1)])

    for method in ("auto", "select"):
        d, i = vqgeom.knn(codes, k=3, exclude_self=False, method=method)
        rd, ri = R.knn(D, 3)
        assert type(d) is _FakeCupyArray and type(i) is _FakeCupyArray and d.dtype == np.uint8
        np.testing.assert_array_equal(np.asarray(i), ri)
        np.testing.assert_array_equal(np.asarray(d), rd)

    V = rng.standard_normal((90, 2))
    want = R.heat_kernel(D, 25.0) @ V
    for method in ("auto", "sym"):
        got = vqgeom.heat_matmat(codes, V.view(_FakeCupyArray), 25.0, method=method)
        assert type(got) is _FakeCupyArray and got.dtype == np.float32 and got.shape == (90, 2)
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=atol_float32_reduction(want))

    emb = vqgeom.heat_embedding(codes, 25.0, 2)
    lam = np.linalg.eigvalsh(R.heat_kernel(D, 25.0))[::-1][:2]
    np.testing.assert_allclose(emb.eigenvalues, lam, rtol=1e-4)

    bits2 = rng.random((90, 33)) < 0.5
    cmp = vqgeom.compare([codes, _cupy_codes(bits2, (33,))], sigma2s=[10.0])
    assert cmp.route == "triton"
    Ka, Kb = R.heat_kernel(D, 10.0), R.heat_kernel(R.hamming(bits2, bits2, (33,)), 10.0)
    np.testing.assert_allclose(cmp.similarity[0, 0, 1], np.vdot(Ka, Kb) / (np.linalg.norm(Ka) * np.linalg.norm(Kb)),
                               rtol=0, atol=1e-5)
    # the kernels saw zero-copy views of the cupy words
    assert any(a is codes.words for a in seen)
    # the streamed direct route (distance blocks through the Triton kernels, read back through DLPack)
    both = [codes, _cupy_codes(bits2, (33,))]
    host = [Codes(np.asarray(c.words).view(np.ndarray), c.layer_sizes) for c in both]
    for measure in ("mantel", "rbf_cka"):
        got_m = vqgeom.compare(both, sigma2s=[10.0], measure=measure)
        want_m = vqgeom.compare(host, sigma2s=[10.0], measure=measure, backend="numpy", method="direct")
        assert got_m.route == "direct"
        # float64 sums of exact integer distances (and float64 exp) on both routes
        np.testing.assert_allclose(got_m.similarity, want_m.similarity, rtol=1e-12)


def test_cupy_inputs_take_the_fused_encoder(fake_cupy, monkeypatch):
    """Cupy X and a module on its device: the fused Triton encoder reads a DLPack view and
    the words come back as cupy; with cupy named, the host path (no Triton kernel)."""
    enc = importlib.import_module("vqgeom.kernels.triton.encode")
    calls = []
    real = enc.encode_mlp
    monkeypatch.setattr(enc, "encode_mlp", lambda layers, X, **k: calls.append(type(X)) or real(layers, X, **k))
    g = torch.Generator().manual_seed(seed_of("cupy encode") % 2**31)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 9), torch.nn.ReLU())
    X = torch.randn(70, 6, generator=g)
    want = vqgeom.encode(net, X, backend="cpu")
    got = vqgeom.encode(net, X.numpy().view(_FakeCupyArray))
    assert calls == [torch.Tensor] and type(got.words) is _FakeCupyArray and got.words.dtype == np.uint32
    assert got.layer_sizes == want.layer_sizes
    np.testing.assert_array_equal(np.asarray(got.words), want.words_numpy())
    named = vqgeom.encode(net, X.numpy().view(_FakeCupyArray), backend="cupy")
    assert len(calls) == 1 and type(named.words) is _FakeCupyArray
    np.testing.assert_array_equal(np.asarray(named.words), want.words_numpy())


def test_cupy_by_name_gets_the_cuda_c_kernel(fake_cupy, monkeypatch):
    from vqgeom.kernels.cuda import loader

    calls = []

    def cuda_c(wx, wy, sizes, w, out_dtype):
        calls.append(type(wx))
        bx = vqgeom.codes.unpack_words(np.asarray(wx), sizes)
        by = bx if wy is None else vqgeom.codes.unpack_words(np.asarray(wy), sizes)
        return np.asarray(R.hamming(bx, by, sizes, w)).astype(out_dtype).view(_FakeCupyArray)

    monkeypatch.setattr(loader, "pairwise_hamming", cuda_c)

    def no_triton(*a, **k):
        raise AssertionError("a Triton kernel was called although cupy was named")

    monkeypatch.setattr(reductions, "knn", no_triton)
    monkeypatch.setattr(reductions, "heat_matmat", no_triton)
    monkeypatch.setattr(ttk.hamming, "pairwise_hamming", no_triton)
    rng = np.random.default_rng(seed_of("cupy named"))
    sizes = (20, 30)
    bits = rng.random((40, 50)) < 0.5
    codes = _cupy_codes(bits, sizes)
    D = R.hamming(bits, bits, sizes)
    got = vqgeom.pairwise_distances(codes, backend="cupy")
    np.testing.assert_array_equal(np.asarray(got), D)
    d, i = vqgeom.knn(codes, k=3, exclude_self=False, backend="cupy")
    np.testing.assert_array_equal(np.asarray(i), R.knn(D, 3)[1])
    V = rng.standard_normal(40)
    got = vqgeom.heat_matmat(codes, V, 9.0, backend="cupy")
    np.testing.assert_allclose(np.asarray(got), R.heat_kernel(D, 9.0) @ V, rtol=1e-12)
    assert calls and all(t is _FakeCupyArray for t in calls)
    n_calls = len(calls)
    monkeypatch.setenv(vqgeom._backend.ENV_VAR, "cupy")  # named through the environment
    vqgeom.pairwise_distances(codes)
    assert len(calls) == n_calls + 1
