"""Store-only twin of the int8 distance kernel: gpu_check's measure of what the tile
store pattern alone costs (the kernel's own program-to-tile map and tile stores, mirror
stores included; no loads, no products), to tell the store path's share of its time."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vqgeom.kernels.triton._popcount import ensure_allocator
from vqgeom.kernels.triton.int8 import band_tiles, store_tile


@triton.jit
def _store_tiles(OUT, N, chunk, SYM: tl.constexpr, BM: tl.constexpr, TMA: tl.constexpr):
    pid_m, j0, j1 = band_tiles(chunk, N, BM, SYM)
    offs_m = pid_m * BM + tl.arange(0, BM)
    if TMA:
        desc = tl.make_tensor_descriptor(OUT, shape=[N, N], strides=[N, 1], block_shape=[BM, BM])
    else:
        desc = OUT  # unused
    for j in range(j0, j1):
        offs_n = j * BM + tl.arange(0, BM)
        res = (offs_m[:, None] + offs_n[None, :]).to(OUT.dtype.element_ty)
        store_tile(OUT, desc, res, pid_m, j, offs_m.to(tl.int64), offs_n.to(tl.int64), offs_m < N, offs_n < N,
                   N, 1, BM, BM, SYM, TMA)


def store_tiles(out: torch.Tensor, sym: bool, bm: int, chunk: int, tma: bool, num_warps: int = 8) -> None:
    """Fill the square ``out`` with ``i + j`` (wrapped to its dtype) tile by tile."""
    n = out.shape[0]
    t = triton.cdiv(n, bm)
    if tma:
        ensure_allocator(out.device)
    _store_tiles[(t, triton.cdiv(t, chunk))](out, n, chunk, SYM=sym, BM=bm, TMA=tma, num_warps=num_warps)
