"""Nearest neighbours by VQ distance, streamed by blocks (never the full N x M matrix)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import like_input, to_numpy
from ._validate import check_int
from .codes import Codes

__all__ = ["knn"]

# Bytes of one CPU distance block and its selection temporaries (about 11 bytes per entry
# for 2-byte distances: the block, its partition copy, three masks and an int32 rank).
_BLOCK_BYTES = 192 << 20


def knn(
    codes_x: Codes,
    codes_y: Codes | None = None,
    k: int = 10,
    *,
    weights: Any = None,
    exclude_self: bool | None = None,
    backend: str = "auto",
    block_rows: int = 2048,
    method: str = "auto",
) -> tuple[Any, Any]:
    """The ``k`` nearest rows of ``codes_y`` for every row of ``codes_x``.

    Parameters
    ----------
    codes_x : Codes, N query rows
    codes_y : Codes, M reference rows, optional
        Defaults to ``codes_x``.
    k : int, ``1 <= k <= M`` (``M - 1`` when excluding self)
    weights : per-layer weights, optional
        As in :func:`vqgeom.pairwise_distances`.
    exclude_self : bool, optional
        Leave each query out of its own neighbours (default: True when ``codes_y`` is None).
    backend : compute backend for the distance blocks
    block_rows : int
        Query rows per block, at most (shrunk so a block stays near 192 MB), on the routes
        that select from whole blocks (the numpy reference and CuPy backends, or the CPU
        without numba); the fused CPU route uses its own cache-sized blocks.
    method : {"auto", "select"}
        The Triton route's top-k: ``"auto"`` runs the measured kernel (k tile-wide minimum
        passes over every column tile that holds a candidate); ``"select"`` the
        threshold-filtered selection (each row inserts only candidates below its current
        k-th key, a loop as long as the tile's most insertions, FAISS WarpSelect-style;
        see :func:`vqgeom.kernels.triton.reductions.knn`). Same results (exact, same tie
        rule). ``"select"`` has been checked in the Triton interpreter and compiled ahead of
        time for every target but not yet timed on a GPU, hence opt-in. Other backends
        ignore it.

    Returns
    -------
    distances : array (N, k)
        Ascending; ties are broken by the smaller index. The dtype of
        :func:`vqgeom.pairwise_distances` for these weights.
    indices : array (N, k) int64
        Both in ``codes_x``'s array type. Dask codes: lazy dask arrays; each (row block,
        column block) tile keeps its rows' best on a worker, merged by a tree over column
        blocks with the same tie rule (no task holds more than a tile).

    Notes
    -----
    The CPU route folds each cache-sized block of distances (256 x 2048) into its rows'
    sorted best ``k`` as soon as the distance kernel has written it (numba, ties to the
    smaller index), on ``torch.get_num_threads()`` threads over bands of rows; memory
    ``O(N k)`` plus about 1 MB per thread. Other routes: one block of ``rows x columns``
    distances in their narrow dtype with its selection temporaries (about 192 MB), never
    ``N x M``, each block keeping its rows' best ``k`` so far while the columns stream.
    The Triton backend keeps each row's top ``k`` on the GPU in one streamed kernel.
    """
    from .distances import check_pair, codes_weights

    codes_x, codes_y = check_pair(codes_x, codes_y)
    if method not in ("auto", "select"):
        raise ValueError(f"method: expected 'auto' or 'select', got {method!r}")
    k = check_int(k, "k")
    block_rows = check_int(block_rows, "block_rows")
    if exclude_self is not None and not isinstance(exclude_self, (bool, np.bool_)):
        raise TypeError(f"exclude_self: expected a bool or None, got {type(exclude_self).__name__} {exclude_self!r}")
    ref = codes_x if codes_y is None else codes_y
    if exclude_self is None:
        exclude_self = codes_y is None
    if exclude_self and codes_y is not None and codes_y.n != codes_x.n:
        raise ValueError(
            f"exclude_self: needs codes_y of as many rows as codes_x (the same sample), got {codes_y.n} and {codes_x.n}"
        )
    m = ref.n - (1 if exclude_self else 0)
    if k > m:
        raise ValueError(f"k: expected at most {m} neighbours among {ref.n} reference rows, got {k}")
    wt = codes_weights(codes_x, weights)
    from ._backend import kernel_backend

    if codes_x.array_type == "dask":  # per-tile top k, tree-merged (vqgeom._dask)
        from . import _dask

        return _dask.knn(codes_x, codes_y, k, weights=weights, exclude_self=exclude_self, backend=backend,
                         out_dtype=wt.dtype, block_rows=block_rows)
    name = kernel_backend(backend, codes_x.words)  # cupy codes: Triton through DLPack unless cupy is named
    if codes_x.n == 0:
        return _empty(codes_x, k, wt)
    if name == "triton" and (not wt.integer or wt.kernel_int32()):
        return _knn_triton(codes_x, ref, k, wt, exclude_self, method)
    from . import _cpu_stream

    if name == "cpu" and _cpu_stream.available():
        return _knn_fused(codes_x, ref, k, wt, exclude_self)
    return _knn_blocks(codes_x, ref, k, wt, exclude_self, name, block_rows)


def _knn_fused(codes_x: Codes, ref: Codes, k: int, wt, exclude_self: bool) -> tuple[Any, Any]:
    """The CPU route: distance blocks folded into each row's best ``k`` as they are computed
    (:mod:`vqgeom._cpu_stream`), on ``torch.get_num_threads()`` threads."""
    from . import _cpu_stream

    d, i, _ = _cpu_stream.knn_rows(codes_x.words_numpy(), ref.words_numpy(), codes_x.layer_sizes, wt, k,
                                   exclude_self=exclude_self)
    out_dt = np.dtype(str(wt.dtype).replace("torch.", ""))
    return like_input(d.astype(out_dt, copy=False), codes_x.words), like_input(i, codes_x.words)


def _empty(codes_x: Codes, k: int, wt) -> tuple[Any, Any]:
    if codes_x.array_type == "torch":
        import torch

        dev = codes_x.words.device
        return torch.empty((0, k), dtype=wt.dtype, device=dev), torch.empty((0, k), dtype=torch.int64, device=dev)
    d = np.empty((0, k), dtype=wt.dtype)
    return like_input(d, codes_x.words), like_input(np.empty((0, k), dtype=np.int64), codes_x.words)


def smallest(D: np.ndarray, kk: int) -> np.ndarray:
    """Column positions ``(R, kk)`` of each row's ``kk`` smallest entries, ties to the
    smaller position, in ascending position order (not sorted by value)."""
    R, P = D.shape
    if P <= kk:
        return np.broadcast_to(np.arange(P), (R, P))
    v = np.partition(D, kk - 1, axis=1)[:, kk - 1 : kk]
    less = D < v
    eq = D == v
    need = kk - less.sum(axis=1, dtype=np.int64)
    rank = np.cumsum(eq, axis=1, dtype=np.int32)
    eq &= rank <= need[:, None].astype(np.int32)
    less |= eq
    return np.nonzero(less)[1].reshape(R, kk)


def _knn_blocks(codes_x: Codes, ref: Codes, k: int, wt, exclude_self: bool, name: str, block_rows: int):
    """Row blocks x column chunks of exact distances; each row block keeps its best ``kk``."""
    from .distances import _distances

    n, m = codes_x.n, ref.n
    kk = k + 1 if exclude_self else k  # <= m: knn checked k against m - 1
    item = np.dtype(str(wt.dtype).replace("torch.", "")).itemsize
    per_entry = 2 * item + 7
    rows = int(max(1, min(block_rows, n, _BLOCK_BYTES // (per_entry * min(m, 4096)))))
    cols = int(max(kk + 1, min(m, _BLOCK_BYTES // (per_entry * rows) - kk)))
    out_d = np.empty((n, k), dtype=np.dtype(str(wt.dtype).replace("torch.", "")))
    out_i = np.empty((n, k), dtype=np.int64)
    for r in range(0, n, rows):
        q = codes_x[r : r + rows]
        R = q.n
        best_d = best_i = None
        # A narrow first chunk seeds each row's best cheaply; later chunks only pass the few
        # entries below the current worst to the selection.
        first = min(m, cols, max(kk + 1, 32 * kk))
        for c0, c1 in [(0, first)] + [(c, min(c + cols, m)) for c in range(first, m, cols)]:
            D = to_numpy(_distances(q, ref[c0:c1], wt, name))
            if best_d is None:  # the first chunk has at least kk columns
                pos = smallest(D, kk)
                best_d, best_i = np.take_along_axis(D, pos, axis=1), c0 + pos
            else:
                best_d, best_i = _merge(best_d, best_i, D, c0, kk)
        # Positions ascend with the index at every step (old best first, then the new chunk's
        # columns), so the stable sort keeps ties in index order.
        order = np.argsort(best_d, axis=1, kind="stable")
        best_d = np.take_along_axis(best_d, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
        if exclude_self:
            best_d, best_i = _drop_self(best_d, best_i, np.arange(r, r + R), k)
        out_d[r : r + R] = best_d
        out_i[r : r + R] = best_i
    return like_input(out_d, codes_x.words), like_input(out_i, codes_x.words)


def _merge(best_d: np.ndarray, best_i: np.ndarray, D: np.ndarray, c0: int, kk: int):
    """Each row's ``kk`` best of its current best and a new chunk ``D`` of columns ``c0...``.

    Only entries strictly below a row's current worst can enter (an equal one has a larger
    index, and ties go to the smaller): they are few after the first chunks, so they are
    gathered into a small padded matrix (padding sorts after every real entry) and the
    selection runs on that instead of the whole chunk.
    """
    R = D.shape[0]
    worst = best_d.max(axis=1)
    r, col = np.nonzero(D < worst[:, None])
    if r.size == 0:
        return best_d, best_i
    counts = np.bincount(r, minlength=R)
    slot = np.arange(r.size) - (np.cumsum(counts) - counts)[r]
    top = np.inf if D.dtype.kind == "f" else np.iinfo(D.dtype).max
    new_d = np.full((R, int(counts.max())), top, dtype=D.dtype)
    new_i = np.zeros((R, new_d.shape[1]), dtype=np.int64)
    new_d[r, slot] = D[r, col]
    new_i[r, slot] = c0 + col
    cand_d = np.concatenate([best_d, new_d], axis=1)
    pos = smallest(cand_d, kk)
    return np.take_along_axis(cand_d, pos, axis=1), np.take_along_axis(np.concatenate([best_i, new_i], axis=1), pos, axis=1)


def _drop_self(d: np.ndarray, i: np.ndarray, self_idx: np.ndarray, k: int):
    """Each row's ``k`` best without its own index (or without the last when self is not
    among the ``k + 1``)."""
    keep = i != self_idx[:, None]
    keep[keep.all(axis=1), -1] = False
    return d[keep].reshape(-1, k), i[keep].reshape(-1, k)


def _knn_triton(codes_x: Codes, ref: Codes, k: int, wt, exclude_self: bool, method: str) -> tuple[Any, Any]:
    """The GPU route: one streamed kernel keeps each row's top k over all column tiles
    (torch codes, or cupy's through zero-copy DLPack views both ways)."""
    import torch

    from ._backend import caller_array, torch_out_dtype, torch_view
    from .kernels.triton import reductions

    kk = k + 1 if exclude_self else k
    wx = torch_view(codes_x.words)
    d, i = reductions.knn(wx, codes_x.layer_sizes, kk, wy=None if ref is codes_x else torch_view(ref.words),
                          weights=wt.kernel, method="select" if method == "select" else "passes")
    if exclude_self:
        keep = i != torch.arange(codes_x.n, device=i.device)[:, None]
        keep[keep.all(dim=1), -1] = False  # self not among the k + 1: drop the last instead
        d, i = d[keep].reshape(codes_x.n, k), i[keep].reshape(codes_x.n, k)
    if wt.divisor != 1:
        d = d // wt.divisor
    if codes_x.array_type == "torch":
        return d.to(wt.dtype), i
    return caller_array(d.to(torch_out_dtype(wt.dtype)), codes_x.words, wt.dtype), caller_array(i, codes_x.words)
