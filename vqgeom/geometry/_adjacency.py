"""Region adjacency of a 2-D partition, read off the half-edge twins.

Two regions are adjacent iff they share a boundary longer than ``min_len``. Every interior
edge of the half-edge structure (:mod:`vqgeom.geometry._clip`) separates exactly two
faces, so the shared boundaries are the twin pairs: no vertex matching, no tolerance in
the topology. A boundary cut into several collinear pieces (vertices left there by cuts on
one side) counts once, with its whole extent.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["adjacency_2d"]


@njit(cache=True, nogil=True)
def adjacency_2d(nh, nf, X, hv, hn, ht, hf, hl, min_len, base, grp):
    """One row per adjacent pair of faces, in the arrays of :class:`Partition`:
    ``edge_index (E, 2)`` (``i < j``), ``edge_layer (E,)``, ``edge_unit (E,)``,
    ``edge_segments (E, 2, 2)``.

    The edge's hyperplane is the smallest label among the pair's pieces (the first of
    coincident hyperplanes); its layer ``l`` is the one with ``base[l] <= label <
    base[l + 1]`` (``base`` (L + 1,): each coding layer's first bit, then the total), its
    unit ``(label - base[l]) // grp[l]`` (``grp`` (L,): 1, or the one-hot width of a max
    layer). The segment runs between the ends of the whole shared boundary.
    Rows are sorted by ``(i, j)``.
    """
    m = 0
    for e in range(nh):
        if ht[e] > e:
            m += 1
    key = np.empty(m, dtype=np.int64)
    eid = np.empty(m, dtype=np.int64)
    m = 0
    for e in range(nh):
        te = ht[e]
        if te > e:
            a = hf[e]
            b = hf[te]
            if a > b:
                a, b = b, a
            key[m] = a * nf + b
            eid[m] = e
            m += 1
    order = np.argsort(key)
    oij = np.empty((m, 2), dtype=np.int64)
    olay = np.empty(m, dtype=np.int64)
    ounit = np.empty(m, dtype=np.int64)
    seg = np.empty((m, 2, 2))
    n = 0
    g = 0
    while g < m:
        h = g
        while h + 1 < m and key[order[h + 1]] == key[order[g]]:
            h += 1
        e = eid[order[g]]
        ax = X[hv[e], 0]
        ay = X[hv[e], 1]
        bx = X[hv[hn[e]], 0]
        by = X[hv[hn[e]], 1]
        lab = hl[e]
        if h > g:
            # Pieces of one boundary are collinear and contiguous: the extent along the
            # first piece's direction runs from the smallest to the largest parameter.
            dx = bx - ax
            dy = by - ay
            dd = dx * dx + dy * dy
            tmin = 0.0
            tmax = dd
            for q in range(g + 1, h + 1):
                e2 = eid[order[q]]
                if hl[e2] < lab:
                    lab = hl[e2]
                for v in (hv[e2], hv[hn[e2]]):
                    t = (X[v, 0] - ax) * dx + (X[v, 1] - ay) * dy
                    if t < tmin:
                        tmin = t
                    if t > tmax:
                        tmax = t
            bx = ax + tmax / dd * dx
            by = ay + tmax / dd * dy
            ax = ax + tmin / dd * dx
            ay = ay + tmin / dd * dy
        if np.hypot(bx - ax, by - ay) > min_len:
            k = key[order[g]]
            oij[n, 0] = k // nf
            oij[n, 1] = k % nf
            lay = 0
            while lay + 1 < grp.size and base[lay + 1] <= lab:
                lay += 1
            olay[n] = lay
            ounit[n] = (lab - base[lay]) // max(grp[lay], 1)
            seg[n, 0, 0] = ax
            seg[n, 0, 1] = ay
            seg[n, 1, 0] = bx
            seg[n, 1, 1] = by
            n += 1
        g = h + 1
    return oij[:n], olay[:n], ounit[:n], seg[:n]
