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

import numpy as np
import torch
import triton
import triton.language as tl

from ._device import DeviceInfo, MAX_GRID_YZ, device_info, fold_rows, guarded, launch
from ._popcount import add_layer, check_words, condensed_index, ensure_allocator, layer_offsets, small_array, tma_ok, to_acc

# Default tuning of int8_hamming (see its docstring), from benchmarks/gpu_check.py on an
# H200 (N = 10^5, B = 288, symmetric int16: 7.74-7.96 ms over four runs, 1.31-1.34x the
# HBM write floor; 256 tiles per program within that spread; one tile per program 3.2x;
# benchmarks/results/gpu-h200-2026-11-26.md). Outputs of 8-byte elements take
# 64 x 64 tiles unless a block is given (the epilogue's tile goes through shared memory).
# On GPUs with less shared memory per block, :func:`int8_plan` shrinks the tiles and the
# pipeline (checked ahead of time for every target in ``_device.TARGETS``).
INT8_CONFIG = dict(block=(128, 128, 32), num_warps=8, num_stages=3, chunk=128, hold=True, tma=False)
# The default chunk shrinks until the grid has this many programs per multiprocessor.
PROGRAMS_PER_SM = 4
# Shared memory left unplanned per block (the compiler's barriers and scratch).
SMEM_SLACK = 7 * 1024

__all__ = ["Pm1Codes", "pm1_codes", "int8_hamming", "segment_distance", "single_segment", "static_k",
           "k_pieces", "INT8_CONFIG"]


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


@triton.jit
def _pm1_kernel(W, SRC, OUT, N, K, swn, son, BR: tl.constexpr, BC: tl.constexpr):
    """OUT[r, k] = +1 / -1 for bit SRC[k] of row r's words, 0 where SRC[k] < 0 (padding).

    Row blocks along the grid's x axis, column blocks ``program_id(1), + num_programs(1),
    ...`` (y holds at most 65,535)."""
    rows = tl.program_id(0) * BR + tl.arange(0, BR)
    mr = rows < N
    for cb in range(tl.program_id(1), tl.cdiv(K, BC), tl.num_programs(1)):
        cols = cb * BC + tl.arange(0, BC)
        mc = cols < K
        src = tl.load(SRC + cols, mask=mc, other=-1)
        bit_col = tl.maximum(src, 0)
        m2 = mr[:, None] & mc[None, :]
        w = tl.load(W + rows.to(tl.int64)[:, None] * swn + (bit_col >> 5)[None, :], mask=m2, other=0)
        bit = (w >> (bit_col & 31)[None, :]) & 1
        pm = tl.where((src >= 0)[None, :], bit * 2 - 1, 0)
        tl.store(OUT + rows.to(tl.int64)[:, None] * son + cols[None, :], pm.to(tl.int8), mask=m2)


@guarded("words")
def pm1_codes(words: torch.Tensor, layer_sizes: Sequence[int], per_layer: bool, seg: int | None = None) -> Pm1Codes:
    """Expand packed words into +-1 int8 codes (see :class:`Pm1Codes`).

    Parameters
    ----------
    words : torch.Tensor, int32, shape (N, W)
    layer_sizes : sequence of int
    per_layer : bool
        One segment per layer (needed for per-layer weights) or one for all units.
    seg : int, optional
        Padding multiple; default 32 when every segment has at most 64 units, else 64.
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
    src = np.full(koff[-1], -1, dtype=np.int32)
    for g, group in enumerate(groups):
        k = koff[g]
        for l in group:
            src[k : k + sizes[l]] = np.arange(offs[l] * 32, offs[l] * 32 + sizes[l])
            k += sizes[l]
    n = words.shape[0]
    out = torch.empty((n, koff[-1]), dtype=torch.int8, device=words.device)
    if n:
        words = words.contiguous()
        br, bc = 32, 128
        launch(_pm1_kernel, (triton.cdiv(n, br), fold_rows(triton.cdiv(koff[-1], bc))),
            words, small_array(src, torch.int32, words.device), out, n, koff[-1], words.stride(0), out.stride(0),
            BR=br, BC=bc, num_warps=4,
        )
    return Pm1Codes(out, tuple(koff), units, seg)


@triton.jit
def single_segment(dot, BL, WGT, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr):
    """Distance tile of a one-segment code from its +-1 dot products: ``w (B - dot) / 2``."""
    h = to_acc((tl.load(BL) - dot) >> 1, FLOAT_ACC)
    if WEIGHTED:
        return h * tl.load(WGT)
    return h


@triton.jit
def pm1_dot(a, b, acc, F16: tl.constexpr):
    """``acc + a @ b`` for +-1/0 int8 tiles, int32. ``F16``: through float16 operands and
    a float32 accumulator (GPUs without int8 tensor-core dots in Triton, sm_75), exact
    while every partial sum stays below 2^24 in magnitude (K < 2^24 columns)."""
    if F16:
        out = tl.dot(a.to(tl.float16), b.to(tl.float16), out_dtype=tl.float32).to(tl.int32) + acc
    else:
        out = tl.dot(a, b, acc, out_dtype=tl.int32)
    return out


@triton.jit
def segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                     WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                     BK: tl.constexpr, KT: tl.constexpr, F16: tl.constexpr = False):
    """Distance tile (BM, BN) between rows ``offs_m`` of S and ``offs_n`` of T.

    int32 (``FLOAT_ACC == 0``), float32 (1), float64 (2) or int64 (3). ``KT > 0`` says there is one
    segment of ``KT`` columns: the K loop is then unrolled at compile time, so every
    operand load is issued up front instead of one dependent round trip per K block.
    ``F16``: dots through float16 operands (see :func:`pm1_dot`).
    """
    srow = S + offs_m.to(tl.int64)[:, None] * ssn
    tcol = T + offs_n.to(tl.int64)[None, :] * stn
    ak = tl.arange(0, BK)
    if KT > 0:
        dot = tl.zeros((BM, BN), dtype=tl.int32)
        for k in tl.static_range(0, KT, BK):
            a = tl.load(srow + (k + ak)[None, :], mask=mm[:, None], other=0)
            b = tl.load(tcol + (k + ak)[:, None], mask=mn[None, :], other=0)
            dot = pm1_dot(a, b, dot, F16)
        total = single_segment(dot, BL, WGT, WEIGHTED, FLOAT_ACC)
    else:
        total = to_acc(tl.zeros((BM, BN), dtype=tl.int32), FLOAT_ACC)
        for g in range(NSEG):
            k0 = tl.load(KOFF + g)
            k1 = tl.load(KOFF + g + 1)
            dot = tl.zeros((BM, BN), dtype=tl.int32)
            for k in range(k0, k1, BK):
                a = tl.load(srow + (k + ak)[None, :], mask=mm[:, None], other=0)
                b = tl.load(tcol + (k + ak)[:, None], mask=mn[None, :], other=0)
                dot = pm1_dot(a, b, dot, F16)
            total = add_layer(total, (tl.load(BL + g) - dot) >> 1, WGT + g, WEIGHTED)
    return total


def static_k(p: "Pm1Codes", max_k: int = 1024) -> int:
    """``KT`` for the kernels: the column count when there is one segment (unrolled), else 0."""
    return p.koff[-1] if len(p.units) == 1 and p.koff[-1] <= max_k else 0


def k_pieces(kt: int, seg: int, max_pieces: int = 4) -> tuple[int, ...]:
    """``kt`` as at most ``max_pieces`` powers of two (each a multiple of ``seg``, largest
    first, zeros after), or all zeros when it takes more: the row block of a one-segment
    code is then held in that many register tiles across the column loop."""
    pieces = [1 << b for b in range(kt.bit_length() - 1, -1, -1) if kt >> b & 1]
    if kt == 0 or len(pieces) > max_pieces or pieces[-1] < seg:
        return (0,) * max_pieces
    return tuple(pieces) + (0,) * (max_pieces - len(pieces))


@triton.jit
def _tile_dot(a, tcol, k0, mn, K: tl.constexpr, acc, F16: tl.constexpr):
    """``acc + a @ T[cols, k0 : k0 + K]^T`` for the held row tile ``a`` (BM, K)."""
    b = tl.load(tcol + (k0 + tl.arange(0, K))[:, None], mask=mn[None, :], other=0)
    return pm1_dot(a, b, acc, F16)


@triton.jit
def band_tiles(chunk, M, BN: tl.constexpr, SYM: tl.constexpr):
    """``(row block, first column tile, end column tile)`` of this program: row block
    ``program_id(0)``, ``chunk`` column tiles from ``program_id(1) * chunk`` (symmetric:
    counted from the diagonal tile)."""
    pid_m = tl.program_id(0)
    j0 = tl.program_id(1) * chunk
    if SYM:
        j0 += pid_m
    return pid_m, j0, tl.minimum(j0 + chunk, tl.cdiv(M, BN))


@triton.jit
def store_tile(OUT, desc, res, pid_m, j, om, on, mm, mn, son, som, BM: tl.constexpr, BN: tl.constexpr,
               SYM: tl.constexpr, TMA: tl.constexpr, CONDENSED: tl.constexpr = False):
    """Store tile ``(pid_m, j)`` (rows ``om``, columns ``on``) and, symmetric, its mirror
    ``(j, pid_m)`` transposed; with ``TMA`` through the tensor descriptor ``desc`` (bulk
    tensor stores: asynchronous, clipped at the edges). ``CONDENSED`` (symmetric, upper
    triangle tiles): only the pairs above the diagonal, in the condensed layout of ``son``
    rows, into the 1-D ``OUT``."""
    if CONDENSED:
        keep = mm[:, None] & mn[None, :] & (on[None, :] > om[:, None])
        tl.store(OUT + condensed_index(om, on, son), res, mask=keep)
    elif TMA:
        desc.store([pid_m * BM, j * BN], res)
        if SYM:
            if j != pid_m:
                desc.store([j * BN, pid_m * BM], tl.trans(res))
    else:
        tl.store(OUT + om[:, None] * son + on[None, :] * som, res, mask=mm[:, None] & mn[None, :])
        if SYM:
            if j != pid_m:
                tl.store(OUT + on[:, None] * son + om[None, :] * som, tl.trans(res), mask=mn[:, None] & mm[None, :])


@triton.jit
def _int8_hamming_kernel(
    S, T, OUT, KOFF, BL, WGT, N, M, NSEG, ssn, stn, son, som, chunk,
    SYM: tl.constexpr, WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KT: tl.constexpr,
    K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    TMA: tl.constexpr, STAGES: tl.constexpr, F16: tl.constexpr, CONDENSED: tl.constexpr,
):
    """Row block ``program_id(0)`` against ``chunk`` column tiles from ``program_id(1) * chunk``
    (symmetric: from the diagonal tile on, each tile also stored transposed).

    With ``K1 > 0`` (one segment of ``K1 + K2 + K3 + K4`` columns) the row block's codes
    are loaded once and held in registers; only the column tiles' codes are loaded in the
    loop, which the compiler pipelines ``STAGES`` deep, while earlier tiles' stores drain.
    ``CONDENSED``: the pairs above the diagonal in the 1-D condensed layout (``son = N``).
    Grid: row blocks along x (up to 2^31 - 1), column chunks along y (at most 65,535:
    :func:`int8_plan` widens the chunk until they fit).
    """
    pid_m, j0, j1 = band_tiles(chunk, M, BN, SYM)
    offs_m = pid_m * BM + tl.arange(0, BM)
    mm = offs_m < N
    om = offs_m.to(tl.int64)
    if K1 > 0:
        srow = S + om[:, None] * ssn
        a1 = tl.load(srow + tl.arange(0, K1)[None, :], mask=mm[:, None], other=0)
        if K2 > 0:
            a2 = tl.load(srow + (K1 + tl.arange(0, K2))[None, :], mask=mm[:, None], other=0)
        if K3 > 0:
            a3 = tl.load(srow + (K1 + K2 + tl.arange(0, K3))[None, :], mask=mm[:, None], other=0)
        if K4 > 0:
            a4 = tl.load(srow + (K1 + K2 + K3 + tl.arange(0, K4))[None, :], mask=mm[:, None], other=0)
    if TMA:
        desc = tl.make_tensor_descriptor(OUT, shape=[N, M], strides=[son, 1], block_shape=[BM, BN])
    else:
        desc = OUT  # unused
    for j in tl.range(j0, j1, num_stages=STAGES):
        offs_n = j * BN + tl.arange(0, BN)
        mn = offs_n < M
        if K1 > 0:
            tcol = T + offs_n.to(tl.int64)[None, :] * stn
            dot = _tile_dot(a1, tcol, 0, mn, K1, tl.zeros((BM, BN), dtype=tl.int32), F16)
            if K2 > 0:
                dot = _tile_dot(a2, tcol, K1, mn, K2, dot, F16)
            if K3 > 0:
                dot = _tile_dot(a3, tcol, K1 + K2, mn, K3, dot, F16)
            if K4 > 0:
                dot = _tile_dot(a4, tcol, K1 + K2 + K3, mn, K4, dot, F16)
            total = single_segment(dot, BL, WGT, WEIGHTED, FLOAT_ACC)
        else:
            total = segment_distance(S, T, offs_m, offs_n, mm, mn, ssn, stn, KOFF, BL, WGT, NSEG,
                                     WEIGHTED, FLOAT_ACC, BM, BN, BK, KT, F16)
        store_tile(OUT, desc, total.to(OUT.dtype.element_ty), pid_m, j, om, offs_n.to(tl.int64), mm, mn, son, som,
                   BM, BN, SYM, TMA, CONDENSED)


def segment_args(p: Pm1Codes, w: Any, float_acc: int, device: torch.device):
    """Device arrays (KOFF, BL, WGT) for the kernels from a :class:`Pm1Codes` and weights."""
    koff = small_array(p.koff, torch.int32, device)
    bl = small_array(p.units, torch.int32, device)
    if w is None:
        wgt = bl  # unused
    else:
        wgt = small_array(w, (torch.int32, torch.float32, torch.float64, torch.int64)[int(float_acc)], device)
    return koff, bl, wgt


@dataclass(frozen=True)
class Int8Plan:
    """A launch configuration of the int8 kernel for one device and problem."""

    bm: int
    bn: int
    bk: int
    pieces: tuple[int, int, int, int]
    stages: int
    chunk: int
    num_warps: int
    f16: bool
    kt: int  # KT of the kernel: one unrolled segment of kt columns, or 0 (K loop)
    smem_model: int  # bytes the plan budgets for (the compiled kernel's own figure is checked ahead of time)


def int8_plan(info: DeviceInfo, n: int, m: int, kt: int, seg: int, out_elem: int, sym: bool,
              cfg: dict, given: dict) -> Int8Plan:
    """Tiles, pipeline depth, K unrolling and chunk of :func:`int8_hamming` for a device.

    ``kt``: columns of a one-segment code (0: segment loops), ``seg``: the K block,
    ``out_elem``: output bytes per element; ``cfg`` the configuration (``INT8_CONFIG``
    with the caller's ``given`` entries). Shared memory is budgeted as the epilogue's
    tile, the held row block, and per pipeline stage the column tile (held rows) or both
    tiles, over all K (unrolled) or one K block (segment loops), within the device's
    opt-in limit less ``SMEM_SLACK``. Where even one stage does not fit, the tiles halve
    (unless ``block`` was given), then the row block is no longer held, then the K loop
    is no longer unrolled. Held rows stay within 64 KB of registers.
    """
    budget = info.smem_optin - SMEM_SLACK
    bm0, bn0, bk = cfg["block"]
    if "block" not in given and out_elem >= 8:
        bm0, bn0 = bm0 // 2, bn0 // 2
    options = [(bool(cfg["hold"]), kt)]
    if cfg["hold"]:
        options.append((False, kt))
    if kt:
        options.append((False, 0))
    if not info.int8_mma:
        # float16 dots (sm_75): operands converted tile by tile; unrolled or held K made
        # the compiled kernel spill kilobytes and need twice the modelled shared memory
        # (ahead-of-time compile for sm_75), so K is looped in blocks of ``seg``.
        options = [(False, 0)]
        if "block" not in given:
            bm0, bn0 = min(bm0, 64), min(bn0, 64)
    for hold, k in options:
        bm, bn = bm0, bn0
        while True:
            pieces = k_pieces(k, seg) if hold and k and k * bm <= 1 << 16 else (0, 0, 0, 0)
            held = bm * k if pieces[0] else 0
            per_stage = (bn if pieces[0] else bm + bn) * (k or seg)
            spare = budget - bm * bn * out_elem - held
            if spare >= per_stage or "block" in given or min(bm, bn) <= 32:
                break
            bm, bn = bm // 2, bn // 2
        if spare >= per_stage:
            break
    stages = max(1, min(int(cfg["num_stages"]), spare // per_stage))
    tm, tn = triton.cdiv(n, bm), triton.cdiv(m, bn)
    chunk = max(1, int(cfg["chunk"]))
    if "chunk" not in given:
        # Fewer tiles per program when that many would leave the GPU short of programs.
        tiles = tm * (tm + 1) // 2 if sym else tm * tn
        chunk = max(1, min(chunk, tiles // (PROGRAMS_PER_SM * info.sm_count)))
    # Column chunks go along the grid's y axis: at most 65,535 of them.
    chunk = max(chunk, triton.cdiv(tn, MAX_GRID_YZ))
    return Int8Plan(bm, bn, bk, pieces, stages, chunk, int(cfg["num_warps"]), not info.int8_mma, k,
                    bm * bn * out_elem + held + stages * per_stage)


@guarded("wx")
def int8_hamming(
    wx: torch.Tensor,
    wy: torch.Tensor | None,
    layer_sizes: Sequence[int],
    weights: Any = None,
    out_dtype: torch.dtype = torch.int32,
    *,
    block: tuple[int, int, int] | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
    chunk: int | None = None,
    hold: bool | None = None,
    tma: bool | None = None,
    condensed: bool = False,
) -> torch.Tensor:
    """Pairwise VQ distances through int8 tensor-core dot products.

    Same arguments and result as :func:`vqgeom.kernels.triton.hamming.pairwise_hamming`.
    Tuning (defaults in ``INT8_CONFIG``, measured on an H200): ``block`` is
    ``(BM, BN, BK)`` (BK: the segment multiple); each program takes ``chunk`` column
    tiles of one row block (by default fewer when the grid would have fewer than
    ``PROGRAMS_PER_SM`` programs per multiprocessor), pipelined ``num_stages`` deep;
    ``hold`` keeps the row block's codes in registers across them (one-segment codes);
    ``tma`` writes the tiles with bulk tensor stores where the GPU and the output's row
    alignment allow it. Tiles and pipeline depth shrink to the device's shared memory
    (:func:`int8_plan`); GPUs without int8 tensor-core dots in Triton (sm_75) take
    float16 dots, exact for these +-1 codes. ``condensed`` (symmetric only): the 1-D
    upper triangle (see :func:`vqgeom.kernels.triton.hamming.pairwise_hamming`).
    """
    from .hamming import alloc_out, prepare_weights

    given = {key: val for key, val in dict(block=block, num_warps=num_warps, num_stages=num_stages, chunk=chunk,
                                           hold=hold, tma=tma).items() if val is not None}
    cfg = {**INT8_CONFIG, **given}
    offs = layer_offsets(layer_sizes)
    check_words("wx", wx, offs[-1])
    if wy is not None:
        check_words("wy", wy, offs[-1])
        if wy.device != wx.device:
            raise ValueError(f"wy: expected a tensor on {wx.device} like wx, got {wy.device}")
    w, float_acc, _ = prepare_weights(layer_sizes, weights, out_dtype)
    sym = wy is None
    if condensed and not sym:
        raise ValueError("condensed: the condensed layout is for one code set (wy=None), got a second set wy")
    n = wx.shape[0]
    m = n if sym else wy.shape[0]
    out = alloc_out(n, m, out_dtype, wx.device, condensed)
    if out.numel() == 0:
        return out
    per_layer = w is not None
    info = device_info(wx)
    bk = cfg["block"][2]
    px = pm1_codes(wx, layer_sizes, per_layer, seg=bk)
    py = px if sym else pm1_codes(wy, layer_sizes, per_layer, seg=px.seg)
    koff, bl, wgt = segment_args(px, w, float_acc, wx.device)
    if sym and cfg["block"][0] != cfg["block"][1]:
        raise ValueError(f"block: the symmetric mode needs square tiles, got {cfg['block']}")
    kt = static_k(px)
    plan = int8_plan(info, n, m, kt, px.seg, out.element_size(), sym, cfg, given)
    use_tma = bool(cfg["tma"]) and not condensed and tma_ok(out)
    if use_tma:
        ensure_allocator(out.device)
    grid = (triton.cdiv(n, plan.bm), triton.cdiv(triton.cdiv(m, plan.bn), plan.chunk))
    p = plan.pieces
    launch(
        _int8_hamming_kernel, grid,
        px.s, py.s, out, koff, bl, wgt, n, m, len(px.units), px.s.stride(0), py.s.stride(0),
        n if condensed else out.stride(0), 1 if condensed else out.stride(1), plan.chunk,
        SYM=sym, WEIGHTED=w is not None, FLOAT_ACC=int(float_acc), BM=plan.bm, BN=plan.bn, BK=px.seg, KT=plan.kt,
        K1=p[0], K2=p[1], K3=p[2], K4=p[3], TMA=use_tma, STAGES=plan.stages, F16=plan.f16, CONDENSED=condensed,
        num_warps=plan.num_warps,
    )
    return out
