"""A plain Triton int8 GEMM (int32 accumulation): gpu_check's second measure of the
tensor cores' int8 rate, beside ``torch._int_mm`` (whichever is faster is the ceiling)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _mm(A, B, C, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, G: tl.constexpr):
    pid = tl.program_id(0)
    npm = tl.cdiv(M, BM)
    npn = tl.cdiv(N, BN)
    width = G * npn
    first = (pid // width) * G
    gs = tl.minimum(npm - first, G)
    pm = first + (pid % width) % gs
    pn = (pid % width) // gs
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    a_ptr = A + rm.to(tl.int64)[:, None] * K + rk[None, :]
    b_ptr = B + rn.to(tl.int64)[None, :] * K + rk[:, None]
    acc = tl.zeros((BM, BN), dtype=tl.int32)
    for _ in range(0, K, BK):
        acc = tl.dot(tl.load(a_ptr), tl.load(b_ptr), acc, out_dtype=tl.int32)
        a_ptr += BK
        b_ptr += BK
    tl.store(C + rm.to(tl.int64)[:, None] * N + rn[None, :], acc)


def int8_gemm(a: torch.Tensor, b: torch.Tensor, cfg=(128, 256, 128, 8, 3)) -> torch.Tensor:
    """``a @ b.T`` for int8 ``a`` (M, K), ``b`` (N, K); sizes multiples of the tiles."""
    m, k = a.shape
    n = b.shape[0]
    bm, bn, bk, warps, stages = cfg
    c = torch.empty((m, n), dtype=torch.int32, device=a.device)
    _mm[(triton.cdiv(m, bm) * triton.cdiv(n, bn),)](a, b, c, m, n, k, BM=bm, BN=bn, BK=bk, G=8,
                                                     num_warps=warps, num_stages=stages)
    return c
