"""Issue 10 item 1: one validated weights value, exact integers on every backend and reduction.

Every case of the issue's "exact on every path" list is a test here; each runs once per backend
(the ``backend`` fixture) against the oracle, which computes integer distances with int64 or
Python integers (never float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import as_numpy, backend_codes, random_bits, rtol_float32_sum, rtol_float64_sum, seed_of

import vqgeom
from vqgeom._validate import Weights, make_weights
from vqgeom.codes import Codes
from vqgeom.kernels import reference


def _codes(seed, n, sizes):
    bits = random_bits(seed, n, sizes, p=0.5)
    return bits, Codes.from_bits(bits, sizes)


def _onehot_bits(seed, n, groups):
    """Codes of max-type layers: each group of ``k`` units is one-hot (its argmax), so two
    codes differ in 0 or 2 bits per group and the layer's popcount is even."""
    rng = np.random.default_rng(seed)
    cols = []
    for k in groups:
        hot = rng.integers(0, k, size=n)
        cols.append(np.eye(k, dtype=bool)[hot])
    return np.concatenate(cols, axis=1)


# -- the cases ------------------------------------------------------------------------------
def test_weights_2_pow_50_plus_1_exact(backend):
    # Was: 192 of 400 entries wrong on the CPU (float64 accumulation), the oracle wrong alike.
    sizes = [33, 7]
    bits, codes = _codes(seed_of("2**50+1"), 20, sizes)
    w = [2**50 + 1, 1]
    D = vqgeom.pairwise_distances(backend_codes(codes, backend), weights=w, backend=backend)
    per = reference.layer_hamming(bits, bits, sizes)
    exact = [[int(per[0, i, j]) * (2**50 + 1) + int(per[1, i, j]) for j in range(20)] for i in range(20)]
    np.testing.assert_array_equal(as_numpy(D).astype(object), np.array(exact, dtype=object))
    np.testing.assert_array_equal(reference.hamming(bits, bits, sizes, w), np.array(exact, dtype=object))


def test_weights_2_pow_63_minus_1(backend):
    # Was: OverflowError from a cast. numpy results hold up to uint64; torch results int64.
    sizes = [1, 1]
    bits = np.array([[0, 0], [1, 1], [1, 0]], dtype=bool)
    codes = Codes.from_bits(bits, sizes)
    w = [2**63 - 1, 1]
    want = np.array(reference.hamming(bits, bits, sizes, w), dtype=object)
    assert want[0, 1] == 2**63
    if backend in ("numpy", "cpu"):
        D = vqgeom.pairwise_distances(codes, weights=w, backend=backend)
        assert D.dtype == np.uint64
        np.testing.assert_array_equal(D.astype(object), want)
    with pytest.raises(ValueError, match="weights") as err:
        vqgeom.pairwise_distances(codes.to(torch.zeros(1)) if backend != "cupy" else backend_codes(codes, backend),
                                  weights=w, backend=backend if backend != "cupy" else "cupy")
    if backend != "cupy":
        assert "int64" in str(err.value) or "9223372036854775807" in str(err.value)


def test_weights_past_uint64_raise_before_work():
    codes = Codes.from_bits(np.zeros((2, 3), dtype=bool), [3])
    with pytest.raises(ValueError, match="weights"):
        vqgeom.pairwise_distances(codes, weights=[2**63])  # 3 * 2**63 > uint64
    with pytest.raises(ValueError, match="weights"):
        vqgeom.knn(codes, k=1, weights=[2.0**70])


def test_knn_weights_2_pow_25(backend):
    # Was: knn(backend="triton") returned -2147483648 (int32 accumulation, no bound check).
    sizes = [40, 40]
    bits, codes = _codes(seed_of("knn 2**25"), 50, sizes)
    w = [2**25, 2**25]
    c = backend_codes(codes, backend)
    d, i = vqgeom.knn(c, k=4, weights=w, backend=backend)
    D = np.array(reference.hamming(bits, bits, sizes, w), dtype=np.float64)  # < 2**53: exact in float64
    np.fill_diagonal(D, np.inf)
    rd, ri = reference.knn(D, 4)
    np.testing.assert_array_equal(as_numpy(i), ri)
    np.testing.assert_array_equal(as_numpy(d), rd.astype(np.int64))
    assert as_numpy(d).min() >= 0


def test_pairwise_weights_2_pow_25(backend):
    # Was: the Triton pairwise refused these weights with a message about out_dtype.
    sizes = [40, 40]
    bits, codes = _codes(seed_of("pairwise 2**25"), 30, sizes)
    w = [2**25, 2**25]
    D = vqgeom.pairwise_distances(backend_codes(codes, backend), weights=w, backend=backend)
    np.testing.assert_array_equal(as_numpy(D), reference.hamming(bits, bits, sizes, w))


def test_heat_products_with_big_integer_weights(backend):
    # Integer sums past int32 must not wrap in the heat products either (Triton: float32 route).
    sizes = [20, 12]
    bits, codes = _codes(seed_of("heat big"), 24, sizes)
    w = [2**27, 2**26]
    s2 = 2.0**31
    emb = vqgeom.heat_embedding(backend_codes(codes, backend), s2, 2, weights=w, backend=backend)
    K = reference.heat_kernel(reference.hamming(bits, bits, sizes, w), s2)
    vals = np.sort(np.linalg.eigvalsh(K))[::-1][:2]
    np.testing.assert_allclose(emb.eigenvalues, vals, rtol=1e-4)  # float32 GPU products: Lanczos to ~1e-5
    cmp = vqgeom.compare([backend_codes(codes, backend), backend_codes(codes.layers([1, 0]), backend)],
                         sigma2s=[s2], weights=[w, w[::-1]], backend=backend)
    np.testing.assert_allclose(cmp.similarity[0], np.ones((2, 2)), rtol=1e-5)


def test_integer_decided_by_value():
    sizes = [3, 4]
    for w in ([2, 3], [2.0, 3.0], np.array([2, 3], dtype=np.uint8), np.array([2, 3], dtype=np.float32),
              torch.tensor([2.0, 3.0]), np.array([2, 3], dtype=object)):
        wt = make_weights(w, sizes)
        assert wt.integer and wt.values == (2, 3) and wt.dtype == np.uint8 and wt.max_distance == 18
        assert wt.kernel.dtype == np.int64
    wt = make_weights([2.5, 3], sizes)
    assert not wt.integer and wt.dtype == np.float64 and wt.kernel.dtype == np.float64
    assert make_weights(None, sizes).kernel is None
    assert make_weights([1.0, 1], sizes).kernel is None


@pytest.mark.parametrize(
    "weights, exc",
    [([1, 1j], TypeError), ([[1], [2]], ValueError), (["a", "b"], TypeError), ([1, None], TypeError),
     ([True, 1], TypeError), ({1: 2}, TypeError), ("ab", TypeError), ([1, float("nan")], ValueError)],
)
def test_bad_weights_named(weights, exc):
    with pytest.raises(exc, match="weights"):
        make_weights(weights, [3, 4])


# -- halved layers (max-type units) -----------------------------------------------------------------
@pytest.mark.parametrize("weights", [None, [3, 5, 7], [1.5, 0.25, 2.0]])
def test_halved_layers(backend, weights):
    # A one-hot layer (Codes.groups[l] = 4: three max-type units of 4 candidates) is halved:
    # popcount / 2 per unit. The kernels see ordinary weights (2 w_l plain, w_l halved) and the
    # sums are divided by 2 exactly; the oracle counts differing argmaxes on its own.
    n = 26
    seed = seed_of("halved", weights)
    plain = random_bits(seed, n, [10, 6], p=0.5)
    hot = _onehot_bits(seed + 1, n, [4, 4, 4])
    bits = np.concatenate([plain[:, :10], hot, plain[:, 10:]], axis=1)
    sizes, groups = [10, 12, 6], [1, 4, 1]
    codes = Codes.from_bits(bits, sizes, groups=groups)
    c = backend_codes(codes, backend)
    assert c.groups == tuple(groups)
    wt = make_weights(weights, sizes, c.halved, c.array_type)
    want = reference.hamming(bits, bits, sizes, weights, groups)
    got = as_numpy(vqgeom.pairwise_distances(c, weights=weights, backend=backend))
    np.testing.assert_array_equal(as_numpy(vqgeom.pairwise_distances(c, weights=wt, backend=backend)), got)
    if wt.integer:
        assert wt.divisor == 2 and got.dtype.kind in "iu"
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol_float64_sum(3))
    per = as_numpy(vqgeom.pairwise_distances(c, per_layer=True, backend=backend))
    np.testing.assert_array_equal(per, reference.layer_hamming(bits, bits, sizes, groups))
    # k-NN ranks the kernel sums and divides
    d, i = vqgeom.knn(c, k=3, weights=weights, backend=backend)
    Df = np.array(want, dtype=np.float64)  # a copy: want is used again below
    np.fill_diagonal(Df, np.inf)
    rd, ri = reference.knn(Df, 3)
    np.testing.assert_allclose(as_numpy(d), rd, rtol=rtol_float32_sum(3))  # float32 keys on triton (real weights)
    if wt.integer:
        np.testing.assert_array_equal(as_numpy(i), ri)
    # heat products use the divided distances
    s2 = 6.0
    emb = vqgeom.heat_embedding(c, s2, 2, weights=weights, backend=backend)
    K = reference.heat_kernel(want, s2)
    np.testing.assert_allclose(emb.eigenvalues, np.sort(np.linalg.eigvalsh(K))[::-1][:2], rtol=1e-4)
    cmp = vqgeom.compare([c, c.layers([0, 2])], sigma2s=[s2, 40.0], weights=[weights, None], backend=backend,
                         squared=True)
    pb = np.concatenate([bits[:, :10], bits[:, 22:]], axis=1)  # the plain layers only
    Kb = reference.hamming(pb, pb, [10, 6])
    want_cos = [reference.cosine_similarity(reference.heat_kernel(want, s, True), reference.heat_kernel(Kb, s, True))
                for s in (s2, 40.0)]
    np.testing.assert_allclose(cmp.similarity[:, 0, 1], want_cos, rtol=1e-5)


def test_halved_bound_and_dtype():
    wt = make_weights([1, 1], [8, 4], [False, True])
    assert wt.kernel.tolist() == [2, 1] and wt.divisor == 2 and wt.max_distance == 10 and wt.dtype == np.uint8
    wt = make_weights([0.5, 3.0], [8, 4], [True, False])
    assert wt.kernel.tolist() == [0.25, 3.0] and wt.divisor == 1
    with pytest.raises(ValueError, match="halved"):
        make_weights(None, [8, 4], [True])
    with pytest.raises(ValueError, match="halved"):
        make_weights(None, [8, 4], [1, 0])
    assert isinstance(make_weights(None, [1]), Weights)


def test_reference_is_exact_for_python_integers():
    bits = np.array([[0, 1], [1, 0]], dtype=bool)
    got = reference.hamming(bits, bits, [1, 1], [2**80, 3])
    assert got[0, 1] == 2**80 + 3 and got.dtype == object


def test_random_layouts_largest_exact_integer_weights(backend):
    # Random layouts, the largest integer weights whose sums still fit the result type.
    for t in range(3):
        rng = np.random.default_rng(seed_of("largest", t))
        sizes = [int(b) for b in rng.integers(1, 70, size=int(rng.integers(1, 4)))]
        bits, codes = _codes(seed_of("largest bits", t), 9, sizes)
        c = backend_codes(codes, backend)
        limit = 2**63 - 1 if c.array_type == "torch" else 2**64 - 1
        if backend == "cupy":
            limit = 2**53
        w = [limit // (len(sizes) * b) for b in sizes]
        D = vqgeom.pairwise_distances(c, weights=w, backend=backend)
        np.testing.assert_array_equal(as_numpy(D).astype(object), np.asarray(reference.hamming(bits, bits, sizes, w), dtype=object))
