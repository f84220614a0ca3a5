"""Streamed CPU k-NN and heat-kernel products on packed words: the one place where the CPU
routes of :func:`vqgeom.knn`, :func:`vqgeom.heat_matmat` and their dask tiles do their work.

The rows are cut into ``threads`` contiguous bands, one Python thread each (every heavy step
releases the GIL). A band walks ``SLAB_ROWS x CHUNK_COLS`` blocks: the CPU distance kernel
(:func:`vqgeom.kernels.cpu.pairwise_hamming`, on one thread) writes the block into one reused
buffer (1 MB of uint16; 4 MB of float64 for real weights) and a fused numba kernel
(:mod:`vqgeom.kernels.cpu_stream`) folds it at once into each row's best ``k`` or into the
heat-kernel product. Memory: the result plus one buffer per thread; never ``N x M``.

``threads`` defaults to ``torch.get_num_threads()`` (the library's thread setting, as for the
distance kernels); dask tiles pass 1 (a worker runs one task per worker thread).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["available", "resolve_threads", "distance_block", "knn_rows", "heat_rows"]

SLAB_ROWS = 256
CHUNK_COLS = 2048
TABLE_MAX = 1 << 16  # integer distances up to this use a table of exp(-d / sigma2)
_NO_SELF = -(1 << 62)


def available() -> bool:
    """Whether the fused kernels (numba) can run here."""
    try:
        from .kernels import cpu_stream  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_threads(threads: int | None) -> int:
    """``threads``, or torch's intra-op thread count when None."""
    if threads is None:
        import torch

        return max(1, int(torch.get_num_threads()))
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads: expected a positive integer or None, got {threads!r}")
    return int(threads)


def distance_block(wx: np.ndarray, wy: np.ndarray, layer_sizes: Sequence[int], wt: Any, threads: int = 1,
                   buf: np.ndarray | None = None) -> np.ndarray:
    """Distances ``(n, m)`` of packed words by the CPU kernel, in the weights' numpy kernel
    dtype (exact integers after the exact division by ``wt.divisor``, or float64), written
    into the front of the flat buffer ``buf`` when given (no allocation per block: dask
    workers return freed memory to the OS at once, so a fresh block page-faults every time)."""
    from .kernels import cpu

    kdt = np.dtype(wt.kernel_dtype("numpy"))
    out = None if buf is None else buf[: wx.shape[0] * wy.shape[0]].reshape(wx.shape[0], wy.shape[0])
    out = cpu.pairwise_hamming(wx, wy, layer_sizes, wt.kernel, kdt, threads=threads, out=out)
    if wt.divisor != 1:
        out //= wt.divisor
    return out


def _buffer(wt: Any) -> np.ndarray:
    return np.empty(SLAB_ROWS * CHUNK_COLS, dtype=np.dtype(wt.kernel_dtype("numpy")))


def _bands(n: int, threads: int) -> list[tuple[int, int]]:
    """Contiguous row bands, multiples of SLAB_ROWS where possible."""
    if n == 0:
        return []
    per = -(-n // max(1, threads))
    if per > SLAB_ROWS:
        per = -(-per // SLAB_ROWS) * SLAB_ROWS
    return [(a, min(a + per, n)) for a in range(0, n, per)]


def _run_bands(n: int, threads: int, band: Callable[[int, int], None]) -> None:
    from .kernels import cpu

    if cpu.kernel_choice() == "int8":
        threads = 1  # the int8 GEMM threads itself through torch
    bands = _bands(n, threads)
    if len(bands) <= 1:
        for a, b in bands:
            band(a, b)
        return
    with ThreadPoolExecutor(max_workers=len(bands)) as ex:
        for f in [ex.submit(band, a, b) for a, b in bands]:
            f.result()


def _words(w: Any) -> np.ndarray:
    """C-contiguous writable uint32 words (the kernel would otherwise copy every slab)."""
    w = np.asarray(w)
    w = np.ascontiguousarray(w.view(np.uint32) if w.dtype != np.uint32 else w)
    return w if w.flags.writeable else w.copy()


def knn_rows(wx: Any, wy: Any, layer_sizes: Sequence[int], wt: Any, k: int, *, exclude_self: bool = False,
             row0: int = 0, col0: int = 0, threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of ``wx``'s best ``k`` columns of ``wy``, sorted by (distance, index).

    Parameters
    ----------
    wx : (n, W) packed words, rows ``row0 ..`` of the query set
    wy : (m, W) packed words, columns ``col0 ..`` of the reference set
    wt : validated weights (:func:`vqgeom.distances.codes_weights`)
    exclude_self : skip the pair whose global row and column index are equal
    threads : int or None

    Returns
    -------
    d : (n, k) distances in the kernel's numpy dtype; i : (n, k) int64 global column
    indices; fill : (n,) int64, how many entries of each row are real (fewer than ``k``
    only when the block has fewer than ``k`` eligible columns; the rest are left as is).
    """
    from .kernels.cpu_stream import topk_update

    wx, wy = _words(wx), _words(wy)
    n, m = wx.shape[0], wy.shape[0]
    kdt = np.dtype(wt.kernel_dtype("numpy"))
    best_d = np.zeros((n, k), dtype=kdt)
    best_i = np.full((n, k), -1, dtype=np.int64)
    fill = np.zeros(n, dtype=np.int64)
    if n == 0 or m == 0 or k == 0:  # nothing to select (the kernel needs k >= 1)
        return best_d, best_i, fill

    def band(a: int, b: int) -> None:
        for r, r1, c, D in _blocks(wx, wy, layer_sizes, wt, a, b):
            own0 = (row0 + r) - (col0 + c) if exclude_self else _NO_SELF
            topk_update(D, col0 + c, own0, best_d[r:r1], best_i[r:r1], fill[r:r1])

    _run_bands(n, resolve_threads(threads), band)
    return best_d, best_i, fill


def _blocks(wx: np.ndarray, wy: np.ndarray, layer_sizes: Sequence[int], wt: Any, a: int, b: int):
    """The distance blocks of rows ``a:b`` of ``wx`` against every row of ``wy``, as
    ``(r, r1, c, D)`` with ``D`` the distances of rows ``r:r1`` to columns ``c:c1`` (a view of
    one buffer reused for the band: use it before asking for the next)."""
    buf = _buffer(wt)
    m = wy.shape[0]
    for r in range(a, b, SLAB_ROWS):
        r1 = min(r + SLAB_ROWS, b)
        for c in range(0, m, CHUNK_COLS):
            c1 = min(c + CHUNK_COLS, m)
            yield r, r1, c, distance_block(wx[r:r1], wy[c:c1], layer_sizes, wt, buf=buf)


def heat_table(wt: Any, s2: float, squared: bool) -> np.ndarray | None:
    """``exp(-d / s2)`` (``exp(-d**2 / s2)``) for every integer distance ``d`` the weights
    allow, computed as numpy computes it on a float64 distance matrix; None for real
    weights or when the largest distance exceeds :data:`TABLE_MAX`."""
    if not wt.integer or int(wt.max_distance) > TABLE_MAX:
        return None
    x = np.arange(int(wt.max_distance) + 1, dtype=np.float64)
    return np.exp(-(x * x if squared else x) / s2)


def heat_rows(wx: Any, wy: Any, layer_sizes: Sequence[int], wt: Any, V: np.ndarray, s2: float, *,
              squared: bool = False, threads: int | None = None) -> np.ndarray:
    """``exp(-D / s2) @ V`` (``exp(-D**2 / s2)`` when ``squared``) for ``D`` the distances of
    ``wx`` (n rows) to ``wy`` (m rows) and ``V`` (m, p): float64 (n, p)."""
    from .kernels.cpu_stream import heat_exp, heat_table as kern_table

    wx, wy = _words(wx), _words(wy)
    n, m = wx.shape[0], wy.shape[0]
    V = np.asarray(V, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    Vt = np.ascontiguousarray(V.T)
    out = np.zeros((n, Vt.shape[0]))
    table = heat_table(wt, s2, squared)

    def band(a: int, b: int) -> None:
        for r, r1, c, D in _blocks(wx, wy, layer_sizes, wt, a, b):
            if table is not None:
                kern_table(D, table, Vt, c, out[r:r1])
            else:
                heat_exp(D, float(s2), bool(squared), Vt, c, out[r:r1])

    _run_bands(n, resolve_threads(threads), band)
    return out
