"""Triton kernels against the numpy reference.

Without a GPU the kernels run in the Triton interpreter (``TRITON_INTERPRET=1``, set
only while this module imports them, so other tests see the environment unchanged) at
small sizes that cross every boundary: N not a multiple of the block, B not a multiple
of 32, one row, one unit, several layers, empty input. Tests marked ``gpu`` repeat them
at full size on a CUDA GPU and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import importlib
import os

import sys

import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vqgeom.codes import pack_bits, unpack_words  # noqa: E402
from vqgeom.kernels import reference as R  # noqa: E402

ON_GPU = torch.cuda.is_available()
DEV = torch.device("cuda" if ON_GPU else "cpu")
NO_GPU = "needs a CUDA GPU: torch.cuda.is_available() is False here (the interpreter tests cover the same code)"


def _load_kernels():
    """Import the kernel modules, under the interpreter when there is no GPU.

    Triton decides between compiling and interpreting when a function is decorated, and
    its own library (``tl.zeros`` ...) is decorated when triton is first imported. So
    without a GPU, ``TRITON_INTERPRET=1`` is set around a fresh import of triton and of
    the kernels, then restored: the rest of the test session sees the environment as it
    was (triton imported earlier without the interpreter is re-imported).
    """
    names = ["_popcount", "int8", "hamming", "encode", "reductions"]
    prev = os.environ.get("TRITON_INTERPRET")
    if not ON_GPU:
        os.environ["TRITON_INTERPRET"] = "1"
        for mod in [m for m in sys.modules if m == "triton" or m.startswith(("triton.", "vqgeom.kernels.triton"))]:
            del sys.modules[mod]
    try:
        pytest.importorskip("triton")
        try:  # imported lazily at the first launch in some versions; it too must see the variable
            importlib.import_module("triton.experimental.gluon")
        except ImportError:
            pass
        return {name: importlib.import_module(f"vqgeom.kernels.triton.{name}") for name in names}
    finally:
        if prev is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = prev


K = _load_kernels()
hamming, int8, encode, reductions = K["hamming"], K["int8"], K["encode"], K["reductions"]
popcount32 = K["_popcount"].popcount32


def _codes(rng, n, sizes, p=0.5):
    bits = rng.random((n, sum(sizes))) < p
    words = torch.from_numpy(pack_bits(bits, sizes).view(np.int32)).to(DEV)
    return bits, words


def _np(t):
    return t.detach().cpu().numpy()


# ----------------------------------------------------------------------------- popcount
def test_popcount_matches_bit_count():
    import triton
    import triton.language as tl

    prev = os.environ.get("TRITON_INTERPRET")
    if not ON_GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    try:

        @triton.jit
        def _pc(X, Y, n, HW: tl.constexpr, B: tl.constexpr):
            o = tl.program_id(0) * B + tl.arange(0, B)
            tl.store(Y + o, popcount32(tl.load(X + o, mask=o < n), HW), mask=o < n)

    finally:
        if prev is None:
            os.environ.pop("TRITON_INTERPRET", None)
    rng = np.random.default_rng(1)
    x = np.concatenate([[0, -1, -(2**31), 2**31 - 1, 1, 0x55555555], rng.integers(-(2**31), 2**31, 200)]).astype(np.int32)
    xt = torch.from_numpy(x).to(DEV)
    y = torch.empty_like(xt)
    _pc[(triton.cdiv(x.size, 64),)](xt, y, x.size, HW=ON_GPU, B=64)
    want = np.array([bin(int(v) & 0xFFFFFFFF).count("1") for v in x])
    np.testing.assert_array_equal(_np(y), want)


# ----------------------------------------------------------------------------- pairwise
SIZES = [(1,), (33, 5, 64), (70,)]
WEIGHT_KINDS = ["none", "int", "real"]


def _weights(kind, n_layers):
    if kind == "none":
        return None
    if kind == "int":
        return np.arange(1, n_layers + 1, dtype=np.int64)  # kernels take integer weights by dtype
    return np.linspace(0.3, 1.7, n_layers)


def _check_pairwise(rng, sizes, n, m, method, kind, sym):
    bx, wx = _codes(rng, n, sizes)
    by, wy = (bx, None) if sym else _codes(rng, m, sizes)
    w = _weights(kind, len(sizes))
    ref = R.hamming(bx, by, sizes, w)
    if kind == "real":
        got = _np(hamming.pairwise_hamming(wx, wy, sizes, w, torch.float32, method=method))
        # one float32 rounding per layer product and per sum: relative error <= L * 2**-23
        np.testing.assert_allclose(got, ref, rtol=len(sizes) * 2.0**-23, atol=0)
        got64 = _np(hamming.pairwise_hamming(wx, wy, sizes, w, torch.float64, method=method))
        # a float64 output accumulates in float64: the reference's own rounding, L * 2**-52
        np.testing.assert_allclose(got64, ref, rtol=len(sizes) * 2.0**-52, atol=0)
    else:
        for dt in (torch.int32, torch.int16, torch.float32):
            got = _np(hamming.pairwise_hamming(wx, wy, sizes, w, dt, method=method))
            assert got.dtype == np.dtype(str(dt).replace("torch.", ""))
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("method", ["popcount", "int8"])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("kind", WEIGHT_KINDS)
def test_pairwise_small(method, sizes, kind):
    rng = np.random.default_rng(zlib.crc32(repr((method, sizes, kind)).encode()))
    for n, m in [(1, 1), (70, 45)]:
        _check_pairwise(rng, sizes, n, m, method, kind, sym=False)
    _check_pairwise(rng, sizes, 130, 130, method, kind, sym=True)  # 130: tiles of 64 and 128 are ragged


@pytest.mark.parametrize("tma", [False, True])
@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("sizes,kind", [((288,), "none"), ((224,), "int"), ((33, 5, 64), "real")])
def test_int8_tilings(hold, chunk, sizes, kind, tma):
    """Held row blocks (K split in powers of two: 288 -> 256 + 32, 224 -> 128 + 64 + 32),
    several column tiles per program, bulk tensor stores (emulated by the interpreter;
    rows of a multiple of 4 columns are 16-byte aligned), ragged edges: all equal to the
    reference."""
    rng = np.random.default_rng(zlib.crc32(repr((hold, chunk, sizes, tma)).encode()))
    w = _weights(kind, len(sizes))
    dt = torch.float64 if kind == "real" else torch.int32
    kw = dict(chunk=chunk, hold=hold, tma=tma, num_warps=4)
    for n, m in [(70, 44), (1, 96)]:
        bx, wx = _codes(rng, n, sizes)
        by, wy = _codes(rng, m, sizes)
        got = _np(int8.int8_hamming(wx, wy, sizes, w, dt, block=(32, 32, 32), **kw))
        np.testing.assert_allclose(got, R.hamming(bx, by, sizes, w), rtol=len(sizes) * 2.0**-52, atol=0)
    bx, wx = _codes(rng, 132, sizes)
    got = _np(int8.int8_hamming(wx, None, sizes, w, dt, block=(64, 64, 32), **kw))
    np.testing.assert_allclose(got, R.hamming(bx, bx, sizes, w), rtol=len(sizes) * 2.0**-52, atol=0)


def test_k_pieces():
    assert int8.k_pieces(320, 64) == (256, 64, 0, 0)
    assert int8.k_pieces(960, 64) == (512, 256, 128, 64)
    assert int8.k_pieces(31 * 32, 32) == (0, 0, 0, 0)  # five pieces: not held
    assert int8.k_pieces(0, 32) == (0, 0, 0, 0)


def test_pairwise_uint8_and_auto():
    rng = np.random.default_rng(3)
    bx, wx = _codes(rng, 40, (20, 9))
    got = _np(hamming.pairwise_hamming(wx, None, (20, 9), None, torch.uint8))
    np.testing.assert_array_equal(got, R.hamming(bx, bx, (20, 9)))
    assert got.dtype == np.uint8


@pytest.mark.parametrize("method", ["popcount", "int8"])
def test_pairwise_empty(method):
    _, wx = _codes(np.random.default_rng(0), 0, (5,))
    _, wy = _codes(np.random.default_rng(0), 3, (5,))
    out = hamming.pairwise_hamming(wx, wy, (5,), None, torch.int32, method=method)
    assert tuple(out.shape) == (0, 3)
    assert tuple(hamming.pairwise_hamming(wy, wx, (5,), None, torch.int32, method=method).shape) == (3, 0)


def test_pairwise_bad_input():
    _, wx = _codes(np.random.default_rng(0), 4, (40,))
    with pytest.raises(ValueError, match="wx"):
        hamming.pairwise_hamming(wx, None, (20,), None, torch.int32)
    with pytest.raises(TypeError, match="wx"):
        hamming.pairwise_hamming(wx.to(torch.int64), None, (40,), None, torch.int32)
    with pytest.raises(ValueError, match="out_dtype"):
        hamming.pairwise_hamming(wx, None, (40,), [10], torch.uint8)
    with pytest.raises(ValueError, match="weights"):
        hamming.pairwise_hamming(wx, None, (40,), [0.5], torch.int32)
    with pytest.raises(ValueError, match="weights"):
        hamming.pairwise_hamming(wx, None, (40,), [1.0, 2.0], torch.float32)
    with pytest.raises(TypeError, match="out_dtype"):
        hamming.pairwise_hamming(wx, None, (40,), None, torch.bool)
    with pytest.raises(ValueError, match="method"):
        hamming.pairwise_hamming(wx, None, (40,), None, torch.int32, method="magic")


def test_pm1_codes_layout():
    rng = np.random.default_rng(5)
    sizes = (33, 0, 5)
    bits, words = _codes(rng, 7, sizes)
    for per_layer in (False, True):
        p = int8.pm1_codes(words, sizes, per_layer)
        s = _np(p.s).astype(np.int64)
        start = 0
        groups = [[0], [1], [2]] if per_layer else [[0, 1, 2]]
        for g, group in enumerate(groups):
            width = sum(sizes[l] for l in group)
            seg = s[:, p.koff[g] : p.koff[g + 1]]
            np.testing.assert_array_equal(seg[:, :width], np.where(bits[:, start : start + width], 1, -1))
            np.testing.assert_array_equal(seg[:, width:], 0)  # padding adds nothing to a dot product
            assert (p.koff[g + 1] - p.koff[g]) % p.seg == 0
            start += width


# ----------------------------------------------------------------------------- encoder
def _mlp(rng, d_in, widths, acts, zero_rows=0):
    """Random MLP as (kernel layers, reference layers); weights rounded to float32."""
    layers, ref = [], []
    d = d_in
    for w, act in zip(widths, acts):
        A = rng.standard_normal((w, d)).astype(np.float32).astype(np.float64)
        b = rng.standard_normal(w).astype(np.float32).astype(np.float64)
        if zero_rows:
            A[:zero_rows] = 0.0
            b[:zero_rows] = 0.0  # pre-activation exactly 0: the bit must be set
        if act == "relu":
            slope, spec = 0.0, "relu"
        elif act == "leaky":
            slope, spec = 0.125, ("leaky", 0.125)
        else:
            s = rng.random(w).astype(np.float32).astype(np.float64)
            slope, spec = torch.tensor(s), ("prelu", s)
        layers.append((torch.tensor(A), torch.tensor(b), slope))
        ref.append((A, b, spec))
        d = w
    return layers, ref


def _near_zero(ref, X):
    """Per unit: |pre| below the float32 evaluation bound (where a flipped bit is allowed).

    float32 dot products of length K err by at most about K * 2**-24 * sum|a x|; the bound
    below (1e-4 relative to sum|a x| + |b|) covers K <= 784 with room for the float32
    rounding of earlier layers' activations.
    """
    z = np.asarray(X, dtype=np.float64)
    flags = []
    for A, b, act in ref:
        pre = z @ A.T + b
        scale = np.abs(z) @ np.abs(A).T + np.abs(b)
        flags.append(np.abs(pre) <= 1e-4 * scale)
        z = R.activate(pre, act)
    return np.concatenate(flags, axis=1)


def _check_encode(rng, d_in, widths, acts, n, fused, zero_rows=0):
    layers, ref = _mlp(rng, d_in, widths, acts, zero_rows)
    X = rng.standard_normal((n, d_in)).astype(np.float32)
    bits, sizes = R.mlp_bits(ref, X)
    assert encode.mlp_layer_sizes(layers) == tuple(sizes)
    words = encode.encode_mlp(layers, torch.from_numpy(X).to(DEV), fused=fused)
    got = unpack_words(_np(words).view(np.uint32), sizes)
    wrong = got != bits
    assert not np.any(wrong & ~_near_zero(ref, X)), "bits differ away from the float32 rounding band"
    assert wrong.sum() <= max(1, bits.size // 1000)
    # padding bits stay zero: repacking the unpacked bits gives the same words
    np.testing.assert_array_equal(_np(words).view(np.uint32), pack_bits(got, sizes))
    return layers, ref, X, bits, sizes, words


ENC_CASES = [
    (20, (16, 16, 16), ("relu", "leaky", "prelu")),
    (5, (33, 1, 70), ("relu", "prelu", "leaky")),
    (1, (1,), ("relu",)),
    (7, (100, 3), ("leaky", "relu")),
]


@pytest.mark.parametrize("d_in,widths,acts", ENC_CASES)
@pytest.mark.parametrize("fused", [True, False])
def test_encode_small(d_in, widths, acts, fused):
    rng = np.random.default_rng(11)
    for n in (1, 70):
        _check_encode(rng, d_in, widths, acts, n, fused)


@pytest.mark.parametrize("config", [
    dict(tma=True),  # bulk tensor loads (emulated by the interpreter): zero-filled edges
    dict(bm=32, bk=16, programs=3),  # persistent grid: each program loops over row blocks
    dict(bm=32, bk=16, num_stages=1, tma=True, programs=2),
])
@pytest.mark.parametrize("d_in", [20, 5])  # 5 floats: rows not 16-byte aligned -> plain loads
def test_encode_configs(config, d_in):
    rng = np.random.default_rng(15)
    layers, ref = _mlp(rng, d_in, (16, 7, 16), ("relu", "leaky", "prelu"))
    stack = encode.prepare_mlp(layers, DEV)
    for n in (1, 70, 131):
        X = rng.standard_normal((n, d_in)).astype(np.float32)
        bits, sizes = R.mlp_bits(ref, X)
        words = encode.encode_mlp(stack, torch.from_numpy(X).to(DEV), config=config)
        got = unpack_words(_np(words).view(np.uint32), sizes)
        assert not np.any((got != bits) & ~_near_zero(ref, X))
        np.testing.assert_array_equal(_np(words).view(np.uint32), pack_bits(got, sizes))


def test_encode_config_and_stack_errors():
    rng = np.random.default_rng(16)
    layers, _ = _mlp(rng, 4, (8,), ("relu",))
    X = torch.from_numpy(rng.standard_normal((3, 4)).astype(np.float32)).to(DEV)
    with pytest.raises(ValueError, match="config: unknown keys \\['tile'\\]"):
        encode.encode_mlp(layers, X, config=dict(tile=3))
    with pytest.raises(ValueError, match="bk must be at most"):
        encode.encode_mlp(layers, X, config=dict(bk=256))
    if not ON_GPU:
        with pytest.raises(ValueError, match="prepared on cpu"):
            encode.encode_mlp(encode.prepare_mlp(layers, "cpu"), X.to("meta"))


def test_encode_wide_falls_back_and_zero_preactivation():
    rng = np.random.default_rng(12)
    _check_encode(rng, 9, (200, 40), ("relu", "leaky"), 33, fused=None, zero_rows=3)
    _check_encode(rng, 9, (40, 40), ("relu", "relu"), 33, fused=True, zero_rows=3)
    with pytest.raises(ValueError, match="fused"):
        _check_encode(rng, 9, (200,), ("relu",), 3, fused=True)


def test_encode_output_layer_and_bad_input():
    rng = np.random.default_rng(13)
    layers, ref = _mlp(rng, 4, (10, 3), ("relu", "relu"))
    X = torch.from_numpy(rng.standard_normal((5, 4)).astype(np.float32)).to(DEV)
    with_out = layers[:1] + [(layers[1][0], layers[1][1], None)]
    bits, sizes = R.mlp_bits([ref[0], (ref[1][0], ref[1][1], None)], _np(X))
    np.testing.assert_array_equal(_np(encode.encode_mlp(with_out, X)).view(np.uint32), pack_bits(bits, sizes))
    assert tuple(encode.encode_mlp(layers, X[:0]).shape) == (0, 2)
    with pytest.raises(ValueError, match="X"):
        encode.encode_mlp(layers, X[:, :3])
    with pytest.raises(TypeError, match="X"):
        encode.encode_mlp(layers, _np(X))
    with pytest.raises(ValueError, match="layers\\[1\\]"):
        encode.encode_mlp([layers[0], (torch.ones(3, 7), None, 0.0)], X)
    with pytest.raises(ValueError, match="precision"):
        encode.encode_mlp(layers, X, precision="fp8")
    with pytest.raises(ValueError, match="layers"):
        encode.encode_mlp([], X)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("d_in,widths", [(6, (33, 5)), (72, (16, 7))])  # 72 floats: bulk tensor loads, 2 K blocks
def test_query_distances_small(fused, d_in, widths):
    rng = np.random.default_rng(14)
    layers, ref = _mlp(rng, d_in, widths, ("relu", "leaky"))
    Xq = rng.standard_normal((70, d_in)).astype(np.float32)
    Xr = rng.standard_normal((45, d_in)).astype(np.float32)
    bq, sizes = R.mlp_bits(ref, Xq)
    br, _ = R.mlp_bits(ref, Xr)
    refw = torch.from_numpy(pack_bits(br, sizes).view(np.int32)).to(DEV)
    for w, dt in ((None, torch.int32), (np.array([2, 3]), torch.int16)):
        d, qw = encode.query_distances(layers, torch.from_numpy(Xq).to(DEV), refw, w, dt, fused=fused, splits=2)
        np.testing.assert_array_equal(_np(qw).view(np.uint32), pack_bits(bq, sizes))
        np.testing.assert_array_equal(_np(d), R.hamming(bq, br, sizes, w))


# ----------------------------------------------------------------------------- reductions
def _check_reductions(rng, sizes, n, m, kv_list=(1, 3, 7)):
    bx, wx = _codes(rng, n, sizes)
    by, wy = _codes(rng, m, sizes)
    for kind in ("none", "real"):
        w = _weights(kind, len(sizes))
        D = R.hamming(bx, by, sizes, w)
        for kv in kv_list:
            V = rng.standard_normal((m, kv))
            for sq in (False, True):
                s2 = float(np.mean(D**2 if sq else D)) + 1.0
                got = _np(reductions.heat_matmat(wx, sizes, torch.from_numpy(V).to(DEV), s2, wy=wy, weights=w,
                                                 squared=sq))
                want = R.heat_kernel(D, s2, sq) @ V
                # float32 exp2 and accumulation over M terms (tf32x3 products for k > 4):
                # 1e-5 of the largest entry is ~100 float32 ulps.
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
        v1 = rng.standard_normal(m)
        got1 = _np(reductions.heat_matmat(wx, sizes, torch.from_numpy(v1).to(DEV), 50.0, wy=wy, weights=w))
        want1 = R.heat_kernel(D, 50.0) @ v1
        np.testing.assert_allclose(got1, want1, rtol=0, atol=1e-5 * np.abs(want1).max())
    wint = np.arange(1, len(sizes) + 1, dtype=np.int64)
    for w in (None, wint):
        D = R.hamming(bx, by, sizes, w)
        k = min(5, m)
        dd, ii = reductions.knn(wx, sizes, k, wy=wy, weights=w)
        rd, ri = R.knn(D, k)
        np.testing.assert_array_equal(_np(ii), ri)
        np.testing.assert_array_equal(_np(dd), rd)
    # real weights: distances match to float32 rounding (near-ties may swap order)
    wr = _weights("real", len(sizes))
    dd, ii = reductions.knn(wx, sizes, min(5, m), wy=wy, weights=wr)
    rd, _ = R.knn(R.hamming(bx, by, sizes, wr), min(5, m))
    np.testing.assert_allclose(_np(dd), rd, rtol=len(sizes) * 2.0**-23)


@pytest.mark.parametrize("sizes", [(33, 5, 64), (7,)])
def test_reductions_small(sizes):
    rng = np.random.default_rng(21)
    _check_reductions(rng, sizes, 70, 45)
    _check_reductions(rng, sizes, 1, 3, kv_list=(2,))


def test_knn_symmetric_ties_and_bad_input():
    rng = np.random.default_rng(22)
    bx, wx = _codes(rng, 130, (5,))  # 5 units: many ties, broken by the smaller index
    dd, ii = reductions.knn(wx, (5,), 7)
    rd, ri = R.knn(R.hamming(bx, bx, (5,)), 7)
    np.testing.assert_array_equal(_np(ii), ri)
    np.testing.assert_array_equal(_np(dd), rd)
    with pytest.raises(ValueError, match="k"):
        reductions.knn(wx, (5,), 0)
    with pytest.raises(ValueError, match="k"):
        reductions.knn(wx, (5,), 131)
    with pytest.raises(ValueError, match="sigma2"):
        reductions.heat_matmat(wx, (5,), torch.ones(130, device=DEV), 0.0)
    with pytest.raises(ValueError, match="V"):
        reductions.heat_matmat(wx, (5,), torch.ones(129, device=DEV), 1.0)


def _check_cosine(rng, n, sa, sb):
    ba, wa = _codes(rng, n, sa)
    bb, wb = _codes(rng, n, sb, p=0.3)
    s2s = [2.0, 30.0, 400.0]
    for w in (None, np.linspace(0.5, 2.0, len(sa))):
        got = reductions.heat_cosine(wa, sa, wb, sb, s2s, weights_a=w)
        Da, Db = R.hamming(ba, ba, sa, w), R.hamming(bb, bb, sb)
        want = [R.cosine_similarity(R.heat_kernel(Da, s), R.heat_kernel(Db, s)) for s in s2s]
        # float32 tile sums (<= 64 x 64 terms) then float64 totals: 1e-5 relative
        np.testing.assert_allclose(got, want, rtol=1e-5)
    gs = reductions.heat_cosine(wa, sa, wb, sb, [30.0], squared=True)
    Da, Db = R.hamming(ba, ba, sa), R.hamming(bb, bb, sb)
    np.testing.assert_allclose(gs, [R.cosine_similarity(R.heat_kernel(Da, 30.0, True), R.heat_kernel(Db, 30.0, True))],
                               rtol=1e-5)


def test_cosine_small():
    rng = np.random.default_rng(23)
    _check_cosine(rng, 70, (33, 5, 64), (20,))
    _check_cosine(rng, 1, (3,), (1,))
    _, wa = _codes(rng, 5, (3,))
    with pytest.raises(ValueError, match="sigma2s"):
        reductions.heat_cosine(wa, (3,), wa, (3,), [-1.0])
    with pytest.raises(ValueError, match="words_b"):
        reductions.heat_cosine(wa, (3,), wa[:4], (3,), [1.0])


# ----------------------------------------------------------------------------- full size (GPU)
@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason=NO_GPU)
@pytest.mark.parametrize("method", ["popcount", "int8"])
@pytest.mark.parametrize("kind", WEIGHT_KINDS)
@pytest.mark.parametrize("sym", [False, True])
def test_pairwise_full(method, kind, sym):
    rng = np.random.default_rng(31)
    _check_pairwise(rng, (288,), 1000 + 17, 700 + 3, method, kind, sym)
    _check_pairwise(rng, (100, 16, 16, 33, 16, 16), 1000 + 5, 257, method, kind, sym)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason=NO_GPU)
@pytest.mark.parametrize("sym", [False, True])
def test_pairwise_tma_store_full(sym):
    rng = np.random.default_rng(34)
    sizes = (288,)
    bx, wx = _codes(rng, 1017, sizes)  # ragged: the bulk stores clip at the edges
    by, wy = (bx, None) if sym else _codes(rng, 712, sizes)  # 712 * 2 bytes: 16-byte rows
    for dt in (torch.int16, torch.int32):
        got = _np(int8.int8_hamming(wx, wy, sizes, None, dt, tma=True))
        np.testing.assert_array_equal(got, R.hamming(bx, by, sizes))


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason=NO_GPU)
@pytest.mark.parametrize("precision", ["ieee", "tf32x3"])
def test_encode_full(precision):
    rng = np.random.default_rng(32)
    layers, ref = _mlp(rng, 784, (16,) * 6, ("relu",) * 6)
    X = rng.standard_normal((20_000, 784)).astype(np.float32)
    bits, sizes = R.mlp_bits(ref, X)
    got = unpack_words(_np(encode.encode_mlp(layers, torch.from_numpy(X).to(DEV), precision=precision)).view(np.uint32),
                       sizes)
    wrong = got != bits
    assert not np.any(wrong & ~_near_zero(ref, X))
    _check_encode(rng, 300, (256, 130), ("relu", "leaky"), 5000, fused=None)  # per-layer path


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason=NO_GPU)
def test_query_and_reductions_full():
    rng = np.random.default_rng(33)
    layers, ref = _mlp(rng, 30, (16,) * 6, ("relu",) * 6)
    Xq = rng.standard_normal((3000, 30)).astype(np.float32)
    Xr = rng.standard_normal((2000, 30)).astype(np.float32)
    bq, sizes = R.mlp_bits(ref, Xq)
    br, _ = R.mlp_bits(ref, Xr)
    refw = torch.from_numpy(pack_bits(br, sizes).view(np.int32)).to(DEV)
    for fused in (True, False):
        d, _ = encode.query_distances(layers, torch.from_numpy(Xq).to(DEV), refw, None, torch.int16, fused=fused)
        np.testing.assert_array_equal(_np(d), R.hamming(bq, br, sizes))
    _check_reductions(rng, (288,), 1500 + 7, 1300 + 9, kv_list=(1, 16))
    _check_cosine(rng, 1500 + 7, (100, 16, 16), (288,))


# ----------------------------------------------------------------------------- public API wiring
@pytest.fixture
def triton_backend(monkeypatch):
    """Make backend="triton" available (the interpreter without a GPU) for one test."""
    from vqgeom import _backend

    if not ON_GPU:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    _backend._triton_ok.cache_clear()
    yield
    _backend._triton_ok.cache_clear()


def _pair_codes(rng, n, sizes):
    from vqgeom.codes import Codes

    bits, words = _codes(rng, n, sizes)
    return bits, Codes(words, sizes), Codes(_np(words).view(np.uint32), sizes)


def test_public_distances_knn_compare_on_triton(triton_backend):
    import vqgeom

    rng = np.random.default_rng(41)
    sizes = (33, 5, 64)
    bits, ct, cn = _pair_codes(rng, 70, sizes)
    np.testing.assert_array_equal(_np(vqgeom.pairwise_distances(ct, backend="triton")), R.hamming(bits, bits, sizes))
    w = np.array([0.5, 1.25, 2.0])
    got = _np(vqgeom.pairwise_distances(ct, weights=w, backend="triton"))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, R.hamming(bits, bits, sizes, w), rtol=3 * 2.0**-52)
    per = _np(vqgeom.pairwise_distances(ct, per_layer=True, backend="triton"))
    np.testing.assert_array_equal(per, R.layer_hamming(bits, bits, sizes))
    for wk in (None, [1, 2, 3]):
        dt, it = vqgeom.knn(ct, k=5, weights=wk, backend="triton")
        dc, ic = vqgeom.knn(cn, k=5, weights=wk, backend="cpu")
        np.testing.assert_array_equal(_np(it), ic)
        np.testing.assert_array_equal(_np(dt), dc)
    _, c3t, c3n = _pair_codes(rng, 70, (3,))  # 8 distinct codes: self often not among the k + 1
    dt, it = vqgeom.knn(c3t, k=2, backend="triton")
    dc, ic = vqgeom.knn(c3n, k=2, backend="cpu")
    np.testing.assert_array_equal(_np(it), ic)
    np.testing.assert_array_equal(_np(dt), dc)
    by, cyt, cyn = _pair_codes(rng, 45, sizes)
    dt, it = vqgeom.knn(ct, cyt, k=4, backend="triton")
    dc, ic = vqgeom.knn(cn, cyn, k=4, backend="cpu")
    np.testing.assert_array_equal(_np(it), ic)
    np.testing.assert_array_equal(_np(dt), dc)
    _, c2t, c2n = _pair_codes(rng, 70, (20,))
    s2 = [3.0, 40.0]
    for sq in (False, True):
        st = vqgeom.compare([ct, c2t], sigma2s=s2, squared=sq, backend="triton").similarity
        sc = vqgeom.compare([cn, c2n], sigma2s=s2, squared=sq, backend="cpu").similarity
        np.testing.assert_allclose(st, sc, rtol=1e-5)  # float32 tile sums, float64 totals


def test_public_encode_on_triton(triton_backend):
    import vqgeom

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 40), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(40, 33),
                              torch.nn.LeakyReLU(0.2), torch.nn.Linear(33, 7), torch.nn.PReLU(7),
                              torch.nn.Linear(7, 1)).to(DEV)
    X = torch.randn(50, 5, device=DEV)
    ct = vqgeom.encode(net, X, backend="triton")
    cc = vqgeom.encode(net.cpu(), X.cpu(), backend="cpu")
    assert ct.layer_sizes == cc.layer_sizes and ct.layer_names == cc.layer_names
    np.testing.assert_array_equal(_np(ct.words), _np(cc.words))
    assert encode.mlp_layers(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh())) is None
    assert encode.mlp_layers(torch.nn.Sequential(torch.nn.Linear(3, 3).double(), torch.nn.ReLU())) is None


def test_heat_embedding_matches_dense(triton_backend):
    import vqgeom

    rng = np.random.default_rng(42)
    sizes = (33, 5)
    bits, ct, cn = _pair_codes(rng, 60, sizes)
    s2 = 10.0
    vals, vecs = np.linalg.eigh(R.heat_kernel(R.hamming(bits, bits, sizes), s2))
    vals, vecs = vals[::-1][:3], vecs[:, ::-1][:, :3]
    for codes, backend in ((ct, "triton"), (cn, "cpu")):
        emb = vqgeom.heat_embedding(codes, s2, 3, backend=backend)
        # float32 products on the GPU route: eigenpairs to ~1e-5
        np.testing.assert_allclose(emb.eigenvalues, vals, rtol=1e-5)
        overlap = np.abs(np.sum(emb.eigenvectors * vecs, axis=0))
        np.testing.assert_allclose(overlap, 1.0, atol=1e-4)
        np.testing.assert_allclose(emb.embedding, emb.eigenvectors * np.sqrt(vals), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="n_components"):
        vqgeom.heat_embedding(cn, s2, 60)


def test_compare_measures_on_triton(triton_backend):
    # Every measure and route with distances from the Triton kernels (interpreter without a GPU)
    # against the CPU backend, itself tested against dense formulas in tests/test_similarity.py.
    import vqgeom

    rng = np.random.default_rng(43)
    b1, ct, cn = _pair_codes(rng, 37, (33, 5))
    b2, c2t, c2n = _pair_codes(rng, 37, (20,))
    # and directly against dense formulas: CKA of centred heat kernels, Pearson of off-diagonal distances
    D1, D2 = (R.hamming(b, b, s).astype(np.float64) for b, s in ((b1, (33, 5)), (b2, (20,))))
    H = np.eye(37) - 1.0 / 37
    K1, K2 = H @ np.exp(-D1 / 3.0) @ H, H @ np.exp(-D2 / 3.0) @ H
    off = ~np.eye(37, dtype=bool)
    want = {"rbf_cka": np.sum(K1 * K2) / np.sqrt(np.sum(K1 * K1) * np.sum(K2 * K2)),
            "mantel": np.corrcoef(D1[off], D2[off])[0, 1]}
    for method in ("direct", "histogram"):
        got = vqgeom.compare([ct, c2t], sigma2s=3.0, measure=list(want), method=method, backend="triton")
        for k, v in want.items():
            np.testing.assert_allclose(got[k][0, 0, 1], v, rtol=1e-10)  # float64 sums of 37^2 terms
    for method in ("direct", "histogram"):
        for sq in (False, True):
            for s2 in ([3.0, 40.0], "per_network"):
                st = vqgeom.compare([ct, c2t], sigma2s=s2, squared=sq, measure="all", method=method,
                                    backend="triton", block_rows=16)
                sc = vqgeom.compare([cn, c2n], sigma2s=s2, squared=sq, measure="all", method=method, backend="cpu")
                assert st.route == method
                np.testing.assert_array_equal(st.bandwidths, sc.bandwidths)
                for k in ("heat_cosine", "rbf_cka", "linear_cka", "mantel"):
                    # the same integer distances, float64 sums in other block orders
                    np.testing.assert_allclose(st[k], sc[k], rtol=1e-12, atol=1e-12, err_msg=k)
    h = vqgeom.joint_histogram([ct, c2t], backend="triton", block_rows=16)
    hc = vqgeom.joint_histogram([cn, c2n], backend="cpu")
    np.testing.assert_array_equal(h.joint[(0, 1)], hc.joint[(0, 1)])
    np.testing.assert_array_equal(h.row_products[(0, 1)], hc.row_products[(0, 1)])
    # auto on triton keeps the fused cosine kernel for heat_cosine with shared sigma2
    assert vqgeom.compare([ct, c2t], sigma2s=[3.0], backend="triton").route == "triton"
