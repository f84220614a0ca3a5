"""mds from codes (no N x N matrix) and from a dense kernel against reference.mds_dense (issue 2 item 6).

Tolerances. B = (I - J/N) K (I - J/N) is computed in float64 by three different routes (dense
eigh here and in the reference, a B x B Gram matrix from codes), so each eigenpair is perturbed by
a backward error ||E|| ~ N * eps * ||B||. Weyl: eigenvalues move by at most ||E||, hence
atol = 1e-10 * |lambda_0| for N <= 60. Davis-Kahan: a unit eigenvector moves by at most
||E|| / gap; the tests only compare eigenvectors whose eigenvalue is separated from its neighbours
by gap >= 1e-4 * |lambda_0|, so they move by <= ~1e-10 and atol = 1e-8 is safe.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import vqgeom
from vqgeom.codes import Codes
from vqgeom.kernels import reference

FAST = settings(max_examples=25, deadline=None)
GAP = 1e-4


def assert_matches_reference(result, K, k):
    ref_vals, ref_vecs = reference.mds_dense(K, k)
    lam0 = abs(ref_vals[0])
    np.testing.assert_allclose(result.raw_eigenvalues, ref_vals, rtol=0, atol=1e-10 * lam0)
    np.testing.assert_allclose(result.eigenvalues, ref_vals / ref_vals[0], rtol=0, atol=1e-9)
    vecs = np.asarray(result.eigenvectors)
    # The documented sign convention: each column's largest-magnitude entry is positive. Where two
    # entries tie in magnitude the choice is arbitrary, so align signs before comparing values.
    cols = np.arange(vecs.shape[1])
    assert (vecs[np.argmax(np.abs(vecs), axis=0), cols] > 0).all()
    signs = np.sign(np.sum(vecs * ref_vecs, axis=0))
    np.testing.assert_allclose(vecs * signs, ref_vecs, rtol=0, atol=1e-8)
    emb = vecs * np.sqrt(np.maximum(-np.asarray(result.raw_eigenvalues) / 2, 0))
    np.testing.assert_allclose(result.embedding, emb, rtol=0, atol=1e-12 * np.sqrt(lam0))


def well_separated(K, k):
    vals = np.sort(np.abs(reference.mds_dense(K, K.shape[0])[0]))[::-1]
    vals = np.append(vals, 0.0)
    gaps = vals[:k] - vals[1 : k + 1]
    return vals[0] > 0 and gaps.min() > GAP * vals[0]


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 70), min_size=1, max_size=4),
    n=st.integers(8, 60),
    k=st.integers(1, 4),
    wkind=st.sampled_from(["none", "int", "real"]),
)
def test_mds_codes_and_dense_match_reference(make_bits, seed, sizes, n, k, wkind):
    assume(k <= min(n, sum(sizes)))
    bits = make_bits(seed, n, sizes)
    rng = np.random.default_rng(seed)
    w = {"none": None, "int": rng.integers(1, 4, len(sizes)), "real": rng.uniform(0.2, 3.0, len(sizes))}[wkind]
    K = reference.hamming(bits, bits, sizes, w)
    assume(well_separated(K, k))
    codes = Codes.from_bits(bits, sizes)
    assert_matches_reference(vqgeom.mds(codes, k, weights=w), K, k)
    assert_matches_reference(vqgeom.mds(vqgeom.pairwise_distances(codes, weights=w), k), K, k)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    n=st.integers(2, 30),
    wkind=st.sampled_from(["none", "real"]),
)
def test_full_embedding_reproduces_the_kernel(make_bits, seed, sizes, n, wkind):
    # K is a matrix of squared Euclidean distances, so all classical MDS coordinates together
    # reproduce it: ||e_i - e_j||^2 = K_ij. Independent of eigenvalue multiplicities.
    bits = make_bits(seed, n, sizes)
    w = None if wkind == "none" else np.random.default_rng(seed).uniform(0.2, 3.0, len(sizes))
    K = reference.hamming(bits, bits, sizes, w)
    assume(K.max() > 0)
    res = vqgeom.mds(Codes.from_bits(bits, sizes), min(n, sum(sizes)), weights=w)
    E = np.asarray(res.embedding)
    D2 = ((E[:, None, :] - E[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(D2, K, rtol=0, atol=1e-9 * K.max())
    assert res.eigenvalues[0] == 1.0 and (np.diff(res.eigenvalues) <= 1e-12).all()
    assert (res.eigenvalues >= -1e-12).all() and (np.asarray(res.raw_eigenvalues) <= 1e-9 * K.max()).all()


def test_large_dense_route_matches_codes(make_bits):
    # N > 2000 takes the sparse eigensolver on the dense matrix; compare it with the codes route.
    sizes = [12, 20]
    bits = make_bits(7, 2100, sizes, p=0.3)
    codes = Codes.from_bits(bits, sizes)
    k = 3
    a = vqgeom.mds(codes, k)
    b = vqgeom.mds(vqgeom.pairwise_distances(codes), k)
    lam0 = abs(a.raw_eigenvalues[0])
    # eigsh converges to ~1e-10 relative here; the eigenvalues of these codes are well separated.
    sep = np.abs(np.diff(np.append(a.raw_eigenvalues, 0.0)))
    assert sep.min() > 1e-3 * lam0
    np.testing.assert_allclose(b.raw_eigenvalues, a.raw_eigenvalues, rtol=0, atol=1e-8 * lam0)
    signs = np.sign(np.sum(a.eigenvectors * b.eigenvectors, axis=0))
    np.testing.assert_allclose(b.eigenvectors * signs, a.eigenvectors, rtol=0, atol=1e-6)


def test_torch_codes_give_torch_results(make_bits):
    sizes = [9, 33]
    bits = make_bits(0, 15, sizes)
    res_np = vqgeom.mds(Codes.from_bits(bits, sizes), 2)
    res_t = vqgeom.mds(Codes.from_bits(torch.from_numpy(bits), sizes), 2)
    for name in ("eigenvalues", "raw_eigenvalues", "eigenvectors", "embedding"):
        got = getattr(res_t, name)
        assert isinstance(got, torch.Tensor) and got.device.type == "cpu", name
        np.testing.assert_array_equal(got.numpy(), getattr(res_np, name))


def test_mds_errors(make_bits):
    codes = Codes.from_bits(make_bits(0, 5, [3]), [3])
    with pytest.raises(ValueError, match="n_components"):
        vqgeom.mds(codes, 0)
    with pytest.raises(TypeError, match="n_components"):
        vqgeom.mds(codes, 1.5)
    with pytest.raises(ValueError, match="n_components"):
        vqgeom.mds(codes, 4)  # B = 3
    with pytest.raises(ValueError, match="n_components"):
        vqgeom.mds(np.ones((3, 3)) - np.eye(3), 4)
    with pytest.raises(ValueError, match="K_or_codes"):
        vqgeom.mds(np.ones((3, 4)), 1)
    with pytest.raises(ValueError, match="K_or_codes"):
        vqgeom.mds(np.array([[0.0, 1.0], [2.0, 0.0]]), 1)
    with pytest.raises(ValueError, match="K_or_codes"):
        vqgeom.mds(np.array([[0.0, np.nan], [np.nan, 0.0]]), 1)
    with pytest.raises(ValueError, match="weights"):
        vqgeom.mds(np.ones((3, 3)) - np.eye(3), 1, weights=[1.0])
    with pytest.raises(ValueError, match="weights"):
        vqgeom.mds(codes, 1, weights=[1.0, 2.0])
    same = Codes.from_bits(np.ones((4, 3), dtype=bool), [3])
    with pytest.raises(ValueError, match="K_or_codes"):
        vqgeom.mds(same, 1)
    with pytest.raises(ValueError, match="K_or_codes"):
        vqgeom.mds(np.zeros((4, 4)), 1)
