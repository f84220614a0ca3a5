"""All-pairs hop distances by bit-parallel breadth-first search.

scipy's per-source searches cost about 1-4 ms each on a 20,000-region partition graph, so
all pairs take over a minute. Here 64 * ``words`` sources advance together, one bit each
in a row of uint64 words per node. Each level *pulls* the frontier bits into the nodes next
to the frontier only (a CSR gather plus ``bitwise_or.reduceat``); sources are grouped by
a Z-order of their positions so that a block's frontiers overlap. The level at which a
bit first arrives is written bit-sliced (one plane per bit of the level number) and
decoded once per block.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hop_distances", "zorder"]


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


def _padded_neighbours(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, max degree) neighbour table padded with the dummy node R, and the degrees."""
    R = indptr.size - 1
    deg = np.diff(indptr)
    dmax = int(deg.max()) if R else 0
    nb = np.full((R, max(dmax, 1)), R, dtype=np.int64)
    col = np.arange(indices.size) - np.repeat(indptr[:-1], deg)
    nb[np.repeat(np.arange(R), deg), col] = indices
    return nb, deg


_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)


def _transpose8(x: np.ndarray) -> np.ndarray:
    """Transpose the 8x8 bit matrix in every uint64 (bit 8i + j -> bit 8j + i), in place."""
    for mask, sh in ((_M1, np.uint64(7)), (_M2, np.uint64(14)), (_M3, np.uint64(28))):
        t = (x ^ (x >> sh)) & mask
        x ^= t ^ (t << sh)
    return x


def _decode_planes(planes: list, n: int) -> np.ndarray:
    """Bit-sliced levels (P planes of (R, W) uint64) -> (R, n) integer levels (uint8/16/32).

    Eight planes at a time: their bytes stacked into one uint64 per (row, byte) form an 8x8
    bit matrix whose transpose holds, in byte j, the 8 level bits of source 8 * byte + j.
    """
    R, W = planes[0].shape
    out = None
    dtype = np.uint8 if len(planes) <= 8 else (np.uint16 if len(planes) <= 16 else np.uint32)
    for g in range(0, len(planes), 8):
        stack = np.zeros((R, W * 8, 8), dtype=np.uint8)
        for p, P in enumerate(planes[g : g + 8]):
            stack[:, :, p] = P.view(np.uint8)
        x = _transpose8(stack.view(np.uint64)[:, :, 0].copy())
        part = x.view(np.uint8).reshape(R, W * 64)[:, :n]
        if out is None:
            out = part.astype(dtype)
        else:
            out |= part.astype(dtype) << dtype(g)
    return out


def hop_distances(indptr: np.ndarray, indices: np.ndarray, sources: np.ndarray, order: np.ndarray | None = None,
                  words: int = 8, progress: bool = False) -> np.ndarray:
    """Hop distances from ``sources`` to every node of a symmetric CSR graph.

    Parameters
    ----------
    indptr, indices : ndarray int
        CSR structure of an undirected graph (both directions stored), R nodes.
    sources : ndarray int (S,)
    order : ndarray int (S,), optional
        Processing order of the sources (e.g. :func:`zorder` of their positions); results
        come back in the order of ``sources`` regardless.
    words : int
        uint64 words per node in a block: 64 * words sources per block.
    progress : bool
        tqdm bar over blocks.

    Returns
    -------
    ndarray float64 (S, R)
        ``inf`` where a node is unreachable.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    sources = np.asarray(sources, dtype=np.int64)
    R = indptr.size - 1
    S = sources.size
    out = np.empty((S, R), dtype=np.float64)
    if S == 0:
        return out
    nb, deg = _padded_neighbours(indptr, indices)
    by_degree = np.argsort(-deg, kind="stable")  # candidates come out sorted by degree
    order = np.arange(S) if order is None else np.asarray(order, dtype=np.int64)
    block = 64 * words
    it = range(0, S, block)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="d_Omega", unit="block")
    for b0 in it:
        rows_out = order[b0 : b0 + block]
        src = sources[rows_out]
        n = src.size
        W = (n + 63) // 64
        bit = np.arange(n)
        # Frontier bits; row R is the padding's dummy node and stays zero.
        F = np.zeros((R + 1, W), dtype=np.uint64)
        np.bitwise_or.at(F, (src, bit // 64), np.uint64(1) << (bit % 64).astype(np.uint64))
        vis = F[:R].copy()
        # Bit p of the arrival level d is the parity of #{m >= 1 : d >= m 2**p}, and
        # "d >= k + 1" is "not visited after level k": XOR ~vis into plane p after every
        # level k with (k + 1) % 2**p == 0 (two full passes per level, amortised).
        planes: list[np.ndarray] = [~vis]
        active = np.unique(src)
        level = 0
        while active.size:
            level += 1
            mark = np.zeros(R + 1, dtype=bool)
            mark[nb[active].ravel()] = True
            # Pull the frontier bits over each candidate's neighbours, rows sorted by degree
            # (descending) so that column j concerns a prefix of the rows.
            cand = by_degree[mark[by_degree]]
            if cand.size == 0:  # isolated nodes: nothing more to reach
                break
            dc = deg[cand]
            pulled = F[nb[cand, 0]]
            for j in range(1, int(dc[0])):
                k = int(np.searchsorted(-dc, -j, side="left"))  # rows with degree > j
                pulled[:k] |= F[nb[cand[:k], j]]
            new = pulled & ~vis[cand]
            anybit = new[:, 0].copy()
            for w in range(1, W):
                anybit |= new[:, w]
            keep = anybit != 0
            cand, new = cand[keep], new[keep]
            vis[cand] |= new
            F[active] = 0
            F[cand] = new
            if cand.size:
                while (1 << len(planes)) <= level + 1:
                    planes.append(np.zeros((R, W), dtype=np.uint64))
                for p in range(len(planes)):
                    if (level + 1) % (1 << p) == 0:
                        planes[p] ^= ~vis
            active = cand
        out[rows_out] = _decode_planes(planes, n).T
        seen = np.unpackbits(vis.view(np.uint8), axis=1, bitorder="little")[:, :n].astype(bool)
        if not seen.all():
            out[rows_out] = np.where(seen.T, out[rows_out], np.inf)
    return out
