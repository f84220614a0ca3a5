"""Exact CPU distances: XOR-popcount over packed words (numba), or an int8 GEMM.

Two kernels, both exact, chosen once per process by :func:`kernel_choice`:

``"popcount"`` (:mod:`vqgeom.kernels.cpu_popcount`)
    ``popcount(x XOR y)`` over the packed 32-bit words: a register-tiled micro-kernel in
    LLVM IR with explicit vectors (AVX-512 VPOPCNTDQ where the CPU has it, AVX2 otherwise),
    compiled and cached by numba; the symmetric case computes the upper triangle and
    mirrors it; per-layer weights combine per-layer counts in uint64 (integer weights) or
    float64 (real weights).
``"int8"``
    For ±1 codes ``s, t`` of one layer with ``B_l`` units, ``Hamming = (B_l - <s, t>) / 2``.
    Stacking the layers with padding units set to 0 (they add nothing to ``<s, t>``) and
    scaling one side's layer-``l`` columns by an integer weight ``w_l`` gives
    ``sum_l w_l Hamming_l = (sum_l w_l B_l - <s, W t>) / 2``, one integer GEMM
    (``torch._int_mm``, oneDNN/VNNI int8 -> int32), exact while ``sum_l w_l B_l < 2**31``
    (checked).
    Larger integer weights use one exact GEMM per layer, combined in int64 (uint64 for a
    uint64 result: the sum wraps modulo 2**64 but the caller checked that it fits); real
    (float) weights combine the per-layer GEMMs in float64. The GEMM was chosen by
    measurement over a float32 BLAS product (about 2x slower, exact only below 2**24) and
    numpy popcount (an order slower: numpy cannot fuse XOR, popcount and the reduction).

The popcount kernel is the default where numba imports and the CPU has a vector popcount
(AVX512_VPOPCNTDQ); on other CPUs the two are timed once on a small problem at first use
and the faster is kept. ``VQGEOM_CPU_KERNEL=popcount|int8`` forces one. Measurements:
``benchmarks/results/cpu.md``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from typing import Sequence

import numpy as np
import torch

from vqgeom.codes import layer_word_offsets

__all__ = ["signs_int8", "pairwise_hamming", "int_gemm", "kernel_choice", "cpu_features", "release_buffers"]

_INT32_LIMIT = 2**31 - 1
_F32_EXACT = 2**24
_UINT64_LIMIT = 2**64 - 1
KERNELS = ("popcount", "int8")
_choice: dict[str, str] = {}


def cpu_features() -> list[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux), else LLVM's host features
    (through numba's llvmlite) where numba is installed, else ``[]``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    try:
        import llvmlite.binding as llvm

        return sorted(k for k, on in llvm.get_host_cpu_features().items() if on)
    except Exception:  # no numba/llvmlite, or no host query on this platform
        return []


def _popcount_module():
    """:mod:`vqgeom.kernels.cpu_popcount`, or None where numba cannot be imported."""
    try:
        from . import cpu_popcount
    except ImportError as e:  # numba missing or broken: the int8 GEMM still works
        if "popcount-import" not in _choice:
            _choice["popcount-import"] = str(e)
            warnings.warn(f"vqgeom: numba unavailable ({e}); CPU distances use the int8 GEMM", RuntimeWarning, stacklevel=3)
        return None
    return cpu_popcount


def kernel_choice() -> str:
    """The CPU distance kernel this process uses: ``"popcount"`` or ``"int8"``.

    ``VQGEOM_CPU_KERNEL`` forces one. Otherwise the popcount kernel where numba imports and
    the CPU has AVX512_VPOPCNTDQ (measured there at 5-8x the int8 GEMM); on other CPUs
    both are timed once (a 512 x 512 matrix at B = 256, after a warm-up call that also pays
    numba's compilation or cache load) and the faster is kept for the process.
    """
    if "kernel" in _choice:
        return _choice["kernel"]
    forced = os.environ.get("VQGEOM_CPU_KERNEL", "").strip().lower()
    if forced:
        if forced not in KERNELS:
            raise ValueError(f"VQGEOM_CPU_KERNEL: expected one of {KERNELS}, got {forced!r}")
        choice = forced if forced == "int8" or _popcount_module() is not None else "int8"
    elif _popcount_module() is None:
        choice = "int8"
    else:
        flags = set(cpu_features())
        choice = "popcount" if {"avx512_vpopcntdq", "avx512vpopcntdq"} & flags else _measure_choice()
    _choice["kernel"] = choice
    return choice


def _measure_choice() -> str:
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**32, size=(512, 8), dtype=np.uint32)
    best = {}
    for k in KERNELS:
        pairwise_hamming(words, None, [256], None, np.dtype(np.uint16), method=k)  # warm-up / compile
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            pairwise_hamming(words, None, [256], None, np.dtype(np.uint16), method=k)
            ts.append(time.perf_counter() - t0)
        best[k] = min(ts)
    return min(best, key=best.get)


def signs_int8(words: np.ndarray, layer_sizes: Sequence[int], scale: np.ndarray | None = None) -> np.ndarray:
    """±1 int8 codes ``(N, 32 W)`` from packed words; padding units are 0.

    ``scale`` (integers, one per layer, each <= 127) multiplies layer ``l``'s columns.
    """
    words = np.ascontiguousarray(words).view(np.uint32)
    n, w = words.shape
    bits = np.unpackbits(words.astype("<u4", copy=False).view(np.uint8).reshape(n, 4 * w), axis=1, bitorder="little")
    valid = np.zeros(32 * w, dtype=np.int8)
    offs = layer_word_offsets(layer_sizes)
    for l, b in enumerate(layer_sizes):
        valid[offs[l] * 32 : offs[l] * 32 + b] = 1 if scale is None else int(scale[l])
    # bit 1 -> +v, bit 0 -> -v, padding (v = 0) -> 0
    s = bits.view(np.int8) * np.int8(2) - np.int8(1)
    s *= valid
    return s


def _int_mm_ok() -> bool:
    return hasattr(torch, "_int_mm")


def int_gemm(a: torch.Tensor, bt: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = a @ bt`` for int8 ``a`` (n, K) and int8 ``bt`` (K, m), exact in int32."""
    if _int_mm_ok():
        return torch._int_mm(a, bt, out=out)
    # float32 is exact for these ±127-bounded products while sums stay below 2**24;
    # callers check the bound before taking this route.
    out.copy_(a.float() @ bt.float())
    return out


def pairwise_hamming(
    wx: np.ndarray,
    wy: np.ndarray | None,
    layer_sizes: Sequence[int],
    weights: np.ndarray | None,
    out_dtype: np.dtype,
    *,
    block_bytes: int = 4 << 20,
    per_layer: bool = False,
    method: str | None = None,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted Hamming distances between packed codes.

    Parameters
    ----------
    wx : ndarray uint32 (N, W)
    wy : ndarray uint32 (M, W) or None (then ``wy = wx``)
    layer_sizes : sequence of int, length L
    weights : ndarray (L,) or None
        Already validated (:func:`vqgeom._validate.make_weights`): an integer dtype gives
        exact integers (``out_dtype`` must hold ``sum_l w_l B_l``), a float dtype float64 sums.
    out_dtype : numpy dtype of the result
    block_bytes : int
        int8 kernel: row blocks are sized so that the reused int32 GEMM block stays under this.
    per_layer : bool
        Return ``(L, N, M)`` unweighted per-layer distances instead.
    method : {"popcount", "int8"} or None
        The kernel; None takes :func:`kernel_choice`.
    threads : int or None
        popcount kernel: threads over row blocks; None takes ``torch.get_num_threads()``.
        (The int8 GEMM always follows torch's setting.)
    out : ndarray (N, M) of ``out_dtype``, C-contiguous, optional
        Where to write the result (not with ``per_layer``): a caller streaming many blocks
        reuses one buffer instead of allocating (and page-faulting) a fresh block each time.

    Returns
    -------
    ndarray (N, M) of ``out_dtype`` (or (L, N, M) with ``per_layer``); no memory beyond the
    result and a copy of ``wy`` packed into panels (popcount), or a few MB of GEMM blocks
    plus the int8 ±1 codes, ``32 W`` bytes a row (int8). Popcount results of 1 MB to
    256 MB come from a pool of (at most two) buffers whose earlier results are gone, which
    it keeps after they are: :func:`release_buffers` returns them.
    """
    method = kernel_choice() if method is None else method
    if method not in KERNELS:
        raise ValueError(f"method: expected one of {KERNELS} or None, got {method!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ValueError(f"threads: expected a positive integer or None, got {threads!r}")
    if out is not None:
        n, m = wx.shape[0], (wx if wy is None else wy).shape[0]
        if per_layer or out.shape != (n, m) or out.dtype != np.dtype(out_dtype) or not out.flags.c_contiguous:
            raise ValueError(f"out: expected a C-contiguous ({n}, {m}) array of {np.dtype(out_dtype)} (and no per_layer), "
                             f"got shape {out.shape}, dtype {out.dtype}")
    if method == "popcount":
        mod = _popcount_module()
        if mod is not None:
            return _pairwise_popcount(mod, wx, wy, layer_sizes, weights, out_dtype, per_layer, threads, out)
    res = _pairwise_int8(wx, wy, layer_sizes, weights, out_dtype, block_bytes=block_bytes, per_layer=per_layer)
    if out is None:
        return res
    out[...] = res
    return out


def _aligned_empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary (a view
    of a slightly larger buffer): the popcount kernel then writes whole, aligned cache lines
    (numpy's allocator only guarantees 16 bytes).

    Buffers of at least ``_POOL_MIN_BYTES`` come from a small pool: a fresh result of N x N
    distances costs the kernel's page zeroing on first touch (about 4 ms for 32 MB here, as
    long as the popcounts at B = 288), so a buffer whose results are all gone (no array
    refers to it any more: every view holds the buffer itself) is handed out again.
    At most ``_POOL_SIZE`` buffers of at most ``_POOL_MAX_BYTES`` each are kept;
    :func:`release_buffers` drops them."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    need = nbytes + 64
    buf = None
    if _POOL_MIN_BYTES <= need <= _POOL_MAX_BYTES:
        with _pool_lock:
            b = free = None
            for b in _pool:
                if _unused(b):
                    if need <= b.nbytes <= 2 * need:
                        buf = b
                        break
                    free = b
            if buf is None:
                buf = np.empty(need, dtype=np.uint8)
                if len(_pool) >= _POOL_SIZE and free is not None:
                    del _pool[next(i for i in range(len(_pool)) if _pool[i] is free)]  # room: an unused one of another size
                if len(_pool) < _POOL_SIZE:
                    _pool.append(buf)
            b = free = None  # no stray references to pooled buffers
    if buf is None:
        buf = np.empty(need, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf[off : off + nbytes].view(dtype).reshape(shape)


_POOL_MIN_BYTES = 1 << 20
_POOL_MAX_BYTES = 256 << 20
_POOL_SIZE = 2
_pool: list[np.ndarray] = []
_pool_lock = threading.Lock()


def _refs_when_unused() -> int:
    """References to a pooled buffer that nothing else holds, counted as :func:`_unused`
    counts them: the pool list, the caller's loop variable, the argument, getrefcount's."""

    def count(buf):
        return sys.getrefcount(buf)

    probe = [np.empty(1, np.uint8)]
    for b in probe:
        return count(b)
    raise AssertionError


_UNUSED_REFS = _refs_when_unused()


def _unused(buf: np.ndarray) -> bool:
    """True when only the pool refers to ``buf`` (no result or view of one is alive: numpy
    views refer to the buffer itself); called with a plain loop variable over the pool."""
    return sys.getrefcount(buf) <= _UNUSED_REFS


def release_buffers() -> None:
    """Drop the pooled result buffers (see :func:`pairwise_hamming`); results still in use
    keep theirs."""
    with _pool_lock:
        _pool.clear()


def _pairwise_popcount(mod, wx, wy, layer_sizes, weights, out_dtype, per_layer, threads, dest=None) -> np.ndarray:
    sizes = [int(b) for b in layer_sizes]
    offs = layer_word_offsets(sizes)
    wx = np.ascontiguousarray(wx).view(np.uint32)
    n = wx.shape[0]
    m = n if wy is None else wy.shape[0]
    out_dtype = np.dtype(out_dtype)
    # a caller's destination may be unaligned: the kernel checks alignment before streaming stores
    out = _aligned_empty((len(sizes) if per_layer else 1, n, m), out_dtype) if dest is None else dest.reshape(1, n, m)
    # Signed integer results (torch's int16/32/64) are written through an unsigned view of
    # the same width: the values are non-negative and fit, so the bits are the same.
    kern_out = out.view(out_dtype.str.replace("i", "u")) if out_dtype.kind == "i" else out
    kw: dict = {}
    if per_layer:
        mode = mod.MODE_PER_LAYER
    elif weights is None:
        mode = mod.MODE_TOTAL
    elif weights.dtype.kind in "iu":
        # integer weights (vqgeom._validate.Weights.kernel): uint64 sums of w_l * h_l, exact
        # below 2**64 (checked with Python integers, which do not overflow)
        w_int = [int(w) for w in weights]
        if sum(w * b for w, b in zip(w_int, sizes)) > _UINT64_LIMIT:
            raise ValueError(f"weights: sum_l w_l B_l must stay below 2**64 for an exact integer result, got {w_int}")
        mode, kw = mod.MODE_INT_WEIGHTS, {"wint": np.array(w_int, dtype=np.uint64)}
    else:
        mode, kw = mod.MODE_REAL_WEIGHTS, {"wflt": np.asarray(weights, dtype=np.float64)}
    t = torch.get_num_threads() if threads is None else threads
    # A caller's own buffer (out=) is about to be read by that caller: no cache-bypassing stores.
    mod.pairwise(wx, None if wy is None else np.ascontiguousarray(wy).view(np.uint32), offs, mode, kern_out, threads=t,
                 nontemporal=dest is None, **kw)
    return out if per_layer else out[0]


def _pairwise_int8(
    wx: np.ndarray,
    wy: np.ndarray | None,
    layer_sizes: Sequence[int],
    weights: np.ndarray | None,
    out_dtype: np.dtype,
    *,
    block_bytes: int = 4 << 20,
    per_layer: bool = False,
) -> np.ndarray:
    sizes = [int(b) for b in layer_sizes]
    wy = wx if wy is None else wy
    n, m = wx.shape[0], wy.shape[0]
    if per_layer:
        out = np.empty((len(sizes), n, m), dtype=out_dtype)
        for l in range(len(sizes)):
            sub = _layer_words(wx, sizes, l), _layer_words(wy, sizes, l)
            out[l] = _pairwise_int8(sub[0], sub[1], [sizes[l]], None, out_dtype, block_bytes=block_bytes)
        return out
    out = np.empty((n, m), dtype=out_dtype)
    if n == 0 or m == 0:
        return out
    integer = weights is None or weights.dtype.kind in "iu"
    if integer:
        w_int = None if weights is None else [int(v) for v in weights]
        total = sum(sizes) if w_int is None else sum(v * b for v, b in zip(w_int, sizes))
        small = w_int is None or max(w_int) <= 127
        exact = total <= _INT32_LIMIT and (_int_mm_ok() or total < _F32_EXACT)
        if small and exact:
            sy = torch.from_numpy(signs_int8(wy, sizes, w_int)).T.contiguous()
            sx = torch.from_numpy(signs_int8(wx, sizes))
            # One small reused int32 block (a few MB, cache-resident): a fresh N x M
            # int32 temporary costs more in page faults than the GEMM itself.
            rows = int(max(16, min(n, block_bytes // (4 * m))))
            buf = torch.empty((rows, m), dtype=torch.int32)
            for r in range(0, n, rows):
                g = buf[: min(rows, n - r)]
                int_gemm(sx[r : r + rows], sy, out=g)
                torch.sub(total, g, out=g)
                g.bitwise_right_shift_(1)  # (total - <s, Wt>) is even: 2 * weighted Hamming
                out[r : r + rows] = g.numpy()
            return out
    # Large integer or real weights: one exact integer GEMM per layer, combined in an
    # integer accumulator (never float64 for integers) or in float64 for real weights.
    acc_t = np.float64 if not integer else (np.uint64 if np.dtype(out_dtype) == np.uint64 else np.int64)
    acc = np.zeros((n, m), dtype=acc_t)
    for l in range(len(sizes)):
        if sizes[l] == 0:
            continue
        h = _pairwise_int8(
            _layer_words(wx, sizes, l), _layer_words(wy, sizes, l), [sizes[l]], None, np.int32, block_bytes=block_bytes
        )
        if integer:
            acc += h.astype(acc_t) * acc_t(1 if w_int is None else w_int[l])
        else:
            acc += weights[l] * h
    out[...] = acc
    return out


def _layer_words(words: np.ndarray, sizes: Sequence[int], l: int) -> np.ndarray:
    offs = layer_word_offsets(sizes)
    return np.ascontiguousarray(words[:, offs[l] : offs[l + 1]])
