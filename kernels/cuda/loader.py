"""CuPy backend: the CUDA C kernels of ``hamming.cu``.

``method="popcount"``: a plain XOR + popcount kernel (the fallback for cupy arrays when
Triton is not importable: cupy arrays otherwise go to the Triton kernels through DLPack,
see :mod:`vqgeom._backend`). ``method="bmma"``: binary tensor-core MMA
(``mma.sync ... m8n8k128 .b1 .and.popc``, sm_80 and newer) for long codes; it has not
been run on a GPU yet, so it is never chosen automatically. :func:`bmma_emulate` is its
numpy twin (the same tiles, fragments and loops), checked against the reference on the CPU.

The source ships with the package and is compiled by ``cupy.RawModule`` at first use,
once per device (memoised). Nothing here imports cupy until a kernel is asked for, and
a machine without cupy or without a CUDA GPU gets a ``RuntimeError`` that says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["SOURCE_PATH", "source", "get_module", "pairwise_hamming", "bmma_emulate", "OUT_DTYPES", "METHODS"]

SOURCE_PATH = Path(__file__).with_name("hamming.cu")
OUT_DTYPES = ("uint8", "int16", "uint16", "int32", "int64", "float32", "float64")
_MODULES: dict[int, Any] = {}
_TILE = 16
_BMMA_TILE = 64  # VQ_BM in hamming.cu
_BMMA_THREADS = 128
_MAX_GRID_Y = 65535
METHODS = ("popcount", "bmma")


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
                     out_dtype: Any = np.int32, *, method: str = "popcount") -> Any:
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
    method : {"popcount", "bmma"}
        ``bmma``: binary tensor-core MMA (sm_80 and newer; not yet run on a GPU).

    Returns
    -------
    cupy.ndarray, (N, M), ``out_dtype``, on ``wx``'s device
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
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
        if method == "bmma":
            major, minor = (int(c) for c in str(wx.device.compute_capability)[:2])
            if 10 * major + minor < 80:
                raise ValueError(f"method: 'bmma' needs a GPU of compute capability 8.0 or newer, got "
                                 f"{major}.{minor}; use method='popcount'")
            loff, lw = _bmma_layers(offs, w)
            loff_d = cupy.asarray(loff)
            pop = mod.get_function("vq_bmma_rowpop")
            px = cupy.empty((n, len(loff) - 1), dtype=np.int32)
            pop(((n + 255) // 256,), (256,), (wx, px, loff_d, np.int32(len(loff) - 1), np.int64(n),
                                             np.int32(offs[-1])))
            if sym:
                py = px
            else:
                py = cupy.empty((m, len(loff) - 1), dtype=np.int32)
                pop(((m + 255) // 256,), (256,), (wy, py, loff_d, np.int32(len(loff) - 1), np.int64(m),
                                                 np.int32(offs[-1])))
            kernel = mod.get_function(f"vq_bmma_{dt.name}")
            grid = (-(-m // _BMMA_TILE), min(-(-n // _BMMA_TILE), _MAX_GRID_Y))
            kernel(grid, (_BMMA_THREADS,), (wx, wy, px, py, out, cupy.asarray(lw), loff_d,
                                            np.int32(len(loff) - 1), np.int64(n), np.int64(m),
                                            np.int32(offs[-1]), np.int32(sym), np.int32(w is not None)))
            return out
        kernel = mod.get_function(f"vq_hamming_{dt.name}")
        # Row tiles along y (at most 65,535; the kernel loops over the rest).
        grid = ((m + _TILE - 1) // _TILE, min((n + _TILE - 1) // _TILE, _MAX_GRID_Y))
        kernel(grid, (_TILE, _TILE), (wx, wy, out, wword, np.int64(n), np.int64(m), np.int32(offs[-1]),
                                      np.int32(sym), np.int32(w is not None)))
        return out


def _bmma_layers(offs: Sequence[int], w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Word offsets and weights of the layers the bmma kernel loops over: one layer of
    all words when unweighted (one AND-popcount sum), the real layers otherwise."""
    if w is None:
        return np.asarray([0, offs[-1]], dtype=np.int32), np.ones(1)
    return np.asarray(offs, dtype=np.int32), np.asarray(w, dtype=np.float64)


def _popc(a: np.ndarray) -> np.ndarray:
    """Bit count of each uint32 element (int64)."""
    a = a.astype(np.uint32)
    return np.unpackbits(a.view(np.uint8).reshape(a.shape + (4,)), axis=-1).sum(axis=-1).astype(np.int64)


def _mma_and_popc(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``mma.sync.aligned.m8n8k128.row.col.s32.b1.b1.s32.and.popc`` on one warp's
    fragments: ``a``, ``b`` (32,) uint32 (lane 4 g + t: word t of row / column g),
    ``acc`` (32, 2) int64 (lane 4 g + t, slot h: element (g, 2 t + h)), updated in place."""
    A = a.reshape(8, 4)  # (row g, word t)
    B = b.reshape(8, 4)  # (column g, word t)
    D = _popc(A[:, None, :] & B[None, :, :]).sum(axis=-1)  # (8, 8)
    acc += D.reshape(8, 4, 2).reshape(32, 2)


def bmma_emulate(wx: np.ndarray, wy: np.ndarray | None, layer_sizes: Sequence[int], weights: Any = None,
                 out_dtype: Any = np.int32, grid_y: int | None = None) -> np.ndarray:
    """The ``vq_bmma_*`` kernel of ``hamming.cu`` step by step in numpy, one warp's 32
    lanes at a time: the same block and warp tiles, K slices of 4 words per layer,
    fragments, row popcounts and combination ``P(x) + P(y) - 2 AND``, mirror stores and
    folded grid (``grid_y`` row-tile programs, default as the loader launches). For
    tests on machines without a GPU (slow: small inputs only)."""
    wx = np.ascontiguousarray(wx, dtype=np.uint32)
    sym = wy is None
    wy = wx if sym else np.ascontiguousarray(wy, dtype=np.uint32)
    offs = _offsets(layer_sizes)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    loff, lw = _bmma_layers(offs, w)
    n, m, nw = wx.shape[0], wy.shape[0], offs[-1]
    n_layers = len(loff) - 1
    px = np.stack([_popc(wx[:, loff[l]:loff[l + 1]]).sum(axis=1) for l in range(n_layers)], axis=1)
    py = px if sym else np.stack([_popc(wy[:, loff[l]:loff[l + 1]]).sum(axis=1) for l in range(n_layers)], axis=1)
    out = np.full((n, m), 255 if np.dtype(out_dtype).kind in "iu" else np.nan).astype(out_dtype)  # poisoned
    lane = np.arange(32)
    g, t = lane >> 2, lane & 3
    row_tiles = -(-n // _BMMA_TILE)
    grid = (-(-m // _BMMA_TILE), min(row_tiles, _MAX_GRID_Y) if grid_y is None else grid_y)

    def load(src: np.ndarray, rows: np.ndarray, words: np.ndarray, ok: np.ndarray, limit: int) -> np.ndarray:
        keep = ok & (rows < limit)
        return np.where(keep, src[np.minimum(rows, limit - 1), np.minimum(words, nw - 1)], 0).astype(np.uint32)

    for bj in range(grid[0]):
        for by in range(grid[1]):
            for bi in range(by, row_tiles, grid[1]):
                if sym and bj < bi:
                    continue
                for warp in range(_BMMA_THREADS // 32):
                    r0 = bi * _BMMA_TILE + (warp >> 1) * 32
                    c0 = bj * _BMMA_TILE + (warp & 1) * 32
                    tot = np.zeros((4, 4, 32, 2), dtype=np.float64 if w is not None else np.int64)
                    for l in range(n_layers):
                        acc = np.zeros((4, 4, 32, 2), dtype=np.int64)
                        for k in range(loff[l], loff[l + 1], 4):
                            word = k + t
                            inw = word < loff[l + 1]
                            a = [load(wx, r0 + i * 8 + g, word, inw, n) for i in range(4)]
                            b = [load(wy, c0 + i * 8 + g, word, inw, m) for i in range(4)]
                            for i in range(4):
                                for j in range(4):
                                    _mma_and_popc(acc[i, j], a[i], b[j])
                        for i in range(4):
                            r = r0 + i * 8 + g
                            pxl = np.where(r < n, px[np.minimum(r, n - 1), l], 0)
                            for j in range(4):
                                for h in range(2):
                                    c = c0 + j * 8 + 2 * t + h
                                    pyl = np.where(c < m, py[np.minimum(c, m - 1), l], 0)
                                    d = pxl + pyl - 2 * acc[i, j, :, h]
                                    tot[i, j, :, h] += lw[l] * d if w is not None else d
                    for i in range(4):
                        for j in range(4):
                            for h in range(2):
                                r = r0 + i * 8 + g
                                c = c0 + j * 8 + 2 * t + h
                                ok = (r < n) & (c < m)
                                v = tot[i, j, ok, h].astype(out_dtype)
                                out[r[ok], c[ok]] = v
                                if sym and bi != bj:
                                    out[c[ok], r[ok]] = v
    return out
