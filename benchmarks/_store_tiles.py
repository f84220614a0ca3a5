"""Store-only twin of the int8 distance kernel: gpu_check's measure of what the tile
store pattern alone costs (same grid, chunks, transposed mirror stores; no loads, no
products), to tell the store path's share of the distance kernel's time."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _store_tiles(OUT, N, chunk, SYM: tl.constexpr, BM: tl.constexpr, TMA: tl.constexpr):
    pid_m = tl.program_id(0)
    j0 = tl.program_id(1) * chunk
    if SYM:
        j0 += pid_m
    j1 = tl.minimum(j0 + chunk, tl.cdiv(N, BM))
    offs_m = pid_m * BM + tl.arange(0, BM)
    mm = offs_m < N
    om = offs_m.to(tl.int64)
    if TMA:
        desc = tl.make_tensor_descriptor(OUT, shape=[N, N], strides=[N, 1], block_shape=[BM, BM])
    for j in range(j0, j1):
        offs_n = j * BM + tl.arange(0, BM)
        mn = offs_n < N
        res = (offs_m[:, None] + offs_n[None, :]).to(OUT.dtype.element_ty)
        if TMA:
            desc.store([pid_m * BM, j * BM], res)
            if SYM:
                if j != pid_m:
                    desc.store([j * BM, pid_m * BM], tl.trans(res))
        else:
            on = offs_n.to(tl.int64)
            tl.store(OUT + om[:, None] * N + on[None, :], res, mask=mm[:, None] & mn[None, :])
            if SYM:
                if j != pid_m:
                    tl.store(OUT + on[:, None] * N + om[None, :], tl.trans(res), mask=mn[:, None] & mm[None, :])


def store_tiles(out: torch.Tensor, sym: bool, bm: int, chunk: int, tma: bool, num_warps: int = 8) -> None:
    """Fill the square ``out`` with ``i + j`` (mod the dtype) tile by tile."""
    n = out.shape[0]
    t = triton.cdiv(n, bm)
    if tma:
        from vqgeom.kernels.triton._popcount import ensure_allocator

        ensure_allocator(out.device)
    _store_tiles[(t, triton.cdiv(t, chunk))](out, n, chunk, SYM=sym, BM=bm, TMA=tma, num_warps=num_warps)
