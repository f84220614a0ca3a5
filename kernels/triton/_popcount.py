"""Shared Triton helpers: 32-bit popcount, upper-triangle tile order, argument checks.

``popcount32`` uses the hardware instruction (``popc.b32`` through inline PTX) when
compiled for a GPU and a portable SWAR bit count under ``TRITON_INTERPRET=1``, where
inline assembly and libdevice do not run. The caller picks with the ``HW`` constexpr,
derived from the tensors' device (interpreter tensors live on the CPU).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import triton
import triton.language as tl

__all__ = ["popcount32", "triangle_tile", "hw_popcount", "check_words", "layer_offsets", "check_weights"]


@triton.jit
def popcount32(x, HW: tl.constexpr):
    """Number of set bits of each int32 element (returns int32)."""
    if HW:
        return tl.inline_asm_elementwise(
            "popc.b32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=True, pack=1
        )
    else:
        # SWAR count on the unsigned view (logical shifts).
        u = x.to(tl.uint32, bitcast=True)
        u = u - ((u >> 1) & 0x55555555)
        u = (u & 0x33333333) + ((u >> 2) & 0x33333333)
        u = (u + (u >> 4)) & 0x0F0F0F0F
        u = (u * 0x01010101) >> 24
        return u.to(tl.int32, bitcast=True)


@triton.jit
def triangle_tile(t):
    """Map a linear id ``t`` to the tile ``(row, col)`` with ``row <= col`` (upper triangle).

    Enumerates ``col = 0, 1, ...`` and for each ``row = 0..col``; the float square root
    is corrected by one step each way so the result is exact for any int32 ``t``.
    """
    c = ((tl.sqrt(8.0 * t.to(tl.float32) + 1.0) - 1.0) * 0.5).to(tl.int32)
    c = tl.where((c + 1) * (c + 2) // 2 <= t, c + 1, c)
    c = tl.where(c * (c + 1) // 2 > t, c - 1, c)
    r = t - c * (c + 1) // 2
    return r, c


def hw_popcount(t: Any) -> bool:
    """Whether kernels on ``t`` are compiled for a GPU (else they run in the interpreter)."""
    return bool(t.is_cuda)


def check_words(name: str, w: Any, n_words: int | None = None) -> None:
    """Raise unless ``w`` is a 2-D torch.int32 tensor (with ``n_words`` columns)."""
    import torch

    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of int32 words, got {type(w).__name__}")
    if w.dtype != torch.int32 or w.ndim != 2:
        raise TypeError(f"{name}: expected a 2-D torch.int32 tensor (N, W), got {w.dtype} with shape {tuple(w.shape)}")
    if n_words is not None and w.shape[1] != n_words:
        raise ValueError(f"{name}: expected {n_words} words per row for these layer_sizes, got shape {tuple(w.shape)}")


def layer_offsets(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    """Word offsets of each layer (length L + 1), as in ``vqgeom.codes.layer_word_offsets``."""
    offs = [0]
    for b in layer_sizes:
        if int(b) < 0:
            raise ValueError(f"layer_sizes: expected non-negative unit counts, got {list(layer_sizes)}")
        offs.append(offs[-1] + (int(b) + 31) // 32)
    return tuple(offs)


def check_weights(weights: Any, n_layers: int) -> tuple[np.ndarray | None, bool]:
    """Validate per-layer weights; returns ``(float64 array or None, all_integer)``."""
    if weights is None:
        return None, True
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_layers:
        raise ValueError(f"weights: expected {n_layers} per-layer weights, got {w.shape[0]}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights: expected finite positive weights, got {w.tolist()}")
    return w, bool(np.all(w == np.round(w)))
