"""Shared Triton helpers: 32-bit popcount, upper-triangle tile order, argument checks.

``popcount32`` uses the hardware instruction (``popc.b32`` through inline PTX) when
compiled for a GPU and a portable SWAR bit count under ``TRITON_INTERPRET=1``, where
inline assembly and libdevice do not run. The caller picks with the ``HW`` constexpr,
derived from the tensors' device (interpreter tensors live on the CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton
import triton.language as tl

from vqgeom.codes import layer_word_offsets

__all__ = ["popcount32", "triangle_tile", "hw_popcount", "check_words", "layer_offsets", "layer_weights", "INT32_MAX",
           "ensure_allocator", "tma_ok", "small_array",
           "to_acc", "add_layer", "condensed_index"]

# One definition of the word layout: the Codes module's.
layer_offsets = layer_word_offsets


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
def to_acc(x, FLOAT_ACC: tl.constexpr):
    """An int32 tile in the distance kernels' accumulation dtype: int32 (``FLOAT_ACC``
    0: integer weights, exact), float32 (1), float64 (2) or int64 (3: integer weights
    whose sums pass int32, exact)."""
    if FLOAT_ACC == 3:
        y = x.to(tl.int64)
    elif FLOAT_ACC == 2:
        y = x.to(tl.float64)
    elif FLOAT_ACC == 1:
        y = x.to(tl.float32)
    else:
        y = x
    return y


@triton.jit
def add_layer(total, d, W, WEIGHTED: tl.constexpr):
    """``total + w d`` for one layer's (or segment's) int32 Hamming tile ``d``, with
    ``w = *W`` when ``WEIGHTED`` (the product rounded once, in ``total``'s dtype)."""
    if WEIGHTED:
        out = total + (d * tl.load(W)).to(total.dtype)
    else:
        out = total + d
    return out


@triton.jit
def condensed_index(om, on, n):
    """Position of pair ``(i, j)``, ``i < j``, in scipy's condensed (``pdist``) layout of
    ``n`` rows: ``i n - i (i + 1) / 2 + j - i - 1`` (int64 tiles ``om[:, None]``, ``on[None, :]``)."""
    return (om * n - om * (om + 1) // 2 - om - 1)[:, None] + on[None, :]


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
    from ._device import capturing

    return bool(t.is_cuda) or capturing() is not None


def check_words(name: str, w: Any, n_words: int | None = None) -> None:
    """Raise unless ``w`` is a 2-D torch.int32 tensor (with ``n_words`` columns)."""
    import torch

    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of int32 words, got {type(w).__name__}")
    if w.dtype != torch.int32 or w.ndim != 2:
        raise TypeError(f"{name}: expected a 2-D torch.int32 tensor (N, W), got {w.dtype} with shape {tuple(w.shape)}")
    if n_words is not None and w.shape[1] != n_words:
        raise ValueError(f"{name}: expected {n_words} words per row for these layer_sizes, got shape {tuple(w.shape)}")


INT32_MAX = 2**31 - 1


def layer_weights(weights: Any, layer_sizes: Any) -> tuple[np.ndarray | None, bool, int | float]:
    """Per-layer kernel weights as given by the caller (already validated, e.g. by
    :func:`vqgeom._validate.make_weights`): ``(array or None, integral, largest sum)``.

    An integer dtype means exact integer accumulation; a float dtype real weights. Only
    the length is checked here; the largest sum ``sum_l w_l B_l`` is a Python int for
    integer weights, so callers can check it against their accumulator.
    """
    sizes = [int(b) for b in layer_sizes]
    if weights is None:
        return None, True, sum(sizes)
    w = np.asarray(weights)
    if w.ndim != 1 or w.shape[0] != len(sizes):
        raise ValueError(f"weights: expected {len(sizes)} per-layer weights, got shape {w.shape}")
    if w.dtype.kind in "iu":
        return w, True, sum(int(v) * b for v, b in zip(w.tolist(), sizes))
    if w.dtype.kind != "f":
        raise TypeError(f"weights: expected an integer or float array, got dtype {w.dtype}")
    return w.astype(np.float64), False, float(np.dot(w.astype(np.float64), np.asarray(sizes, dtype=np.float64)))


_ALLOCATOR_DEVICE: str | None = None


def ensure_allocator(device: Any) -> None:
    """Device-side tensor descriptors (bulk tensor loads and stores) need scratch memory
    from a Triton allocator: set one (torch's allocator on ``device``'s type) once."""
    global _ALLOCATOR_DEVICE
    kind = str(getattr(device, "type", device))
    if _ALLOCATOR_DEVICE != kind:
        import torch

        triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device=kind))
        _ALLOCATOR_DEVICE = kind


def tma_ok(t: Any) -> bool:
    """Whether bulk tensor copies can address the 2-D tensor ``t``: unit stride along
    rows, 16-byte aligned base and row stride, and on a GPU a Hopper or newer one (CPU
    tensors run in the interpreter, which emulates the copies)."""
    from ._device import device_info

    if not device_info(t).tma:
        return False
    return t.stride(1) == 1 and (t.stride(0) * t.element_size()) % 16 == 0 and t.data_ptr() % 16 == 0


def small_array(values: Any, dtype: Any, device: Any):
    """A few host values as a device tensor, copied without waiting for the work already
    queued on the device (a blocking copy would stall the host until the previous kernel
    ends, and leave the GPU idle while the next launch is prepared)."""
    import torch

    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)
