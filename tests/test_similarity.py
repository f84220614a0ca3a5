"""compare's four measures, per-network bandwidths and the joint-histogram route (issue 13 items 1-2).

Expected values come from dense numpy formulas written here: the full N x N distance
matrices from the reference oracle, heat kernels, the centring matrix H = I - 11^T/N,
np.corrcoef, np.median. Nothing is computed by the code under test.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import vqgeom
from vqgeom.codes import Codes
from vqgeom.kernels import reference

# Tolerance for a measure computed by streaming against the dense formula: both sides sum at
# most N^2 = 2116 float64 terms (relative error <= N^2 eps ~ 5e-13 of the summed magnitudes).
# Centring (CKA) and the Pearson correlation cancel the kernels' mean; in these tests the
# centred part is at least ~1e-3 of the raw sums (sigma2 <= 40 over distances of spread >= 1,
# so kernel values vary by >= 2.5%), so the error stays <= 5e-10 relative: 2e-9 with margin.
TOL = 2e-9


def seed(name: str) -> int:
    return zlib.crc32(name.encode())


# ------------------------------------------------------------------------------- dense formulas
def dense_D(bits, sizes, w=None):
    return reference.hamming(bits, bits, sizes, w).astype(np.float64)


def centred(K):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return H @ K @ H


def cka(K, L):
    Kc, Lc = centred(K), centred(L)
    return float(np.sum(Kc * Lc) / np.sqrt(np.sum(Kc * Kc) * np.sum(Lc * Lc)))


def dense_measure(measure, Da, Db, sa, sb, squared):
    if measure == "heat_cosine":
        Ka = np.exp(-(Da**2 if squared else Da) / sa)
        Kb = np.exp(-(Db**2 if squared else Db) / sb)
        return float(np.sum(Ka * Kb) / np.sqrt(np.sum(Ka * Ka) * np.sum(Kb * Kb)))
    if measure == "rbf_cka":
        return cka(np.exp(-(Da**2 if squared else Da) / sa), np.exp(-(Db**2 if squared else Db) / sb))
    if measure == "linear_cka":
        return cka(-Da, -Db)
    if measure == "mantel":
        off = ~np.eye(Da.shape[0], dtype=bool)
        return float(np.corrcoef(Da[off], Db[off])[0, 1])
    raise ValueError(measure)


def dense_median(D, squared):
    iu = np.triu_indices(D.shape[0], 1)
    return float(np.median(D[iu] ** 2 if squared else D[iu]))


def dense_all(Ds, bw, squared, measures):
    S, m = bw.shape
    out = {k: np.zeros((S, m, m)) for k in measures}
    for k in measures:
        for s in range(S):
            for a in range(m):
                for b in range(m):
                    out[k][s, a, b] = dense_measure(k, Ds[a], Ds[b], bw[s, a], bw[s, b], squared)
    return out


# Three networks as random codes that share structure (so the measures are informative):
# network b copies half of a's bits, network c is independent.
def related_bits(n, name):
    rng = np.random.default_rng(seed(name))
    a = rng.random((n, 40)) < 0.4
    b = np.concatenate([a[:, :20], rng.random((n, 13)) < 0.6], axis=1)
    c = rng.random((n, 9)) < 0.5
    return [(a, [25, 15]), (b, [20, 13]), (c, [9])]


ALL = ("heat_cosine", "rbf_cka", "linear_cka", "mantel")


@pytest.mark.parametrize("method", ["histogram", "direct"])
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("squared", [False, True])
def test_measures_match_dense(method, backend, squared):
    n = 46
    nets = related_bits(n, f"measures{squared}")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    Ds = [dense_D(b, s) for b, s in nets]
    s2 = [2.0, 11.0, 40.0] if not squared else [20.0, 150.0, 600.0]
    for block_rows in (1, 7, 64) if backend == "cpu" else (7,):  # 7 does not divide 46; 64 > N
        cmp = vqgeom.compare(codes, sigma2s=s2, measure="all", squared=squared, method=method, backend=backend,
                             block_rows=block_rows, names=["a", "b", "c"])
        assert cmp.route == method and cmp.measure == "heat_cosine"
        expected = dense_all(Ds, np.repeat(np.array(s2)[:, None], 3, axis=1), squared, ALL)
        for k in ALL:
            assert cmp[k].shape == (3, 3, 3)
            np.testing.assert_allclose(cmp[k], expected[k], rtol=TOL, atol=TOL, err_msg=k)
        np.testing.assert_array_equal(cmp.similarity, cmp["heat_cosine"])
        np.testing.assert_array_equal(cmp.sigma2s, s2)
    # informative: related networks are more alike than independent ones under every measure
    for k in ALL:
        assert expected[k][1, 0, 1] > expected[k][1, 0, 2] + 0.05, k
        assert expected[k][1, 0, 1] < 0.999, k


@pytest.mark.parametrize("method", ["histogram", "direct"])
@pytest.mark.parametrize("squared", [False, True])
def test_per_network_bandwidths_are_medians(method, squared):
    nets = related_bits(31, f"medians{squared}")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    Ds = [dense_D(b, s) for b, s in nets]
    med = np.array([[dense_median(D, squared) for D in Ds]])
    cmp = vqgeom.compare(codes, sigma2s="per_network", measure=["rbf_cka", "heat_cosine"], squared=squared,
                         method=method, block_rows=5)
    np.testing.assert_array_equal(cmp.bandwidths, med)  # exact: medians of integers (or half-integers)
    assert np.isnan(cmp.sigma2s).all() and cmp.measure == "rbf_cka"
    expected = dense_all(Ds, med, squared, ("rbf_cka", "heat_cosine"))
    for k in expected:
        np.testing.assert_allclose(cmp[k], expected[k], rtol=TOL, atol=TOL, err_msg=k)
    np.testing.assert_array_equal(vqgeom.median_sigma2(codes, squared=squared, block_rows=4), med[0])
    assert "sigma2 per network" in cmp.table(0)


def test_explicit_per_network_sigma2s():
    nets = related_bits(20, "explicit")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    Ds = [dense_D(b, s) for b, s in nets]
    bw = np.array([[1.0, 2.0, 3.0], [10.0, 5.0, 2.5]])
    for method in ("histogram", "direct"):
        cmp = vqgeom.compare(codes, sigma2s=bw, measure=("heat_cosine", "rbf_cka"), method=method)
        expected = dense_all(Ds, bw, False, ("heat_cosine", "rbf_cka"))
        for k in expected:
            np.testing.assert_allclose(cmp[k], expected[k], rtol=TOL, atol=TOL)
        np.testing.assert_array_equal(cmp.bandwidths, bw)


def duplicate_units(bits, sizes):
    """Each hyperplane twice (within its layer): every VQ distance doubles."""
    return np.repeat(bits, 2, axis=1), [2 * s for s in sizes]


@pytest.mark.parametrize("squared", [False, True])
def test_scale_free_measures_ignore_duplicated_hyperplanes(squared):
    nets = related_bits(41, f"dup{squared}")
    (a, sa), (b, sb) = nets[0], nets[1]
    b2, sb2 = duplicate_units(b, sb)
    np.testing.assert_array_equal(dense_D(b2, sb2), 2 * dense_D(b, sb))  # the premise
    ca, cb, cb2 = Codes.from_bits(a, sa), Codes.from_bits(b, sb), Codes.from_bits(b2, sb2)
    for method in ("histogram", "direct"):
        one = vqgeom.compare([ca, cb], sigma2s="per_network", measure="all", squared=squared, method=method)
        two = vqgeom.compare([ca, cb2], sigma2s="per_network", measure="all", squared=squared, method=method)
        for k in ALL:
            np.testing.assert_allclose(two[k], one[k], rtol=TOL, atol=TOL, err_msg=k)
        np.testing.assert_allclose(two.bandwidths[0, 1], one.bandwidths[0, 1] * (4 if squared else 2), rtol=0)
        # and a shared sigma2 is not scale-free: the test can tell the difference
        s1 = vqgeom.compare([ca, cb], sigma2s=150.0 if squared else 8.0, squared=squared, method=method).similarity[0, 0, 1]
        s2 = vqgeom.compare([ca, cb2], sigma2s=150.0 if squared else 8.0, squared=squared, method=method).similarity[0, 0, 1]
        assert abs(s1 - s2) > 0.02


def test_linear_cka_is_squared_distance_correlation_and_codes_cka():
    nets = related_bits(37, "dcor")
    (a, sa), (b, sb) = nets[0], nets[1]
    w = [3, 1]
    Da, Db = dense_D(a, sa, w), dense_D(b, sb)
    got = vqgeom.compare([Codes.from_bits(a, sa), Codes.from_bits(b, sb)], measure="linear_cka",
                         weights=[w, None]).similarity[0, 0, 1]

    # Szekely, Rizzo & Bakirov (2007): double-centred distance matrices, V-statistics.
    def dc(D):
        return D - D.mean(0)[None, :] - D.mean(1)[:, None] + D.mean()

    A, B = dc(Da), dc(Db)
    dcor2 = (A * B).mean() / np.sqrt((A * A).mean() * (B * B).mean())
    np.testing.assert_allclose(got, dcor2, rtol=TOL)

    # Linear CKA of the +-1 codes, each layer scaled by sqrt(w_l).
    def feats(bits, sizes, w):
        s = np.where(bits, 1.0, -1.0)
        scale = np.repeat(np.sqrt(np.asarray(w if w is not None else [1] * len(sizes), float)), sizes)
        s = s * scale
        return s - s.mean(0)

    X, Y = feats(a, sa, w), feats(b, sb, None)
    lin = np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
    np.testing.assert_allclose(got, lin, rtol=TOL)


def test_real_weights_direct_route_and_exact_medians():
    nets = related_bits(29, "real")
    w = [0.7, 1.3]
    codes = [Codes.from_bits(b, s) for b, s in nets]
    weights = [w, [0.25, 2.0], None]
    Ds = [dense_D(nets[0][0], nets[0][1], w), dense_D(nets[1][0], nets[1][1], [0.25, 2.0]), dense_D(*nets[2])]
    for squared in (False, True):
        cmp = vqgeom.compare(codes, sigma2s="per_network", measure="all", weights=weights, squared=squared,
                             block_rows=6)
        assert cmp.route == "direct"
        med = np.array([[dense_median(D, squared) for D in Ds]])
        np.testing.assert_allclose(cmp.bandwidths, med, rtol=1e-15)  # the same float64 distance values
        expected = dense_all(Ds, med, squared, ALL)
        for k in ALL:
            np.testing.assert_allclose(cmp[k], expected[k], rtol=TOL, atol=TOL, err_msg=k)
    with pytest.raises(ValueError, match="method"):
        vqgeom.compare(codes, weights=weights, method="histogram")
    # integer-valued float weights keep integer distances: histogram route
    assert vqgeom.compare(codes[:1], weights=[2.0, 1.0]).route == "histogram"


def test_joint_histogram_counts():
    n = 33
    nets = related_bits(n, "counts")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    Ds = [dense_D(b, s).astype(np.int64) for b, s in nets]
    h = vqgeom.joint_histogram(codes, names=["a", "b", "c"], block_rows=4)
    assert h.n == n and h.names == ["a", "b", "c"]
    for a in range(3):
        np.testing.assert_array_equal(h.marginals[a], np.bincount(Ds[a].ravel()))
        for b in range(a + 1, 3):
            J = np.zeros((Ds[a].max() + 1, Ds[b].max() + 1), np.int64)
            np.add.at(J, (Ds[a].ravel(), Ds[b].ravel()), 1)
            np.testing.assert_array_equal(h.joint[(a, b)], J)
        for b in range(a, 3):
            ra = np.stack([np.bincount(r, minlength=Ds[a].max() + 1) for r in Ds[a]])
            rb = np.stack([np.bincount(r, minlength=Ds[b].max() + 1) for r in Ds[b]])
            np.testing.assert_array_equal(h.row_products[(a, b)], ra.T @ rb)
        off = Ds[a][~np.eye(n, dtype=bool)]
        assert h.mean(a) == pytest.approx(off.mean(), rel=1e-15)
    # one pass, any number of sigma2: the same as computing each
    many = h.compare(np.logspace(0, 2, 9), "all")
    assert many.similarity.shape == (9, 3, 3)
    one = vqgeom.compare(codes, sigma2s=[np.logspace(0, 2, 9)[4]], measure="all", method="direct")
    for k in ALL:
        np.testing.assert_allclose(many[k][4], one[k][0], rtol=TOL, atol=TOL)
    with pytest.raises(ValueError, match="row_products"):
        vqgeom.joint_histogram(codes, row_products=False).compare(2.0, "rbf_cka")


def test_degenerate_network_gives_nan_with_warning():
    n = 12
    rng = np.random.default_rng(seed("degenerate"))
    const = Codes.from_bits(np.zeros((n, 5), bool), [5])
    other = Codes.from_bits(rng.random((n, 8)) < 0.5, [8])
    for method in ("histogram", "direct"):
        with pytest.warns(RuntimeWarning, match="constant"):
            cmp = vqgeom.compare([const, other], sigma2s=2.0, measure=["mantel", "linear_cka", "rbf_cka"],
                                 method=method, names=["const", "other"])
        for k in ("mantel", "linear_cka", "rbf_cka"):
            assert np.isnan(cmp[k][0, 0, 1]) and np.isnan(cmp[k][0, 0, 0])
            assert np.isfinite(cmp[k][0, 1, 1])
    with pytest.raises(ValueError, match="median"):
        vqgeom.compare([const, other], sigma2s="per_network")
    with pytest.raises(ValueError, match="2 inputs"):
        vqgeom.compare([other[:1]], sigma2s="per_network")


def test_compare_argument_errors():
    c = Codes.from_bits(np.random.default_rng(seed("err")).random((6, 4)) < 0.5, [4])
    with pytest.raises(ValueError, match="measure"):
        vqgeom.compare([c], measure="cosine")
    with pytest.raises(TypeError, match="measure"):
        vqgeom.compare([c], measure=[])
    with pytest.raises(ValueError, match="method"):
        vqgeom.compare([c], method="fast")
    with pytest.raises(ValueError, match="sigma2s"):
        vqgeom.compare([c], sigma2s="median")
    with pytest.raises(ValueError, match=r"sigma2s.*\(S, 2\)"):
        vqgeom.compare([c, c], sigma2s=np.ones((2, 3)))
    with pytest.raises(ValueError, match="sigma2s"):
        vqgeom.compare([c, c], sigma2s=np.array([[1.0, -1.0]]))
    with pytest.raises(TypeError, match="sigma2s"):
        vqgeom.compare([c], sigma2s=["a"])
    with pytest.raises(KeyError, match="mantel"):
        vqgeom.compare([c])["mantel"]
    with pytest.raises(ValueError, match="weights"):
        vqgeom.joint_histogram([c], weights=[0.5])


def test_sigma_free_measures_need_no_bandwidth():
    nets = related_bits(15, "free")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    Ds = [dense_D(b, s) for b, s in nets]
    cmp = vqgeom.compare(codes, sigma2s="per_network", measure="mantel")
    assert np.isnan(cmp.bandwidths).all()
    np.testing.assert_allclose(cmp.similarity[0], dense_all(Ds, np.ones((1, 3)), False, ("mantel",))["mantel"][0],
                               rtol=TOL, atol=TOL)
    assert cmp.table().startswith("mantel")


def test_torch_code_of_the_cuda_route_on_the_cpu(monkeypatch):
    # The direct route runs numpy on the host and torch on CUDA: run its torch branch here.
    from vqgeom import similarity

    monkeypatch.setattr(similarity, "_HOST_NUMPY", False)
    nets = related_bits(21, "torchbranch")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    Ds = [dense_D(b, s) for b, s in nets]
    cmp = vqgeom.compare(codes, sigma2s=[1.5, 9.0], measure="all", method="direct", block_rows=8)
    expected = dense_all(Ds, np.repeat(np.array([[1.5], [9.0]]), 3, axis=1), False, ALL)
    for k in ALL:
        np.testing.assert_allclose(cmp[k], expected[k], rtol=TOL, atol=TOL, err_msg=k)


def test_median_of_an_even_count_averages_the_two_middle_values():
    # 4 points on a path 000-100-110-111: off-diagonal distances 1, 1, 1, 2, 2, 3.
    bits = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], bool)
    c = Codes.from_bits(bits, [3])
    D = dense_D(bits, [3])
    assert dense_median(D, False) == 1.5 and dense_median(D, True) == 2.5  # the premise, by np.median
    for squared, want in ((False, 1.5), (True, 2.5)):
        np.testing.assert_array_equal(vqgeom.median_sigma2([c], squared=squared), [want])
        np.testing.assert_array_equal(vqgeom.joint_histogram([c]).median(0, squared), want)
        # real weights: the binned two-pass route
        np.testing.assert_array_equal(vqgeom.median_sigma2([c], squared=squared, weights=[0.5]),
                                      [want / (4 if squared else 2)])


def test_torch_code_of_the_cuda_histogram_on_the_cpu(monkeypatch):
    from vqgeom import similarity

    nets = related_bits(26, "torchhist")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    want = vqgeom.joint_histogram(codes, block_rows=5)
    monkeypatch.setattr(similarity, "_HOST_NUMPY", False)
    got = vqgeom.joint_histogram(codes, block_rows=5)
    for a in range(3):
        np.testing.assert_array_equal(got.marginals[a], want.marginals[a])
    for k in want.joint:
        np.testing.assert_array_equal(got.joint[k], want.joint[k])
    for k in want.row_products:
        np.testing.assert_array_equal(got.row_products[k], want.row_products[k])


def test_torch_codes_give_the_numpy_results():
    import torch

    nets = related_bits(18, "torchcodes")
    codes = [Codes.from_bits(b, s) for b, s in nets]
    tcodes = [Codes.from_bits(torch.from_numpy(b), s) for b, s in nets]
    assert tcodes[0].array_type == "torch"
    for method in ("histogram", "direct"):
        want = vqgeom.compare(codes, sigma2s="per_network", measure="all", method=method)
        got = vqgeom.compare(tcodes, sigma2s="per_network", measure="all", method=method)
        np.testing.assert_array_equal(got.bandwidths, want.bandwidths)
        for k in ALL:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-14, atol=1e-14)  # same sums, same order


def test_histogram_route_refuses_huge_distance_ranges():
    c = Codes.from_bits(np.random.default_rng(seed("huge")).random((9, 6)) < 0.5, [3, 3])
    # integer weights, distances up to 3 * 2**40: a histogram would not fit; auto goes direct
    assert vqgeom.compare([c, c], weights=[2**40, 1]).route == "direct"
    with pytest.raises(ValueError, match="method='direct'"):
        vqgeom.compare([c, c], weights=[2**40, 1], method="histogram")
