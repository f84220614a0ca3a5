"""Nearest neighbours by VQ distance, streamed by row blocks (never the full N x M matrix)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import like_input, to_numpy
from ._validate import check_int
from .codes import Codes

__all__ = ["knn"]


def knn(
    codes_x: Codes,
    codes_y: Codes | None = None,
    k: int = 10,
    *,
    weights: Any = None,
    exclude_self: bool | None = None,
    backend: str = "auto",
    block_rows: int = 2048,
) -> tuple[Any, Any]:
    """The ``k`` nearest rows of ``codes_y`` for every row of ``codes_x``.

    Parameters
    ----------
    codes_x : Codes, N query rows
    codes_y : Codes, M reference rows, optional
        Defaults to ``codes_x``.
    k : int
    weights : per-layer weights, optional
    exclude_self : bool, optional
        Leave each query out of its own neighbours (default: True when ``codes_y`` is None).
    backend : compute backend for the distance blocks
    block_rows : query rows per block (memory ``O(block_rows * M)``)

    Returns
    -------
    distances : array (N, k)
        Ascending; ties are broken by the smaller index.
    indices : array (N, k) int64
        Both in ``codes_x``'s array type. Dask codes: lazy dask arrays; each (row block,
        column block) tile keeps its rows' k best on a worker, merged by a tree over column
        blocks with the same tie rule (no task holds more than a tile).
    """
    from .distances import pairwise_distances

    if not isinstance(codes_x, Codes):
        raise TypeError(f"codes_x: expected vqgeom.Codes, got {type(codes_x).__name__}")
    k = check_int(k, "k")
    block_rows = check_int(block_rows, "block_rows")
    ref = codes_x if codes_y is None else codes_y
    if exclude_self is None:
        exclude_self = codes_y is None
    if exclude_self and codes_y is not None and codes_y.n != codes_x.n:
        raise ValueError("exclude_self: needs codes_y of as many rows as codes_x (the same sample)")
    m = ref.n - (1 if exclude_self else 0)
    if k > m:
        raise ValueError(f"k: expected at most {m} neighbours among {ref.n} reference rows, got {k}")
    from ._backend import resolve_backend

    if codes_x.array_type == "dask" or ref.array_type == "dask":  # per-tile top k, tree-merged (vqgeom._dask)
        from . import _dask
        from .distances import distance_dtype
        from ._validate import check_weights

        w, integer = check_weights(weights, codes_x.n_layers)
        max_value = float(np.dot(np.ones(codes_x.n_layers) if w is None else w, codes_x.layer_sizes))
        return _dask.knn(codes_x, codes_y, k, weights=weights, exclude_self=exclude_self, backend=backend,
                         out_dtype=distance_dtype(max_value, integer, "numpy"), block_rows=block_rows)
    if resolve_backend(backend, codes_x.words) == "triton":
        return _knn_triton(codes_x, ref, k, weights, exclude_self)
    n = codes_x.n
    out_d, out_i = None, np.empty((n, k), dtype=np.int64)
    for r in range(0, n, block_rows):
        D = to_numpy(pairwise_distances(codes_x[r : r + block_rows], ref, weights=weights, backend=backend))
        if out_d is None:
            out_d = np.empty((n, k), dtype=D.dtype)
        if exclude_self:
            # a wider type leaves room for a sentinel above every real distance
            D = D.astype(np.float64) if D.dtype.kind == "f" else D.astype(np.int64)
            rows = np.arange(D.shape[0])
            D[rows, r + rows] = np.iinfo(np.int64).max if D.dtype.kind == "i" else np.inf
        idx = np.argsort(D, axis=1, kind="stable")[:, :k]  # stable: ties keep index order
        out_i[r : r + D.shape[0]] = idx
        out_d[r : r + D.shape[0]] = np.take_along_axis(D, idx, axis=1)
    return like_input(out_d, codes_x.words), like_input(out_i, codes_x.words)


def _knn_triton(codes_x: Codes, ref: Codes, k: int, weights: Any, exclude_self: bool) -> tuple[Any, Any]:
    """The GPU route: one streamed kernel keeps each row's top k over all column tiles."""
    from .distances import distance_dtype
    from .kernels.triton import reductions
    from ._validate import check_weights

    w, integer = check_weights(weights, codes_x.n_layers)
    if ref.array_type != "torch" or ref.words.device != codes_x.words.device:
        raise ValueError(f"codes_y: expected torch codes on {codes_x.words.device} like codes_x")
    kk = k + 1 if exclude_self else k
    d, i = reductions.knn(codes_x.words, codes_x.layer_sizes, kk, wy=None if ref is codes_x else ref.words, weights=w)
    if exclude_self:
        import torch

        keep = i != torch.arange(codes_x.n, device=i.device)[:, None]
        keep[keep.all(dim=1), -1] = False  # self not among the k + 1: drop the last instead
        d, i = d[keep].reshape(codes_x.n, k), i[keep].reshape(codes_x.n, k)
    max_value = float(np.dot(np.ones(codes_x.n_layers) if w is None else w, codes_x.layer_sizes))
    return d.to(distance_dtype(max_value, integer, "torch")), i
