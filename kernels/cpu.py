"""Exact CPU distances: an int8 GEMM over ±1 codes with int32 accumulation.

For ±1 codes ``s, t`` of one layer with ``B_l`` units, ``Hamming = (B_l - <s, t>) / 2``.
Stacking the layers with padding units set to 0 (they add nothing to ``<s, t>``) and
scaling one side's layer-``l`` columns by an integer weight ``w_l`` gives

    sum_l w_l Hamming_l = (sum_l w_l B_l - <s, W t>) / 2,

one integer GEMM, exact while ``sum_l w_l B_l < 2**31`` (checked). The GEMM is
``torch._int_mm`` (oneDNN/VNNI int8 -> int32); chosen by measurement over a float32
BLAS product of the same ±1 matrices (about 2x slower here and exact only below
``2**24``) and numpy popcount over packed words (an order slower: numpy cannot fuse
XOR, popcount and the reduction). See ``benchmarks/bench_cpu.py``.

Larger integer weights use one exact GEMM per layer, combined in int64 (uint64 for a
uint64 result: the sum wraps modulo 2**64 but the caller checked that it fits); real
(float) weights combine the per-layer GEMMs in float64.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vqgeom.codes import layer_word_offsets

__all__ = ["signs_int8", "pairwise_hamming", "int_gemm"]

_INT32_LIMIT = 2**31 - 1
_F32_EXACT = 2**24


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
        Row blocks are sized so that the reused int32 GEMM block stays under this.
    per_layer : bool
        Return ``(L, N, M)`` unweighted per-layer distances instead.

    Returns
    -------
    ndarray (N, M) of ``out_dtype`` (or (L, N, M) with ``per_layer``)
    """
    sizes = [int(b) for b in layer_sizes]
    wy = wx if wy is None else wy
    n, m = wx.shape[0], wy.shape[0]
    if per_layer:
        out = np.empty((len(sizes), n, m), dtype=out_dtype)
        for l in range(len(sizes)):
            sub = _layer_words(wx, sizes, l), _layer_words(wy, sizes, l)
            out[l] = pairwise_hamming(sub[0], sub[1], [sizes[l]], None, out_dtype, block_bytes=block_bytes)
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
        h = pairwise_hamming(
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
