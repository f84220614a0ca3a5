"""Polygon clipping for 2-D partitions: convex faces in a half-edge structure, cut by lines.

The partition of the box is a planar subdivision stored as half-edges (the model of
regioncam): half-edge ``e`` leaves vertex ``hv[e]``, continues with ``hn[e]`` around its
face ``hf[e]`` (counter-clockwise), has the opposite half-edge ``ht[e]`` (``-1`` on the
box's boundary) and the label ``hl[e]`` of the hyperplane it lies on (``-1``: boundary).
A vertex is stored once and shared by every face around it, so a cut that splits an edge
splits it for both faces at once, and adjacency is read off the twins: no vertex merging,
no tolerance in the topology.

One layer is cut by :func:`cut_layer`: for every hyperplane in turn, every face whose
layer-start ancestor it can cross is tested and, if vertices lie farther than ``atol`` on
both sides, split in place (compiled loop; per (face, hyperplane) a few dozen
instructions). Inside a layer-start region ``r0`` hyperplane ``k`` is the line
``L[k, r0] . (x, y, 1) = 0`` in pre-activation units; ``atol`` (a distance) is scaled by
the normal's length. The value of a
vertex on hyperplane ``k`` is computed once, by the first face that asks, and then shared
by every face around it (``stamp``/``hk``): two faces never disagree about which side a
shared vertex is on, and a vertex created on a line has the value 0 exactly there.

:func:`cut_homogeneous_net` runs a whole ReLU / leaky ReLU / PReLU net (maps, lines, cuts,
next maps, layer after layer) in one compiled call. numba is imported when a 2-D partition
is first built (``import vqgeom`` stays lean).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["HalfEdges", "cut_homogeneous_net"]


@njit(cache=True, nogil=True)
def _split_edge(e, hk_w, nv, nh, X, hv, hn, ht, hf, hl, hk, stamp, g):
    """Split half-edge ``e`` (and its twin) where the line crosses it; returns the new half-edge after ``e``."""
    u = hv[e]
    en = hn[e]
    w = hv[en]
    hu = hk[u]
    t = hu / (hu - hk_w)
    p = nv
    X[p, 0] = X[u, 0] + t * (X[w, 0] - X[u, 0])
    X[p, 1] = X[u, 1] + t * (X[w, 1] - X[u, 1])
    stamp[p] = g
    hk[p] = 0.0
    ne = nh
    hv[ne] = p
    hn[ne] = en
    hf[ne] = hf[e]
    hl[ne] = hl[e]
    hn[e] = ne
    te = ht[e]
    if te >= 0:
        nte = nh + 1
        hv[nte] = p
        hn[nte] = hn[te]
        hf[nte] = hf[te]
        hl[nte] = hl[te]
        hn[te] = nte
        ht[e] = nte
        ht[nte] = e
        ht[ne] = te
        ht[te] = ne
    else:
        ht[ne] = -1
    return ne


@njit(cache=True, nogil=True)
def _eval_face(f, a, b, c, g, X, hv, hn, fh, stamp, hk):
    """Values of line ``a x + b y + c`` at face ``f``'s vertices (shared under stamp ``g``):
    ``(max, min, half-edge leaving the max vertex, ... the min vertex)``."""
    e0 = fh[f]
    e = e0
    hmax = -np.inf
    hmin = np.inf
    emax = -1
    emin = -1
    while True:
        v = hv[e]
        if stamp[v] != g:
            hk[v] = a * X[v, 0] + b * X[v, 1] + c
            stamp[v] = g
        h = hk[v]
        if h > hmax:
            hmax = h
            emax = e
        if h < hmin:
            hmin = h
            emin = e
        e = hn[e]
        if e == e0:
            break
    return hmax, hmin, emax, emin


@njit(cache=True, nogil=True)
def _split_face(f, emax, emin, tk, lab, g, nv, nh, nf, X, hv, hn, ht, hf, hl, fh, fpar, stamp, hk):
    """Split face ``f`` along the line whose vertex values are in ``hk``; the + side keeps
    ``f``, the - side becomes face ``nf``. Returns the new ``(nv, nh, nf)``."""
    # A: where the boundary leaves the + side (walking on from the maximum).
    e = emax
    while True:
        en = hn[e]
        hw = hk[hv[en]]
        if hw > tk:
            e = en
            continue
        predA = e
        if hw >= -tk:
            eA = en
        else:
            eA = _split_edge(e, hw, nv, nh, X, hv, hn, ht, hf, hl, hk, stamp, g)
            nv += 1
            nh += 2 if ht[eA] >= 0 else 1
        break
    # B: where it leaves the - side (walking on from the minimum).
    e = emin
    while True:
        en = hn[e]
        hw = hk[hv[en]]
        if hw < -tk:
            e = en
            continue
        predB = e
        if hw <= tk:
            eB = en
        else:
            eB = _split_edge(e, hw, nv, nh, X, hv, hn, ht, hf, hl, hk, stamp, g)
            nv += 1
            nh += 2 if ht[eB] >= 0 else 1
        break
    # The chord A -> B closes the + side (face f), B -> A the - side (new face).
    cab = nh
    cba = nh + 1
    nh += 2
    hv[cab] = hv[eA]
    hv[cba] = hv[eB]
    hn[predA] = cab
    hn[cab] = eB
    hn[predB] = cba
    hn[cba] = eA
    ht[cab] = cba
    ht[cba] = cab
    hl[cab] = lab
    hl[cba] = lab
    hf[cab] = f
    fh[f] = cab
    fh[nf] = cba
    fpar[nf] = fpar[f]
    e = cba
    while True:
        hf[e] = nf
        e = hn[e]
        if e == cba:
            break
    return nv, nh, nf + 1


@njit(cache=True, nogil=True)
def cut_layer(L, cen, rad, atol, gbase, sbase, k0, f0, X, hv, hn, ht, hf, hl, fh, fpar, stamp, hk, counts):
    """Cut every face by every hyperplane of a layer (see the module docstring).

    L : (H, R0, 3) lines per layer-start region, in pre-activation units (continuous across
    regions, so a vertex's value does not depend on the face that computes it);
    cen, rad : (R0, 2), (R0,) a centre and a radius enclosing each layer-start region;
    gbase : global index of the layer's first hyperplane (edge labels); sbase : the first of
    the layer's H stamps (keys of the shared vertex values, unique over the whole run);
    k0, f0 : where to resume; counts : int64 [nv, nh, nf], updated in place.
    Returns ``(k, f)`` to resume from when a buffer is full, ``(-1, -1)`` when done.
    """
    nv = counts[0]
    nh = counts[1]
    nf = counts[2]
    H = L.shape[0]
    capV = X.shape[0]
    capH = hv.shape[0]
    capF = fh.shape[0]
    for k in range(k0, H):
        g = sbase + k
        fstart = f0 if k == k0 else 0
        nfk = nf
        for f in range(fstart, nfk):
            r0 = fpar[f]
            a = L[k, r0, 0]
            b = L[k, r0, 1]
            c = L[k, r0, 2]
            nrm = math.hypot(a, b)
            if not nrm > 0.0:
                continue
            dc = a * cen[r0, 0] + b * cen[r0, 1] + c
            if not (abs(dc) <= (rad[r0] + atol) * nrm):
                continue
            tk = atol * nrm
            hmax, hmin, emax, emin = _eval_face(f, a, b, c, g, X, hv, hn, fh, stamp, hk)
            if not (hmax > tk and hmin < -tk):
                continue
            if nv + 2 > capV or nh + 6 > capH or nf + 1 > capF:
                counts[0] = nv
                counts[1] = nh
                counts[2] = nf
                return k, f
            nv, nh, nf = _split_face(f, emax, emin, tk, gbase + k, g, nv, nh, nf, X, hv, hn, ht, hf, hl, fh, fpar,
                                     stamp, hk)
    counts[0] = nv
    counts[1] = nh
    counts[2] = nf
    return -1, -1


@njit(cache=True, nogil=True)
def _remove_edge(e, X, hv, hn, ht, hf, fh):
    """Delete the edge of half-edge ``e`` and its twin, merging the faces on both sides
    into ``hf[e]``; returns the face that disappeared (-1 if both sides were one face)."""
    te = ht[e]
    f = hf[e]
    g = hf[te]
    pe = e
    while hn[pe] != e:
        pe = hn[pe]
    pte = te
    while hn[pte] != te:
        pte = hn[pte]
    if f != g:
        hn[pe] = hn[te]
        hn[pte] = hn[e]
    elif hn[e] == te:  # a spike into the merged face: drop it
        hn[pe] = hn[te]
    elif hn[te] == e:
        hn[pte] = hn[e]
        pe = pte
    else:  # cannot happen for a convex union; leave the edge
        return -2
    ht[e] = -2
    ht[te] = -2
    hf[e] = -1
    hf[te] = -1
    fh[f] = pe
    x = pe
    while True:
        hf[x] = f
        x = hn[x]
        if x == pe:
            break
    return g if f != g else -1


@njit(cache=True, nogil=True)
def cut_max_group(P, cen, rad, atol, lab, sbase, m0, f0, X, hv, hn, ht, hf, hl, fh, fpar, stamp, hk, counts, win,
                  atom):
    """Cut every face into the argmax cells of one max unit over candidates ``P`` (k, R0, 3).

    Candidates enter one at a time: in a face won so far by ``a``, candidate ``m`` wins
    where ``p_m - p_a > 0`` (ties stay with the first maximal candidate), so the face is
    split along that line, or handed to ``m`` whole. The faces ``m`` won inside one face of
    the group's start (``atom``) are then merged into one: the cell ``{p_m > p_j, j < m}``
    is convex. ``win``/``atom`` must be set by the caller for ``m0 == 1, f0 == 0``.
    Returns ``(m, f)`` to resume from when a buffer is full, ``(-1, -1)`` when done; dead
    faces are left with ``fh == -1`` (see :func:`compact_faces`).
    """
    nv = counts[0]
    nh = counts[1]
    nf = counts[2]
    k = P.shape[0]
    capV = X.shape[0]
    capH = hv.shape[0]
    capF = fh.shape[0]
    for m in range(m0, k):
        fstart = f0 if m == m0 else 0
        nfk = nf
        for f in range(fstart, nfk):
            if fh[f] < 0:
                continue
            wa = win[f]
            if wa >= m:
                continue
            r0 = fpar[f]
            a = P[m, r0, 0] - P[wa, r0, 0]
            b = P[m, r0, 1] - P[wa, r0, 1]
            c = P[m, r0, 2] - P[wa, r0, 2]
            nrm = math.hypot(a, b)
            if nrm > 0.0:
                dc = a * cen[r0, 0] + b * cen[r0, 1] + c
                if dc > (rad[r0] + atol) * nrm:
                    win[f] = m
                    continue
                if dc < -(rad[r0] + atol) * nrm:
                    continue
            elif c > 0.0:
                win[f] = m
                continue
            else:
                continue
            tk = atol * nrm
            hmax, hmin, emax, emin = _eval_face(f, a, b, c, sbase + m * k + wa, X, hv, hn, fh, stamp, hk)
            if not hmax > tk:
                continue
            if not hmin < -tk:
                win[f] = m
                continue
            if nv + 2 > capV or nh + 6 > capH or nf + 1 > capF:
                counts[0] = nv
                counts[1] = nh
                counts[2] = nf
                return m, f
            nf_old = nf
            nv, nh, nf = _split_face(f, emax, emin, tk, lab, sbase + m * k + wa, nv, nh, nf, X, hv, hn, ht, hf, hl,
                                     fh, fpar, stamp, hk)
            win[nf_old] = wa
            atom[nf_old] = atom[f]
            win[f] = m
        # Merge what m won inside each atom. An edge with the merged face on both sides
        # becomes removable (a spike) once the other edges at its inner end are gone:
        # repeat until nothing changes.
        changed = True
        while changed:
            changed = False
            for e in range(nh):
                te = ht[e]
                if te > e:
                    f = hf[e]
                    g = hf[te]
                    if win[f] == m and win[g] == m and atom[f] == atom[g]:
                        dead = _remove_edge(e, X, hv, hn, ht, hf, fh)
                        if dead >= 0:
                            fh[dead] = -1
                        if dead != -2:
                            changed = True
    counts[0] = nv
    counts[1] = nh
    counts[2] = nf
    return -1, -1


@njit(cache=True, nogil=True)
def compact_faces(nf, nh, hf, fh, fpar):
    """Renumber the live faces (``fh >= 0``) 0.. in order; returns their count."""
    new = np.full(nf, -1, dtype=np.int64)
    n = 0
    for f in range(nf):
        if fh[f] >= 0:
            new[f] = n
            fh[n] = fh[f]
            fpar[n] = fpar[f]
            n += 1
    for e in range(nh):
        if hf[e] >= 0:
            hf[e] = new[hf[e]]
    return n


@njit(cache=True, nogil=True)
def export_faces(nf, X, hv, hn, hl, fh):
    """Ragged copies of every face and their measures.

    Returns vertices (V, 2) and edge labels (V,) counter-clockwise, face by face, offsets
    (nf + 1,), the vertex means (nf, 2), the largest distance from the mean to a vertex
    (nf,), the areas (nf,) and the area centroids (nf, 2). The shoelace sums run relative
    to each face's first vertex, so their terms stay small.
    """
    off = np.zeros(nf + 1, dtype=np.int64)
    for f in range(nf):
        e0 = fh[f]
        e = e0
        n = 0
        while True:
            n += 1
            e = hn[e]
            if e == e0:
                break
        off[f + 1] = off[f] + n
    V = np.empty((off[nf], 2))
    E = np.empty(off[nf], dtype=np.int64)
    cen = np.zeros((nf, 2))
    rad = np.zeros(nf)
    area = np.zeros(nf)
    cent = np.zeros((nf, 2))
    for f in range(nf):
        e = fh[f]
        sx = 0.0
        sy = 0.0
        for i in range(off[f], off[f + 1]):
            v = hv[e]
            V[i, 0] = X[v, 0]
            V[i, 1] = X[v, 1]
            E[i] = hl[e]
            sx += X[v, 0]
            sy += X[v, 1]
            e = hn[e]
        o = off[f]
        n = off[f + 1] - o
        cx = sx / n
        cy = sy / n
        r2 = 0.0
        a2 = 0.0
        mx = 0.0
        my = 0.0
        bx = V[o, 0]
        by = V[o, 1]
        for i in range(o, o + n):
            d2 = (V[i, 0] - cx) ** 2 + (V[i, 1] - cy) ** 2
            if d2 > r2:
                r2 = d2
            i1 = i + 1 if i + 1 < o + n else o
            a2 += (V[i, 0] - bx) * (V[i1, 1] - by) - (V[i, 1] - by) * (V[i1, 0] - bx)
        if a2 > 0.0:
            # Triangle centroids weighted by their share of the area: no product of three
            # coordinates (overflow on domains wider than ~1e100).
            for i in range(o, o + n):
                i1 = i + 1 if i + 1 < o + n else o
                px = V[i, 0] - bx
                py = V[i, 1] - by
                qx = V[i1, 0] - bx
                qy = V[i1, 1] - by
                wt = (px * qy - py * qx) / a2
                mx += (px + qx) * wt
                my += (py + qy) * wt
        cen[f, 0] = cx
        cen[f, 1] = cy
        rad[f] = np.sqrt(r2)
        area[f] = 0.5 * a2
        if a2 > 0.0:
            cent[f, 0] = bx + mx / 3.0
            cent[f, 1] = by + my / 3.0
        else:
            cent[f, 0] = cx
            cent[f, 1] = cy
    return V, E, off, cen, rad, area, cent


def _grow(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.empty((cap,) + a.shape[1:], dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


class HalfEdges:
    """The box as one face, then cut layer by layer (growable buffers)."""

    def __init__(self, bounds: tuple[float, float, float, float], cap_faces: int = 1024):
        x0, x1, y0, y1 = bounds
        capV, capH, capF = 4 * cap_faces, 8 * cap_faces, cap_faces
        self.X = np.empty((capV, 2))
        self.X[:4] = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        self.hv = np.empty(capH, dtype=np.int64)
        self.hn = np.empty(capH, dtype=np.int64)
        self.ht = np.empty(capH, dtype=np.int64)
        self.hf = np.empty(capH, dtype=np.int64)
        self.hl = np.empty(capH, dtype=np.int64)
        self.hv[:4] = np.arange(4)
        self.hn[:4] = [1, 2, 3, 0]
        self.ht[:4] = -1
        self.hf[:4] = 0
        self.hl[:4] = -1
        self.fh = np.zeros(capF, dtype=np.int64)
        self.fpar = np.zeros(capF, dtype=np.int64)
        self.stamp = np.full(capV, -1, dtype=np.int64)
        self.hk = np.empty(capV)
        self.counts = np.array([4, 4, 1], dtype=np.int64)
        self.win = np.zeros(capF, dtype=np.int64)
        self.atom = np.zeros(capF, dtype=np.int64)
        self.next_stamp = 0  # stamps used so far (keys of shared vertex values)

    @classmethod
    def from_arrays(cls, X, hv, hn, ht, hf, hl, fh, fpar, stamp, hk, counts, next_stamp):
        """Wrap the arrays of a finished cut (:func:`cut_homogeneous_net`)."""
        he = cls.__new__(cls)
        he.X, he.hv, he.hn, he.ht, he.hf, he.hl = X, hv, hn, ht, hf, hl
        he.fh, he.fpar, he.stamp, he.hk, he.counts = fh, fpar, stamp, hk, counts
        he.win = he.atom = None  # only cut_max uses them: a finished cut takes no more cuts
        he.next_stamp = next_stamp
        return he

    @property
    def nf(self) -> int:
        return int(self.counts[2])

    def start_layer(self) -> None:
        """The current faces become the parents (layer-start regions) of what follows."""
        self.fpar[: self.nf] = np.arange(self.nf)

    def cut_layer(self, lines: np.ndarray, cen: np.ndarray, rad: np.ndarray, atol: float, gbase: int) -> None:
        """Cut every face by lines (H, R0, 3) given per parent; edge labels ``gbase + h``."""
        sbase = self.next_stamp
        self.next_stamp += lines.shape[0]
        k, f = 0, 0
        while True:
            k, f = cut_layer(lines, cen, rad, atol, gbase, sbase, k, f, self.X, self.hv, self.hn, self.ht, self.hf,
                             self.hl, self.fh, self.fpar, self.stamp, self.hk, self.counts)
            if k < 0:
                return
            self._grow()

    def cut_max(self, P: np.ndarray, cen: np.ndarray, rad: np.ndarray, atol: float, label: int) -> None:
        """Cut every face into the argmax cells of candidates P (k, R0, 3) given per parent."""
        k = P.shape[0]
        sbase = self.next_stamp
        self.next_stamp += k * k
        nf = self.nf
        self.win[:nf] = 0
        self.atom[:nf] = np.arange(nf)
        m, f = 1, 0
        while True:
            m, f = cut_max_group(P, cen, rad, atol, label, sbase, m, f, self.X, self.hv, self.hn, self.ht, self.hf,
                                 self.hl, self.fh, self.fpar, self.stamp, self.hk, self.counts, self.win, self.atom)
            if m < 0:
                break
            self._grow()
        self.counts[2] = compact_faces(self.nf, int(self.counts[1]), self.hf, self.fh, self.fpar)

    def _grow(self) -> None:
        capV, capH, capF = 2 * self.X.shape[0], 2 * self.hv.shape[0], 2 * self.fh.shape[0]
        self.X = _grow(self.X, capV)
        self.hk = _grow(self.hk, capV)
        stamp = np.full(capV, -1, dtype=np.int64)
        stamp[: self.stamp.size] = self.stamp
        self.stamp = stamp
        for name in ("hv", "hn", "ht", "hf", "hl"):
            setattr(self, name, _grow(getattr(self, name), capH))
        self.fh = _grow(self.fh, capF)
        self.fpar = _grow(self.fpar, capF)
        self.win = _grow(self.win, capF)
        self.atom = _grow(self.atom, capF)

    def export(self):
        """(V, E, off, cen, rad, area, centroid): see :func:`export_faces`."""
        return export_faces(self.nf, self.X, self.hv, self.hn, self.hl, self.fh)

    def adjacency(self, min_len: float):
        """Adjacent face pairs: see :func:`vqgeom.geometry._adjacency.adjacency_2d`."""
        from ._adjacency import adjacency_2d

        return adjacency_2d(int(self.counts[1]), self.nf, self.X, self.hv, self.hn, self.ht, self.hf, self.hl,
                            min_len)


@njit(cache=True, nogil=True)
def homogeneous_next_maps(pre, par, pts, slope):
    """Affine maps (n, R, 3) of a ReLU / leaky-ReLU layer's outputs in every face.

    pre : (n, R0, 3) the pre-activations per layer-start region; par : (R,) each face's
    layer-start region; pts : (R, 2) an interior point of each face, where the sign of
    each pre-activation is read; slope : (n,) the slope below 0 (0 for ReLU).
    """
    n = pre.shape[0]
    R = par.size
    out = np.empty((n, R, 3))
    for j in range(n):
        s = slope[j]
        for r in range(R):
            p = par[r]
            a = pre[j, p, 0]
            b = pre[j, p, 1]
            c = pre[j, p, 2]
            m = 1.0 if a * pts[r, 0] + b * pts[r, 1] + c >= 0.0 else s
            out[j, r, 0] = a * m
            out[j, r, 1] = b * m
            out[j, r, 2] = c * m
    return out


@njit(cache=True, nogil=True)
def face_centres(nf, X, hv, hn, fh):
    """The vertex means (nf, 2) and the largest distance from the mean to a vertex (nf,) of
    every face: as :func:`export_faces` computes them (same order of summation)."""
    cen = np.empty((nf, 2))
    rad = np.empty(nf)
    for f in range(nf):
        e0 = fh[f]
        e = e0
        sx = 0.0
        sy = 0.0
        n = 0
        while True:
            v = hv[e]
            sx += X[v, 0]
            sy += X[v, 1]
            n += 1
            e = hn[e]
            if e == e0:
                break
        cx = sx / n
        cy = sy / n
        r2 = 0.0
        e = e0
        while True:
            v = hv[e]
            d2 = (X[v, 0] - cx) ** 2 + (X[v, 1] - cy) ** 2
            if d2 > r2:
                r2 = d2
            e = hn[e]
            if e == e0:
                break
        cen[f, 0] = cx
        cen[f, 1] = cy
        rad[f] = np.sqrt(r2)
    return cen, rad


@njit(cache=True, nogil=True)
def _grown(a, cap, fill):
    out = np.full((cap,) + a.shape[1:], fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def cut_homogeneous_net(Ws, bs, dims, slopes, Z, bounds, atol, cap_faces):
    """The whole 2-D partition of a net whose coding layers are all ReLU / leaky ReLU /
    PReLU, in one compiled call (no per-layer Python: what small nets spend their time on).

    Ws, bs : every layer's weights (n, d) and biases (n,), flat and concatenated; dims :
    (L + 1,) the widths d_0 .. d_L; slopes : the slope below 0 of every unit, flat; Z :
    (d_0, 1, 3) the input as an affine map of the plane coordinates. Per layer as
    :func:`vqgeom.geometry._partition._partition_2d`: pre-activation maps per layer-start
    region (one GEMM), lines scaled by powers of two per hyperplane, :func:`cut_layer`,
    the next maps at the vertex means. Returns the half-edge arrays, the export of the
    final faces (:func:`export_faces`) and ``-1``, or the index of the first layer whose
    maps are not finite (then the rest is meaningless).
    """
    x0 = bounds[0]
    x1 = bounds[1]
    y0 = bounds[2]
    y1 = bounds[3]
    capV = 4 * cap_faces
    capH = 8 * cap_faces
    capF = cap_faces
    X = np.empty((capV, 2))
    X[0, 0] = x0
    X[0, 1] = y0
    X[1, 0] = x1
    X[1, 1] = y0
    X[2, 0] = x1
    X[2, 1] = y1
    X[3, 0] = x0
    X[3, 1] = y1
    hv = np.empty(capH, dtype=np.int64)
    hn = np.empty(capH, dtype=np.int64)
    ht = np.empty(capH, dtype=np.int64)
    hf = np.empty(capH, dtype=np.int64)
    hl = np.empty(capH, dtype=np.int64)
    for e in range(4):
        hv[e] = e
        hn[e] = (e + 1) % 4
        ht[e] = -1
        hf[e] = 0
        hl[e] = -1
    fh = np.zeros(capF, dtype=np.int64)
    fpar = np.zeros(capF, dtype=np.int64)
    stamp = np.full(capV, -1, dtype=np.int64)
    hk = np.empty(capV)
    counts = np.array([4, 4, 1], dtype=np.int64)
    V, E, off, cen, rad, area, cent = export_faces(1, X, hv, hn, hl, fh)  # the box (also the result if L == 0)
    L = dims.size - 1
    wo = 0
    bo = 0
    sbase = 0
    bad = -1
    for li in range(L):
        d = dims[li]
        n = dims[li + 1]
        R0 = Z.shape[1]
        A = Ws[wo : wo + n * d].reshape((n, d))
        pre = np.dot(A, Z.reshape((d, R0 * 3))).reshape((n, R0, 3))
        lines = np.empty_like(pre)
        for j in range(n):
            bj = bs[bo + j]
            m = 0.0
            for r in range(R0):
                pre[j, r, 2] += bj
                for k in range(3):
                    a = abs(pre[j, r, k])
                    if not a <= 1.7976931348623157e308:  # inf or nan
                        bad = li
                    elif a > m:
                        m = a
            # Scale by a power of two (exact) so the largest entry is in [0.5, 1): the same
            # factor in every region, so a vertex's value does not depend on the face asking.
            e = math.frexp(m if m > 0.0 else 1.0)[1]
            if e >= -1022:  # 2**-e is a double: the product is the correctly rounded ldexp
                sc = math.ldexp(1.0, -e)
                for r in range(R0):
                    for k in range(3):
                        lines[j, r, k] = pre[j, r, k] * sc
            else:
                for r in range(R0):
                    for k in range(3):
                        lines[j, r, k] = math.ldexp(pre[j, r, k], -e)
        if bad >= 0:
            break
        nf = counts[2]
        for f in range(nf):
            fpar[f] = f
        k, f = 0, 0
        while True:
            k, f = cut_layer(lines, cen, rad, atol, sbase, sbase, k, f,
                             X, hv, hn, ht, hf, hl, fh, fpar, stamp, hk, counts)
            if k < 0:
                break
            capV = 2 * X.shape[0]
            capH = 2 * hv.shape[0]
            capF = 2 * fh.shape[0]
            X = _grown(X, capV, 0.0)
            hk = _grown(hk, capV, 0.0)
            stamp = _grown(stamp, capV, -1)
            hv = _grown(hv, capH, 0)
            hn = _grown(hn, capH, 0)
            ht = _grown(ht, capH, 0)
            hf = _grown(hf, capH, 0)
            hl = _grown(hl, capH, 0)
            fh = _grown(fh, capF, 0)
            fpar = _grown(fpar, capF, 0)
        sbase += n
        if li == L - 1:
            V, E, off, cen, rad, area, cent = export_faces(counts[2], X, hv, hn, hl, fh)
        else:
            cen, rad = face_centres(counts[2], X, hv, hn, fh)
            Z = homogeneous_next_maps(pre, fpar[: counts[2]], cen, slopes[bo : bo + n])
        wo += n * d
        bo += n
    return X, hv, hn, ht, hf, hl, fh, fpar, stamp, hk, counts, V, E, off, area, cent, bad
