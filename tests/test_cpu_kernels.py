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


# --- the popcount kernel's own paths: symmetric tiles, threads, non-temporal stores, AVX2 ---
# Each result is compared with the oracle; sizes cross the kernel's tile (R rows x PW
# columns) and block (IB = 64 rows, mirrored IB x IB tiles) edges.


def _popcount():
    from vqgeom.kernels import cpu_popcount

    return cpu_popcount


@pytest.fixture
def every_thread(monkeypatch):
    """Small problems get the threads they ask for (the kernel otherwise keeps work below
    MIN_WORK_PER_THREAD on one thread)."""
    monkeypatch.setattr(_popcount(), "MIN_WORK_PER_THREAD", 1)


@pytest.mark.parametrize("dt", ["uint8", "uint16", "uint32", "uint64", "float64"])
def test_symmetric_mirror_every_dtype_and_thread_count(dt, every_thread):
    # n = 200: blocks of 64, 64, 64, 8 rows; whole 64 x 64 tiles right of the diagonal are
    # transposed in registers (64 // itemsize rows per transpose), the ragged ones element by
    # element. 7 words, the mirror forced on and off; 200 units, so at most 200 differing bits
    # (uint8 holds them).
    cp = _popcount()
    sizes = [120, 80]
    n = 200
    bx = _bits(zlib.crc32(f"mirror{dt}".encode()), n, sum(sizes))
    wx = pack_bits(bx, sizes)
    offs = [0, 4, 7]
    assert wx.shape[1] == 7
    expected = reference.hamming(bx, bx, sizes)
    per = reference.layer_hamming(bx, bx, sizes)
    for sym in (True, False):
        for threads in (1, 2, 3):
            out = np.empty((1, n, n), dt)
            cp.pairwise(wx, None, offs, cp.MODE_TOTAL, out, threads=threads, symmetric=sym)
            np.testing.assert_array_equal(out[0], expected.astype(dt), err_msg=f"sym={sym} threads={threads}")
            out = np.empty((2, n, n), dt)
            cp.pairwise(wx, None, offs, cp.MODE_PER_LAYER, out, threads=threads, symmetric=sym)
            np.testing.assert_array_equal(out, per.astype(dt), err_msg=f"per layer sym={sym} threads={threads}")


def test_symmetric_weighted_and_code_lengths(every_thread):
    # The default (symmetric from SYM_MIN_WORDS words on) through pairwise_hamming at code
    # lengths around word and panel boundaries, 131 rows (two whole blocks and a ragged one),
    # integer and real per-layer weights.
    cp = _popcount()
    n = 131
    for L in (353, 384, 385, 511, 512, 513, 1025, 2047, 2048):
        sizes = [L - L // 3, L // 3]
        bx = _bits(zlib.crc32(f"sym{L}".encode()), n, L)
        wx = pack_bits(bx, sizes)
        assert wx.shape[1] >= cp.SYM_MIN_WORDS
        for weights in (None, np.array([3, 7]), np.array([0.3, 1.7])):
            for threads in (1, 2):
                got = cpu.pairwise_hamming(wx, None, sizes, weights, _out_dtype(sizes, weights), method="popcount", threads=threads)
                _check(got, _expected(bx, bx, sizes, weights))


def test_non_temporal_stores(monkeypatch, every_thread):
    # Both non-temporal store paths (the kernel's tiles without the symmetric saving, the
    # mirrored tiles with it) forced on a small result: aligned rows (m * itemsize a multiple
    # of 64, a 64-byte aligned result).
    cp = _popcount()
    monkeypatch.setattr(cp, "NT_MIN_BYTES", 0)
    monkeypatch.setattr(cp, "NT_DIRECT", True)
    monkeypatch.setattr(cp, "NT_MIRROR", True)
    sizes = [300]
    for n, dt in ((256, "uint16"), (192, "uint32"), (128, "uint64")):
        bx = _bits(zlib.crc32(f"nt{n}".encode()), n, 300)
        wx = pack_bits(bx, sizes)
        expected = reference.hamming(bx, bx, sizes).astype(dt)
        for sym in (True, False):
            out = cpu._aligned_empty((1, n, n), np.dtype(dt))
            assert out.ctypes.data % 64 == 0
            cp.pairwise(wx, None, [0, wx.shape[1]], cp.MODE_TOTAL, out, threads=2, symmetric=sym)
            np.testing.assert_array_equal(out[0], expected, err_msg=f"{dt} sym={sym}")


def test_threads_follow_torch_setting(monkeypatch):
    # threads=None takes torch.get_num_threads(); an explicit count is passed through.
    import torch

    cp = _popcount()
    seen = []
    real = cp.pairwise
    monkeypatch.setattr(cp, "pairwise", lambda *a, **k: seen.append(k["threads"]) or real(*a, **k))
    wx = pack_bits(_bits(9, 5, 40), [40])
    cpu.pairwise_hamming(wx, None, [40], None, np.dtype(np.uint8), method="popcount")
    cpu.pairwise_hamming(wx, None, [40], None, np.dtype(np.uint8), method="popcount", threads=3)
    assert seen == [torch.get_num_threads(), 3]


_AVX2_SCRIPT = r"""
import zlib, numpy as np
from vqgeom.codes import pack_bits
from vqgeom.kernels import cpu, cpu_popcount as cp, reference
assert cp.tile_shape()["lanes"] == 8, cp.tile_shape()
for L, n, m in ((33, 70, 9), (300, 140, 140), (1000, 67, 67)):
    sizes = [L - L // 2, L // 2]
    rng = np.random.default_rng(zlib.crc32(str(L).encode()))
    bx, by = rng.random((n, L)) < 0.5, rng.random((m, L)) < 0.5
    wx, wy = pack_bits(bx, sizes), pack_bits(by, sizes)
    for a, b, wb in ((bx, by, wy), (bx, bx, None)):
        got = cpu.pairwise_hamming(wx, wb, sizes, None, np.dtype(np.uint16), method="popcount", threads=2)
        assert np.array_equal(got, reference.hamming(a, b, sizes)), L
        got = cpu.pairwise_hamming(wx, wb, sizes, None, np.dtype(np.uint16), per_layer=True, method="popcount")
        assert np.array_equal(got, reference.layer_hamming(a, b, sizes)), L
print("avx2-ok")
"""


def test_avx2_tile_shape_in_a_subprocess(tmp_path):
    # The 8-lane tile numba builds for a CPU without AVX-512 (NUMBA_CPU_NAME=haswell: AVX2,
    # popcount by nibble table), run on this machine, against the oracle.
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env.pop("NUMBA_CPU_FEATURES", None)
    r = subprocess.run([sys.executable, "-c", _AVX2_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "avx2-ok" in r.stdout, r.stderr[-3000:]


def test_pooled_result_buffers_are_never_shared_while_alive(monkeypatch):
    # Results of >= 1 MB come from a pool of freed buffers: a result (or any view of it, or a
    # torch tensor on it) that is still alive must keep its values when later calls of the
    # same size run; a buffer is handed out again only once nothing refers to it.
    import torch

    monkeypatch.setattr(cpu, "_pool", [])
    n, sizes = 1024, [64]
    bits = [_bits(zlib.crc32(f"pool{i}".encode()), n, 64) for i in range(5)]
    words = [pack_bits(b, sizes) for b in bits]
    expected = [reference.hamming(b, b, sizes) for b in bits]

    def run(i):
        return cpu.pairwise_hamming(words[i], None, sizes, None, np.dtype(np.uint16), method="popcount")

    r0 = run(0)
    view = run(1)[3:7]  # only a view of the second result survives
    t2 = torch.from_numpy(run(2))  # only a torch tensor on the third
    r3 = run(3)
    ptr = r3.ctypes.data
    np.testing.assert_array_equal(r0, expected[0])
    np.testing.assert_array_equal(view, expected[1][3:7])
    np.testing.assert_array_equal(t2.numpy(), expected[2])
    np.testing.assert_array_equal(r3, expected[3])
    del r3
    r4 = run(4)  # the fourth result's buffer is free now
    assert r4.ctypes.data == ptr
    np.testing.assert_array_equal(r4, expected[4])
    np.testing.assert_array_equal(r0, expected[0])
    # other sizes: an unused buffer of another size makes room, results stay right
    for n2 in (600, 900, 600):
        b2 = _bits(n2, n2, 64)
        got = cpu.pairwise_hamming(pack_bits(b2, sizes), None, sizes, None, np.dtype(np.uint16), method="popcount")
        np.testing.assert_array_equal(got, reference.hamming(b2, b2, sizes))
    assert len(cpu._pool) <= cpu._POOL_SIZE
    np.testing.assert_array_equal(r4, expected[4])
    cpu.release_buffers()
    assert cpu._pool == []


def test_small_work_stays_on_one_thread(monkeypatch):
    # Below MIN_WORK_PER_THREAD word pairs a thread, the worker pool is not used; above, the
    # asked-for threads are (up to one per block of rows).
    cp = _popcount()
    used = []
    real = cp._pool
    monkeypatch.setattr(cp, "_pool", lambda k: used.append(k) or real(k))
    bx = _bits(11, 130, 96)
    wx = pack_bits(bx, [96])
    out = np.empty((1, 130, 130), np.uint8)
    monkeypatch.setattr(cp, "MIN_WORK_PER_THREAD", 130 * 130 * 3 + 1)
    cp.pairwise(wx, None, [0, 3], cp.MODE_TOTAL, out, threads=2)
    assert used == []
    monkeypatch.setattr(cp, "MIN_WORK_PER_THREAD", 130 * 130 * 3 // 3)
    cp.pairwise(wx, None, [0, 3], cp.MODE_TOTAL, out, threads=8)
    assert used == [3]  # three blocks of rows: 64, 64, 2
    np.testing.assert_array_equal(out[0], reference.hamming(bx, bx, [96]))
