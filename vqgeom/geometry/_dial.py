"""All-pairs d_Omega with small integer edge weights: blocks of sources, vector relaxation.

The partition graph's edges cost their layer's weight; when the weights are integer
multiples of one unit the distances are integer levels. Sources are taken in blocks of
``LANES`` (64) nearby ones (runs along a locality order of the nodes, e.g. a Z-order of
the regions' positions), and each node holds one small integer per source of the block
(a row of ``D``), so that one relaxation ``D[v] = min(D[v], D[u] + w(u, v))`` over all the
block's sources is a few SIMD instructions. Per block:

1. Dial's algorithm (bucket queue over integer levels) from the block's central source
   ``c`` gives ``d(c, v)`` for every node and the order in which the nodes settle.
2. ``D[v, i]`` starts at the triangle bound ``d(c, s_i) + d(c, v)`` (``0`` at ``s_i``):
   an upper bound that is exact wherever the path from ``s_i`` runs through ``c``.
3. Gauss-Seidel sweeps over the nodes in settle order, forwards then backwards, relax every
   node whose neighbours changed since it was last visited, until a sweep changes nothing.
   Values only decrease and stay upper bounds; at the fixed point every edge satisfies
   ``D[v] <= D[u] + w`` with ``D[s_i, i] = 0``, which with positive weights makes ``D`` the
   exact shortest-path levels (Bellman-Ford's argument; the order only affects how many
   sweeps that takes: 10-22 per block on the w = 128 partition of the benchmark).

The rows stay uint16 when the triangle bound keeps every level below 65535 - max weight
(int32 otherwise), so a relaxation never overflows and no infinity is needed: nodes in
another connected component than the block (blocks never straddle components) are not
settled and come out ``inf``. Blocks run on several threads (the compiled loops release
the GIL), each with its own buffers, and write their float64 rows of the result from
compiled code. numba is imported when first needed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._validate import check_int

__all__ = ["dial_distances", "integer_weights", "zorder"]

LANES = 64  # sources per block: one row of D per node


def zorder(points: np.ndarray) -> np.ndarray:
    """A permutation sorting ``points`` (N, k) along a Z-order (Morton) curve."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = pts.min(0), pts.max(0)
    q = ((pts - lo) / np.where(hi > lo, hi - lo, 1.0) * 65535).astype(np.uint64)
    key = np.zeros(pts.shape[0], dtype=np.uint64)
    k = pts.shape[1]
    for bit in range(16):
        for d in range(k):
            key |= ((q[:, d] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(bit * k + d)
    return np.argsort(key, kind="stable")


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


@njit(cache=True, nogil=True)
def _settle(indptr, indices, ew, smask, c, dist, order, head, inode, inext):
    """Dial's algorithm from node ``c``: levels into ``dist`` (settled node ``v`` at level
    ``d`` holds ``-1 - d``; unreached nodes stay ``>= 0``) and the settle order into
    ``order``; returns the number of settled nodes. ``head`` (S,) is the bucket ring
    (``S = smask + 1`` a power of two above the largest weight), ``inode``/``inext``
    (nnz + 1,) its linked entries (every entry is a strict improvement: at most nnz + 1)."""
    big = np.iinfo(np.int64).max
    dist[:] = big
    head[:] = -1
    dist[c] = 0
    inode[0] = c
    inext[0] = -1
    head[0] = 0
    k = 1
    pending = 1
    d = 0
    n = 0
    while pending > 0:
        s = d & smask
        h = head[s]
        head[s] = -1
        while h >= 0:
            u = inode[h]
            h = inext[h]
            pending -= 1
            if dist[u] != d:  # stale entry: settled earlier or improved since
                continue
            dist[u] = -1 - d
            order[n] = u
            n += 1
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                dv = d + ew[e]
                if dist[v] > dv:
                    dist[v] = dv
                    sv = dv & smask
                    inode[k] = v
                    inext[k] = head[sv]
                    head[sv] = k
                    k += 1
                    pending += 1
        d += 1
    return n


@njit(cache=True, nogil=True)
def _sweep_block(indptr, indices, ew, src, dcs, order, n, dist, D, dirty):
    """Exact levels from the sources ``src`` (<= LANES, lane ``i`` = ``src[i]``) into ``D``
    (R, LANES), rows of the settled nodes only; ``dcs[i] = d(c, src[i])``. Returns the
    number of sweeps."""
    acc = np.empty(LANES, dtype=D.dtype)
    lane_t = D.dtype.type  # arithmetic kept in the rows' type (numba widens to int64 otherwise)
    one = lane_t(0)
    for q in range(n):
        v = order[q]
        dirty[v] = 1
        base = -1 - dist[v]
        for i in range(LANES):
            D[v, i] = base + dcs[i]
    for i in range(src.size):
        D[src[i], i] = one
    nsw = 0
    changed = True
    while changed:
        changed = False
        fwd = nsw % 2 == 0
        for qq in range(n):
            v = order[qq] if fwd else order[n - 1 - qq]
            if dirty[v] == 0:
                continue
            dirty[v] = 0
            for i in range(LANES):
                acc[i] = D[v, i]
            for e in range(indptr[v], indptr[v + 1]):
                u = indices[e]
                c = lane_t(ew[e])
                for i in range(LANES):
                    a = lane_t(D[u, i] + c)
                    if a < acc[i]:
                        acc[i] = a
            ch = False
            for i in range(LANES):
                ch |= acc[i] != D[v, i]
            if ch:
                changed = True
                for i in range(LANES):
                    D[v, i] = acc[i]
                for e in range(indptr[v], indptr[v + 1]):
                    dirty[indices[e]] = 1
        nsw += 1
    return nsw


@njit(cache=True, nogil=True)
def _write_rows(D, dist, nsrc, rank, rows, unit, out):
    """``out[rows[i], v] = D[rank[v], i] * unit`` for the block's sources, ``inf`` where unsettled.

    Tiled by 64 columns: each tile's rows of ``D`` stay in L1 while every output row gets
    a run of 64 consecutive values (whole cache lines)."""
    inf = np.inf
    R = rank.size
    T = 64
    buf = np.empty((T, D.shape[1]))
    for v0 in range(0, R, T):
        m = min(T, R - v0)
        for j in range(m):
            u = rank[v0 + j]
            if dist[u] < 0:
                for i in range(nsrc):
                    buf[j, i] = D[u, i] * unit
            else:
                for i in range(nsrc):
                    buf[j, i] = inf
        for i in range(nsrc):
            r = rows[i]
            for j in range(m):
                out[r, v0 + j] = buf[j, i]


def dial_distances(indptr, indices, edge_weight, sources, node_order=None, *, unit: float = 1.0,
                   threads: int | None = None, progress: bool = False, out=None):
    """Shortest-path distances (integer levels times ``unit``) from ``sources`` over edges of positive integer weight.

    Parameters
    ----------
    indptr, indices : CSR of a symmetric graph (both directions stored), R nodes.
    edge_weight : int (nnz,), positive, aligned with ``indices``.
    sources : int (S,)
        Rows to compute, in any order (repeats allowed).
    node_order : int (R,), optional
        A permutation of the nodes along which nearby nodes come close (e.g. a Z-order of
        the regions' positions); blocks are runs of sources in this order and the nodes
        are renumbered along it (memory locality). Default: the node numbering.
    unit : float
        The weight of one level.
    threads : int, optional
        Threads running blocks in parallel (default: the CPU count).
    progress : bool
        tqdm bar over blocks.
    out : ndarray float64 (S, R), optional
        Where to write the result.

    Returns
    -------
    ndarray float64 (S, R): ``inf`` where a node is unreachable. Memory besides the result:
    per thread about ``R * (2 * LANES + 40) + 16 * nnz`` bytes (``4 * LANES`` per node when
    levels exceed uint16).
    """
    import os
    import threading

    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    threads = (os.cpu_count() or 1) if threads is None else check_int(threads, "threads")
    indptr = np.asarray(indptr, dtype=np.int64)
    R = indptr.size - 1
    sources = np.asarray(sources, dtype=np.int64).reshape(-1)
    S = sources.size
    if out is None:
        out = np.empty((S, R), dtype=np.float64)
    if S == 0 or R == 0:
        return out
    indices = np.asarray(indices, dtype=np.int64)
    ew = np.asarray(edge_weight, dtype=np.int64)
    if ew.size and ew.min() < 1:
        raise ValueError(f"edge_weight: expected positive integers, got minimum {ew.min()}")
    cmax = int(ew.max()) if ew.size else 1
    smask = (1 << max(1, cmax.bit_length())) - 1  # ring of a power of two > cmax buckets
    # Renumber the nodes along node_order: rank[v] is v's new index.
    if node_order is None:
        rank = np.arange(R, dtype=np.int64)
        ip, ix, w8 = indptr, indices, ew
    else:
        perm = np.asarray(node_order, dtype=np.int64)
        rank = np.empty(R, dtype=np.int64)
        rank[perm] = np.arange(R)
        deg = np.diff(indptr)[perm]
        ip = np.zeros(R + 1, dtype=np.int64)
        np.cumsum(deg, out=ip[1:])
        take = np.repeat(indptr[perm] - ip[:-1], deg) + np.arange(ip[-1])
        ix = rank[indices[take]]
        w8 = ew[take]
    ix = np.ascontiguousarray(ix)
    w8 = np.ascontiguousarray(w8)
    # Blocks: runs of LANES sources along the new numbering, never straddling components.
    _, comp = connected_components(csr_matrix((np.ones(ix.size), ix, ip), shape=(R, R)), directed=False)
    srank = rank[sources]
    order = np.lexsort((srank, comp[srank]))
    cs = comp[srank[order]]
    cuts = np.flatnonzero(np.diff(cs)) + 1
    starts = []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, S]):
        starts += [(s0, min(s0 + LANES, b)) for s0 in range(a, b, LANES)]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), desc="d_Omega", unit="block")
    lock = threading.Lock()
    nxt = [0]

    def worker():
        dist = np.empty(R, dtype=np.int64)
        node_seq = np.empty(R, dtype=np.int64)
        head = np.empty(smask + 1, dtype=np.int64)
        inode = np.empty(ix.size + 1, dtype=np.int64)
        inext = np.empty(ix.size + 1, dtype=np.int64)
        dirty = np.zeros(R, dtype=np.uint8)
        Ds = {}
        while True:
            with lock:
                k = nxt[0]
                nxt[0] += 1
            if k >= len(starts):
                return
            a, b = starts[k]
            rows = order[a:b]
            src = srank[rows]
            c = int(src[(b - a) // 2])
            n = _settle(ip, ix, w8, smask, c, dist, node_seq, head, inode, inext)
            dcs = -1 - dist[src]
            lanes = np.full(LANES, dcs.max(), dtype=np.int64)
            lanes[: b - a] = dcs
            # The triangle bound caps every level: uint16 rows when it leaves room for one more edge.
            bound = int(dcs.max()) + int(-1 - dist[node_seq[n - 1]]) + cmax
            dt = np.uint16 if bound < 65535 else np.int32
            if dt not in Ds:
                Ds[dt] = np.empty((R, LANES), dtype=dt)
            D = Ds[dt]
            _sweep_block(ip, ix, w8, src, lanes.astype(dt), node_seq, n, dist, D, dirty)
            _write_rows(D, dist, b - a, rank, rows, float(unit), out)
            if bar is not None:
                with lock:
                    bar.update(1)

    nt = min(threads, len(starts))
    if nt > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(nt) as ex:
            for f in [ex.submit(worker) for _ in range(nt)]:
                f.result()  # re-raises a worker's exception
    else:
        worker()
    if bar is not None:
        bar.close()
    return out
