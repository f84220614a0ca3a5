"""Tensor-core VQ distances: ``Hamming = (B - <s, t>) / 2`` over +-1 int8 codes.

The packed words are expanded to +-1 int8 rows (padding units become 0, so they add
nothing to a dot product) in K segments: one segment per layer when there are
per-layer weights, a single segment of all units otherwise. Each segment is padded to a
multiple of the K block, so the kernel's loads need no K mask. An int8 x int8 -> int32
dot is exact, so integer distances are exact; weights multiply each layer's integer
Hamming distance once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import triton
import triton.language as tl

from ._popcount import check_words, layer_offsets, triangle_tile

# Bulk tensor (TMA) stores for the distance tiles by default; set from the comparison in
# benchmarks/gpu_check.py (benchmarks/results/gpu-*).
USE_TMA_STORE = False

__all__ = ["Pm1Codes", "pm1_codes", "int8_hamming", "segment_distance", "static_k"]


@dataclass(frozen=True)
class Pm1Codes:
    """+-1 int8 codes in K segments.

    Attributes
    ----------
    s : torch.Tensor, int8, shape (N, K)
    koff : tuple of int, length S + 1
        Column offsets of the segments (each a multiple of ``seg``).
    units : tuple of int, length S
        Real units per segment (``B`` of that segment).
    seg : int
        Segment padding multiple (the kernels' K block).
    """

    s: torch.Tensor
    koff: tuple[int, ...]
    units: tuple[int, ...]
    seg: int


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def pm1_codes(words: torch.Tensor, layer_sizes: Sequence[int], per_layer: bool, seg: int | None = None,
              chunk_rows: int = 1 << 17) -> Pm1Codes:
    """Expand packed words into +-1 int8 codes (see :class:`Pm1Codes`).

    Parameters
    ----------
    words : torch.Tensor, int32, shape (N, W)
    layer_sizes : sequence of int
    per_layer : bool
        One segment per layer (needed for per-layer weights) or one for all units.
    seg : int, optional
        Padding multiple; default 32 when every segment has at most 64 units, else 64.
    chunk_rows : int
        Rows expanded at a time (bounds the (rows, 32 W) int32 temporary).
    """
    sizes = [int(b) for b in layer_sizes]
    offs = layer_offsets(sizes)
    check_words("words", words, offs[-1])
    groups = [[l] for l in range(len(sizes))] if per_layer else [list(range(len(sizes)))]
    units = tuple(sum(sizes[l] for l in g) for g in groups)
    if seg is None:
        seg = 32 if max(units, default=0) <= 64 else 64
    koff = [0]
    for u in units:
        koff.append(koff[-1] + max(_round_up(u, seg), seg))
    # src[k] = bit column of the unpacked words feeding column k, or -1 for padding.
    src = torch.full((koff[-1],), -1, dtype=torch.int64)
    for g, group in enumerate(groups):
        k = koff[g]
        for l in group:
            src[k : k + sizes[l]] = torch.arange(offs[l] * 32, offs[l] * 32 + sizes[l])
            k += sizes[l]
    dev = words.device
    src = src.to(dev)
    valid = src >= 0
    src = src.clamp_min(0)
    shifts = torch.arange(32, dtype=torch.int32, device=dev)
    n = words.shape[0]
    out = torch.empty((n, koff[-1]), dtype=torch.int8, device=dev)
    for r0 in range(0, n, chunk_rows):
        w = words[r0 : r0 + chunk_rows]
        bits = ((w.unsqueeze(-1) >> shifts) & 1).reshape(w.shape[0], -1)
        pm = (bits[:, src] * 2 - 1) * valid
        out[r0 : r0 + chunk_rows] = pm.to(torch.int8)
    return Pm1Codes(out, tuple(koff), units, seg)


@triton.jit
def segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                     WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                     BK: tl.constexpr, KT: tl.constexpr):
    """Distance tile (BM, BN) between rows ``offs_m`` of S and ``offs_n`` of T.

    int32 (``FLOAT_ACC == 0``), float32 (1) or float64 (2). ``KT > 0`` says there is one
    segment of ``KT`` columns: the K loop is then unrolled at compile time, so every
    operand load is issued up front instead of one dependent round trip per K block.
    """
    srow = S + offs_m.to(tl.int64)[:, None] * ssn
    tcol = T + offs_n.to(tl.int64)[None, :] * stn
    ak = tl.arange(0, BK)
    if KT > 0:
        dot = tl.zeros((BM, BN), dtype=tl.int32)
        for k in tl.static_range(0, KT, BK):
            a = tl.load(srow + (k + ak)[None, :], mask=mm[:, None], other=0)
            b = tl.load(tcol + (k + ak)[:, None], mask=mn[None, :], other=0)
            dot = tl.dot(a, b, dot, out_dtype=tl.int32)
        h = (tl.load(BL) - dot) >> 1
        if FLOAT_ACC == 2:
            h = h.to(tl.float64)
        elif FLOAT_ACC == 1:
            h = h.to(tl.float32)
        if WEIGHTED:
            total = h * tl.load(WGT)
        else:
            total = h
    else:
        if FLOAT_ACC == 2:
            total = tl.zeros((BM, BN), dtype=tl.float64)
        elif FLOAT_ACC == 1:
            total = tl.zeros((BM, BN), dtype=tl.float32)
        else:
            total = tl.zeros((BM, BN), dtype=tl.int32)
        for g in range(NSEG):
            k0 = tl.load(KOFF + g)
            k1 = tl.load(KOFF + g + 1)
            dot = tl.zeros((BM, BN), dtype=tl.int32)
            for k in range(k0, k1, BK):
                a = tl.load(srow + (k + ak)[None, :], mask=mm[:, None], other=0)
                b = tl.load(tcol + (k + ak)[:, None], mask=mn[None, :], other=0)
                dot = tl.dot(a, b, dot, out_dtype=tl.int32)
            h = (tl.load(BL + g) - dot) >> 1
            if WEIGHTED:
                total += (h * tl.load(WGT + g)).to(total.dtype)
            else:
                total += h
    return total


def static_k(p: "Pm1Codes", max_k: int = 1024) -> int:
    """``KT`` for the kernels: the column count when there is one segment (unrolled), else 0."""
    return p.koff[-1] if len(p.units) == 1 and p.koff[-1] <= max_k else 0


@triton.jit
def _int8_hamming_kernel(
    S, T, OUT, KOFF, BL, WGT, N, M, NSEG, ssn, stn, son, som,
    SYM: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KT: tl.constexpr, TMA: tl.constexpr,
):
    if SYM:
        pid_m, pid_n = triangle_tile(tl.program_id(0))
    else:
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    mm = offs_m < N
    mn = offs_n < M
    total = segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                             WEIGHTED, FLOAT_ACC, BM, BN, BK, KT)
    res = total.to(OUT.dtype.element_ty)
    if TMA:
        # Bulk tensor stores (Hopper's copy engine): asynchronous, clipped at the edges.
        desc = tl.make_tensor_descriptor(OUT, shape=[N, M], strides=[son, 1], block_shape=[BM, BN])
        desc.store([pid_m * BM, pid_n * BN], res)
        if SYM:
            if pid_m != pid_n:
                desc.store([pid_n * BN, pid_m * BM], tl.trans(res))
    else:
        om = offs_m.to(tl.int64)
        on = offs_n.to(tl.int64)
        tl.store(OUT + om[:, None] * son + on[None, :] * som, res, mask=mm[:, None] & mn[None, :])
        if SYM:
            if pid_m != pid_n:
                tl.store(OUT + on[:, None] * son + om[None, :] * som, tl.trans(res), mask=mn[:, None] & mm[None, :])


_ALLOCATOR_SET = False


def _tma_ok(out: torch.Tensor) -> bool:
    """Whether the output can take bulk tensor stores: Hopper or newer, 16-byte rows."""
    if not out.is_cuda or torch.cuda.get_device_capability(out.device)[0] < 9:
        return False
    return out.stride(1) == 1 and (out.stride(0) * out.element_size()) % 16 == 0 and out.data_ptr() % 16 == 0


def _ensure_allocator() -> None:
    """Device-side tensor descriptors need scratch memory from a Triton allocator."""
    global _ALLOCATOR_SET
    if not _ALLOCATOR_SET:
        triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
        _ALLOCATOR_SET = True


def segment_args(p: Pm1Codes, w: Any, float_acc: int, device: torch.device):
    """Device arrays (KOFF, BL, WGT) for the kernels from a :class:`Pm1Codes` and weights."""
    koff = torch.tensor(p.koff, dtype=torch.int32, device=device)
    bl = torch.tensor(p.units, dtype=torch.int32, device=device)
    if w is None:
        wgt = bl  # unused
    else:
        wgt = torch.tensor(w, dtype=(torch.int32, torch.float32, torch.float64)[int(float_acc)], device=device)
    return koff, bl, wgt


def int8_hamming(
    wx: torch.Tensor,
    wy: torch.Tensor | None,
    layer_sizes: Sequence[int],
    weights: Any = None,
    out_dtype: torch.dtype = torch.int32,
    *,
    block: tuple[int, int, int] | None = None,
    num_warps: int = 8,
    num_stages: int = 3,
    tma: bool | None = None,
) -> torch.Tensor:
    """Pairwise VQ distances through int8 tensor-core dot products.

    Same arguments and result as :func:`vqgeom.kernels.triton.hamming.pairwise_hamming`;
    ``block`` is ``(BM, BN, BK)`` (default 128, 128, and the segment multiple). ``tma``
    writes the tiles with bulk tensor stores (default ``USE_TMA_STORE`` where the GPU and
    the output's row alignment allow it).
    """
    from .hamming import prepare_weights

    offs = layer_offsets(layer_sizes)
    check_words("wx", wx, offs[-1])
    if wy is not None:
        check_words("wy", wy, offs[-1])
        if wy.device != wx.device:
            raise ValueError(f"wy: expected a tensor on {wx.device} like wx, got {wy.device}")
    w, float_acc, _ = prepare_weights(layer_sizes, weights, out_dtype)
    sym = wy is None
    n = wx.shape[0]
    m = n if sym else wy.shape[0]
    out = torch.empty((n, m), dtype=out_dtype, device=wx.device)
    if n == 0 or m == 0:
        return out
    per_layer = w is not None
    bk = None if block is None else block[2]
    px = pm1_codes(wx, layer_sizes, per_layer, seg=bk)
    py = px if sym else pm1_codes(wy, layer_sizes, per_layer, seg=px.seg)
    bm, bn = (128, 128) if block is None else block[:2]
    koff, bl, wgt = segment_args(px, w, float_acc, wx.device)
    if sym:
        if bm != bn:
            raise ValueError(f"block: the symmetric mode needs square tiles, got {block}")
        t = triton.cdiv(n, bm)
        grid = (t * (t + 1) // 2,)
    else:
        grid = (triton.cdiv(n, bm), triton.cdiv(m, bn))
    use_tma = (USE_TMA_STORE if tma is None else bool(tma)) and _tma_ok(out)
    if use_tma:
        _ensure_allocator()
    _int8_hamming_kernel[grid](
        px.s, py.s, out, koff, bl, wgt, n, m, len(px.units), px.s.stride(0), py.s.stride(0),
        out.stride(0), out.stride(1),
        SYM=sym, WEIGHTED=w is not None, FLOAT_ACC=int(float_acc), BM=bm, BN=bn, BK=px.seg, KT=static_k(px),
        TMA=use_tma, num_warps=num_warps, num_stages=num_stages,
    )
    return out
