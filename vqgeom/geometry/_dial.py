"""All-pairs d_Omega with small integer edge weights: bit-parallel Dial's algorithm.

The partition graph's edges cost their layer's weight. When the weights are small integer
multiples of one unit, the distances from many sources advance together, one bit per
source in a row of uint64 words per node (as in :mod:`vqgeom.geometry._hops`, which does
it for hops): the bits that first reach node ``v`` at level ``d`` are

    new_d[v] = OR over edges (u, v) of weight c of new_{d - c}[u], minus those seen before,

so a ring of the last ``max weight + 1`` levels' frontier bits is all the state there is,
and a node is touched only at the levels where some source of the block reaches it. A
compiled loop (numba) does the work; numba is imported when first needed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["dial_distances", "integer_weights"]

_UNREACHED = np.iinfo(np.int32).max


def integer_weights(weights: np.ndarray, max_weight: int = 64):
    """``(ints, unit)`` with ``weights == ints * unit`` exactly in float64 and ``ints <= max_weight``, else None."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return np.zeros(0, dtype=np.int64), 1.0
    lo = float(w.min())
    for den in range(1, max_weight + 1):
        unit = lo / den
        q = np.rint(w / unit)
        if q.max() <= max_weight and np.all(q * unit == w):
            return q.astype(np.int64), unit
    return None


# Index of the lowest set bit: a De Bruijn multiply (numba has no count-trailing-zeros).
_DB_TABLE = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _DB_TABLE[(((1 << _i) * 0x03F79D71B4CB0A89) % (1 << 64)) >> 58] = _i


@njit(cache=True, nogil=True)
def _dial_block(indptr, indices, ew, cmax, src, W, table, out_t):
    """Levels (integer distances) from the block's sources ``src`` (n,) into ``out_t`` (R, n) int32.

    Push form: when node ``u``'s new bits are committed at level ``d``, they are OR-ed into
    the frontier of level ``d + c`` of each neighbour over an edge of weight ``c``; level
    ``d``'s pending nodes then keep the bits not seen before. Slots of the ring are reused
    every ``cmax + 1`` levels.
    """
    R = indptr.size - 1
    n = src.size
    S = cmax + 1
    F = np.zeros((S, R, W), dtype=np.uint64)
    vis = np.zeros((R, W), dtype=np.uint64)
    new = np.zeros(W, dtype=np.uint64)
    act = np.empty((S, R), dtype=np.int64)
    nact = np.zeros(S, dtype=np.int64)
    mark = np.full((S, R), -1, dtype=np.int64)
    for i in range(n):
        v = src[i]
        F[0, v, i // 64] |= np.uint64(1) << np.uint64(i % 64)
        if mark[0, v] != 0:
            mark[0, v] = 0
            act[0, nact[0]] = v
            nact[0] += 1
    pending = nact[0]
    d = 0
    while pending > 0:
        s = d % S
        for q in range(nact[s]):
            u = act[s, q]
            anyb = np.uint64(0)
            for w in range(W):
                b = F[s, u, w] & ~vis[u, w]
                F[s, u, w] = 0
                new[w] = b
                anyb |= b
            if anyb == 0:
                continue
            for w in range(W):
                b = new[w]
                vis[u, w] |= b
                while b != 0:
                    low = b & (~b + np.uint64(1))
                    out_t[u, w * 64 + table[(low * np.uint64(0x03F79D71B4CB0A89)) >> np.uint64(58)]] = d
                    b ^= low
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                dv = d + ew[e]
                sv = dv % S
                anyv = np.uint64(0)
                for w in range(W):
                    b = new[w] & ~vis[v, w]
                    F[sv, v, w] |= b
                    anyv |= b
                if anyv != 0 and mark[sv, v] != dv:
                    mark[sv, v] = dv
                    act[sv, nact[sv]] = v
                    nact[sv] += 1
                    pending += 1
        pending -= nact[s]
        nact[s] = 0
        d += 1
    return d


def dial_distances(indptr, indices, edge_weight, sources, order=None, *, unit: float = 1.0, words: int = 8,
                   threads: int | None = None, progress: bool = False):
    """Shortest-path distances (integer levels) from ``sources`` over edges of positive integer weight.

    Parameters
    ----------
    indptr, indices : CSR of a symmetric graph (both directions stored), R nodes.
    edge_weight : int64 (nnz,), positive, aligned with ``indices``.
    sources : int (S,); order : processing order of the sources (e.g. a Z-order of their
    positions, so that a block's frontiers overlap); unit : the weight of 1 (distances are
    levels times ``unit``); words : uint64 words per node per block; threads : blocks run
    in parallel (default: the CPU count).

    Returns
    -------
    ndarray float64 (S, R): ``inf`` where a node is unreachable.
    """
    import os

    threads = (os.cpu_count() or 1) if threads is None else int(threads)
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    ew = np.ascontiguousarray(edge_weight, dtype=np.int64)
    sources = np.asarray(sources, dtype=np.int64)
    R = indptr.size - 1
    S = sources.size
    cmax = int(ew.max()) if ew.size else 1
    # The ring holds (cmax + 1) frontiers of R x words: keep it within ~64 MB.
    words = int(max(1, min(words, (64 << 20) // (8 * (cmax + 1) * max(R, 1)))))
    out = np.empty((S, R), dtype=np.float64)
    order = np.arange(S) if order is None else np.asarray(order, dtype=np.int64)
    block = 64 * words
    starts = list(range(0, S, block))

    def run(b0):
        rows = order[b0 : b0 + block]
        src = np.ascontiguousarray(sources[rows])
        out_t = np.full((R, src.size), _UNREACHED, dtype=np.int32)
        _dial_block(indptr, indices, ew, cmax, src, (src.size + 63) // 64, _DB_TABLE, out_t)
        blk = out_t.T * unit
        blk[blk == _UNREACHED * unit] = np.inf
        out[rows] = blk

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), desc="d_Omega", unit="block")
    if threads > 1 and len(starts) > 1:
        # The compiled loop releases the GIL: blocks run on several cores.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as ex:
            for _ in ex.map(run, starts):
                if bar is not None:
                    bar.update(1)
    else:
        for b0 in starts:
            run(b0)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out
