"""Exact CPU distances by XOR-popcount over the packed 32-bit words, compiled by numba.

Imported lazily by :mod:`vqgeom.kernels.cpu` (``import vqgeom`` does not load numba).

The kernel computes a tile of 4 rows of ``x`` against ``JB`` columns of ``y`` at a time.
``y`` is held transposed, ``yt[k, j]`` = word ``k`` of code ``j``, so the innermost loop
runs over consecutive columns and the compiler vectorises it: one vector of 16 columns
(AVX-512) or 8 (AVX2) per instruction, the row's word broadcast, ``XOR``, ``popcount``
(``VPOPCNTD`` where the CPU has AVX512_VPOPCNTDQ, a nibble-table sequence on AVX2) and
an add. Words are taken four (then two, then one) at a time so each column's running
count is loaded and stored once per four words; the last group of words writes the
result straight into the output row in its final dtype.

Per-layer weights: layers start on fresh words (see :mod:`vqgeom.codes`), so layer
``l`` is the word range ``offs[l]:offs[l+1]``. Its counts ``h_l`` (uint32) are combined
as ``sum_l w_l h_l`` in uint64 for integer weights (exact while the sum is below 2**64,
checked by the caller; an optional exact final divisor) or in float64 for real weights,
added in layer order like the reference. Unweighted distances make one pass over all
words (padding bits are zero on both sides, so they add nothing).

Symmetric inputs (``y is x``) are computed in full: mirroring the upper triangle costs
about as much as it saves up to B = 1024 (a tiled transpose of the result ran at a quarter
of a plain copy's speed; benchmarks/results/cpu.md). Threads: row blocks are dealt to Python threads (the kernels release the GIL), so
no numba threading layer is involved and concurrent callers are safe.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["pairwise", "JB", "MODE_TOTAL", "MODE_PER_LAYER", "MODE_INT_WEIGHTS", "MODE_REAL_WEIGHTS"]

JB = 256  # columns per tile: 4 rows x 256 uint32 counts = 4 KiB of running counts (L1)
MODE_TOTAL, MODE_PER_LAYER, MODE_INT_WEIGHTS, MODE_REAL_WEIGHTS = 0, 1, 2, 3


@intrinsic
def _popc(typingctx, x):
    """``llvm.ctpop.i32``: the popcount the loop vectoriser knows. numba widens ``uint32 ^
    uint32`` to 64 bits; the signature casts back to the low 32 bits (the XOR of two uint32
    words has no higher bits) and LLVM folds the round trip away."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(32)])
        return builder.call(fn, args)

    return types.uint32(types.uint32), codegen


# --- word groups --------------------------------------------------------------------------
# For the rows r0..r3 of x and the columns j0..j0+jb of y, over the g words k..k+g-1, with
# t_q[j] = sum_k popcount(x[r_q, k] ^ yt[k, j0 + j]):
#     SET:        d_q[j] = t_q[j]
#     ACCUMULATE: a_q[j] += t_q[j]          (a_q: uint32 running counts, in place)
#     FINISH:     d_q[j] = a_q[j] + t_q[j]  (d_q: the destination, distinct from a_q)
# Three separate loops: a loop that may read and write overlapping rows is not vectorised.

SET, ACCUMULATE, FINISH = 0, 1, 2


@njit(cache=True, nogil=True, boundscheck=False)
def _g4(x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how):
    p0, p1, p2, p3 = x[r0, k], x[r0, k + 1], x[r0, k + 2], x[r0, k + 3]
    q0, q1, q2, q3 = x[r1, k], x[r1, k + 1], x[r1, k + 2], x[r1, k + 3]
    u0, u1, u2, u3 = x[r2, k], x[r2, k + 1], x[r2, k + 2], x[r2, k + 3]
    v0, v1, v2, v3 = x[r3, k], x[r3, k + 1], x[r3, k + 2], x[r3, k + 3]
    ya, yb, yc, ye = yt[k, j0 : j0 + jb], yt[k + 1, j0 : j0 + jb], yt[k + 2, j0 : j0 + jb], yt[k + 3, j0 : j0 + jb]
    if how == SET:
        for j in range(jb):
            a, b, c, e = ya[j], yb[j], yc[j], ye[j]
            d0[j] = _popc(p0 ^ a) + _popc(p1 ^ b) + _popc(p2 ^ c) + _popc(p3 ^ e)
            d1[j] = _popc(q0 ^ a) + _popc(q1 ^ b) + _popc(q2 ^ c) + _popc(q3 ^ e)
            d2[j] = _popc(u0 ^ a) + _popc(u1 ^ b) + _popc(u2 ^ c) + _popc(u3 ^ e)
            d3[j] = _popc(v0 ^ a) + _popc(v1 ^ b) + _popc(v2 ^ c) + _popc(v3 ^ e)
    elif how == ACCUMULATE:
        for j in range(jb):
            a, b, c, e = ya[j], yb[j], yc[j], ye[j]
            a0[j] += _popc(p0 ^ a) + _popc(p1 ^ b) + _popc(p2 ^ c) + _popc(p3 ^ e)
            a1[j] += _popc(q0 ^ a) + _popc(q1 ^ b) + _popc(q2 ^ c) + _popc(q3 ^ e)
            a2[j] += _popc(u0 ^ a) + _popc(u1 ^ b) + _popc(u2 ^ c) + _popc(u3 ^ e)
            a3[j] += _popc(v0 ^ a) + _popc(v1 ^ b) + _popc(v2 ^ c) + _popc(v3 ^ e)
    else:
        for j in range(jb):
            a, b, c, e = ya[j], yb[j], yc[j], ye[j]
            d0[j] = a0[j] + _popc(p0 ^ a) + _popc(p1 ^ b) + _popc(p2 ^ c) + _popc(p3 ^ e)
            d1[j] = a1[j] + _popc(q0 ^ a) + _popc(q1 ^ b) + _popc(q2 ^ c) + _popc(q3 ^ e)
            d2[j] = a2[j] + _popc(u0 ^ a) + _popc(u1 ^ b) + _popc(u2 ^ c) + _popc(u3 ^ e)
            d3[j] = a3[j] + _popc(v0 ^ a) + _popc(v1 ^ b) + _popc(v2 ^ c) + _popc(v3 ^ e)


@njit(cache=True, nogil=True, boundscheck=False)
def _g2(x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how):
    p0, p1 = x[r0, k], x[r0, k + 1]
    q0, q1 = x[r1, k], x[r1, k + 1]
    u0, u1 = x[r2, k], x[r2, k + 1]
    v0, v1 = x[r3, k], x[r3, k + 1]
    ya, yb = yt[k, j0 : j0 + jb], yt[k + 1, j0 : j0 + jb]
    if how == SET:
        for j in range(jb):
            a, b = ya[j], yb[j]
            d0[j] = _popc(p0 ^ a) + _popc(p1 ^ b)
            d1[j] = _popc(q0 ^ a) + _popc(q1 ^ b)
            d2[j] = _popc(u0 ^ a) + _popc(u1 ^ b)
            d3[j] = _popc(v0 ^ a) + _popc(v1 ^ b)
    elif how == ACCUMULATE:
        for j in range(jb):
            a, b = ya[j], yb[j]
            a0[j] += _popc(p0 ^ a) + _popc(p1 ^ b)
            a1[j] += _popc(q0 ^ a) + _popc(q1 ^ b)
            a2[j] += _popc(u0 ^ a) + _popc(u1 ^ b)
            a3[j] += _popc(v0 ^ a) + _popc(v1 ^ b)
    else:
        for j in range(jb):
            a, b = ya[j], yb[j]
            d0[j] = a0[j] + _popc(p0 ^ a) + _popc(p1 ^ b)
            d1[j] = a1[j] + _popc(q0 ^ a) + _popc(q1 ^ b)
            d2[j] = a2[j] + _popc(u0 ^ a) + _popc(u1 ^ b)
            d3[j] = a3[j] + _popc(v0 ^ a) + _popc(v1 ^ b)


@njit(cache=True, nogil=True, boundscheck=False)
def _g1(x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how):
    p0 = x[r0, k]
    q0 = x[r1, k]
    u0 = x[r2, k]
    v0 = x[r3, k]
    ya = yt[k, j0 : j0 + jb]
    if how == SET:
        for j in range(jb):
            a = ya[j]
            d0[j] = _popc(p0 ^ a)
            d1[j] = _popc(q0 ^ a)
            d2[j] = _popc(u0 ^ a)
            d3[j] = _popc(v0 ^ a)
    elif how == ACCUMULATE:
        for j in range(jb):
            a = ya[j]
            a0[j] += _popc(p0 ^ a)
            a1[j] += _popc(q0 ^ a)
            a2[j] += _popc(u0 ^ a)
            a3[j] += _popc(v0 ^ a)
    else:
        for j in range(jb):
            a = ya[j]
            d0[j] = a0[j] + _popc(p0 ^ a)
            d1[j] = a1[j] + _popc(q0 ^ a)
            d2[j] = a2[j] + _popc(u0 ^ a)
            d3[j] = a3[j] + _popc(v0 ^ a)


@njit(cache=True, nogil=True, boundscheck=False)
def _group(g, x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how):
    if g == 4:
        _g4(x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how)
    elif g == 2:
        _g2(x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how)
    else:
        _g1(x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how)


@njit(cache=True, nogil=True, boundscheck=False)
def _words(x, yt, r0, r1, r2, r3, k0, k1, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3):
    """``d_q[:jb] = popcount(x[r_q, k0:k1] ^ y[j0 + j, k0:k1])``; ``a_q`` are uint32 scratch
    rows (length >= jb) for the running counts when there is more than one group of words."""
    if k1 == k0:
        for j in range(jb):
            d0[j] = 0
            d1[j] = 0
            d2[j] = 0
            d3[j] = 0
        return
    k = k0
    while k < k1:
        rem = k1 - k
        g = 4 if rem >= 4 else (2 if rem >= 2 else 1)
        first = k == k0
        last = k + g == k1
        if first and last:
            how = SET
        elif last:
            how = FINISH
        elif first:
            how = SET
        else:
            how = ACCUMULATE
        if first and not last:  # the running counts start in a_q
            _group(g, x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, a0, a1, a2, a3, how)
        else:
            _group(g, x, yt, r0, r1, r2, r3, k, j0, jb, a0, a1, a2, a3, d0, d1, d2, d3, how)
        k += g


@njit(cache=True, nogil=True, boundscheck=False)
def _tiles(x, yt, out, offs, wint, divisor, wflt, mode, blocks):
    """Fill the 4-row blocks ``blocks`` of ``out`` (P, n, m); see the module docstring for ``mode``.

    Rows past the end of ``x`` in the last block are clamped to its last row (recomputed
    and rewritten with equal values).
    """
    n = x.shape[0]
    m = yt.shape[1]
    n_layers = offs.shape[0] - 1
    acc = np.empty((4, JB), np.uint32)
    h = np.empty((4, JB), np.uint32)  # one layer's counts (weighted modes)
    wi = np.empty((4, JB), np.uint64)
    wf = np.empty((4, JB), np.float64)
    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
    h0, h1, h2, h3 = h[0], h[1], h[2], h[3]
    for bi in range(blocks.shape[0]):
        i0 = blocks[bi] * 4
        r0 = i0
        r1 = min(i0 + 1, n - 1)
        r2 = min(i0 + 2, n - 1)
        r3 = min(i0 + 3, n - 1)
        for j0 in range(0, m, JB):
            jb = min(JB, m - j0)
            j1 = j0 + jb
            if mode == MODE_PER_LAYER:
                for l in range(n_layers):
                    d0, d1, d2, d3 = out[l, r0, j0:j1], out[l, r1, j0:j1], out[l, r2, j0:j1], out[l, r3, j0:j1]
                    _words(x, yt, r0, r1, r2, r3, offs[l], offs[l + 1], j0, jb, a0, a1, a2, a3, d0, d1, d2, d3)
                continue
            d0, d1, d2, d3 = out[0, r0, j0:j1], out[0, r1, j0:j1], out[0, r2, j0:j1], out[0, r3, j0:j1]
            if mode == MODE_TOTAL:
                _words(x, yt, r0, r1, r2, r3, offs[0], offs[n_layers], j0, jb, a0, a1, a2, a3, d0, d1, d2, d3)
                continue
            for l in range(n_layers):
                _words(x, yt, r0, r1, r2, r3, offs[l], offs[l + 1], j0, jb, a0, a1, a2, a3, h0, h1, h2, h3)
                if mode == MODE_INT_WEIGHTS:
                    w = wint[l]
                    for q in range(4):
                        if l == 0:
                            for j in range(jb):
                                wi[q, j] = w * np.uint64(h[q, j])
                        else:
                            for j in range(jb):
                                wi[q, j] += w * np.uint64(h[q, j])
                else:
                    v = wflt[l]
                    for q in range(4):
                        if l == 0:  # the reference starts from 0.0: 0.0 + v * h == v * h (v * h >= 0)
                            for j in range(jb):
                                wf[q, j] = v * np.float64(h[q, j])
                        else:
                            for j in range(jb):
                                wf[q, j] += v * np.float64(h[q, j])
            if mode == MODE_INT_WEIGHTS:
                for j in range(jb):
                    d0[j] = wi[0, j] // divisor
                    d1[j] = wi[1, j] // divisor
                    d2[j] = wi[2, j] // divisor
                    d3[j] = wi[3, j] // divisor
            else:
                for j in range(jb):
                    d0[j] = wf[0, j]
                    d1[j] = wf[1, j]
                    d2[j] = wf[2, j]
                    d3[j] = wf[3, j]


def _deal(n_items: int, threads: int) -> list[np.ndarray]:
    """``range(n_items)`` in ``threads`` contiguous chunks (row blocks cost the same; each
    thread writes one contiguous band of the result)."""
    return [c for c in np.array_split(np.arange(n_items, dtype=np.int64), max(1, threads)) if c.size]


def _run(fn, jobs: list[tuple]) -> None:
    if len(jobs) == 1:
        fn(*jobs[0])
        return
    with ThreadPoolExecutor(max_workers=len(jobs)) as ex:
        for f in [ex.submit(fn, *job) for job in jobs]:
            f.result()


def pairwise(
    wx: np.ndarray,
    wy: np.ndarray | None,
    offs: Sequence[int],
    mode: int,
    out: np.ndarray,
    *,
    wint: np.ndarray | None = None,
    divisor: int = 1,
    wflt: np.ndarray | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Fill ``out`` (P, N, M) with XOR-popcount distances of packed uint32 words.

    Parameters
    ----------
    wx : ndarray uint32 (N, W), C-contiguous
    wy : ndarray uint32 (M, W) or None (``wy = wx``)
    offs : L + 1 word offsets of the layers (the last is W)
    mode : MODE_TOTAL (P = 1, unweighted), MODE_PER_LAYER (P = L), MODE_INT_WEIGHTS
        (P = 1, ``sum_l wint[l] h_l // divisor``, uint64 arithmetic: the caller checks
        ``sum_l wint[l] B_l < 2**64``) or MODE_REAL_WEIGHTS (P = 1, float64 ``sum_l wflt[l] h_l``)
    out : ndarray (P, N, M), C-contiguous, any integer dtype holding the result, or float64
    threads : int
        Python threads over row blocks (the kernels release the GIL).
    """
    # One array type for the compiled kernels (numba compiles, and caches, one version per
    # argument type: read-only or non-contiguous inputs, e.g. from dask, would each need
    # their own): writable C-contiguous uint32, copied where needed (N x W words, cheap).
    wx = np.ascontiguousarray(wx).view(np.uint32)
    if not wx.flags.writeable:
        wx = wx.copy()
    yt = np.array((wx if wy is None else np.asarray(wy).view(np.uint32)).T, order="C", copy=True)
    n, m = wx.shape[0], yt.shape[1]
    if n == 0 or m == 0:
        return out
    offs_a = np.asarray(offs, dtype=np.int64)
    wint_a = np.ones(max(1, len(offs_a) - 1), np.uint64) if wint is None else np.asarray(wint, dtype=np.uint64)
    wflt_a = np.ones(max(1, len(offs_a) - 1), np.float64) if wflt is None else np.asarray(wflt, dtype=np.float64)
    n_blocks = (n + 3) // 4
    threads = max(1, min(int(threads), n_blocks))
    div = np.uint64(divisor)
    _run(
        _tiles,
        [(wx, yt, out, offs_a, wint_a, div, wflt_a, mode, b) for b in _deal(n_blocks, threads)],
    )
    return out
