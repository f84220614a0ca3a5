"""CuPy backend: the CUDA C packed-Hamming kernel of ``hamming.cu``.

The source ships with the package and is compiled by ``cupy.RawModule`` at first use,
once per device (memoised). Nothing here imports cupy until a kernel is asked for, and
a machine without cupy or without a CUDA GPU gets a ``RuntimeError`` that says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["SOURCE_PATH", "source", "get_module", "pairwise_hamming", "OUT_DTYPES"]

SOURCE_PATH = Path(__file__).with_name("hamming.cu")
OUT_DTYPES = ("uint8", "int16", "uint16", "int32", "int64", "float32", "float64")
_MODULES: dict[int, Any] = {}
_TILE = 16


def source() -> str:
    """The CUDA C source text."""
    return SOURCE_PATH.read_text()


def _cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:  # the package is optional
        raise RuntimeError(
            "the cupy backend needs the 'cupy' package (e.g. cupy-cuda12x) and a CUDA GPU; cupy is not installed"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver / no device: cupy raises its own runtime errors
        raise RuntimeError(f"the cupy backend needs a CUDA GPU; cupy found none ({exc})") from exc
    if count < 1:
        raise RuntimeError("the cupy backend needs a CUDA GPU; cupy reports 0 devices")
    return cupy


def get_module(device_id: int | None = None) -> Any:
    """The compiled ``RawModule`` for a device (compiled on first use, then memoised)."""
    cupy = _cupy()
    dev = cupy.cuda.Device() if device_id is None else cupy.cuda.Device(device_id)
    key = int(dev.id)
    if key not in _MODULES:
        with dev:
            mod = cupy.RawModule(code=source(), options=("--std=c++17",))
            mod.compile()
        _MODULES[key] = mod
    return _MODULES[key]


def _offsets(layer_sizes: Sequence[int]) -> list[int]:
    offs = [0]
    for b in layer_sizes:
        if int(b) < 0:
            raise ValueError(f"layer_sizes: expected non-negative unit counts, got {list(layer_sizes)}")
        offs.append(offs[-1] + (int(b) + 31) // 32)
    return offs


def pairwise_hamming(wx: Any, wy: Any, layer_sizes: Sequence[int], weights: Any = None,
                     out_dtype: Any = np.int32) -> Any:
    """VQ distances between packed codes on cupy arrays.

    Parameters
    ----------
    wx : cupy.ndarray, uint32, (N, W)
        Codes in the Codes layout.
    wy : cupy.ndarray, uint32, (M, W), or None
        ``None``: X against X (upper-triangle tiles only, mirrored on write).
    layer_sizes : sequence of int
    weights : None or ndarray (L,)
        Per-layer weights validated by the caller (:func:`vqgeom._validate.make_weights`):
        an integer dtype gives exact integers (up to 2**53, checked), a float dtype reals.
    out_dtype : dtype-like
        One of ``OUT_DTYPES``; must hold ``sum_l w_l B_l`` (checked).

    Returns
    -------
    cupy.ndarray, (N, M), ``out_dtype``, on ``wx``'s device
    """
    cupy = _cupy()
    offs = _offsets(layer_sizes)
    for name, a in (("wx", wx), ("wy", wy)):
        if a is None:
            continue
        if not isinstance(a, cupy.ndarray):
            raise TypeError(f"{name}: expected a cupy.ndarray of uint32 words, got {type(a).__name__}")
        if a.dtype != np.uint32 or a.ndim != 2 or a.shape[1] != offs[-1]:
            raise ValueError(f"{name}: expected a (N, {offs[-1]}) uint32 array, got {a.dtype} {a.shape}")
    dt = np.dtype(out_dtype)
    if dt.name not in OUT_DTYPES:
        raise TypeError(f"out_dtype: expected one of {OUT_DTYPES}, got {dt}")
    sizes = [int(b) for b in layer_sizes]
    if weights is None:
        w, integral, dmax = None, True, sum(sizes)
    else:
        # Validated by the caller (vqgeom._validate.make_weights): the dtype says integer or real.
        wa = np.asarray(weights).reshape(-1)
        if wa.shape[0] != len(sizes):
            raise ValueError(f"weights: expected {len(sizes)} per-layer weights, got {wa.shape[0]}")
        integral = wa.dtype.kind in "iu"
        dmax = sum(int(v) * b for v, b in zip(wa.tolist(), sizes)) if integral else float(np.dot(wa, sizes))
        w = wa.astype(np.float64)
        if dt.kind in "iu" and not integral:
            raise ValueError(f"weights: an integer out_dtype ({dt}) needs integer weights, got {wa.tolist()}")
        if integral and dmax > 2**53:
            # The weighted kernel accumulates in double: exact for integers up to 2**53 only.
            raise ValueError(
                f"weights: integer distances up to {dmax} pass 2**53, the exact range of the cupy kernel's "
                f"double accumulator; use backend='cpu' (or 'triton' on torch tensors)"
            )
    if dt.kind in "iu" and dmax > np.iinfo(dt).max:
        raise ValueError(f"weights: distances up to sum_l w_l B_l = {dmax} do not fit out_dtype {dt} (max {np.iinfo(dt).max})")
    sym = wy is None
    with wx.device:
        mod = get_module(wx.device.id)
        wx = cupy.ascontiguousarray(wx)
        wy = wx if sym else cupy.ascontiguousarray(wy)
        n, m = wx.shape[0], wy.shape[0]
        out = cupy.empty((n, m), dtype=dt)
        if n == 0 or m == 0:
            return out
        if w is None:
            wword = cupy.zeros(1, dtype=np.float64)
        else:
            per_word = np.concatenate([np.full(offs[l + 1] - offs[l], w[l]) for l in range(len(sizes))] or [[0.0]])
            wword = cupy.asarray(per_word, dtype=np.float64)
        kernel = mod.get_function(f"vq_hamming_{dt.name}")
        grid = ((m + _TILE - 1) // _TILE, (n + _TILE - 1) // _TILE)
        kernel(grid, (_TILE, _TILE), (wx, wy, out, wword, np.int64(n), np.int64(m), np.int32(offs[-1]),
                                      np.int32(sym), np.int32(w is not None)))
        return out
