"""pairwise_distances and vq_kernel against reference.hamming (issue 2 items 3, 5 and 7).

Integer results are compared exactly. Real weights: both sides sum L <= 6 float64 terms
``w_l * H_l`` with integers H_l < 2**31, so they agree to a few ulps; rtol=1e-13 allows that and
nothing more (one unit of Hamming distance is a relative change >= 1 / sum(w_l B_l) >> 1e-13).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vqgeom
from vqgeom.codes import Codes
from vqgeom._validate import make_weights
from vqgeom.kernels import cpu, reference

FAST = settings(max_examples=25, deadline=None)

sizes_st = st.lists(st.integers(0, 130), min_size=1, max_size=6)
weights_kind_st = st.sampled_from(["none", "int", "bigint", "real"])


def random_weights(kind, n_layers, seed):
    rng = np.random.default_rng(seed)
    if kind == "none":
        return None
    if kind == "int":
        return rng.integers(1, 5, size=n_layers)
    if kind == "bigint":  # > 127: past the int8 GEMM scaling, the per-layer route
        return rng.integers(100, 400, size=n_layers)
    return rng.uniform(0.1, 3.0, size=n_layers)


def check_against_reference(D, bx, by, sizes, w):
    expected = reference.hamming(bx, by, sizes, w)
    D = D.numpy() if isinstance(D, torch.Tensor) else D
    if w is None or np.asarray(w).dtype.kind in "iu":
        assert D.dtype.kind in "iu"
        np.testing.assert_array_equal(D, expected.astype(np.int64))
    else:
        assert D.dtype == np.float64
        np.testing.assert_allclose(D, expected, rtol=1e-13, atol=0)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=sizes_st,
    n=st.integers(1, 30),
    m=st.integers(1, 30),
    wkind=weights_kind_st,
    backend=st.sampled_from(["cpu", "numpy", "auto"]),
)
def test_cross_distances_match_reference(make_bits, seed, sizes, n, m, wkind, backend):
    bx, by = make_bits(seed, n, sizes), make_bits(seed + 1, m, sizes)
    w = random_weights(wkind, len(sizes), seed)
    D = vqgeom.pairwise_distances(Codes.from_bits(bx, sizes), Codes.from_bits(by, sizes), weights=w, backend=backend)
    assert D.shape == (n, m)
    check_against_reference(D, bx, by, sizes, w)


@FAST
@given(seed=st.integers(0, 2**32 - 1), sizes=sizes_st, n=st.integers(1, 30), wkind=weights_kind_st)
def test_symmetric_distances_and_backends_agree(make_bits, seed, sizes, n, wkind):
    bx = make_bits(seed, n, sizes)
    w = random_weights(wkind, len(sizes), seed)
    codes = Codes.from_bits(bx, sizes)
    D_cpu = vqgeom.pairwise_distances(codes, weights=w, backend="cpu")
    D_np = vqgeom.pairwise_distances(codes, weights=w, backend="numpy")
    check_against_reference(D_cpu, bx, bx, sizes, w)
    assert D_cpu.dtype == D_np.dtype
    if D_cpu.dtype.kind in "iu":
        np.testing.assert_array_equal(D_cpu, D_np)
    else:
        np.testing.assert_allclose(D_cpu, D_np, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(D_cpu, vqgeom.pairwise_distances(codes, codes, weights=w, backend="cpu"))


@FAST
@given(seed=st.integers(0, 2**32 - 1), sizes=sizes_st, n=st.integers(1, 20), m=st.integers(1, 20))
def test_per_layer_matches_reference(make_bits, seed, sizes, n, m):
    bx, by = make_bits(seed, n, sizes), make_bits(seed + 1, m, sizes)
    cx, cy = Codes.from_bits(bx, sizes), Codes.from_bits(by, sizes)
    expected = reference.layer_hamming(bx, by, sizes)
    for backend in ("cpu", "numpy"):
        P = vqgeom.pairwise_distances(cx, cy, per_layer=True, backend=backend)
        assert P.shape == (len(sizes), n, m) and P.dtype.kind == "u"
        np.testing.assert_array_equal(P, expected)
    Pt = vqgeom.pairwise_distances(cx.to(torch.zeros(1)), cy.to(torch.zeros(1)), per_layer=True)
    assert isinstance(Pt, torch.Tensor)
    np.testing.assert_array_equal(Pt.numpy(), expected)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 70), min_size=1, max_size=4),
    n=st.integers(1, 25),
    p=st.sampled_from([0.05, 0.5, 0.95]),
    wkind=weights_kind_st,
)
def test_metric_properties(make_bits, seed, sizes, n, p, wkind):
    bits = make_bits(seed, n, sizes, p=p)
    bits[n // 2 :: 3] = bits[0]  # repeated codes: zero off-diagonal distances too
    w = random_weights(wkind, len(sizes), seed)
    D = vqgeom.pairwise_distances(Codes.from_bits(bits, sizes), weights=w).astype(np.float64)
    np.testing.assert_array_equal(D, D.T)
    np.testing.assert_array_equal(np.diag(D), 0)
    assert (D >= 0).all()
    # d(i, k) <= d(i, j) + d(j, k); real weights: both sides are sums of the same rounded terms,
    # so allow 1e-12 relative slack.
    slack = 0 if D.dtype.kind in "iu" or w is None or w.dtype.kind in "iu" else 1e-12 * max(1.0, D.max())
    assert (D[:, None, :] <= D[:, :, None] + D[None, :, :] + slack).all()


def test_block_boundaries_and_gemm_fallback(make_bits, monkeypatch):
    # Row blocks of the int8 GEMM that do not divide N, and the float32 route used where
    # torch._int_mm is missing; both exact.
    sizes = [33, 0, 64, 5]
    bx, by = make_bits(0, 37, sizes), make_bits(1, 23, sizes)
    cx, cy = Codes.from_bits(bx, sizes), Codes.from_bits(by, sizes)
    expected = reference.hamming(bx, by, sizes).astype(np.int64)
    for w in (None, np.array([1, 2, 3, 127])):
        exp_w = reference.hamming(bx, by, sizes, w).astype(np.int64)
        for block_bytes in (1, 4 * 23 * 5, 4 * 23 * 7 + 3):
            got = cpu.pairwise_hamming(cx.words, cy.words, sizes, w, np.dtype(np.int64), block_bytes=block_bytes, method="int8")
            np.testing.assert_array_equal(got, exp_w)
    monkeypatch.setattr(cpu, "_int_mm_ok", lambda: False)
    np.testing.assert_array_equal(cpu.pairwise_hamming(cx.words, cy.words, sizes, None, np.dtype(np.int64), method="int8"), expected)


@pytest.mark.parametrize(
    "sizes, weights, np_dtype, torch_dtype",
    [
        ([255], None, np.uint8, torch.uint8),
        ([200, 55], None, np.uint8, torch.uint8),
        ([256], None, np.uint16, torch.int16),
        ([1], [255], np.uint8, torch.uint8),
        ([1, 1], [255, 1], np.uint16, torch.int16),
        ([1], [32767], np.uint16, torch.int16),
        ([1], [32768], np.uint16, torch.int32),
        ([1], [65535], np.uint16, torch.int32),
        ([1], [65536], np.uint32, torch.int32),
        ([1], [2**31], np.uint32, torch.int64),
        ([3], [2**33], np.uint64, torch.int64),
        ([3], [1.0], np.uint8, torch.uint8),  # integer by value, whatever the dtype
        ([3], [2.0**62], np.uint64, None),  # 3 * 2**62 > int64 max: numpy only
        ([1, 1], [2**63, 2**63 - 1], np.uint64, None),  # past int64: numpy only
        ([1, 1], [2**62, 1], np.uint64, torch.int64),
        ([3, 2], [0.5, 2], np.float64, torch.float64),
    ],
)
def test_result_dtype_rules(make_bits, sizes, weights, np_dtype, torch_dtype):
    # Unweighted or integer weights: the smallest integer type holding sum_l w_l B_l; real weights: float64.
    bits = make_bits(3, 6, sizes)
    bits[0] = True
    bits[1] = False  # the maximum distance occurs
    codes = Codes.from_bits(bits, sizes)
    w = None if weights is None else np.asarray(weights, dtype=np.uint64 if max(weights) >= 2**63 else None)
    expected = reference.hamming(bits, bits, sizes, w)
    for backend in ("cpu", "numpy"):
        D = vqgeom.pairwise_distances(codes, weights=w, backend=backend)
        assert isinstance(D, np.ndarray) and D.dtype == np_dtype, backend
        np.testing.assert_array_equal(D, expected)  # exact (Python integers past int64 in the oracle)
        if torch_dtype is None:
            with pytest.raises(ValueError, match="weights"):
                vqgeom.pairwise_distances(codes.to(torch.zeros(1)), weights=w, backend=backend)
            continue
        Dt = vqgeom.pairwise_distances(codes.to(torch.zeros(1)), weights=w, backend=backend)
        assert isinstance(Dt, torch.Tensor) and Dt.dtype == torch_dtype and Dt.device.type == "cpu"
        np.testing.assert_array_equal(Dt.numpy(), expected)
    assert make_weights(w, sizes).dtype == np_dtype


def test_empty_codes(make_bits, backend):
    from conftest import as_numpy, backend_codes

    sizes = [5, 40]
    empty = backend_codes(Codes.from_bits(np.zeros((0, 45), dtype=bool), sizes), backend)
    other = backend_codes(Codes.from_bits(make_bits(0, 4, sizes), sizes), backend)
    for w, kind in ((None, "u"), ([0.5, 1], "f"), ([2**40, 3], "u")):
        for a, b, shape in ((empty, other, (0, 4)), (other, empty, (4, 0)), (empty, None, (0, 0))):
            D = as_numpy(vqgeom.pairwise_distances(a, b, weights=w, backend=backend))
            assert D.shape == shape and D.dtype.kind in (kind + "i" if kind == "u" else kind)
        d, i = vqgeom.knn(empty, other, k=2, weights=w, backend=backend)
        assert as_numpy(d).shape == (0, 2) and as_numpy(i).dtype == np.int64


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_vq_kernel_matches_reference(make_mlp, array):
    net, spec = make_mlp(11, [3, 31, 33, 64], kinds=("relu", "leaky", "relu6"))
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(17, 3)), rng.normal(size=(9, 3))
    bx, sizes = reference.mlp_bits(spec, X)
    by, _ = reference.mlp_bits(spec, Y)
    wrap = (lambda a: a) if array == "numpy" else torch.from_numpy
    K = vqgeom.vq_kernel(net, wrap(X))
    KXY = vqgeom.vq_kernel(net, wrap(X), wrap(Y), weights=[1, 2, 3])
    P = vqgeom.vq_kernel(net, wrap(X), wrap(Y), per_layer=True)
    for out in (K, KXY, P):
        assert (isinstance(out, torch.Tensor) and out.device.type == "cpu") if array == "torch" else isinstance(out, np.ndarray)
    as_np = (lambda a: a) if array == "numpy" else (lambda a: a.numpy())
    np.testing.assert_array_equal(as_np(K), reference.hamming(bx, bx, sizes))
    np.testing.assert_array_equal(as_np(KXY), reference.hamming(bx, by, sizes, [1, 2, 3]))
    np.testing.assert_array_equal(as_np(P), reference.layer_hamming(bx, by, sizes))


# -- errors ---------------------------------------------------------------------------------------

CODES = Codes.from_bits(np.random.default_rng(0).random((4, 40)) < 0.5, [30, 10])


@pytest.mark.parametrize(
    "weights, exc, needle",
    [
        ([1, 2, 3], ValueError, "2 values"),
        ([1], ValueError, "2 values"),
        ([1, 0], ValueError, "positive"),
        ([1, -2], ValueError, "positive"),
        ([1.0, np.nan], ValueError, "positive"),
        ([1.0, np.inf], ValueError, "positive"),
        ([True, True], TypeError, "real"),
        (3, TypeError, "scalar"),
        (np.ones((2, 1)), ValueError, "2 values"),
    ],
)
def test_bad_weights(weights, exc, needle):
    with pytest.raises(exc, match="weights") as err:
        vqgeom.pairwise_distances(CODES, weights=weights)
    assert needle in str(err.value)


def test_bad_codes():
    with pytest.raises(TypeError, match="codes_x"):
        vqgeom.pairwise_distances(CODES.words)
    with pytest.raises(TypeError, match="codes_y"):
        vqgeom.pairwise_distances(CODES, CODES.words)
    with pytest.raises(ValueError, match="codes_y"):
        vqgeom.pairwise_distances(CODES, CODES.layers(0))
    with pytest.raises(ValueError, match="codes_y"):
        vqgeom.pairwise_distances(CODES, CODES.to(torch.zeros(1)))


def test_codes_on_different_devices():
    # No second real device here: codes on 'meta' stand in for another device.
    meta = Codes(torch.zeros((4, 2), dtype=torch.int32, device="meta"), (30, 10))
    with pytest.raises(ValueError, match="codes_y") as err:
        vqgeom.pairwise_distances(CODES.to(torch.zeros(1)), meta)
    assert "meta" in str(err.value) and "cpu" in str(err.value)
