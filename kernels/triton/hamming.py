"""Packed-Hamming pairwise distances in Triton: XOR + popcount over 32-bit words.

``d(x_i, y_j) = sum_l w_l * popcount(x_i[l] ^ y_j[l])`` over the word range of layer
``l`` (the Codes layout: each layer starts on a fresh word, padding bits are zero, so a
layer's Hamming distance is a plain popcount over its words and needs no masks).

Two modes: cross (X against Y, ``(N, M)``) and symmetric (X against itself): the
symmetric mode runs only the upper triangle's tiles and writes each tile twice, once
transposed. :func:`pairwise_hamming` dispatches between this popcount kernel and the
int8 tensor-core kernel of :mod:`vqgeom.kernels.triton.int8` by code length (see
``INT8_MIN_WORDS``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import triton
import triton.language as tl

from ._device import capturing, fold_rows, guarded, launch
from ._popcount import (INT32_MAX, add_layer, check_words, condensed_index, layer_weights, hw_popcount,
                        layer_offsets, popcount32, small_array, to_acc, triangle_tile)

__all__ = ["pairwise_hamming", "popcount_hamming", "word_distance", "static_words", "INT8_MIN_WORDS", "OUT_DTYPES", "prepare_weights"]

# Codes of at least this many 32-bit words go to the int8 tensor-core kernel on a GPU.
# Measured by benchmarks/gpu_check.py on an H200 (N = 32768, symmetric, int16): popcount
# is faster for 1-2 words (by 1.1-1.2x), int8 from 3 words (B >= 65) on, by 1.2-1.3x at 3
# and 1.4-3.8x from 4 to 32 words, in three runs (benchmarks/results/gpu-h200-2026-11-26.md).
INT8_MIN_WORDS = 3

OUT_DTYPES = tuple(
    d
    for d in (torch.uint8, torch.int16, getattr(torch, "uint16", None), torch.int32, torch.int64, torch.float32, torch.float64)
    if d is not None
)


@triton.jit
def word_distance(xrow, yrow, mm, mn, LOFF, WGT, L, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
                  HW: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, NW: tl.constexpr):
    """Distance tile (BM, BN) by XOR + popcount between word rows ``xrow`` and ``yrow``.

    Accumulates in int32 (``FLOAT_ACC == 0``), float32 (1), float64 (2) or int64 (3).

    ``NW > 0`` (unweighted codes of ``NW`` words): the word loop is unrolled at compile
    time, so all loads are in flight together. Otherwise per-layer runtime loops, one
    weight multiplication per layer.
    """
    if NW > 0:
        total = tl.zeros((BM, BN), dtype=tl.int32)
        for w in tl.static_range(NW):
            a = tl.load(xrow + w, mask=mm, other=0)
            b = tl.load(yrow + w, mask=mn, other=0)
            total += popcount32(a[:, None] ^ b[None, :], HW)
        total = to_acc(total, FLOAT_ACC)
    else:
        total = to_acc(tl.zeros((BM, BN), dtype=tl.int32), FLOAT_ACC)
        for l in range(L):
            w0 = tl.load(LOFF + l)
            w1 = tl.load(LOFF + l + 1)
            acc = tl.zeros((BM, BN), dtype=tl.int32)
            for w in range(w0, w1):
                a = tl.load(xrow + w, mask=mm, other=0)
                b = tl.load(yrow + w, mask=mn, other=0)
                acc += popcount32(a[:, None] ^ b[None, :], HW)
            total = add_layer(total, acc, WGT + l, WEIGHTED)
    return total


def static_words(n_words: int, weighted: bool, max_words: int = 64) -> int:
    """``NW`` for the kernels: the word count when the loop can be unrolled, else 0."""
    return n_words if not weighted and n_words <= max_words else 0


@triton.jit
def _popc_hamming_kernel(
    X, Y, OUT, LOFF, WGT,
    N, M, L, sxn, syn, son, som,
    SYM: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr, HW: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, NW: tl.constexpr, CONDENSED: tl.constexpr,
):
    """Symmetric: tile ``triangle_tile(program_id(0))``. Cross: column tile
    ``program_id(0)`` (the grid's x axis holds up to 2^31 - 1) for row tiles
    ``program_id(1), + num_programs(1), ...`` (y holds at most 65,535)."""
    if SYM:
        pid_m, pid_n = triangle_tile(tl.program_id(0))
        _popc_tile(X, Y, OUT, LOFF, WGT, N, M, L, sxn, syn, son, som, pid_m, pid_n,
                   SYM, WEIGHTED, FLOAT_ACC, HW, BM, BN, NW, CONDENSED)
    else:
        for pid_m in range(tl.program_id(1), tl.cdiv(N, BM), tl.num_programs(1)):
            _popc_tile(X, Y, OUT, LOFF, WGT, N, M, L, sxn, syn, son, som, pid_m, tl.program_id(0),
                       SYM, WEIGHTED, FLOAT_ACC, HW, BM, BN, NW, CONDENSED)


@triton.jit
def _popc_tile(X, Y, OUT, LOFF, WGT, N, M, L, sxn, syn, son, som, pid_m, pid_n,
               SYM: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr, HW: tl.constexpr,
               BM: tl.constexpr, BN: tl.constexpr, NW: tl.constexpr, CONDENSED: tl.constexpr):
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    mm = offs_m < N
    mn = offs_n < M
    xrow = X + offs_m.to(tl.int64) * sxn
    yrow = Y + offs_n.to(tl.int64) * syn
    total = word_distance(xrow, yrow, mm, mn, LOFF, WGT, L, WEIGHTED, FLOAT_ACC, HW, BM, BN, NW)
    res = total.to(OUT.dtype.element_ty)
    om = offs_m.to(tl.int64)
    on = offs_n.to(tl.int64)
    if CONDENSED:
        # son holds N: pairs i < j only, in scipy's pdist order.
        keep = mm[:, None] & mn[None, :] & (on[None, :] > om[:, None])
        tl.store(OUT + condensed_index(om, on, son), res, mask=keep)
    else:
        tl.store(OUT + om[:, None] * son + on[None, :] * som, res, mask=mm[:, None] & mn[None, :])
        if SYM:
            if pid_m != pid_n:
                tl.store(OUT + on[:, None] * son + om[None, :] * som, tl.trans(res), mask=mn[:, None] & mm[None, :])


def prepare_weights(
    layer_sizes: Sequence[int], weights: Any, out_dtype: torch.dtype
) -> tuple[np.ndarray | None, int, int | float]:
    """Check kernel weights against the output dtype.

    ``weights``: None, or per-layer weights already validated by the caller (an integer
    dtype: exact integer sums; a float dtype: real weights), see
    :func:`vqgeom._validate.make_weights`.

    Returns ``(weights or None, accumulation, largest possible distance)`` with
    accumulation 0 (int32: integer weights, exact), 1 (float32), 2 (float64, for a float64
    output: one float64 rounding per layer) or 3 (int64: integer weights whose sums pass
    int32, for an int64 output; exact).
    """
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype: expected one of {[str(d) for d in OUT_DTYPES]}, got {out_dtype}")
    w, integral, dmax = layer_weights(weights, layer_sizes)
    if out_dtype.is_floating_point:
        if integral and dmax <= INT32_MAX:
            return w, 0, dmax
        return w, 2 if out_dtype == torch.float64 else 1, dmax
    if not integral:
        raise ValueError(f"weights: an integer out_dtype ({out_dtype}) needs integer weights, got {w.tolist()}")
    top = torch.iinfo(out_dtype).max
    if dmax > top:
        raise ValueError(
            f"weights: distances up to sum_l w_l B_l = {dmax} do not fit out_dtype {out_dtype} (max {top})"
        )
    return w, 0 if dmax <= INT32_MAX else 3, dmax


def weight_dtype(acc: int) -> torch.dtype:
    """Device dtype of the per-layer weights for an accumulation mode."""
    return (torch.int32, torch.float32, torch.float64, torch.int64)[int(acc)]


def alloc_out(n: int, m: int, out_dtype: torch.dtype, device: torch.device, condensed: bool = False) -> torch.Tensor:
    """The result: (N, M), or with ``condensed`` the (N (N - 1) / 2,) upper triangle."""
    if condensed:
        return torch.empty((n * (n - 1) // 2,), dtype=out_dtype, device=device)
    return torch.empty((n, m), dtype=out_dtype, device=device)


@guarded("wx")
def popcount_hamming(
    wx: torch.Tensor,
    wy: torch.Tensor | None,
    layer_sizes: Sequence[int],
    weights: Any = None,
    out_dtype: torch.dtype = torch.int32,
    *,
    block: tuple[int, int] = (64, 64),
    num_warps: int = 4,
    condensed: bool = False,
) -> torch.Tensor:
    """Pairwise distances by XOR + popcount (see :func:`pairwise_hamming` for the arguments)."""
    offs = layer_offsets(layer_sizes)
    check_words("wx", wx, offs[-1])
    if wy is not None:
        check_words("wy", wy, offs[-1])
        if wy.device != wx.device:
            raise ValueError(f"wy: expected a tensor on {wx.device} like wx, got {wy.device}")
    w, float_acc, _ = prepare_weights(layer_sizes, weights, out_dtype)
    wx = wx.contiguous()
    sym = wy is None
    if condensed and not sym:
        raise ValueError("condensed: the condensed layout is for one code set (wy=None), got a second set wy")
    wy = wx if sym else wy.contiguous()
    n, m = wx.shape[0], wy.shape[0]
    out = alloc_out(n, m, out_dtype, wx.device, condensed)
    if out.numel() == 0:
        return out
    dev = wx.device
    if w is None:
        loff = small_array([0, offs[-1]], torch.int32, dev)
        wgt = loff  # unused
        n_layers = 1
    else:
        loff = small_array(offs, torch.int32, dev)
        wgt = small_array(w, weight_dtype(float_acc), dev)
        n_layers = len(offs) - 1
    bm, bn = block
    if sym:
        if bm != bn:
            raise ValueError(f"block: the symmetric mode needs square tiles, got {block}")
        t = triton.cdiv(n, bm)
        grid = (t * (t + 1) // 2,)
    else:
        grid = (triton.cdiv(m, bn), fold_rows(triton.cdiv(n, bm)))
    launch(
        _popc_hamming_kernel, grid,
        wx, wy, out, loff, wgt, n, m, n_layers, wx.stride(0), wy.stride(0),
        n if condensed else out.stride(0), 1 if condensed else out.stride(1),
        SYM=sym, WEIGHTED=w is not None, FLOAT_ACC=int(float_acc), HW=hw_popcount(wx), BM=bm, BN=bn,
        NW=static_words(offs[-1], w is not None), CONDENSED=bool(condensed), num_warps=num_warps,
    )
    return out


def pairwise_hamming(
    wx: torch.Tensor,
    wy: torch.Tensor | None,
    layer_sizes: Sequence[int],
    weights: Any = None,
    out_dtype: torch.dtype = torch.int32,
    *,
    method: str = "auto",
    condensed: bool = False,
) -> torch.Tensor:
    """VQ distances between packed codes on the GPU (or in the Triton interpreter).

    Parameters
    ----------
    wx : torch.Tensor, int32, shape (N, W)
        Packed codes in the Codes layout.
    wy : torch.Tensor, int32, shape (M, W), or None
        Second set; ``None`` computes X against X (symmetric: upper-triangle tiles only,
        mirrored on write).
    layer_sizes : sequence of int
        Units per layer ``B_l`` (fixes the word range of each layer).
    weights : None or ndarray, shape (L,)
        Per-layer weights, validated by the caller (:func:`vqgeom._validate.make_weights`):
        an integer dtype gives exact integers (int32 accumulation, int64 when the sums
        pass int32), a float dtype real weights.
    out_dtype : torch.dtype
        uint8, int16, uint16, int32, int64, float32 or float64. Must hold the largest
        possible distance ``sum_l w_l B_l`` (checked). Non-integer weights need a float;
        a float64 output accumulates them in float64.
    method : {"auto", "popcount", "int8"}
        ``auto`` takes the int8 tensor-core kernel for codes of at least ``INT8_MIN_WORDS``
        words on a GPU (the measured crossover), else XOR + popcount.
    condensed : bool
        With ``wy=None``: only the pairs ``i < j``, as a 1-D array in scipy's ``pdist``
        order (``scipy.spatial.distance.squareform`` turns it into the matrix): half the
        bytes written.

    Returns
    -------
    torch.Tensor, shape (N, M) (or (N, N), or (N (N - 1) / 2,) condensed), dtype
    ``out_dtype``, on ``wx``'s device
        Integer results are exact; real weights carry one rounding per layer in the
        output's precision (relative error below ``L * 2**-24`` in float32, ``L * 2**-53``
        in float64).
    """
    if method not in ("auto", "popcount", "int8"):
        raise ValueError(f"method: expected 'auto', 'popcount' or 'int8', got {method!r}")
    if method == "auto":
        n_words = layer_offsets(layer_sizes)[-1]
        on_gpu = isinstance(wx, torch.Tensor) and (wx.is_cuda or capturing() is not None)
        method = "int8" if on_gpu and n_words >= INT8_MIN_WORDS else "popcount"
    if method == "int8":
        from .int8 import int8_hamming

        return int8_hamming(wx, wy, layer_sizes, weights, out_dtype, condensed=condensed)
    return popcount_hamming(wx, wy, layer_sizes, weights, out_dtype, condensed=condensed)
