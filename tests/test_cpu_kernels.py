"""The CPU distance kernels (popcount and int8) against the oracle (issue 14 item 1).

Every code length from 1 to 2048 bits, ragged layer sizes, weighted (integer, large integer,
real) and unweighted, per-layer, cross and symmetric, one row, no rows, 1 and 2 threads.
Integer results are compared exactly. Real weights: the popcount kernel adds ``w_l * h_l``
in float64 in layer order starting from the first term, the same operations as the oracle
(0.0 + w_0 h_0 == w_0 h_0), so the results are compared bit for bit (tolerance 0); the int8
path sums the same terms in the same order too.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqgeom.codes import pack_bits
from vqgeom.distances import distance_dtype
from vqgeom.kernels import cpu, reference

FAST = settings(max_examples=30, deadline=None)
METHODS = ("popcount", "int8")


def _bits(seed: int, n: int, b: int, p: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).random((n, b)) < p


def _expected(bx, by, sizes, weights):
    """Exact oracle values as Python integers (object array) for integer weights, else the
    oracle's float64 sum."""
    per = reference.layer_hamming(bx, by, sizes)  # int64, unit by unit
    if weights is not None and np.asarray(weights).dtype.kind == "f":
        return reference.hamming(bx, by, sizes, weights)
    w = [1] * len(sizes) if weights is None else [int(v) for v in weights]
    out = np.zeros(per.shape[1:], dtype=object)
    for l, wl in enumerate(w):
        out = out + wl * per[l].astype(object)
    return out


def _out_dtype(sizes, weights):
    if weights is None:
        return distance_dtype(float(sum(sizes)), True)
    integer = np.asarray(weights).dtype.kind in "iu"
    total = sum(int(w) * b for w, b in zip(weights, sizes)) if integer else float(np.dot(weights, sizes))
    return distance_dtype(float(total), integer)


def _check(got, expected):
    if got.dtype.kind in "iu":
        assert got.dtype.kind == "u" or got.dtype.kind == "i"
        np.testing.assert_array_equal(got.astype(object), expected)
    else:
        np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float64))


def test_every_code_length_1_to_2048():
    # One bit matrix of 2048 units; length L takes its first L units. The oracle's per-unit
    # mismatches, summed over the first L units, are the expected distances for length L.
    n, m = 9, 5  # 9 rows: two full 4-row blocks and a partial one
    bx, by = _bits(zlib.crc32(b"x2048"), n, 2048), _bits(zlib.crc32(b"y2048"), m, 2048)
    cum_xy = np.cumsum(reference.layer_hamming(bx, by, [1] * 2048), axis=0)
    cum_xx = np.cumsum(reference.layer_hamming(bx, bx, [1] * 2048), axis=0)
    for L in range(1, 2049):
        wx, wy = pack_bits(bx[:, :L], [L]), pack_bits(by[:, :L], [L])
        dt = distance_dtype(float(L), True)
        threads = 1 + L % 2
        got = cpu.pairwise_hamming(wx, wy, [L], None, dt, method="popcount", threads=threads)
        assert got.dtype == dt and got.shape == (n, m)
        if not np.array_equal(got, cum_xy[L - 1]):
            raise AssertionError(f"cross distances wrong at L={L}")
        got = cpu.pairwise_hamming(wx, None, [L], None, dt, method="popcount", threads=threads)
        if not np.array_equal(got, cum_xx[L - 1]):
            raise AssertionError(f"symmetric distances wrong at L={L}")


@pytest.mark.parametrize("method", METHODS)
def test_word_counts_and_residues_two_layers(method):
    # Two layers, the first of every length mod 64 up to 3 words past 32, the second 1 or 64
    # units: the second layer starts on a fresh word whatever the first one's padding.
    for b0 in list(range(1, 70)) + [127, 128, 129, 255, 256, 257, 1000]:
        for b1 in (1, 64):
            sizes = [b0, b1]
            seed = zlib.crc32(f"{b0},{b1}".encode())
            bx, by = _bits(seed, 6, b0 + b1), _bits(seed + 1, 3, b0 + b1)
            wx, wy = pack_bits(bx, sizes), pack_bits(by, sizes)
            for weights in (None, np.array([3, 1]), np.array([0.7, 2.5])):
                got = cpu.pairwise_hamming(wx, wy, sizes, weights, _out_dtype(sizes, weights), method=method)
                _check(got, _expected(bx, by, sizes, weights))
            got = cpu.pairwise_hamming(wx, wy, sizes, None, np.dtype(np.uint16), per_layer=True, method=method)
            np.testing.assert_array_equal(got, reference.layer_hamming(bx, by, sizes))


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=6),
    n=st.integers(0, 13),
    m=st.integers(0, 13),
    wkind=st.sampled_from(["none", "int", "bigint", "real"]),
    symmetric=st.booleans(),
    threads=st.sampled_from([1, 2]),
    method=st.sampled_from(METHODS),
)
def test_ragged_layers_match_oracle(seed, sizes, n, m, wkind, symmetric, threads, method):
    rng = np.random.default_rng(seed)
    bx = _bits(seed, n, sum(sizes), p=float(rng.choice([0.05, 0.5, 0.95])))
    by = bx if symmetric else _bits(seed + 1, m, sum(sizes))
    weights = {
        "none": None,
        "int": rng.integers(1, 9, size=len(sizes)),
        "bigint": rng.integers(100, 100_000, size=len(sizes)),
        "real": rng.uniform(0.1, 3.0, size=len(sizes)),
    }[wkind]
    wx = pack_bits(bx, sizes)
    wy = None if symmetric else pack_bits(by, sizes)
    dt = _out_dtype(sizes, weights)
    got = cpu.pairwise_hamming(wx, wy, sizes, weights, dt, method=method, threads=threads)
    assert got.shape == (bx.shape[0], by.shape[0]) and got.dtype == dt
    _check(got, _expected(bx, by, sizes, weights))
    per = cpu.pairwise_hamming(wx, wy, sizes, None, np.dtype(np.uint8), per_layer=True, method=method, threads=threads)
    assert per.shape == (len(sizes), bx.shape[0], by.shape[0])
    np.testing.assert_array_equal(per, reference.layer_hamming(bx, by, sizes))


@pytest.mark.parametrize("dt", ["uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float64"])
def test_every_result_dtype(dt):
    # torch's signed result dtypes are written through an unsigned view; all values fit.
    sizes = [100, 155]
    bx, by = _bits(1, 7, 255), _bits(2, 4, 255)
    got = cpu.pairwise_hamming(pack_bits(bx, sizes), pack_bits(by, sizes), sizes, None, np.dtype(dt), method="popcount")
    assert got.dtype == np.dtype(dt)
    np.testing.assert_array_equal(got, reference.hamming(bx, by, sizes).astype(dt))


def test_integer_weights_past_2_63_are_exact():
    # sum_l w_l B_l between 2**63 and 2**64: a uint64 result. (2**53 - 1) * h_0 needs up to
    # 58 bits, so a float64 accumulation would round; 3 * 2**62 passes int64's range.
    # (Both kernels: the int8 path's per-layer uint64 accumulator too.)
    sizes = [31, 3]
    w_int = [2**53 - 1, 2**62]
    assert 2**63 < sum(a * b for a, b in zip(w_int, sizes)) < 2**64
    w = np.array(w_int, dtype=np.uint64)
    bx, by = _bits(3, 6, 34), _bits(4, 5, 34)
    per = reference.layer_hamming(bx, by, sizes)
    expected = sum(w_int[l] * per[l].astype(object) for l in range(2))
    assert int(expected.max()) > 2**63
    for method in METHODS:
        got = cpu.pairwise_hamming(pack_bits(bx, sizes), pack_bits(by, sizes), sizes, w, np.dtype(np.uint64), method=method)
        np.testing.assert_array_equal(got.astype(object), expected)


def test_one_row_and_no_rows():
    sizes = [40, 3]
    bx = _bits(5, 1, 43)
    wx = pack_bits(bx, sizes)
    for method in METHODS:
        got = cpu.pairwise_hamming(wx, None, sizes, None, np.dtype(np.uint8), method=method)
        np.testing.assert_array_equal(got, np.zeros((1, 1)))
        empty = np.zeros((0, wx.shape[1]), dtype=np.uint32)
        assert cpu.pairwise_hamming(empty, wx, sizes, None, np.dtype(np.uint8), method=method).shape == (0, 1)
        assert cpu.pairwise_hamming(wx, empty, sizes, None, np.dtype(np.uint8), method=method).shape == (1, 0)
        assert cpu.pairwise_hamming(empty, None, sizes, None, np.dtype(np.uint8), per_layer=True, method=method).shape == (2, 0, 0)


def test_kernel_choice_and_fallback(monkeypatch):
    bx = _bits(6, 5, 70)
    wx = pack_bits(bx, [70])
    expected = reference.hamming(bx, bx, [70])
    monkeypatch.setattr(cpu, "_choice", {})
    monkeypatch.setenv("VQGEOM_CPU_KERNEL", "int8")
    assert cpu.kernel_choice() == "int8"
    monkeypatch.setattr(cpu, "_choice", {})
    monkeypatch.setenv("VQGEOM_CPU_KERNEL", "gpu")
    with pytest.raises(ValueError, match="VQGEOM_CPU_KERNEL"):
        cpu.kernel_choice()
    monkeypatch.delenv("VQGEOM_CPU_KERNEL")
    monkeypatch.setattr(cpu, "_choice", {})
    # numba unavailable: the int8 GEMM answers, exactly
    monkeypatch.setattr(cpu, "_popcount_module", lambda: None)
    assert cpu.kernel_choice() == "int8"
    np.testing.assert_array_equal(cpu.pairwise_hamming(wx, None, [70], None, np.dtype(np.uint8)), expected)
    np.testing.assert_array_equal(cpu.pairwise_hamming(wx, None, [70], None, np.dtype(np.uint8), method="popcount"), expected)
    with pytest.raises(ValueError, match="method"):
        cpu.pairwise_hamming(wx, None, [70], None, np.dtype(np.uint8), method="blas")
    with pytest.raises(ValueError, match="threads"):
        cpu.pairwise_hamming(wx, None, [70], None, np.dtype(np.uint8), method="popcount", threads=0)


def test_measured_choice_picks_a_kernel(monkeypatch):
    # The first-use measurement used on CPUs without a vector popcount.
    monkeypatch.setattr(cpu, "_choice", {})
    monkeypatch.delenv("VQGEOM_CPU_KERNEL", raising=False)
    monkeypatch.setattr(cpu, "cpu_features", lambda: ["avx2", "popcnt"])
    assert cpu.kernel_choice() in METHODS
