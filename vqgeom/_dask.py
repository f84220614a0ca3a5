"""The dask backend: Codes whose words are a dask array, and task graphs of the other backends' tiles.

Every function here builds a graph whose tasks call the in-memory functions of the library on
one block of rows (or one (row block, column block) tile) and whose reductions are trees, so no
task ever holds more than a tile, and no node an ``N x N`` matrix:

* :func:`pairwise_distances` -- a dask array of tiles (``da.blockwise`` over row and column
  blocks), lazy, writable block by block with ``.to_zarr``;
* :func:`knn` -- per task (a row block against consecutive column blocks of at least
  :data:`KNN_TASK_COLS` columns) the ``k`` best columns of each row, merged over the tasks by a
  tree of merges that keep the ``k`` smallest ``(distance, index)`` pairs (lexicographic: the
  in-memory tie rule "ties go to the smaller index");
* :func:`heat_matmat` -- ``exp(-D / sigma2) @ V``: per tile ``H_ij @ V_j``, summed over ``j`` by a
  tree;
* :func:`compare_histograms` -- the count arrays of :mod:`vqgeom.similarity` (marginals, joint
  histograms, per-row histogram products) of integer distances: per tile, summed over column
  blocks by a tree (each row's histogram is then complete), turned into row products per row
  block, summed over row blocks by a tree; every measure of :func:`vqgeom.compare` follows;
* :func:`compare_dots` -- the Frobenius inner products of several networks' heat kernels (any
  weights): per tile partial sums, summed by a tree;
* :func:`mds_from_codes` -- column means and the ``B x B`` Gram matrix of the centred codes as
  tree reductions, the eigenvectors as a lazy blockwise product;
* :func:`encode` -- one task per row block of ``X``; the model is one key of the graph (sent to
  each worker once, not embedded in every task).

Tiles run on the worker with the backend the caller names (``"auto"``: the block's own type,
i.e. the CPU path for numpy blocks and CuPy for cupy blocks on dask-cuda workers; ``"triton"``:
the block is moved to the worker's GPU). Work inside a tile is split into row slabs of at most
``block_rows`` rows, so a task's memory is ``O(block_rows x column block)`` whatever the chunks.

Nothing here is imported by ``import vqgeom``; dask, distributed and zarr come from the
``[distributed]`` extra and a missing one raises an ImportError naming it.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Any, Callable, Sequence

import numpy as np

from ._arrays import array_module
from .codes import Codes, unpack_words

__all__ = [
    "require",
    "is_dask_codes",
    "normalize_words",
    "as_dask_codes",
    "encode",
    "pairwise_distances",
    "knn",
    "heat_matmat",
    "compare_dots",
    "mds_from_codes",
    "to_zarr",
    "from_zarr",
]

EXTRA_HINT = "pip install 'vqgeom[distributed]' (dask[array], distributed, zarr)"
# Fan-in of the tree reductions: each merge task combines this many partial results.
SPLIT_EVERY = 8
# Target bytes of one float64 slab inside a tile task (rows x column block x 8).
SLAB_BYTES = 32 << 20
# Columns one k-NN task covers at least (consecutive column blocks joined): each task restarts
# its rows' top k, so wider tasks repeat fewer insertions (and need fewer merges).
KNN_TASK_COLS = 50_000
# Largest per-row histograms (int64, rows of a block x bins of all networks) a compare task may hold.
ROW_HIST_BYTES = 1 << 30


def require(module: str = "dask.array") -> Any:
    """Import ``module`` (dask.array, zarr, distributed), or raise an ImportError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is needed for dask-backed codes and Zarr storage: {EXTRA_HINT}") from err


def is_dask_codes(*objs: Any) -> bool:
    """Whether any argument is a dask array or Codes with dask words (never imports dask)."""
    for o in objs:
        words = o.words if isinstance(o, Codes) else o
        if array_module(words) == "dask":
            return True
    return False


def normalize_words(words: Any) -> Any:
    """Dask words with every word of a row in one chunk (rechunked if needed) and known row chunks."""
    if any(isinstance(c, float) and math.isnan(c) for c in words.chunks[0]):
        raise ValueError(
            f"words: expected a dask array with known row chunk sizes, got unknown ones {words.chunks[0]}; "
            "call words.compute_chunk_sizes() first"
        )
    if len(words.chunks[1]) > 1:
        # A row's distance needs all of its words: one column chunk (a row is B/8 bytes, so cheap).
        words = words.rechunk({1: -1})
    return words


def as_dask_codes(codes: Codes, like: Codes | None = None) -> Codes:
    """``codes`` with dask words (host numpy words are wrapped; row chunks follow ``like``'s)."""
    if is_dask_codes(codes):
        return codes
    da = require()
    words = codes.words_numpy()
    if like is None:
        chunks = "auto"
    elif like.n == codes.n:
        chunks = like.words.chunks[0]
    else:
        chunks = like.words.chunksize[0]
    return _replace(codes, da.from_array(words, chunks=(chunks, -1)))


def _replace(codes: Codes, words: Any) -> Codes:
    # Keeps every per-layer field Codes has (layer names and whatever later versions add).
    return dataclasses.replace(codes, words=words)


def _blocks(codes: Codes) -> list[tuple[Any, int, int]]:
    """``(delayed block, first row, row count)`` for each row chunk of dask codes."""
    blocks = codes.words.to_delayed()[:, 0]
    out, r = [], 0
    for b, n in zip(blocks, codes.words.chunks[0]):
        out.append((b, r, int(n)))
        r += int(n)
    return out


def _tree(parts: list[Any], combine: Callable, name: str) -> Any:
    """Reduce delayed ``parts`` with ``combine(*group)`` in a tree of fan-in :data:`SPLIT_EVERY`."""
    from dask import delayed

    level = 0
    while len(parts) > 1:
        parts = [
            delayed(combine, pure=True)(*parts[i : i + SPLIT_EVERY], dask_key_name=f"{name}-{level}-{i}")
            for i in range(0, len(parts), SPLIT_EVERY)
        ]
        level += 1
    return parts[0]


def _token(*parts: Any) -> str:
    from dask.base import tokenize

    return tokenize(*parts)


# --------------------------------------------------------------------------------------------
# Tiles: run on the workers, call the in-memory library on numpy (or cupy/torch) blocks.

def _tile_codes(block: Any, codes_meta: Codes, backend: str) -> tuple[Codes, str]:
    """A block as in-memory Codes for ``backend`` (``"triton"`` moves it to the worker's GPU)."""
    if backend == "triton":
        import torch

        words = torch.from_numpy(np.ascontiguousarray(np.asarray(block)).view(np.int32)).to("cuda")
        return _replace(codes_meta, words), backend
    return _replace(codes_meta, block), backend


def _host(a: Any) -> np.ndarray:
    from ._arrays import to_numpy

    return to_numpy(a)


def _tile_distance(bx: Any, by: Any, meta: Codes, weights: Any, per_layer: bool, backend: str) -> Any:
    from .distances import pairwise_distances

    cx, name = _tile_codes(bx, meta, backend)
    cy, _ = _tile_codes(by, meta, backend)
    out = pairwise_distances(cx, cy, weights=weights, per_layer=per_layer, backend=name)
    # host numpy, except cupy blocks (dask-cuda) which stay on their GPU
    return out if array_module(out) == "cupy" else _host(out)


def _slabs(n_rows: int, n_cols: int, block_rows: int) -> tuple[range, int]:
    step = max(1, min(block_rows, SLAB_BYTES // (8 * max(1, n_cols))))
    return range(0, n_rows, step), step


def _fused(block: Any, backend: str) -> bool:
    """Whether a tile runs the fused CPU route (:mod:`vqgeom._cpu_stream`): host numpy blocks
    on the CPU backend, where numba imports."""
    from . import _cpu_stream
    from ._backend import resolve_backend

    return array_module(block) == "numpy" and resolve_backend(backend, block) == "cpu" and _cpu_stream.available()


def _tile_topk(bx, by, r0: int, c0: int, meta: Codes, weights, backend: str, k: int, exclude_self: bool, block_rows: int):
    """Each row's best ``k`` columns of the tile as (distances, global indices), sorted by
    (distance, index) like the in-memory k-NN (ties to the smaller index). ``by``: one block
    or a list of consecutive column blocks (starting at column ``c0``). With ``exclude_self``
    a row's own column is skipped. Entries a row lacks (a tile with fewer than ``k`` eligible
    columns) get a distance and an index above every real one, so the merge puts them last."""
    if isinstance(by, (list, tuple)):
        by = by[0] if len(by) == 1 else _concat(by)
    if _fused(bx, backend):
        from . import _cpu_stream
        from .distances import codes_weights

        wt = codes_weights(meta, weights)
        kk = min(k, int(by.shape[0]))
        # one thread: a worker runs one task per worker thread
        d, i, fill = _cpu_stream.knn_rows(bx, by, meta.layer_sizes, wt, kk, exclude_self=exclude_self, row0=r0,
                                          col0=c0, threads=1)
        short = np.arange(kk)[None, :] >= fill[:, None]
        if short.any():
            d[short] = np.inf if d.dtype.kind == "f" else np.iinfo(d.dtype).max
            i[short] = np.iinfo(np.int64).max
        return d, i
    return _tile_topk_blocks(bx, by, r0, c0, meta, weights, backend, k, exclude_self, block_rows)


def _concat(blocks: Sequence[Any]) -> Any:
    """Row blocks joined in their own array library (numpy, or cupy on dask-cuda workers)."""
    if array_module(blocks[0]) == "cupy":
        import cupy

        return cupy.concatenate(blocks, axis=0)
    return np.concatenate([np.asarray(b) for b in blocks], axis=0)


def _tile_topk_blocks(bx, by, r0: int, c0: int, meta: Codes, weights, backend: str, k: int, exclude_self: bool,
                      block_rows: int):
    """:func:`_tile_topk` on other backends (GPU blocks): distance slabs and
    :func:`vqgeom.neighbors.smallest`. With ``exclude_self`` a row keeps ``k + 1`` and its
    own column, if kept, gets a distance above every real one (int64 max or inf)."""
    from .neighbors import smallest

    n, m = int(bx.shape[0]), int(by.shape[0])
    kk = min(k + 1 if exclude_self else k, m)
    out_d, out_i = np.empty((n, kk), dtype=np.int64), np.empty((n, kk), dtype=np.int64)
    rng, step = _slabs(n, m, block_rows)
    for s in rng:
        D = _host(_tile_distance(bx[s : s + step], by, meta, weights, False, backend))
        pos = smallest(D, kk)
        d = np.take_along_axis(D, pos, axis=1)
        d = d.astype(np.float64 if d.dtype.kind == "f" else np.int64)
        if exclude_self:
            own = pos == (r0 + s + np.arange(D.shape[0]) - c0)[:, None]
            d[own] = np.inf if d.dtype.kind == "f" else np.iinfo(np.int64).max
        if s == 0 and d.dtype != out_d.dtype:
            out_d = out_d.astype(d.dtype)
        out_d[s : s + step] = d
        out_i[s : s + step] = pos + c0
    return out_d, out_i


def _merge_topk(k: int):
    def merge(*parts):
        d = np.concatenate([p[0] for p in parts], axis=1)
        i = np.concatenate([p[1] for p in parts], axis=1)
        d = d.astype(np.result_type(*[p[0].dtype for p in parts]), copy=False)
        order = np.lexsort((i, d), axis=1)[:, :k]  # by distance, then by index: the in-memory tie rule
        return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)

    return merge


def _finish_topk(part, k: int, out_dtype):
    d, i = _merge_topk(k)(part)  # sorts a lone tile's selection too (it comes in column order)
    return d.astype(out_dtype), np.ascontiguousarray(i)


def _tile_heat(bx, by, V, meta: Codes, weights, backend: str, s2: float, squared: bool, block_rows: int):
    """``exp(-D_tile / sigma2) @ V_j`` for one tile (fused CPU route, one thread; else in row slabs)."""
    n, m = int(bx.shape[0]), int(by.shape[0])
    V = np.asarray(V, dtype=np.float64)
    if _fused(bx, backend):
        from . import _cpu_stream
        from .distances import codes_weights

        return _cpu_stream.heat_rows(bx, by, meta.layer_sizes, codes_weights(meta, weights), V, s2, squared=squared,
                                     threads=1)
    out = np.empty((n, V.shape[1]))
    rng, step = _slabs(n, m, block_rows)
    for s in rng:
        D = _host(_tile_distance(bx[s : s + step], by, meta, weights, False, backend)).astype(np.float64)
        out[s : s + step] = np.exp(-(D * D if squared else D) / s2) @ V
    return out


def _tile_cosine(bxs, bys, metas, per_w, backend: str, s2: np.ndarray, squared: bool, block_rows: int):
    """Partial Frobenius products ``sum_tile h_a * h_b`` for every sigma2 and pair of networks."""
    m_nets = len(metas)
    n, m = int(bxs[0].shape[0]), int(bys[0].shape[0])
    dots = np.zeros((len(s2), m_nets, m_nets))
    rng, step = _slabs(n, m * m_nets, block_rows)
    for s in rng:
        ds = []
        for bx, by, meta, w in zip(bxs, bys, metas, per_w):
            D = _host(_tile_distance(bx[s : s + step], by, meta, w, False, backend)).astype(np.float64)
            ds.append(D * D if squared else D)
        for si, sigma2 in enumerate(s2):
            hs = [np.exp(-D / sigma2) for D in ds]
            for a in range(m_nets):
                for b in range(a, m_nets):
                    v = float(np.vdot(hs[a], hs[b]))
                    dots[si, a, b] += v
                    if a != b:
                        dots[si, b, a] += v
    return dots


def _sum(*parts):
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


# --------------------------------------------------------------------------------------------
# Public-facing graph builders (called by the dispatch at the top of the public functions).

def _pair(codes_x: Codes, codes_y: Codes | None) -> tuple[Codes, Codes]:
    if codes_y is None:
        return codes_x, codes_x
    if not is_dask_codes(codes_x):
        codes_x = as_dask_codes(codes_x, codes_y)
    return codes_x, as_dask_codes(codes_y, codes_x)


def _meta(codes: Codes) -> Codes:
    """The codes' per-layer description with an empty numpy block (shipped to tiles, tiny)."""
    return _replace(codes, np.zeros((0, codes.n_words), dtype=np.uint32))


def pairwise_distances(codes_x: Codes, codes_y: Codes | None, *, weights: Any, per_layer: bool, backend: str,
                       out_dtype: Any) -> Any:
    """Lazy ``(N, M)`` (or ``(L, N, M)``) dask array of distance tiles; chunks follow the codes' rows."""
    da = require()
    cx, cy = _pair(codes_x, codes_y)
    meta = _meta(cx)
    L = cx.n_layers

    def tile(bx, by):
        return _tile_distance(bx, by, meta, weights, per_layer, backend)

    name = "vqgeom-distances-" + _token(cx.words, cy.words, weights, per_layer, backend)
    if per_layer:
        return da.blockwise(tile, "lij", cx.words, "iw", cy.words, "jw", new_axes={"l": L}, dtype=out_dtype,
                            concatenate=True, name=name, meta=np.empty((0, 0, 0), dtype=out_dtype))
    return da.blockwise(tile, "ij", cx.words, "iw", cy.words, "jw", dtype=out_dtype, concatenate=True, name=name,
                        meta=np.empty((0, 0), dtype=out_dtype))


def _column_groups(blocks: list[tuple[Any, int, int]], cols: int) -> list[tuple[list[Any], int]]:
    """Consecutive column blocks in groups of at least ``cols`` columns (the last may be
    smaller): ``(delayed blocks, first column)`` per group."""
    groups, cur, c0, width = [], [], 0, 0
    for b, start, n in blocks:
        if not cur:
            c0 = start
        cur.append(b)
        width += n
        if width >= cols:
            groups.append((cur, c0))
            cur, width = [], 0
    if cur:
        groups.append((cur, c0))
    return groups


def knn(codes_x: Codes, codes_y: Codes | None, k: int, *, weights: Any, exclude_self: bool, backend: str,
        out_dtype: Any, block_rows: int) -> tuple[Any, Any]:
    """Lazy ``(N, k)`` distances and int64 indices: per-tile top-k merged by a tree over column blocks."""
    da = require()
    from dask import delayed

    cx, cy = _pair(codes_x, codes_y)
    meta = _meta(cx)
    tok = _token(cx.words, cy.words, k, weights, exclude_self, backend, block_rows)
    merge = _merge_topk(k)
    d_parts, i_parts = [], []
    groups = _column_groups(_blocks(cy), KNN_TASK_COLS)
    for bi, (bx, r0, nr) in enumerate(_blocks(cx)):
        tiles = [
            delayed(_tile_topk, pure=True)(bx, bys, r0, c0, meta, weights, backend, k, exclude_self, block_rows,
                                           dask_key_name=f"vqgeom-knn-tile-{tok}-{bi}-{bj}")
            for bj, (bys, c0) in enumerate(groups)
        ]
        top = _tree(tiles, merge, f"vqgeom-knn-merge-{tok}-{bi}")
        fin = delayed(_finish_topk, pure=True, nout=2)(top, k, out_dtype, dask_key_name=f"vqgeom-knn-{tok}-{bi}")
        d_parts.append(da.from_delayed(fin[0], shape=(nr, k), dtype=out_dtype, meta=np.empty((0, 0), out_dtype)))
        i_parts.append(da.from_delayed(fin[1], shape=(nr, k), dtype=np.int64, meta=np.empty((0, 0), np.int64)))
    return da.concatenate(d_parts, axis=0), da.concatenate(i_parts, axis=0)


def heat_matmat(codes: Codes, V: Any, s2: float, *, weights: Any, squared: bool, backend: str,
                block_rows: int) -> Any:
    """Lazy ``exp(-D / sigma2) @ V`` of shape ``(N, k)``: per-tile products summed by a tree over ``j``."""
    da = require()
    from dask import delayed

    rows = codes.words.chunks[0]
    if array_module(V) == "dask":
        Vd = V.rechunk((rows, -1))
    else:
        Vd = da.from_array(np.asarray(V, dtype=np.float64), chunks=(rows, -1))
    vblocks = Vd.to_delayed()[:, 0]
    meta = _meta(codes)
    kcols = int(Vd.shape[1])
    tok = _token(codes.words, Vd, s2, weights, squared, backend, block_rows)
    parts = []
    blocks = _blocks(codes)
    for bi, (bx, _, nr) in enumerate(blocks):
        tiles = [
            delayed(_tile_heat, pure=True)(bx, by, vblocks[bj], meta, weights, backend, s2, squared, block_rows,
                                           dask_key_name=f"vqgeom-heat-tile-{tok}-{bi}-{bj}")
            for bj, (by, _, _) in enumerate(blocks)
        ]
        total = _tree(tiles, _sum, f"vqgeom-heat-sum-{tok}-{bi}")
        parts.append(da.from_delayed(total, shape=(nr, kcols), dtype=np.float64, meta=np.empty((0, 0))))
    return da.concatenate(parts, axis=0)


def compare_dots(codes: Sequence[Codes], per_w: Sequence[Any], s2: np.ndarray, *, squared: bool, backend: str,
                 block_rows: int) -> np.ndarray:
    """``(S, M, M)`` Frobenius inner products of the networks' heat kernels (computed)."""
    require()
    first = as_dask_codes(codes[0])
    rows = first.words.chunks[0]
    codes = [first] + [as_dask_codes(c, first) for c in codes[1:]]
    codes = [_replace(c, c.words.rechunk((rows, -1))) for c in codes]
    metas = [_meta(c) for c in codes]
    per_net = [_blocks(c) for c in codes]
    from dask import delayed

    tok = _token([c.words for c in codes], per_w, s2, squared, backend, block_rows)
    tiles = []
    for bi in range(len(rows)):
        for bj in range(len(rows)):
            bxs = [blocks[bi][0] for blocks in per_net]
            bys = [blocks[bj][0] for blocks in per_net]
            tiles.append(delayed(_tile_cosine, pure=True)(bxs, bys, metas, list(per_w), backend, s2, squared,
                                                          block_rows, dask_key_name=f"vqgeom-cos-tile-{tok}-{bi}-{bj}"))
    return _tree(tiles, _sum, f"vqgeom-cos-sum-{tok}").compute()


def _tile_hist(bxs, bys, metas, wts, backend: str, V: list[int], rows: bool, block_rows: int):
    """Count arrays of one tile (integer distances): each network's marginal, each pair's joint
    histogram and, with ``rows``, each network's per-row histograms (int64, rows x V_a)."""
    m_nets = len(metas)
    n, m = int(bxs[0].shape[0]), int(bys[0].shape[0])
    marg = [np.zeros(V[a], np.int64) for a in range(m_nets)]
    joint = {(a, b): np.zeros((V[a], V[b]), np.int64) for a in range(m_nets) for b in range(a + 1, m_nets)}
    H = [np.zeros((n, V[a]), np.int64) for a in range(m_nets)] if rows else None
    rng, step = _slabs(n, m * m_nets, block_rows)
    for s in rng:
        ds = [_host(_tile_distance(bx[s : s + step], by, meta, w, False, backend)).astype(np.int64)
              for bx, by, meta, w in zip(bxs, bys, metas, wts)]
        r = ds[0].shape[0]
        for a, d in enumerate(ds):
            if rows:
                h = np.bincount((np.arange(r)[:, None] * V[a] + d).ravel(), minlength=r * V[a]).reshape(r, V[a])
                H[a][s : s + r] = h
                marg[a] += h.sum(axis=0)
            else:
                marg[a] += np.bincount(d.ravel(), minlength=V[a])
        for (a, b), J in joint.items():
            J += np.bincount((ds[a] * V[b] + ds[b]).ravel(), minlength=V[a] * V[b]).reshape(V[a], V[b])
    return marg, joint, H


def _sum_hist(*parts):
    marg = [sum(p[0][a] for p in parts) for a in range(len(parts[0][0]))]
    joint = {key: sum(p[1][key] for p in parts) for key in parts[0][1]}
    third = None if parts[0][2] is None else (
        [sum(p[2][a] for p in parts) for a in range(len(parts[0][2]))] if isinstance(parts[0][2], list)
        else {key: sum(p[2][key] for p in parts) for key in parts[0][2]})
    return marg, joint, third


def _row_products(part):
    """A row block's complete per-row histograms -> its share of ``sum_i h_a^i[u] h_b^i[v]``."""
    marg, joint, H = part
    if H is None:
        return marg, joint, None
    Hf = [h.astype(np.float64) for h in H]
    return marg, joint, {(a, b): Hf[a].T @ Hf[b] for a in range(len(Hf)) for b in range(a, len(Hf))}


def compare_histograms(codes: Sequence[Codes], wts: Sequence[Any], names: Sequence[str], row_products: bool, *,
                       backend: str, block_rows: int) -> Any:
    """:class:`vqgeom.similarity.DistanceHistograms` of the networks' integer distances, computed on
    the cluster: per tile the count arrays, summed over column blocks by a tree (per-row histograms
    complete), turned into row products per row block, summed over row blocks by a tree."""
    require()
    from dask import delayed

    from .similarity import _MAX_HIST_CELLS, DistanceHistograms

    V = [int(wt.max_distance) + 1 for wt in wts]
    m = len(codes)
    cells = sum(V[a] * V[b] for a in range(m) for b in range(a, m))
    if cells > _MAX_HIST_CELLS:
        raise ValueError(f"weights: the histograms of distances up to {[v - 1 for v in V]} would need {cells:,} cells "
                         f"(more than {_MAX_HIST_CELLS:,}); dask codes support such weights with "
                         "measure='heat_cosine' and shared sigma2s only")
    first = as_dask_codes(codes[0])
    rows = first.words.chunks[0]
    row_bytes = max(rows) * sum(V) * 8
    if row_products and row_bytes > ROW_HIST_BYTES:
        raise ValueError(f"X: the CKA measures keep per-row histograms of a row block ({max(rows):,} rows x "
                         f"{sum(V):,} bins = {row_bytes / 2**20:,.0f} MiB, more than {ROW_HIST_BYTES >> 20} MiB); "
                         "use smaller row chunks")
    codes = [first] + [as_dask_codes(c, first) for c in codes[1:]]
    codes = [_replace(c, c.words.rechunk((rows, -1))) for c in codes]
    metas = [_meta(c) for c in codes]
    per_net = [_blocks(c) for c in codes]
    tok = _token([c.words for c in codes], list(wts), row_products, backend, block_rows)
    parts = []
    for bi in range(len(rows)):
        bxs = [blocks[bi][0] for blocks in per_net]
        tiles = [delayed(_tile_hist, pure=True)(bxs, [blocks[bj][0] for blocks in per_net], metas, list(wts), backend,
                                                V, row_products, block_rows,
                                                dask_key_name=f"vqgeom-hist-tile-{tok}-{bi}-{bj}")
                 for bj in range(len(rows))]
        full = _tree(tiles, _sum_hist, f"vqgeom-hist-cols-{tok}-{bi}")
        parts.append(delayed(_row_products, pure=True)(full, dask_key_name=f"vqgeom-hist-rows-{tok}-{bi}"))
    marg, joint, prod = _tree(parts, _sum_hist, f"vqgeom-hist-sum-{tok}").compute()
    return DistanceHistograms(int(codes[0].n), list(names), marg, joint, prod)


def _signs_block(block, sizes, scale, mu):
    S = (2.0 * unpack_words(np.asarray(block), sizes).astype(np.float64) - 1.0) * scale
    return S if mu is None else S - mu


def mds_from_codes(codes: Codes, k: int, w: np.ndarray | None) -> tuple[np.ndarray, Any]:
    """Eigenvalues of ``B`` (numpy) and lazy eigenvectors (dask, chunked like the codes' rows)."""
    require()
    from dask import delayed

    sizes = codes.layer_sizes
    scale = np.repeat(np.sqrt(np.ones(codes.n_layers) if w is None else w), sizes)
    blocks = _blocks(codes)
    tok = _token(codes.words, w)

    def colsum(b):
        return _signs_block(b, sizes, scale, None).sum(axis=0)

    mu = _tree([delayed(colsum, pure=True)(b, dask_key_name=f"vqgeom-mds-mean-{tok}-{i}")
                for i, (b, _, _) in enumerate(blocks)], _sum, f"vqgeom-mds-meansum-{tok}").compute() / codes.n

    def gram(b):
        S = _signs_block(b, sizes, scale, mu)
        return S.T @ S

    G = _tree([delayed(gram, pure=True)(b, dask_key_name=f"vqgeom-mds-gram-{tok}-{i}")
               for i, (b, _, _) in enumerate(blocks)], _sum, f"vqgeom-mds-gramsum-{tok}").compute()
    ev, V = np.linalg.eigh(G)
    order = np.argsort(-ev, kind="stable")[:k]
    ev, V = np.clip(ev[order], 0.0, None), V[:, order]

    def scores(b):
        return _signs_block(b, sizes, scale, mu) @ V

    def stats(b, r0):
        # column sums of squares, and each column's first largest-magnitude entry (value, row)
        U = scores(b)
        at = np.argmax(np.abs(U), axis=0)
        return (U * U).sum(axis=0), np.abs(U[at, np.arange(U.shape[1])]), U[at, np.arange(U.shape[1])], at + r0

    parts = delayed(list)([delayed(stats, pure=True)(b, r0) for b, r0, _ in blocks]).compute()
    norms = np.sqrt(np.sum([p[0] for p in parts], axis=0))
    signs = np.ones(k)
    best = np.full(k, -1.0)
    for _, mag, val, _ in parts:  # blocks in row order: the first maximum wins, as np.argmax does
        better = mag > best
        best = np.where(better, mag, best)
        signs = np.where(better, np.sign(val), signs)
    signs[signs == 0] = 1
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0) * signs
    vecs = codes.words.map_blocks(lambda b: scores(b) * inv, dtype=np.float64, chunks=(codes.words.chunks[0], (k,)),
                                  meta=np.empty((0, 0)))
    return -0.5 * ev, vecs


def encode(model: Any, X: Any, *, batch_size: int | None, allow_non_cpa: bool, backend: str) -> Codes:
    """Dask-backed codes of dask ``X``: one task per row chunk, the model one key of the graph."""
    da = require()
    from dask import delayed

    from .encoding import encode as encode_in_memory

    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"X: expected at least one input row, got a dask array of shape {X.shape}")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})  # a row in one chunk
    if any(isinstance(c, float) and math.isnan(c) for c in X.chunks[0]):
        raise ValueError("X: expected known row chunk sizes, got unknown ones; call X.compute_chunk_sizes() first")
    kw = dict(batch_size=batch_size, allow_non_cpa=allow_non_cpa, backend=backend, progress=False)
    # The layer structure, from the first row on the client (it fixes the blocks' shapes).
    probe = encode_in_memory(model, np.asarray(X[:1].compute()), **kw)
    meta = _meta(probe)
    # The model travels as pickled bytes in one key: each worker fetches it once and unpickles it
    # once (cached by token). Bytes, not the module: distributed's own torch serializer rebuilds
    # a module's hook dicts as plain dicts, which torch then cannot hook.
    import cloudpickle

    tok = uuid.uuid4().hex
    model_d = delayed(cloudpickle.dumps(model), name=f"vqgeom-model-{tok}", traverse=False)
    parts = []
    for i, (xb, n) in enumerate(zip(X.to_delayed().reshape(len(X.chunks[0]), -1)[:, 0], X.chunks[0])):
        blk = delayed(_encode_block, pure=True)(tok, model_d, xb, meta, kw, dask_key_name=f"vqgeom-encode-{tok}-{i}")
        parts.append(da.from_delayed(blk, shape=(int(n), probe.n_words), dtype=np.uint32,
                                     meta=np.empty((0, 0), np.uint32)))
    return _replace(probe, da.concatenate(parts, axis=0))


_MODELS: dict[str, Any] = {}  # per worker process: token -> unpickled model (the last few)


def _encode_block(tok: str, payload: bytes, xb: Any, meta: Codes, kw: dict) -> np.ndarray:
    import pickle

    from .encoding import encode as encode_in_memory

    model = _MODELS.get(tok)
    if model is None:
        while len(_MODELS) >= 4:
            _MODELS.pop(next(iter(_MODELS)))
        model = _MODELS[tok] = pickle.loads(payload)
    c = encode_in_memory(model, xb, **kw)
    if c.layer_sizes != meta.layer_sizes:
        raise ValueError(
            f"model: the activation layers differ between row blocks ({meta.layer_sizes} then {c.layer_sizes}); "
            "data-dependent control flow cannot be encoded"
        )
    return c.words_numpy()


# --------------------------------------------------------------------------------------------
# Zarr storage.

FORMAT = 1


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _untuple(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_untuple(x) for x in v)
    return v


def to_zarr(codes: Codes, store: Any, *, chunk_rows: int | None, overwrite: bool) -> None:
    """Write ``codes`` as a Zarr group: array ``words`` chunked by rows, per-layer fields as attributes."""
    zarr = require("zarr")
    attrs = {f.name: _jsonable(getattr(codes, f.name)) for f in dataclasses.fields(codes) if f.name != "words"}
    attrs["vqgeom_codes_format"] = FORMAT
    dask_words = is_dask_codes(codes)
    if chunk_rows is None:
        chunk_rows = int(codes.words.chunksize[0]) if dask_words else max(1, min(codes.n, (16 << 20) // max(1, 4 * codes.n_words)))
    words = codes.words
    if dask_words and len(set(words.chunks[0][:-1])) > 1 or dask_words and words.chunks[0][0] != chunk_rows:
        words = words.rechunk((chunk_rows, -1))  # Zarr chunks are regular: each task writes whole chunks
    group = zarr.open_group(store, mode="w" if overwrite else "w-")
    group.attrs.update(attrs)
    arr = group.create_array("words", shape=(codes.n, codes.n_words), dtype=np.uint32,
                             chunks=(max(1, chunk_rows), max(1, codes.n_words)))
    if dask_words:
        require().store(words, arr, lock=False)
    else:
        arr[...] = codes.words_numpy()


def from_zarr(store: Any, *, chunks: Any = None) -> Codes:
    """Dask-backed codes over a Zarr group written by :func:`to_zarr` (nothing is read until computed)."""
    zarr = require("zarr")
    da = require()
    try:
        group = zarr.open_group(store, mode="r")
    except Exception as err:  # zarr raises several types for a missing or non-group store
        raise ValueError(f"store: expected a Zarr group written by Codes.to_zarr, could not open {store!r}: {err}") from err
    attrs = dict(group.attrs)
    if attrs.get("vqgeom_codes_format") is None or "words" not in group or "layer_sizes" not in attrs:
        raise ValueError(f"store: {store!r} is not a vqgeom Codes group (no 'words' array or layer_sizes attribute)")
    arr = group["words"]
    words = da.from_zarr(arr, chunks=(chunks if chunks is not None else arr.chunks[0], -1))
    known = {f.name for f in dataclasses.fields(Codes)} - {"words"}
    return Codes(words, **{k: _untuple(v) for k, v in attrs.items() if k in known})
