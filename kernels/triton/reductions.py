"""Streaming reductions over VQ distance tiles that never hold the N x M matrix.

Each kernel gives one program a block of rows and loops over all column blocks,
computing the distance tile with the int8 tensor-core route of
:mod:`vqgeom.kernels.triton.int8` and reducing it in the epilogue:

* :func:`heat_matmat` -- ``exp(-D / sigma2) @ V`` (``D**2`` with ``squared=True``),
  the matrix-vector / matrix-matrix product for Lanczos, power iterations and spectral
  embeddings. Memory O((N + M) (B + k)).
* :func:`heat_cosine` -- the Frobenius cosine between two networks' heat kernels on the
  same inputs, for several sigma2 in one pass (upper triangle only, both are symmetric).
* :func:`knn` -- row-wise k nearest neighbours by VQ distance (ties -> smaller index).

Tile sizes and warps default to the fastest measured on an H200 by
``benchmarks/gpu_check.py`` (benchmarks/results/gpu-*).

Float results: the heat-kernel products accumulate in float32 (``exp2`` of the scaled
distance; tensor-core products in ``tf32x3``, about float32 accuracy), so they match the
float64 reference to a relative 1e-5 for the sizes tested; the cosine sums per-row
partials in float64 on the host.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import triton
import triton.language as tl

from ._device import device_info, guarded, launch
from ._popcount import INT32_MAX, check_words, layer_offsets, layer_weights, small_array
from .int8 import pm1_codes, segment_args, segment_distance, static_k

__all__ = ["heat_matmat", "heat_cosine", "knn"]

_LOG2E = 1.4426950408889634


def _next_pow2(x: int) -> int:
    return 1 << max(0, (int(x) - 1).bit_length())


def _static_k(p, f16: bool) -> int:
    """``KT`` for the kernels: unrolled one-segment K, except with float16 dots (sm_75),
    where K is looped in blocks (unrolled, the ahead-of-time compile for sm_75 spilled
    kilobytes per thread and overran the 64 KB of shared memory)."""
    return 0 if f16 else static_k(p)


def _codes(name: str, words: torch.Tensor, layer_sizes: Sequence[int], weights: Any, exact: bool = False):
    """+-1 codes and device segment arrays for (words, weights); the accumulation mode.

    Integer weights accumulate exactly in int32 when their sums fit; otherwise in float32
    (real weights, or integer sums past int32 for the heat products, whose float32 results
    lose nothing by it). ``exact`` (k-NN: the distances are returned) refuses integer sums
    past int32 instead.
    """
    check_words(name, words, layer_offsets(layer_sizes)[-1])
    w, integral, dmax = layer_weights(weights, layer_sizes)
    if integral and dmax > INT32_MAX and exact:
        raise ValueError(
            f"weights: integer distances up to sum_l w_l B_l = {dmax} pass the Triton k-NN's int32 "
            f"accumulator (max {INT32_MAX}); vqgeom.knn routes such weights through pairwise blocks"
        )
    float_acc = 0 if integral and dmax <= INT32_MAX else 1
    p = pm1_codes(words, layer_sizes, per_layer=w is not None)
    return p, w, float_acc


def _divisor(divisor: Any, name: str = "divisor") -> float:
    if isinstance(divisor, bool) or not isinstance(divisor, (int, np.integer)) or divisor < 1:
        raise ValueError(f"{name}: expected a positive integer, got {divisor!r}")
    return float(divisor)


@triton.jit
def _heat_mm_kernel(S, T, V, OUT, KOFF, BL, WGT, N, M, NSEG, ssn, stn, svn, son, coef, KV,
                    SQUARED: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
                    USE_DOT: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                    KVP: tl.constexpr, KT: tl.constexpr, F16: tl.constexpr):
    pid = tl.program_id(0)
    offs_m = pid * BM + tl.arange(0, BM)
    mm = offs_m < N
    kc = tl.arange(0, KVP)
    acc = tl.zeros((BM, KVP), dtype=tl.float32)
    for n0 in range(0, M, BN):
        offs_n = n0 + tl.arange(0, BN)
        mn = offs_n < M
        d = segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                             WEIGHTED, FLOAT_ACC, BM, BN, BK, KT, F16).to(tl.float32)
        if SQUARED:
            d = d * d
        kt = tl.where(mn[None, :], tl.exp2(d * coef), 0.0)
        vrow = V + offs_n.to(tl.int64) * svn
        if USE_DOT:
            v = tl.load(vrow[:, None] + kc[None, :], mask=mn[:, None] & (kc < KV)[None, :], other=0.0)
            acc = tl.dot(kt, v, acc, input_precision="tf32x3")
        else:
            for c in tl.static_range(KVP):
                v = tl.load(vrow + c, mask=mn & ((offs_n * 0 + c) < KV), other=0.0)
                part = tl.sum(kt * v[None, :], axis=1)
                acc += tl.where(kc[None, :] == c, part[:, None], 0.0)
    ptr = OUT + offs_m.to(tl.int64)[:, None] * son + kc[None, :]
    tl.store(ptr, acc, mask=mm[:, None] & (kc < KV)[None, :])


# Exact float32 of an int32 0 <= d < 2^23 without I2F: the float with the bits of 2^23 + d
# (exponent 2^23, d in the mantissa) is 2^23 + d exactly; subtracting 2^23 is exact too.
# One logic op (integer pipe) and one FADD (FMA pipe) instead of one I2F, which runs at 16
# per clock per multiprocessor on sm_80..sm_90 (CUDA C Programming Guide, throughput of
# native arithmetic instructions), the rate of MUFU.EX2 as well.
MAGIC_LIMIT = 1 << 23


@triton.jit
def small_int_to_float(d, MAGIC: tl.constexpr):
    """``d.to(float32)``; with ``MAGIC`` (0 <= d < 2^23, int32) by the bits of ``2^23 + d``."""
    if MAGIC:
        out = (d | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    else:
        out = d.to(tl.float32)
    return out


def _sym_stages(info: Any, b: int, kt: int, bk: int, kvp: int, use_dot: bool) -> int:
    """Pipeline depth of :func:`_heat_sym_kernel` for a device: the deepest of 3, 2, 1 whose
    shared memory fits its opt-in limit. Model fitted to Triton 3.9's compiles (sm_80,
    sm_90; B = 64, 288 columns): 8 KB of fixed buffers (+ the kernel tile and its transpose,
    2 B^2 float32, for tensor-core products), and with 2+ stages, per stage the int8 operand
    tiles of both sides (2 B K bytes, K the unrolled columns, else one K block) plus the V
    tile of the products (B KVP float32)."""
    fixed = 8192 + (2 * b * b * 4 if use_dot else 0)
    per = 2 * b * (kt or bk) + (b * kvp * 4 if use_dot else 0)
    for stages in (3, 2):
        if fixed + stages * per + 3 * 1024 <= info.smem_optin:
            return stages
    return 1


def _magic(layer_sizes: Sequence[int], weights: Any, float_acc: int) -> bool:
    """Whether the kernels' distances are int32 below 2^23 (exact integer accumulation of
    sums ``sum_l w_l B_l < 2^23``), so :func:`small_int_to_float` may convert them."""
    _, integral, dmax = layer_weights(weights, layer_sizes)
    return float_acc == 0 and integral and dmax < MAGIC_LIMIT


@triton.jit
def _heat_sym_kernel(S, V, OUT, KOFF, BL, WGT, N, NSEG, ssn, svn, son, coef, KV,
                     SQUARED: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
                     MAGIC: tl.constexpr, USE_DOT: tl.constexpr, B: tl.constexpr, BK: tl.constexpr,
                     KVP: tl.constexpr, KT: tl.constexpr, F16: tl.constexpr):
    # Row block i = program_id(0) against column blocks j >= i. The kernel tile K_ij is
    # computed once: K_ij V_j is added to rows i (in registers, then one atomic add, as other
    # programs add to them too), K_ij^T V_i to rows j (atomic adds), except on the diagonal
    # tile, whose K_ii V_i already covers both triangles.
    pid = tl.program_id(0)
    row0 = pid * B
    offs_m = row0 + tl.arange(0, B)
    mm = offs_m < N
    kc = tl.arange(0, KVP)
    kmask = kc < KV
    acc = tl.zeros((B, KVP), dtype=tl.float32)
    if USE_DOT:
        vi = tl.load(V + offs_m.to(tl.int64)[:, None] * svn + kc[None, :], mask=mm[:, None] & kmask[None, :],
                     other=0.0)
    for n0 in range(row0, N, B):
        offs_n = n0 + tl.arange(0, B)
        mn = offs_n < N
        d = segment_distance(S, S, offs_m, offs_n, mm, mn, ssn, ssn, KOFF, BL, WGT, NSEG,
                             WEIGHTED, FLOAT_ACC, B, B, BK, KT, F16)
        df = small_int_to_float(d, MAGIC)
        if SQUARED:
            df = df * df
        kt = tl.where(mm[:, None] & mn[None, :], tl.exp2(df * coef), 0.0)
        vrow = V + offs_n.to(tl.int64) * svn
        orow = OUT + offs_n.to(tl.int64) * son
        if USE_DOT:
            vj = tl.load(vrow[:, None] + kc[None, :], mask=mn[:, None] & kmask[None, :], other=0.0)
            acc = tl.dot(kt, vj, acc, input_precision="tf32x3")
            if n0 != row0:
                col = tl.dot(tl.trans(kt), vi, input_precision="tf32x3")
                tl.atomic_add(orow[:, None] + kc[None, :], col, mask=mn[:, None] & kmask[None, :], sem="relaxed")
        else:
            for c in tl.static_range(KVP):
                vj = tl.load(vrow + c, mask=mn & ((offs_n * 0 + c) < KV), other=0.0)
                part = tl.sum(kt * vj[None, :], axis=1)
                acc += tl.where(kc[None, :] == c, part[:, None], 0.0)
                if n0 != row0:
                    vi = tl.load(V + offs_m.to(tl.int64) * svn + c, mask=mm & ((offs_m * 0 + c) < KV), other=0.0)
                    col = tl.sum(kt * vi[:, None], axis=0)
                    tl.atomic_add(orow + c, col, mask=mn & ((offs_n * 0 + c) < KV), sem="relaxed")
    ptr = OUT + offs_m.to(tl.int64)[:, None] * son + kc[None, :]
    tl.atomic_add(ptr, acc, mask=mm[:, None] & kmask[None, :], sem="relaxed")


@guarded("wx")
def heat_matmat(wx: torch.Tensor, layer_sizes: Sequence[int], V: torch.Tensor, sigma2: float, *,
                wy: torch.Tensor | None = None, weights: Any = None, squared: bool = False, divisor: int = 1,
                block: tuple[int, int] | None = None, num_warps: int = 4, method: str = "full",
                num_stages: int | None = None) -> torch.Tensor:
    """``exp(-D / sigma2) @ V`` without forming ``D`` (``D**2`` if ``squared``).

    ``method="full"`` (default, the kernel timed on an H200): every row block against every
    column block, ``exp2`` after an int-to-float conversion per pair. ``method="sym"``
    (one code set only; opt-in, not yet timed on a GPU): tiles ``i <= j`` only, each
    off-diagonal kernel tile applied to both sides (the column side and the row sums added
    with float32 atomics, so the summation order, and the last bits, vary between runs), and
    integer distances below 2^23 converted by :func:`small_int_to_float` instead of I2F.

    Predicted gain of ``"sym"`` (unit throughputs per clock per multiprocessor on
    sm_80..sm_90, CUDA C Programming Guide; not measured): the full kernel issues per
    pair one I2F and one MUFU.EX2, both 16/clk, i.e. 1/8 clk per pair; at N = 10^6 that is
    10^12 / 8 clk over 132 SMs at 1.98 GHz = 0.48 s on an H200, its bound. ``"sym"``
    computes N^2 / 2 pairs with one EX2 each (the conversion moves to a LOP3 at 64/clk and
    a FADD at 128/clk): 10^12 / 2 / 16 clk = 0.12 s, a 4x lower special-function bound;
    the int8 distance MMA halves too; the products with V stay the same work (two per
    tile of the triangle: tf32x3 dots for k > 4, FMA reductions otherwise). Expected >= 2x
    end to end, until measured. The exp2 itself stays on MUFU: an exp2 polynomial on the
    FMA pipe (about 10 operations at 128/clk, 0.08 clk per entry) is slower than MUFU's
    0.0625 alone, and splitting a tile between the two needs tensor slicing Triton lacks.

    Parameters
    ----------
    wx : torch.Tensor, int32, (N, W)
        Row codes.
    layer_sizes : sequence of int
    V : torch.Tensor, float, (M,) or (M, k)
        Right-hand side (cast to float32); ``M = N`` when ``wy`` is None.
    sigma2 : float
        Positive bandwidth.
    wy : torch.Tensor, int32, (M, W), optional
        Column codes (default: ``wx``).
    weights : None or ndarray (L,)
        Per-layer kernel weights, validated by the caller (integer dtype: exact int32
        sums where they fit; float dtype: real weights).
    squared : bool
        Use ``exp(-D**2 / sigma2)``.
    divisor : int
        ``D`` is the weighted popcount sum divided by this (halved layers, see
        :class:`vqgeom._validate.Weights`): sigma2 is scaled instead of ``D``.

    Returns
    -------
    torch.Tensor, float32, (N,) or (N, k)
    """
    if not (isinstance(sigma2, (int, float)) and math.isfinite(sigma2) and sigma2 > 0):
        raise ValueError(f"sigma2: expected a positive finite number, got {sigma2!r}")
    if not isinstance(V, torch.Tensor):
        raise TypeError(f"V: expected a torch.Tensor, got {type(V).__name__}")
    div = _divisor(divisor) ** (2 if squared else 1)
    vec = V.ndim == 1
    V2 = (V[:, None] if vec else V).to(torch.float32).contiguous()
    px, w, float_acc = _codes("wx", wx, layer_sizes, weights)
    py = px if wy is None else _codes("wy", wy, layer_sizes, weights)[0]
    n, m = px.s.shape[0], py.s.shape[0]
    if V2.ndim != 2 or V2.shape[0] != m:
        raise ValueError(f"V: expected shape ({m},) or ({m}, k), got {tuple(V.shape)}")
    if V2.device != wx.device:
        raise ValueError(f"V: expected a tensor on {wx.device} like wx, got {V2.device}")
    kv = V2.shape[1]
    if method not in ("full", "sym"):
        raise ValueError(f"method: expected 'full' or 'sym', got {method!r}")
    if method == "sym" and wy is not None:
        raise ValueError("method: 'sym' needs one code set (wy=None): it uses the symmetry of D")
    out = torch.zeros((n, kv), dtype=torch.float32, device=wx.device)
    if n == 0 or m == 0 or kv == 0:
        return out[:, 0] if vec else out
    koff, bl, wgt = segment_args(px, w, float_acc, wx.device)
    use_dot = kv > 4
    kvp = max(16, _next_pow2(kv)) if use_dot else _next_pow2(kv)
    f16 = not device_info(wx).int8_mma
    if method == "sym":
        b = 64 if block is None else block[0]
        if block is not None and block[0] != block[1]:
            raise ValueError(f"block: method 'sym' takes square tiles, got {block}")
        launch(
            _heat_sym_kernel, (triton.cdiv(n, b),),
            px.s, V2, out, koff, bl, wgt, n, len(px.units), px.s.stride(0), V2.stride(0), out.stride(0),
            -_LOG2E / (float(sigma2) * div), kv,
            SQUARED=bool(squared), WEIGHTED=w is not None, FLOAT_ACC=float_acc,
            MAGIC=_magic(layer_sizes, weights, float_acc), USE_DOT=use_dot, B=b, BK=px.seg, KVP=kvp,
            KT=_static_k(px, f16), F16=f16, num_warps=num_warps,
            num_stages=num_stages or _sym_stages(device_info(wx), b, _static_k(px, f16), px.seg, kvp, use_dot),
        )
        return out[:, 0] if vec else out
    bm, bn = (128, 64) if block is None else block
    launch(
        _heat_mm_kernel, (triton.cdiv(n, bm),),
        px.s, py.s, V2, out, koff, bl, wgt, n, m, len(px.units), px.s.stride(0), py.s.stride(0),
        V2.stride(0), out.stride(0), -_LOG2E / (float(sigma2) * div), kv,
        SQUARED=bool(squared), WEIGHTED=w is not None, FLOAT_ACC=float_acc, USE_DOT=use_dot,
        BM=bm, BN=bn, BK=px.seg, KVP=kvp, KT=_static_k(px, f16), F16=f16, num_warps=num_warps,
    )
    return out[:, 0] if vec else out


@triton.jit
def _cosine_kernel(S1, S2, OUT, KOFF1, BL1, WGT1, NSEG1, KOFF2, BL2, WGT2, NSEG2, COEF, COEF2, N, s1n, s2n,
                   NS: tl.constexpr, SQUARED: tl.constexpr, W1: tl.constexpr, F1: tl.constexpr,
                   W2: tl.constexpr, F2: tl.constexpr, B: tl.constexpr, BK1: tl.constexpr,
                   BK2: tl.constexpr, SP: tl.constexpr, KT1: tl.constexpr, KT2: tl.constexpr, F16: tl.constexpr,
                   MAGIC1: tl.constexpr = False, MAGIC2: tl.constexpr = False):
    pid = tl.program_id(0)
    offs_m = pid * B + tl.arange(0, B)
    mm = offs_m < N
    sc = tl.arange(0, SP)
    a12 = tl.zeros((B, SP), dtype=tl.float32)
    a11 = tl.zeros((B, SP), dtype=tl.float32)
    a22 = tl.zeros((B, SP), dtype=tl.float32)
    # Both kernels are symmetric: blocks right of the diagonal count twice.
    for n0 in range(pid * B, N, B):
        offs_n = n0 + tl.arange(0, B)
        mn = offs_n < N
        d1 = small_int_to_float(segment_distance(S1, S1, offs_m, offs_n, mm, mn, s1n, s1n, KOFF1, BL1, WGT1,
                                                 NSEG1, W1, F1, B, B, BK1, KT1, F16), MAGIC1)
        d2 = small_int_to_float(segment_distance(S2, S2, offs_m, offs_n, mm, mn, s2n, s2n, KOFF2, BL2, WGT2,
                                                 NSEG2, W2, F2, B, B, BK2, KT2, F16), MAGIC2)
        if SQUARED:
            d1 = d1 * d1
            d2 = d2 * d2
        factor = tl.where(n0 == pid * B, 1.0, 2.0)
        valid = mm[:, None] & mn[None, :]
        for s in tl.static_range(NS):
            c = tl.load(COEF + s)
            k1 = tl.where(valid, tl.exp2(d1 * c), 0.0)
            k2 = tl.where(valid, tl.exp2(d2 * tl.load(COEF2 + s)), 0.0)
            sel = sc[None, :] == s
            a12 += tl.where(sel, factor * tl.sum(k1 * k2, axis=1)[:, None], 0.0)
            a11 += tl.where(sel, factor * tl.sum(k1 * k1, axis=1)[:, None], 0.0)
            a22 += tl.where(sel, factor * tl.sum(k2 * k2, axis=1)[:, None], 0.0)
    base = OUT + offs_m.to(tl.int64)[:, None] * (3 * SP) + sc[None, :]
    keep = mm[:, None] & (sc < NS)[None, :]
    tl.store(base, a12, mask=keep)
    tl.store(base + SP, a11, mask=keep)
    tl.store(base + 2 * SP, a22, mask=keep)


@guarded("words_a")
def heat_cosine(words_a: torch.Tensor, sizes_a: Sequence[int], words_b: torch.Tensor, sizes_b: Sequence[int],
                sigma2s: Sequence[float], *, weights_a: Any = None, weights_b: Any = None,
                squared: bool = False, divisor_a: int = 1, divisor_b: int = 1, block: int = 64,
                num_warps: int = 4, magic: bool = False) -> np.ndarray:
    """Cosine between the heat kernels of two networks on the same N inputs, per sigma2.

    ``cos_s = <K_a, K_b> / (||K_a|| ||K_b||)`` with ``K = exp(-D / sigma2_s)`` (Frobenius),
    streamed over tiles of the upper triangle; no N x N array is formed.

    Parameters
    ----------
    words_a, words_b : torch.Tensor, int32, (N, W_a) and (N, W_b)
        Codes of the same N inputs under two networks.
    sizes_a, sizes_b : sequence of int
        Their layer sizes.
    sigma2s : sequence of float
        Positive bandwidths (all computed in one pass).
    weights_a, weights_b : None or ndarray
        Per-layer kernel weights of each network's VQ distance (validated by the caller).
    divisor_a, divisor_b : int
        Each network's distance is its weighted popcount sum divided by this (halved
        layers); its sigma2s are scaled instead.
    squared : bool
        Use ``exp(-D**2 / sigma2)``.
    magic : bool
        Convert each network's integer distances (exact int32 sums below 2^23) to float by
        :func:`small_int_to_float` instead of I2F (opt-in, not yet timed on a GPU). The kernel
        already computes the upper triangle only; per pair it issues 2 exp2 per sigma2 and,
        without ``magic``, 2 I2F, all at 16/clk per multiprocessor (sm_80..sm_90): with one
        sigma2 the special-function work per pair drops from 4 to 2 issue slots, a predicted
        2x on that bound (1.5x with two sigma2s, less with more).

    Returns
    -------
    ndarray of float64, shape (len(sigma2s),)
    """
    s2 = np.asarray(sigma2s, dtype=np.float64).reshape(-1)
    if s2.size == 0 or not np.all(np.isfinite(s2)) or np.any(s2 <= 0):
        raise ValueError(f"sigma2s: expected one or more positive finite values, got {s2.tolist()}")
    pa, wa, fa = _codes("words_a", words_a, sizes_a, weights_a)
    pb, wb, fb = _codes("words_b", words_b, sizes_b, weights_b)
    n = pa.s.shape[0]
    if pb.s.shape[0] != n:
        raise ValueError(f"words_b: expected {n} rows like words_a, got {pb.s.shape[0]}")
    if words_b.device != words_a.device:
        raise ValueError(f"words_b: expected a tensor on {words_a.device}, got {words_b.device}")
    if n == 0:
        raise ValueError("words_a: expected at least one row, got 0")
    dev = words_a.device
    ns = s2.size
    sp = _next_pow2(ns)
    pw = 2 if squared else 1
    coef = small_array(-_LOG2E / (s2 * _divisor(divisor_a, "divisor_a") ** pw), torch.float32, dev)
    coef2 = small_array(-_LOG2E / (s2 * _divisor(divisor_b, "divisor_b") ** pw), torch.float32, dev)
    out = torch.zeros((n, 3, sp), dtype=torch.float32, device=dev)
    ka, ba, ga = segment_args(pa, wa, fa, dev)
    kb, bb, gb = segment_args(pb, wb, fb, dev)
    f16 = not device_info(dev).int8_mma
    launch(
        _cosine_kernel, (triton.cdiv(n, block),),
        pa.s, pb.s, out, ka, ba, ga, len(pa.units), kb, bb, gb, len(pb.units), coef, coef2, n, pa.s.stride(0),
        pb.s.stride(0), NS=ns, SQUARED=bool(squared), W1=wa is not None, F1=fa, W2=wb is not None, F2=fb,
        B=block, BK1=pa.seg, BK2=pb.seg, SP=sp, KT1=_static_k(pa, f16), KT2=_static_k(pb, f16), F16=f16,
        MAGIC1=bool(magic) and _magic(sizes_a, weights_a, fa), MAGIC2=bool(magic) and _magic(sizes_b, weights_b, fb),
        num_warps=num_warps,
    )
    sums = out.double().sum(dim=0).cpu().numpy()[:, :ns]  # (3, NS)
    return sums[0] / np.sqrt(sums[1] * sums[2])


@triton.jit
def _knn_kernel(S, T, DOUT, IOUT, KOFF, BL, WGT, N, M, NSEG, ssn, stn,
                K: tl.constexpr, KP: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
                BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KT: tl.constexpr, F16: tl.constexpr):
    pid = tl.program_id(0)
    offs_m = pid * BM + tl.arange(0, BM)
    mm = offs_m < N
    BIG: tl.constexpr = 0x7FFFFFFFFFFFFFFF
    slot = tl.arange(0, KP)
    # Keys (distance bits << 32 | column) are unique, so "== max" picks one slot.
    # Unused slots (>= K) hold negative keys: never the worst, never replaced.
    init = tl.where(slot < K, BIG - slot.to(tl.int64), -1 - slot.to(tl.int64))
    best = tl.zeros((BM, KP), dtype=tl.int64) + init[None, :]
    for n0 in range(0, M, BN):
        offs_n = n0 + tl.arange(0, BN)
        mn = offs_n < M
        d = segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                             WEIGHTED, FLOAT_ACC, BM, BN, BK, KT, F16)
        dbits = d.to(tl.int32, bitcast=True).to(tl.int64)  # non-negative: bit order = value order
        keys = tl.where(mn[None, :], (dbits << 32) | offs_n.to(tl.int64)[None, :], BIG)
        worst = tl.max(best, axis=1)
        need = tl.max((tl.min(keys, axis=1) < worst).to(tl.int32), axis=0)
        if need > 0:
            for _ in tl.static_range(K):
                low = tl.min(keys, axis=1)
                worst = tl.max(best, axis=1)
                take = low < worst
                best = tl.where((best == worst[:, None]) & take[:, None], low[:, None], best)
                keys = tl.where(keys == low[:, None], BIG, keys)
    for i in tl.static_range(K):
        low = tl.min(tl.where(slot[None, :] < K, best, BIG), axis=1)
        best = tl.where(best == low[:, None], BIG, best)
        dv = (low >> 32).to(tl.int32)
        if FLOAT_ACC:
            dv = dv.to(tl.float32, bitcast=True)
        tl.store(DOUT + offs_m.to(tl.int64) * K + i, dv, mask=mm)
        tl.store(IOUT + offs_m.to(tl.int64) * K + i, low & 0xFFFFFFFF, mask=mm)


@triton.jit
def _knn_select_kernel(S, T, DOUT, IOUT, KOFF, BL, WGT, N, M, NSEG, ssn, stn,
                       K: tl.constexpr, KP: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
                       BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KT: tl.constexpr, F16: tl.constexpr):
    # Each row keeps its best K keys (distance bits << 32 | column; unique, so ties go to the
    # smaller column) in registers, and a 32-bit threshold: a column of this tile can only
    # enter if its distance is below the row's k-th distance (columns ascend over the tiles,
    # so an equal distance loses on the index), or while the row has fewer than K entries.
    # The common tile costs a compare, an and and one reduction step per pair on 32-bit
    # values; only a tile with a candidate builds 64-bit keys and inserts, one key per row
    # per pass, as many passes as the tile's most insertions in one row.
    pid = tl.program_id(0)
    offs_m = pid * BM + tl.arange(0, BM)
    mm = offs_m < N
    BIG: tl.constexpr = 0x7FFFFFFFFFFFFFFF
    OPEN: tl.constexpr = 0x7FFFFFFF00000000  # keys at or above: initial (unfilled) slots
    I32MAX: tl.constexpr = 0x7FFFFFFF
    slot = tl.arange(0, KP)
    init = tl.where(slot < K, BIG - slot.to(tl.int64), -1 - slot.to(tl.int64))
    best = tl.zeros((BM, KP), dtype=tl.int64) + init[None, :]
    worst = tl.max(best, axis=1)
    # distance bits a candidate must not exceed: all while a slot is open, else k-th - 1
    thr = tl.where(worst >= OPEN, I32MAX, (worst >> 32).to(tl.int32) - 1)
    thr = tl.where(mm, thr, -1)
    for n0 in range(0, M, BN):
        offs_n = n0 + tl.arange(0, BN)
        mn = offs_n < M
        d = segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                             WEIGHTED, FLOAT_ACC, BM, BN, BK, KT, F16)
        dbits = d.to(tl.int32, bitcast=True)  # non-negative: bit order = value order
        hit = (dbits <= thr[:, None]) & mn[None, :]
        if tl.max(tl.max(hit.to(tl.int32), axis=1), axis=0) > 0:
            keys = tl.where(hit, (dbits.to(tl.int64) << 32) | offs_n.to(tl.int64)[None, :], BIG)
            keys = tl.where(keys < worst[:, None], keys, BIG)
            low = tl.min(keys, axis=1)
            pending = tl.max((low < worst).to(tl.int32), axis=0)
            while pending > 0:
                take = low < worst
                best = tl.where((best == worst[:, None]) & take[:, None], low[:, None], best)
                worst = tl.max(best, axis=1)
                keys = tl.where((keys == low[:, None]) | (keys >= worst[:, None]), BIG, keys)
                low = tl.min(keys, axis=1)
                pending = tl.max((low < worst).to(tl.int32), axis=0)
            thr = tl.where(worst >= OPEN, I32MAX, (worst >> 32).to(tl.int32) - 1)
            thr = tl.where(mm, thr, -1)
    for i in tl.static_range(K):
        low = tl.min(tl.where(slot[None, :] < K, best, BIG), axis=1)
        best = tl.where(best == low[:, None], BIG, best)
        dv = (low >> 32).to(tl.int32)
        if FLOAT_ACC:
            dv = dv.to(tl.float32, bitcast=True)
        tl.store(DOUT + offs_m.to(tl.int64) * K + i, dv, mask=mm)
        tl.store(IOUT + offs_m.to(tl.int64) * K + i, low & 0xFFFFFFFF, mask=mm)


@guarded("wx")
def knn(wx: torch.Tensor, layer_sizes: Sequence[int], k: int, *, wy: torch.Tensor | None = None,
        weights: Any = None, block: tuple[int, int] = (64, 64), num_warps: int = 4, method: str = "passes"
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``k`` nearest neighbours by VQ distance, streamed (no N x M matrix).

    ``method="passes"`` (default, the kernel timed on an H200): every column tile in which
    some row has a key below its k-th builds 64-bit keys ``distance << 32 | column`` for the
    whole tile and runs ``k`` tile-wide minimum passes. ``method="select"`` (opt-in, not yet
    timed on a GPU): threshold filtering in the manner of FAISS's WarpSelect -- each row's
    best ``k`` stay in registers with a 32-bit threshold (the k-th distance), a tile is
    tested with a compare, an and and a reduction step per pair on 32-bit values, and only a tile
    with a candidate builds keys, inserting one key per row per pass for as many passes as
    its largest number of insertions in one row (not ``k``). Same results, same tie rule.

    Predicted gain (not measured): per pair of a tile the passes kernel spends about a
    dozen integer operations on 64-bit keys (two 32-bit operations for each 64-bit shift,
    or, select and compare, three for each step of the 64-bit minimum) on every tile with a
    candidate, plus ``k`` minimum passes; ``"select"`` spends three 32-bit operations on a
    tile without one, which after the first ``~64 k`` tiles of a row block is nearly every
    tile (a column at position c enters a row's top k with probability k / c). The integer
    pipes (64/clk per multiprocessor) bound the selection, so about 3-4x less selection
    work; the distance MMA is unchanged.

    Parameters
    ----------
    wx : torch.Tensor, int32, (N, W)
        Query codes.
    layer_sizes : sequence of int
    k : int
        Neighbours per row, ``1 <= k <= M``.
    wy : torch.Tensor, int32, (M, W), optional
        Candidate codes (default ``wx``; a row's own index is then among its neighbours,
        as in ``reference.knn`` on the full matrix).
    weights : None or ndarray (L,)
        Per-layer kernel weights (validated by the caller); integer sums must fit int32
        (``ValueError`` otherwise).

    Returns
    -------
    distances : torch.Tensor, (N, k), int32 (float32 with non-integer weights), ascending
    indices : torch.Tensor, int64, (N, k); ties go to the smaller index
    """
    px, w, float_acc = _codes("wx", wx, layer_sizes, weights, exact=True)
    py = px if wy is None else _codes("wy", wy, layer_sizes, weights, exact=True)[0]
    n, m = px.s.shape[0], py.s.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= max(m, 1) or m == 0:
        raise ValueError(f"k: expected an integer in [1, {m}] (the number of candidates), got {k!r}")
    k = int(k)
    dev = wx.device
    dout = torch.empty((n, k), dtype=torch.float32 if float_acc else torch.int32, device=dev)
    iout = torch.empty((n, k), dtype=torch.int64, device=dev)
    if n == 0:
        return dout, iout
    if method not in ("passes", "select"):
        raise ValueError(f"method: expected 'passes' or 'select', got {method!r}")
    koff, bl, wgt = segment_args(px, w, float_acc, dev)
    bm, bn = block
    f16 = not device_info(dev).int8_mma
    launch(
        _knn_select_kernel if method == "select" else _knn_kernel, (triton.cdiv(n, bm),),
        px.s, py.s, dout, iout, koff, bl, wgt, n, m, len(px.units), px.s.stride(0), py.s.stride(0),
        K=k, KP=max(2, _next_pow2(k)), WEIGHTED=w is not None, FLOAT_ACC=float_acc, BM=bm, BN=bn, BK=px.seg,
        KT=_static_k(px, f16), F16=f16, num_warps=num_warps,
    )
    return dout, iout
