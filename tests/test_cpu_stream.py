"""The fused CPU k-NN and heat-kernel products (vqgeom._cpu_stream, kernels/cpu_stream.py)
against the oracle vqgeom.kernels.reference.

Blocks are shrunk (a few rows and columns) so that every test crosses many slabs, column
chunks, partial 32-column groups and thread bands; ties are frequent (biased bits and
duplicated rows). Integer distances and all indices are compared exactly. Heat products:
float64 sums of N positive terms, reassociated, differ from the oracle's order by a few ulp
per term, so 1e-12 relative to the largest entry is a bound with three orders of margin
(N <= 300 here, N * 2**-52 ~ 7e-14) and five below any real error (a wrong or missing term
changes a row sum by at least exp(-max d / sigma2) * |v| ~ 1e-3 here).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

import vqgeom
from vqgeom import _cpu_stream
from vqgeom.codes import Codes
from vqgeom.distances import codes_weights
from vqgeom.kernels import reference

SIZES = (40, 7, 33)
RTOL = 1e-12  # see the module docstring


def seed(name: str) -> int:
    return zlib.crc32(name.encode())


def random_codes(name: str, n: int, sizes=SIZES, p: float = 0.5) -> Codes:
    rng = np.random.default_rng(seed(name))
    bits = rng.random((n, sum(sizes))) < p
    if n > 10:
        bits[7] = bits[3]  # duplicate rows: equal distances, the tie rule decides
        bits[9] = bits[3]
    return Codes.from_bits(bits, sizes)


@pytest.fixture
def small_blocks(monkeypatch):
    """Odd, small blocks: many slabs, chunks and partial 32-column groups per call."""
    monkeypatch.setattr(_cpu_stream, "SLAB_ROWS", 9)
    monkeypatch.setattr(_cpu_stream, "CHUNK_COLS", 45)


def oracle_knn(D: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k smallest (distance, index) pairs in lexicographic order, skipping j == i."""
    n, m = D.shape
    out_d, out_i = [], []
    for r in range(n):
        cols = [j for j in range(m) if not (exclude_self and j == r)]
        cols.sort(key=lambda j: (D[r, j], j))
        out_i.append(cols[:k])
        out_d.append([D[r, j] for j in cols[:k]])
    return np.array(out_d), np.array(out_i, dtype=np.int64)


@pytest.mark.parametrize("weights", [None, [1, 3, 2], [0.5, 1.5, 1.0]])
@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_knn_rows_equal_oracle_with_ties(small_blocks, weights, exclude_self, threads):
    c = random_codes("stream-knn", 157, p=0.9)  # p = 0.9: many equal distances
    wt = codes_weights(c, weights)
    D = reference.hamming(c.unpack(), c.unpack(), c.layer_sizes, weights)
    want_d, want_i = oracle_knn(D, 12, exclude_self)
    d, i, fill = _cpu_stream.knn_rows(c.words, c.words, c.layer_sizes, wt, 12, exclude_self=exclude_self,
                                      threads=threads)
    assert (fill == 12).all()
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(d, want_d)  # real weights: the kernel sums layers in the oracle's order


def test_knn_public_cross_sets_offsets_and_torch(small_blocks):
    q, c = random_codes("stream-q", 61, p=0.8), random_codes("stream-c", 200, p=0.8)
    D = reference.hamming(q.unpack(), c.unpack(), q.layer_sizes, [2, 1, 5])
    want_d, want_i = oracle_knn(D, 33, False)
    d, i = vqgeom.knn(q, c, k=33, weights=[2, 1, 5])
    assert d.dtype == vqgeom.pairwise_distances(q, c, weights=[2, 1, 5]).dtype
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(d, want_d)
    td, ti = vqgeom.knn(Codes(torch.from_numpy(q.words.view(np.int32)), q.layer_sizes),
                        Codes(torch.from_numpy(c.words.view(np.int32)), c.layer_sizes), k=33, weights=[2, 1, 5])
    assert isinstance(td, torch.Tensor) and isinstance(ti, torch.Tensor)
    np.testing.assert_array_equal(ti.numpy(), want_i)
    np.testing.assert_array_equal(td.numpy(), want_d)
    # a block of a larger problem: rows 50.. against columns 20.., self pairs are those with equal global index
    wt = codes_weights(c, None)
    D = reference.hamming(c.unpack()[50:120], c.unpack()[20:], c.layer_sizes, None)
    d, i, fill = _cpu_stream.knn_rows(c.words[50:120], c.words[20:], c.layer_sizes, wt, 7, exclude_self=True,
                                      row0=50, col0=20)
    for r in range(70):
        D[r, 50 + r - 20] = 10**9  # the oracle skips self by giving it the largest distance
    want_d, want_i = oracle_knn(D, 7, False)
    np.testing.assert_array_equal(i, want_i + 20)
    np.testing.assert_array_equal(d, want_d)


def test_topk_kernel_keeps_entries_equal_to_the_dtype_maximum():
    from vqgeom.kernels.cpu_stream import topk_update

    D = np.full((3, 70), 255, dtype=np.uint8)  # 255: the largest uint8, a real distance here
    D[0, [5, 40, 69]] = [3, 1, 3]
    D[2, 66] = 0
    bd, bi, fill = np.zeros((3, 5), np.uint8), np.full((3, 5), -1, np.int64), np.zeros(3, np.int64)
    topk_update(D, 100, -(1 << 62), bd, bi, fill)
    want_d, want_i = oracle_knn(D, 5, False)
    np.testing.assert_array_equal(bi, want_i + 100)
    np.testing.assert_array_equal(bd, want_d)
    np.testing.assert_array_equal(fill, [5, 5, 5])
    # fewer eligible columns than k: the fill says how many are real
    bd, bi, fill = np.zeros((2, 4), np.uint8), np.full((2, 4), -1, np.int64), np.zeros(2, np.int64)
    topk_update(D[:2, :3], 0, 0, bd, bi, fill)  # own0 = 0: row r skips column r
    np.testing.assert_array_equal(fill, [2, 2])
    np.testing.assert_array_equal(bi[:, :2], [[1, 2], [0, 2]])


@pytest.mark.parametrize("weights,squared,s2", [(None, False, 9.0), (None, True, 150.0), ([1, 3, 2], False, 30.0),
                                                ([0.5, 1.5, 1.0], True, 80.0), ([5000, 1, 1], False, 4e4)])
@pytest.mark.parametrize("threads", [1, 2])
def test_heat_rows_equal_oracle(small_blocks, weights, squared, s2, threads):
    # [5000, 1, 1]: largest distance 200,040 > TABLE_MAX, so exp per pair on integer distances
    c = random_codes("stream-heat", 203)
    wt = codes_weights(c, weights)
    assert (_cpu_stream.heat_table(wt, s2, squared) is None) == (weights is not None and (
        any(isinstance(w, float) for w in weights) or weights[0] == 5000))
    V = np.random.default_rng(seed("stream-heat-v")).standard_normal((c.n, 3))
    D = reference.hamming(c.unpack(), c.unpack(), c.layer_sizes, weights).astype(np.float64)
    want = reference.heat_kernel(D, s2, squared) @ V
    got = _cpu_stream.heat_rows(c.words, c.words, c.layer_sizes, wt, V, s2, squared=squared, threads=threads)
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * np.abs(want).max())
    pub = vqgeom.heat_matmat(c, V[:, 1], s2, weights=weights, squared=squared)  # the public mat-vec
    np.testing.assert_allclose(pub, want[:, 1], rtol=0, atol=RTOL * np.abs(want).max())


def test_thread_setting_is_honoured(monkeypatch):
    c = random_codes("stream-threads", 300)
    wt = codes_weights(c, None)
    seen = []
    real = _cpu_stream._bands
    monkeypatch.setattr(_cpu_stream, "_bands", lambda n, t: seen.append(t) or real(n, t))
    monkeypatch.setattr(_cpu_stream, "SLAB_ROWS", 16)
    before = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            vqgeom.knn(c, k=4)
            vqgeom.heat_matmat(c, np.ones(c.n), 10.0)
    finally:
        torch.set_num_threads(before)
    _cpu_stream.knn_rows(c.words, c.words, c.layer_sizes, wt, 4, threads=3)
    assert seen == [1, 1, 2, 2, 3]
    assert [b - a for a, b in real(300, 2)] == [160, 140]  # contiguous bands, whole slabs
    with pytest.raises(ValueError, match="threads"):
        _cpu_stream.knn_rows(c.words, c.words, c.layer_sizes, wt, 4, threads=0)


def test_pairwise_hamming_writes_into_out():
    from vqgeom.kernels import cpu

    c = random_codes("stream-out", 50)
    want = reference.hamming(c.unpack()[:20], c.unpack(), c.layer_sizes, [1, 2, 3])
    buf = np.full(20 * 50 + 7, 9999, dtype=np.uint16)
    out = buf[: 20 * 50].reshape(20, 50)
    for method in cpu.KERNELS:
        got = cpu.pairwise_hamming(c.words[:20], c.words, c.layer_sizes, np.array([1, 2, 3]), np.uint16, out=out,
                                   method=method)
        assert np.shares_memory(got, buf)
        np.testing.assert_array_equal(out, want)
        out[...] = 0
    assert (buf[20 * 50 :] == 9999).all()
    with pytest.raises(ValueError, match="out: expected a C-contiguous \\(20, 50\\)"):
        cpu.pairwise_hamming(c.words[:20], c.words, c.layer_sizes, None, np.uint16, out=np.empty((50, 20), np.uint16))
    with pytest.raises(ValueError, match="out:"):
        cpu.pairwise_hamming(c.words[:20], c.words, c.layer_sizes, None, np.uint16, out=np.empty((20, 50), np.uint8))
