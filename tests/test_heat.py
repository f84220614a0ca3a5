"""heat_kernel, kernel_cosine and the streamed compare against dense reference computations (issue 2 item 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vqgeom
from vqgeom.codes import Codes
from vqgeom.kernels import reference

FAST = settings(max_examples=20, deadline=None)

# exp of the same float64 argument: numpy and torch may differ by an ulp or two of libm.
EXP_RTOL = 1e-14
# compare sums N*N products tile by tile, the reference in one dot; the orders differ, so the
# cosines (values in [0, 1]) agree to ~N * eps; 1e-12 covers N <= 1000 with margin.
SUM_TOL = 1e-12


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("sigma2", [0.5, 3.0, 1e3])
def test_heat_kernel_matches_reference(make_bits, squared, sigma2):
    sizes = [40, 3]
    bits = make_bits(0, 12, sizes)
    K = vqgeom.pairwise_distances(Codes.from_bits(bits, sizes))  # uint8
    expected = reference.heat_kernel(reference.hamming(bits, bits, sizes), sigma2, squared)
    H = vqgeom.heat_kernel(K, sigma2, squared=squared)
    assert isinstance(H, np.ndarray) and H.dtype == np.float64
    np.testing.assert_allclose(H, expected, rtol=EXP_RTOL, atol=0)
    Ht = vqgeom.heat_kernel(torch.from_numpy(K), sigma2, squared=squared)
    assert isinstance(Ht, torch.Tensor) and Ht.dtype == torch.float64
    np.testing.assert_allclose(Ht.numpy(), expected, rtol=EXP_RTOL, atol=0)
    Kf = K.astype(np.float64) * 0.5
    np.testing.assert_allclose(
        vqgeom.heat_kernel(Kf, sigma2, squared=squared), reference.heat_kernel(Kf, sigma2, squared), rtol=EXP_RTOL, atol=0
    )
    # float32 stays float32 (documented), to float32 accuracy: exp(-a) inherits the relative
    # rounding of its argument a times a, so rtol ~ eps32 * (1 + max a); values below float32's
    # normal range (~1.2e-38) underflow, hence the absolute tolerance.
    H32 = vqgeom.heat_kernel(K.astype(np.float32), sigma2, squared=squared)
    assert H32.dtype == np.float32
    a_max = float((K.astype(np.float64) ** (2 if squared else 1)).max()) / sigma2
    rtol32 = 4 * np.finfo(np.float32).eps * (1 + a_max)
    np.testing.assert_allclose(H32, expected, rtol=rtol32, atol=np.finfo(np.float32).tiny)


@pytest.mark.parametrize("sigma2", [0, -1.0, np.nan, np.inf])
def test_heat_kernel_rejects_bad_sigma2(sigma2):
    with pytest.raises(ValueError, match="sigma2"):
        vqgeom.heat_kernel(np.ones((2, 2)), sigma2)


def test_heat_kernel_rejects_bad_types():
    with pytest.raises(TypeError, match="sigma2"):
        vqgeom.heat_kernel(np.ones((2, 2)), "1")
    with pytest.raises(TypeError, match="K"):
        vqgeom.heat_kernel(np.array([["a"]]), 1.0)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20), m=st.integers(1, 20))
def test_kernel_cosine_matches_reference(seed, n, m):
    rng = np.random.default_rng(seed)
    A, B = rng.random((n, m)), rng.random((n, m))
    np.testing.assert_allclose(vqgeom.kernel_cosine(A, B), reference.cosine_similarity(A, B), rtol=SUM_TOL, atol=0)
    np.testing.assert_allclose(
        vqgeom.kernel_cosine(torch.from_numpy(A), B), reference.cosine_similarity(A, B), rtol=SUM_TOL, atol=0
    )
    np.testing.assert_allclose(vqgeom.kernel_cosine(A, A), 1.0, rtol=SUM_TOL)


def test_kernel_cosine_errors():
    with pytest.raises(ValueError, match="K2"):
        vqgeom.kernel_cosine(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="K1"):
        vqgeom.kernel_cosine(np.zeros((2, 2)), np.ones((2, 2)))


def dense_comparison(bit_sets, sizes_list, sigma2s, squared, weights):
    out = np.zeros((len(sigma2s), len(bit_sets), len(bit_sets)))
    for s, sigma2 in enumerate(sigma2s):
        H = [
            reference.heat_kernel(reference.hamming(b, b, sz, w), sigma2, squared)
            for b, sz, w in zip(bit_sets, sizes_list, weights)
        ]
        for a in range(len(H)):
            for c in range(len(H)):
                out[s, a, c] = reference.cosine_similarity(H[a], H[c])
    return out


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("block_rows", [1, 7, 19, 64])
def test_compare_streamed_equals_dense(make_mlp, squared, block_rows):
    # Three networks of different depth and width on N = 19 points (7 does not divide 19; 64 > N).
    nets = [make_mlp(s, w) for s, w in [(0, [2, 8]), (1, [2, 33, 5]), (2, [2, 64, 31, 3])]]
    X = np.random.default_rng(0).normal(size=(19, 2))
    bit_sets, sizes_list = zip(*(reference.mlp_bits(spec, X) for _, spec in nets))
    sigma2s = [0.5, 4.0, 50.0] if not squared else [4.0, 100.0, 2000.0]
    cmp = vqgeom.compare([net for net, _ in nets], X, sigma2s, squared=squared, block_rows=block_rows)
    expected = dense_comparison(bit_sets, sizes_list, sigma2s, squared, [None] * 3)
    assert cmp.similarity.shape == (3, 3, 3) and cmp.squared == squared
    np.testing.assert_array_equal(cmp.sigma2s, sigma2s)
    np.testing.assert_allclose(cmp.similarity, expected, rtol=SUM_TOL, atol=SUM_TOL)
    # The comparison is informative: the networks are neither identical nor orthogonal.
    assert 0.05 < expected[:, 0, 2].min() and expected[:, 0, 2].max() < 0.999
    assert len(cmp.table(1).splitlines()) == 5


def test_compare_codes_with_weights(make_bits):
    sizes_a, sizes_b = [10, 33], [5]
    ba, bb = make_bits(0, 23, sizes_a), make_bits(1, 23, sizes_b)
    ca, cb = Codes.from_bits(ba, sizes_a), Codes.from_bits(bb, sizes_b)
    weights = [[1.0, 0.5], None]
    cmp = vqgeom.compare([ca, cb, ca], sigma2s=2.5, weights=weights + [[2, 1]], names=["a", "b", "a2"], block_rows=5)
    expected = dense_comparison([ba, bb, ba], [sizes_a, sizes_b, sizes_a], [2.5], False, weights + [[2, 1]])
    np.testing.assert_allclose(cmp.similarity, expected, rtol=SUM_TOL, atol=SUM_TOL)
    # One weight vector shared by every network.
    shared = vqgeom.compare([ca, ca.layers([1, 0])], sigma2s=[1.0, 9.0], weights=[3, 1], block_rows=4)
    expected = dense_comparison([ba, np.concatenate([ba[:, 10:], ba[:, :10]], axis=1)], [sizes_a, [33, 10]], [1.0, 9.0], False, [[3, 1], [3, 1]])
    np.testing.assert_allclose(shared.similarity, expected, rtol=SUM_TOL, atol=SUM_TOL)


def test_compare_errors(make_bits):
    c = Codes.from_bits(make_bits(0, 5, [4]), [4])
    with pytest.raises(ValueError, match="models"):
        vqgeom.compare([])
    with pytest.raises(ValueError, match="sigma2s"):
        vqgeom.compare([c], sigma2s=[1.0, 0.0])
    with pytest.raises(ValueError, match="X"):
        vqgeom.compare([c, torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())])
    with pytest.raises(ValueError, match=r"models\[1\]"):
        vqgeom.compare([c, c[:3]])
    with pytest.raises(ValueError, match="weights"):
        vqgeom.compare([c, c], weights=[[1], [1], [1]])
    with pytest.raises(ValueError, match="names"):
        vqgeom.compare([c, c], names=["a"])
    with pytest.raises(ValueError, match="block_rows"):
        vqgeom.compare([c], block_rows=0)


# heat_matmat sums N products per entry in row blocks, the reference in one matmul: ~N * eps
# relative to the largest entry; 1e-12 covers N <= 1000 with margin.
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("weights", [None, [2, 1], [0.5, 1.75]])
def test_heat_matmat_matches_reference(make_bits, squared, weights):
    sizes = [40, 7]
    bits = make_bits(3, 301, sizes)
    codes = Codes.from_bits(bits, sizes)
    H = reference.heat_kernel(reference.hamming(bits, bits, sizes, None if weights is None else np.asarray(weights, float)),
                              50.0, squared)
    V = np.random.default_rng(11).standard_normal((301, 4))
    for v in (V, V[:, 1]):  # mat-mat and mat-vec
        got = vqgeom.heat_matmat(codes, v, 50.0, weights=weights, squared=squared, block_rows=64)
        assert got.shape == v.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, H @ v, rtol=0, atol=1e-12 * np.abs(H @ v).max())


def test_heat_matmat_errors(make_bits):
    codes = Codes.from_bits(make_bits(4, 10, [5]), [5])
    with pytest.raises(ValueError, match="V"):
        vqgeom.heat_matmat(codes, np.ones(9), 1.0)
    with pytest.raises(ValueError, match="sigma2"):
        vqgeom.heat_matmat(codes, np.ones(10), 0.0)
    with pytest.raises(TypeError, match="codes"):
        vqgeom.heat_matmat(np.ones((10, 1)), np.ones(10), 1.0)
