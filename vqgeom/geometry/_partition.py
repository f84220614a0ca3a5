"""Exact linear-region partitions of CPA networks on a 1-D interval or a 2-D box.

Algorithm (2-D)
---------------
Layer by layer. At the start of layer ``l`` every current region ``r`` (a convex
polygon) carries the affine map ``z = M_r x + c_r`` from plane coordinates to the
layer's input, so each of the layer's hyperplanes (unit ``j``, threshold ``t``) is the
straight line ``(W_j M_r) x + (W_j c_r + b_j - t) = 0`` inside ``r``. The layer's
hyperplanes are applied one at a time, and each one cuts *all* current regions at once:
the polygons are stored as one flat ragged vertex array, and the half-plane clipping is
vectorised over every polygon the line crosses. A region is only tested against a
hyperplane when its layer-start ancestor is crossed by it (precomputed in one batch).
Each polygon edge keeps the label of the hyperplane it lies on (``-1``: domain boundary).

Tolerance
---------
All geometry is float64 in plane coordinates. A vertex whose distance to a line is at
most ``tol * diam`` (``diam`` = the domain's diagonal, default ``tol = 1e-10``) counts as
*on* the line. A line therefore splits a region only if vertices lie farther than that on
both sides: no region thinner than ``tol * diam`` across a cut is ever created, lines
through existing vertices reuse them, concurrent lines meet in shared vertices, and a
hyperplane coincident with an existing edge (duplicate or antiparallel units, parallel
copies closer than the tolerance) adds no region. Regions of zero area never exist.

Adjacency
---------
Two regions are adjacent iff they share a boundary segment of positive length (longer
than ``10 * tol * diam``). Vertices closer than ``10 * tol * diam`` are merged, shared
edges are matched by their merged endpoints, and the few edges left unmatched (a
T-junction where a cut ended on a vertex of one side only) are matched by collinear
overlap. Each graph edge records the ``(layer, unit)`` of the hyperplane it lies on.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..codes import Codes
from .._netspec import NetSpec, as_netspec, layer_sizes
from ..kernels.reference import thresholds as _thresholds

__all__ = ["partition", "Partition", "plane_through", "forward_bits"]

DEFAULT_TOL = 1e-10


# ----------------------------------------------------------------------------------------
# activation patterns
# ----------------------------------------------------------------------------------------
def _next_maps(pre: np.ndarray, bits: np.ndarray, act: Any) -> np.ndarray:
    """Affine maps of a layer's outputs from its pre-activation maps and bits (in place).

    pre : (n, R, k+1) pre-activation of each unit as an affine map of the plane
    coordinates, in each region (overwritten); bits : (H, R) bool, threshold-major.
    Returns ``pre``, now the outputs' maps.
    """
    if act == "relu":
        pre *= bits[:, :, None]
        return pre
    n = pre.shape[0]
    kind = act[0]
    if kind in ("leaky", "prelu"):
        s = np.broadcast_to(np.asarray(act[1], dtype=np.float64), (n,))
        pre *= np.where(bits, 1.0, s[:, None])[:, :, None]
        return pre
    lo, hi = float(act[1]), float(act[2])
    above_lo, above_hi = bits[:n], bits[n:]
    pre *= (above_lo & ~above_hi)[:, :, None]
    pre[:, :, -1] += np.where(above_hi, hi, np.where(above_lo, 0.0, lo))
    return pre


def forward_bits(spec: NetSpec, X: np.ndarray) -> np.ndarray:
    """Bits ``pre >= t`` of every coding layer at inputs ``X`` (N, D), float64, vectorised.

    The same convention and unit order as ``vqgeom.kernels.reference.mlp_bits``.
    """
    z = np.asarray(X, dtype=np.float64)
    cols = []
    for A, b, act in spec.layers:
        pre = z @ A.T + b
        for t in _thresholds(act):
            cols.append(pre >= t)
        if act is None:
            z = pre
        else:
            from ..kernels.reference import activate

            z = activate(pre, act)
    if not cols:
        return np.zeros((z.shape[0], 0), dtype=bool)
    return np.concatenate(cols, axis=1)


# ----------------------------------------------------------------------------------------
# 2-D: ragged convex polygons
# ----------------------------------------------------------------------------------------
def _next_index(off: np.ndarray) -> np.ndarray:
    """For a flat ragged vertex array with region offsets ``off``, the index of each vertex's successor."""
    n = int(off[-1])
    nxt = np.arange(1, n + 1, dtype=np.int64)
    if n:
        nxt[off[1:] - 1] = off[:-1]
    return nxt


def _area_centroid(V: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shoelace area (R,) and area centroid (R, 2) of every polygon (counter-clockwise)."""
    nxt = _next_index(off)
    R = len(off) - 1
    # Translate each polygon to its first vertex: the shoelace terms then stay small.
    rid = np.repeat(np.arange(R), np.diff(off))
    base = V[off[:-1]]
    P = V - base[rid]
    Q = P[nxt]
    cr = P[:, 0] * Q[:, 1] - P[:, 1] * Q[:, 0]
    area2 = np.bincount(rid, cr, minlength=R)
    cx = np.bincount(rid, (P[:, 0] + Q[:, 0]) * cr, minlength=R)
    cy = np.bincount(rid, (P[:, 1] + Q[:, 1]) * cr, minlength=R)
    with np.errstate(invalid="ignore", divide="ignore"):
        cen = np.stack([cx, cy], axis=1) / (3.0 * area2[:, None])
    # Degenerate (zero-area) polygons fall back to their vertex mean.
    bad = ~np.isfinite(cen).all(axis=1)
    if bad.any():
        cnt = np.diff(off)
        mean = np.stack([np.bincount(rid, P[:, 0], R), np.bincount(rid, P[:, 1], R)], 1) / cnt[:, None]
        cen[bad] = mean[bad]
    return area2 / 2.0, cen + base


def _ragged_arange(start: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start[i], start[i] + cnt[i])``."""
    seg = np.zeros(cnt.size, dtype=np.int64)
    np.cumsum(cnt[:-1], out=seg[1:])
    return np.arange(int(cnt.sum()), dtype=np.int64) + np.repeat(start - seg, cnt)


class _Poly2D:
    """The working state: ragged convex polygons in growable flat buffers.

    Region ``r`` is ``V[start[r] : start[r] + cnt[r]]`` (counter-clockwise) with edge labels
    ``E`` alongside (label of the edge leaving each vertex). A split writes both children at
    the end of the buffers (the ``+`` child keeps the index ``r``, the ``-`` child gets a new
    one); the parent's old vertices become garbage until :meth:`compact`. So a cut costs
    time in the vertices it touches, not in the whole partition.
    """

    def __init__(self, bounds: tuple[float, float, float, float]):
        x0, x1, y0, y1 = bounds
        self.V = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        self.E = np.full(4, -1, dtype=np.int64)
        self.nv = 4
        self.start = np.zeros(1, dtype=np.int64)
        self.cnt = np.array([4], dtype=np.int64)
        self.par = np.zeros(1, dtype=np.int64)

    def compact(self) -> None:
        """Drop the garbage: regions' vertices contiguous, in region order."""
        idx = _ragged_arange(self.start, self.cnt)
        self.V = self.V[idx]
        self.E = self.E[idx]
        self.nv = idx.size
        self.start = self.off[:-1].copy()

    @property
    def off(self) -> np.ndarray:
        """Offsets (R + 1,); valid after :meth:`compact`."""
        off = np.zeros(len(self.cnt) + 1, dtype=np.int64)
        np.cumsum(self.cnt, out=off[1:])
        return off

    def _append(self, V: np.ndarray, E: np.ndarray) -> int:
        n = V.shape[0]
        if self.nv + n > self.V.shape[0]:
            cap = max(2 * self.V.shape[0], self.nv + n)
            V2 = np.empty((cap, 2))
            V2[: self.nv] = self.V[: self.nv]
            E2 = np.empty(cap, dtype=np.int64)
            E2[: self.nv] = self.E[: self.nv]
            self.V, self.E = V2, E2
        at = self.nv
        self.V[at : at + n] = V
        self.E[at : at + n] = E
        self.nv += n
        return at

    def cut(self, cidx: np.ndarray, lines: np.ndarray, label: int, tol: float) -> None:
        """Split every region ``cidx`` that its line crosses.

        cidx : int (C,) regions to test; lines : (R0, 3) per layer-start ancestor, line
        ``a . x + q = 0`` normalised to ``|a| = 1`` (rows with ``a = 0`` never cut).
        """
        ccnt = self.cnt[cidx]
        vidx = _ragged_arange(self.start[cidx], ccnt)
        Vc = self.V[vidx]
        rid = np.repeat(np.arange(cidx.size), ccnt)
        L = lines[self.par[cidx]][rid]
        h = L[:, 0] * Vc[:, 0] + L[:, 1] * Vc[:, 1] + L[:, 2]
        s = (h > tol).astype(np.int8) - (h < -tol).astype(np.int8)
        starts = np.zeros(cidx.size, dtype=np.int64)
        np.cumsum(ccnt[:-1], out=starts[1:])
        split = (np.maximum.reduceat(s, starts) > 0) & (np.minimum.reduceat(s, starts) < 0)
        if not split.any():
            return
        # Restrict to the vertices of split regions.
        sv = split[rid]
        V = Vc[sv]
        E = self.E[vidx[sv]]
        s = s[sv]
        h = h[sv]
        scnt = ccnt[split]
        ns = scnt.size
        soff = np.zeros(ns + 1, dtype=np.int64)
        np.cumsum(scnt, out=soff[1:])
        nxt = _next_index(soff)
        s1 = s[nxt]
        cross = (s.astype(np.int16) * s1) < 0
        # Interpolate from the lexicographically smaller endpoint, so that the two
        # regions sharing an edge compute the very same crossing point.
        V1, h1 = V[nxt], h[nxt]
        swap = (V1[:, 0] < V[:, 0]) | ((V1[:, 0] == V[:, 0]) & (V1[:, 1] < V[:, 1]))
        Pa = np.where(swap[:, None], V1, V)
        Pb = np.where(swap[:, None], V, V1)
        ha = np.where(swap, h1, h)
        hb = np.where(swap, h, h1)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = ha / (ha - hb)  # NaN on non-crossing edges, whose X is never used
            X = Pa + t[:, None] * (Pb - Pa)
        n = V.shape[0]
        items = np.empty((n, 2, 2))
        items[:, 0] = V
        items[:, 1] = X
        items = items.reshape(2 * n, 2)
        # Each vertex i contributes itself (slot 0) and its edge's crossing point (slot 1).
        # The label of the edge leaving an emitted point is the cut's own label where the
        # child's boundary turns onto the cut, else the old edge's label.
        keep_p = np.empty((n, 2), dtype=bool)
        keep_p[:, 0] = s >= 0
        keep_p[:, 1] = cross
        keep_m = np.empty((n, 2), dtype=bool)
        keep_m[:, 0] = s <= 0
        keep_m[:, 1] = cross
        lab_p = np.empty((n, 2), dtype=np.int64)
        lab_p[:, 0] = np.where((s == 0) & (s1 < 0), label, E)
        lab_p[:, 1] = np.where(s > 0, label, E)
        lab_m = np.empty((n, 2), dtype=np.int64)
        lab_m[:, 0] = np.where((s == 0) & (s1 > 0), label, E)
        lab_m[:, 1] = np.where(s < 0, label, E)
        keep_p, keep_m = keep_p.ravel(), keep_m.ravel()
        srid2 = np.repeat(np.arange(ns), 2 * scnt)
        cnt_p = np.bincount(srid2[keep_p], minlength=ns)
        cnt_m = np.bincount(srid2[keep_m], minlength=ns)
        at_p = self._append(items[keep_p], lab_p.ravel()[keep_p])
        at_m = self._append(items[keep_m], lab_m.ravel()[keep_m])
        rs = cidx[split]
        self.start[rs] = at_p + np.cumsum(cnt_p) - cnt_p
        self.cnt[rs] = cnt_p
        self.start = np.concatenate([self.start, at_m + np.cumsum(cnt_m) - cnt_m])
        self.cnt = np.concatenate([self.cnt, cnt_m])
        self.par = np.concatenate([self.par, self.par[rs]])


def _layer_pre(Z: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pre-activations of a layer as affine maps of the plane coordinates, per region.

    Z : (d, R, k+1), unit-major: row ``Z[j, r]`` holds the coefficients and the constant of
    input unit ``j`` in region ``r``. Returns (n, R, k+1); one GEMM for all regions.
    """
    d, R, k1 = Z.shape
    P = (A @ Z.reshape(d, R * k1)).reshape(A.shape[0], R, k1)
    P[:, :, -1] += b[:, None]
    return P


def _thresholded(P: np.ndarray, ths: list[float]) -> np.ndarray:
    """(H, R, k+1) hyperplanes ``pre - t = 0``, threshold-major (as the reference's bits)."""
    if ths == [0.0]:
        return P
    out = np.concatenate([P] * len(ths), axis=0)
    n = P.shape[0]
    for i, t in enumerate(ths):
        out[i * n : (i + 1) * n, :, -1] -= t
    return out


def _normalise_lines(lines: np.ndarray) -> np.ndarray:
    """Scale each line to a unit normal; a zero normal becomes (0, 0, +-inf) (never cuts)."""
    k = lines.shape[-1] - 1
    nrm = np.sqrt(np.einsum("...i,...i->...", lines[..., :k], lines[..., :k]))
    zero = nrm == 0
    if zero.any():
        nrm[zero] = 1.0
    out = lines / nrm[..., None]
    if zero.any():
        out[zero] = 0.0
        out[..., k][zero] = np.where(lines[..., k][zero] >= 0, np.inf, -np.inf)
    return out


def _crossed(V: np.ndarray, off: np.ndarray, unit_lines: np.ndarray, tol: float) -> np.ndarray:
    """(R, H) bool: hyperplane h has vertices of region r farther than tol on both sides.

    A line farther than a polygon's circumradius (about its vertex mean) from the centre
    cannot cross it: that coarse test prunes most (region, hyperplane) pairs, and only the
    rest are evaluated at every vertex.
    """
    H, R, _ = unit_lines.shape
    out = np.zeros((R, H), dtype=bool)
    cnt = np.diff(off)
    rid = np.repeat(np.arange(R), cnt)
    cen = np.stack([np.bincount(rid, V[:, 0], R), np.bincount(rid, V[:, 1], R)], axis=1) / cnt[:, None]
    rad = np.sqrt(np.maximum.reduceat(((V - cen[rid]) ** 2).sum(1), off[:-1]))
    # unit normals: |h| is the distance to the line (zero normals carry q = +-inf)
    with np.errstate(invalid="ignore"):
        dc = unit_lines[:, :, 0] * cen[:, 0] + unit_lines[:, :, 1] * cen[:, 1] + unit_lines[:, :, 2]
    kk, rr = np.nonzero(np.abs(dc) <= rad + tol)
    if kk.size == 0:
        return out
    # Exact test of the surviving pairs at their regions' vertices.
    pc = cnt[rr]
    vidx = _ragged_arange(off[rr], pc)
    pid = np.repeat(np.arange(kk.size), pc)
    L = unit_lines[kk, rr][pid]
    h = L[:, 0] * V[vidx, 0] + L[:, 1] * V[vidx, 1] + L[:, 2]
    starts = np.zeros(kk.size, dtype=np.int64)
    np.cumsum(pc[:-1], out=starts[1:])
    hit = (np.maximum.reduceat(h, starts) > tol) & (np.minimum.reduceat(h, starts) < -tol)
    out[rr[hit], kk[hit]] = True
    return out


def _partition_2d(spec: NetSpec, M0: np.ndarray, c0: np.ndarray, bounds, tol: float, progress: bool):
    st = _Poly2D(bounds)
    diam = float(np.hypot(bounds[1] - bounds[0], bounds[3] - bounds[2]))
    atol = tol * diam
    Z = np.concatenate([M0, c0[:, None]], axis=1)[:, None, :].astype(np.float64)  # (D, 1, 3)
    base = 0
    coding = [(A, b, act) for A, b, act in spec.layers if act is not None]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(_thresholds(a)) * A.shape[0] for A, _, a in coding), desc="partition", unit="hyperplane")
    for A, b, act in coding:
        ths = _thresholds(act)
        pre = _layer_pre(Z, A, b)  # (n, R0, 3), per layer-start region
        raw = _thresholded(pre, ths)
        lines = _normalise_lines(raw)
        H = lines.shape[0]
        crossed = _crossed(st.V, st.off, lines, atol)  # (R0, H)
        st.par = np.arange(len(st.cnt))
        for k in range(H):
            col = crossed[:, k]
            if col.any():
                st.cut(np.flatnonzero(col[st.par]), lines[k], base + k, atol)
            if bar is not None:
                bar.update(1)
        st.compact()
        # Bits of this layer at each region's centroid give the next affine maps.
        _, cen = _area_centroid(st.V, st.off)
        Z = np.take(pre, st.par, axis=1)  # (n, R, 3): a fresh array, updated in place below
        rawp = Z if raw is pre else np.take(raw, st.par, axis=1)
        cen1 = np.concatenate([cen, np.ones((len(cen), 1))], axis=1)
        bits = np.einsum("hrk,rk->hr", rawp, cen1) >= 0
        Z = _next_maps(Z, bits, act)
        base += H
    if bar is not None:
        bar.close()
    st.compact()
    return st


# ----------------------------------------------------------------------------------------
# 1-D: intervals
# ----------------------------------------------------------------------------------------
def _partition_1d(spec: NetSpec, M0: np.ndarray, c0: np.ndarray, bounds, tol: float, progress: bool):
    lo, hi = float(bounds[0]), float(bounds[1])
    atol = tol * (hi - lo)
    pts = np.array([lo, hi])
    plab = np.array([-1, -1], dtype=np.int64)  # label of each breakpoint
    Z = np.concatenate([M0, c0[:, None]], axis=1)[:, None, :].astype(np.float64)  # (D, 1, 2)
    base = 0
    for A, b, act in spec.layers:
        if act is None:
            continue
        ths = _thresholds(act)
        pre = _layer_pre(Z, A, b)
        raw = _thresholded(pre, ths)  # (H, R, 2): a x + q
        H = raw.shape[0]
        a, q = raw[:, :, 0], raw[:, :, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            x = -q / a
        left, right = pts[:-1][None, :], pts[1:][None, :]
        inside = (a != 0) & (x > left + atol) & (x < right - atol)
        kk, rr = np.nonzero(inside)
        newx = x[kk, rr]
        allx = np.concatenate([pts, newx])
        alll = np.concatenate([plab, base + kk])
        # Stable sort on (position, label): coincident breakpoints keep the first hyperplane.
        order = np.lexsort((alll, allx))
        allx, alll = allx[order], alll[order]
        # New points lie farther than atol from the old ones; coincident new points merge.
        keep = np.ones(allx.size, dtype=bool)
        keep[1:] = np.diff(allx) > atol
        allx, alll = allx[keep], alll[keep]
        mids = 0.5 * (allx[:-1] + allx[1:])
        par = np.clip(np.searchsorted(pts, mids) - 1, 0, len(pts) - 2)
        rawp = raw[:, par]
        bits = rawp[:, :, 0] * mids + rawp[:, :, 1] >= 0
        Z = _next_maps(np.take(pre, par, axis=1), bits, act)
        pts, plab = allx, alll
        base += H
    return pts, plab


# ----------------------------------------------------------------------------------------
# adjacency
# ----------------------------------------------------------------------------------------
def _adjacency_2d(V: np.ndarray, E: np.ndarray, off: np.ndarray, merge_tol: float):
    """Shared edges: arrays (i, j, label, p0 (k,2), p1 (k,2)) with i < j, one row per adjacent pair."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    nv = V.shape[0]
    R = len(off) - 1
    rid = np.repeat(np.arange(R), np.diff(off))
    nxt = _next_index(off)
    # Merge vertices closer than merge_tol (copies of one vertex held by several regions).
    pairs = cKDTree(V).query_pairs(merge_tol, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(nv, nv))
    _, vid = connected_components(g, directed=False)
    internal = np.flatnonzero(E >= 0)
    a, b = vid[internal], vid[nxt[internal]]
    ok = a != b
    internal, a, b = internal[ok], a[ok], b[ok]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo.astype(np.int64) * (int(vid.max()) + 1) + hi
    order = np.argsort(key, kind="stable")
    key_s = key[order]
    same = key_s[1:] == key_s[:-1]
    first = order[:-1][same]
    second = order[1:][same]
    ri, rj = rid[internal[first]], rid[internal[second]]
    good = ri != rj
    matched = np.zeros(internal.size, dtype=bool)
    matched[first[good]] = True
    matched[second[good]] = True
    ei = internal[first[good]]
    out_i, out_j, out_lab = [ri[good]], [rj[good]], [E[ei]]
    out_p0, out_p1 = [V[ei]], [V[nxt[ei]]]
    # Edges left over: match by collinear overlap of positive length.
    rest = internal[~matched]
    if rest.size:
        fi, fj = _overlap_pairs(V[rest], V[nxt[rest]], rid[rest], merge_tol)
        if fi.size:
            out_i.append(rid[rest[fi]])
            out_j.append(rid[rest[fj]])
            out_lab.append(E[rest[fi]])
            p0, p1 = _overlap_segment(V[rest[fi]], V[nxt[rest[fi]]], V[rest[fj]], V[nxt[rest[fj]]])
            out_p0.append(p0)
            out_p1.append(p1)
    i = np.concatenate(out_i)
    j = np.concatenate(out_j)
    lab = np.concatenate(out_lab)
    p0 = np.concatenate(out_p0)
    p1 = np.concatenate(out_p1)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    # One row per pair of regions (two regions can share collinear pieces of one edge).
    _, first_idx = np.unique(lo * R + hi, return_index=True)
    return lo[first_idx], hi[first_idx], lab[first_idx], p0[first_idx], p1[first_idx]


def _overlap_pairs(P0: np.ndarray, P1: np.ndarray, reg: np.ndarray, tol: float):
    """Pairs of segments from different regions, collinear within tol, overlapping longer than tol."""
    from scipy.spatial import cKDTree

    mid = 0.5 * (P0 + P1)
    half = 0.5 * np.hypot(*(P1 - P0).T)
    tree = cKDTree(mid)
    rmax = float(half.max()) if half.size else 0.0
    cand = tree.query_ball_point(mid, half + rmax + tol)
    ii = np.repeat(np.arange(len(mid)), [len(c) for c in cand])
    jj = np.fromiter((j for c in cand for j in c), dtype=np.int64, count=ii.size)
    m = (ii < jj) & (reg[ii] != reg[jj])
    ii, jj = ii[m], jj[m]
    d = P1[ii] - P0[ii]
    ln = np.hypot(d[:, 0], d[:, 1])
    u = d / np.where(ln > 0, ln, 1.0)[:, None]
    nrm = np.stack([-u[:, 1], u[:, 0]], axis=1)
    dist0 = np.abs(((P0[jj] - P0[ii]) * nrm).sum(1))
    dist1 = np.abs(((P1[jj] - P0[ii]) * nrm).sum(1))
    t0 = ((P0[jj] - P0[ii]) * u).sum(1)
    t1 = ((P1[jj] - P0[ii]) * u).sum(1)
    ov = np.minimum(ln, np.maximum(t0, t1)) - np.maximum(0.0, np.minimum(t0, t1))
    ok = (dist0 <= tol) & (dist1 <= tol) & (ov > tol)
    return ii[ok], jj[ok]


def _overlap_segment(a0, a1, b0, b1):
    d = a1 - a0
    ln = np.hypot(d[:, 0], d[:, 1])
    u = d / np.where(ln > 0, ln, 1.0)[:, None]
    t0 = ((b0 - a0) * u).sum(1)
    t1 = ((b1 - a0) * u).sum(1)
    s = np.maximum(0.0, np.minimum(t0, t1))
    e = np.minimum(ln, np.maximum(t0, t1))
    return a0 + s[:, None] * u, a0 + e[:, None] * u


# ----------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------
def plane_through(x0: Any, x1: Any, x2: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plane through three inputs, as ``(origin, dir1, dir2)`` for :func:`partition`.

    ``x0`` maps to plane coordinates (0, 0), ``x1`` to (1, 0) and ``x2`` to (0, 1).

    Parameters
    ----------
    x0, x1, x2 : array_like, shape (D,)
    """
    x0, x1, x2 = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (x0, x1, x2))
    if not (x0.shape == x1.shape == x2.shape):
        raise ValueError(f"x0, x1, x2: expected three inputs of one shape, got {x0.shape}, {x1.shape}, {x2.shape}")
    d1, d2 = x1 - x0, x2 - x0
    if np.linalg.matrix_rank(np.stack([d1, d2])) < 2:
        raise ValueError("x0, x1, x2: expected three points not on one line, got collinear points")
    return x0, d1, d2


def _parse_plane(plane: Any, D: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(M0 (D, k), c0 (D,)) from ``plane`` (None: identity when D == k)."""
    if plane is None:
        if D != k:
            raise ValueError(
                f"plane: the network has {D}-dimensional inputs and bounds describe a {k}-D domain; "
                f"pass plane=(origin, dir1{', dir2' if k == 2 else ''}) or plane_through(x0, x1, x2)"
            )
        return np.eye(D), np.zeros(D)
    if not isinstance(plane, (tuple, list)) or len(plane) != k + 1:
        raise ValueError(
            f"plane: expected (origin, {'dir1, dir2' if k == 2 else 'direction'}) for a {k}-D domain, got {plane!r:.80}"
        )
    vecs = [np.asarray(v, dtype=np.float64).reshape(-1) for v in plane]
    for i, v in enumerate(vecs):
        if v.shape != (D,):
            raise ValueError(f"plane[{i}]: expected a vector of length {D} (the input dimension), got shape {v.shape}")
    dirs = np.stack(vecs[1:], axis=1)
    if np.linalg.matrix_rank(dirs) < k:
        raise ValueError("plane: expected linearly independent directions, got dependent ones")
    return dirs, vecs[0]


def partition(
    net_or_hyperplanes: Any,
    bounds: Sequence[float],
    *,
    plane: Any = None,
    tol: float = DEFAULT_TOL,
    progress: bool = False,
) -> "Partition":
    """Exact linear regions of a CPA network (or a hyperplane arrangement) on a box or interval.

    Parameters
    ----------
    net_or_hyperplanes : torch.nn.Sequential, list of (A, b), (normals, offsets) or vqgeom.Hyperplanes
        See :func:`vqgeom._netspec.as_netspec`. Supported activations: ReLU, LeakyReLU,
        PReLU, ReLU6, Hardtanh; a trailing ``nn.Linear`` is an output layer (no bits).
    bounds : (xmin, xmax, ymin, ymax) or (lo, hi)
        The 2-D box or the 1-D interval, in plane coordinates.
    plane : (origin, dir1, dir2) or (origin, direction), optional
        The input ``x = origin + u * dir1 + v * dir2`` for plane coordinates ``(u, v)``
        (1-D: ``x = origin + u * direction``). Use :func:`plane_through` for the plane through
        three inputs. Required when the input dimension differs from the domain's.
    tol : float
        Relative tolerance (times the domain's diameter): vertices this close to a hyperplane
        are on it. See the module docstring.
    progress : bool
        Show a tqdm bar over the hyperplanes (2-D).

    Returns
    -------
    Partition

    Notes
    -----
    Exactness and tolerance: all geometry is float64. A polygon vertex within
    ``tol * diam`` of a hyperplane (``diam`` = the domain's diagonal or length) counts as
    lying on it, so a hyperplane splits a region only if vertices lie farther than that on
    both sides. Hence no region thinner than ``tol * diam`` across a cut is created; lines
    through existing vertices reuse them; concurrent lines share their meeting vertex;
    duplicate, antiparallel or near-coincident (closer than the tolerance) hyperplanes add
    no region (the shared edge records the first of them); hyperplanes missing the domain,
    dead and zero-weight units add nothing and give constant bits. Regions of zero area
    never occur. Two regions are adjacent iff their shared boundary is longer than
    ``10 * tol * diam`` (touching at a corner does not count).

    Each region's code is the network's code at its representative point (area centroid
    or midpoint): bit set iff the pre-activation is ``>= 0`` there, units and layers as
    ``vqgeom.encode`` orders them. Where a unit's pre-activation vanishes identically on a
    region (e.g. integer weights), its bit is decided by float rounding, as in ``encode``.

    Examples
    --------
    >>> import numpy as np
    >>> from vqgeom.geometry import partition
    >>> part = partition((np.eye(2), np.zeros(2)), (-1, 1, -1, 1))
    >>> part.n_regions, sorted(part.graph.edges())
    (4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    """
    spec = as_netspec(net_or_hyperplanes)
    try:
        bounds = tuple(float(v) for v in bounds)
    except TypeError:
        raise TypeError(f"bounds: expected (xmin, xmax, ymin, ymax) or (lo, hi), got {bounds!r}") from None
    if len(bounds) not in (2, 4):
        raise ValueError(f"bounds: expected 4 numbers (2-D box) or 2 (1-D interval), got {len(bounds)}")
    if not all(np.isfinite(bounds)) or any(bounds[2 * i] >= bounds[2 * i + 1] for i in range(len(bounds) // 2)):
        raise ValueError(f"bounds: expected finite bounds with min < max on each axis, got {bounds}")
    if not (isinstance(tol, (int, float)) and 0 <= tol < 1e-3):
        raise ValueError(f"tol: expected a relative tolerance in [0, 1e-3), got {tol!r}")
    k = len(bounds) // 2
    M0, c0 = _parse_plane(plane, spec.in_dim, k)
    if k == 2:
        st = _partition_2d(spec, M0, c0, bounds, float(tol), progress)
        return Partition._from_2d(spec, st, bounds, M0, c0, float(tol))
    pts, plab = _partition_1d(spec, M0, c0, bounds, float(tol), progress)
    return Partition._from_1d(spec, pts, plab, bounds, M0, c0, float(tol))


class Partition:
    """The linear regions of a network on a box (2-D) or an interval (1-D).

    Attributes
    ----------
    dim : int
        1 or 2 (plane coordinates).
    bounds : tuple of float
    n_regions : int
    vertices : ndarray float64 (V, 2)
        2-D: every region's polygon vertices, counter-clockwise, regions one after another.
    offsets : ndarray int64 (n_regions + 1,)
        2-D: region ``r`` is ``vertices[offsets[r]:offsets[r+1]]``.
    edge_labels : ndarray int64 (V,)
        2-D: the global hyperplane index of the edge leaving each vertex (-1: domain boundary).
    intervals : ndarray float64 (n_regions, 2)
        1-D: ``(lo, hi)`` of each region, in increasing order.
    areas : ndarray float64 (n_regions,)
        Polygon areas (2-D) or interval lengths (1-D).
    points : ndarray float64 (n_regions, dim)
        Interior representative points in plane coordinates (area centroid / midpoint).
    inputs : ndarray float64 (n_regions, D)
        The same points in input space (``origin + points @ dirs.T``).
    codes : Codes
        One row per region: the network's code at its representative point.
    layer_sizes : tuple of int
        Bits per coding layer (matches ``codes.layer_sizes``).
    edge_index : ndarray int64 (E, 2)
        Adjacent region pairs ``i < j`` (the graph's edges).
    edge_layer, edge_unit : ndarray int64 (E,)
        The coding layer and the unit (bit index within the layer) of each edge's hyperplane.
    edge_segments : ndarray float64 (E, 2, dim)
        The shared boundary piece of each edge (1-D: the breakpoint, twice).
    plane_map : (ndarray (D, dim), ndarray (D,))
        ``x = plane_map[1] + plane_map[0] @ u`` for plane coordinates ``u``.
    """

    def __init__(self) -> None:  # built by partition()
        self._graph = None
        self._regions = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def _common(cls, spec, bounds, M0, c0, tol):
        p = cls()
        p.spec = spec
        p.bounds = bounds
        p.tol = tol
        p.plane_map = (M0, c0)
        p.layer_sizes = layer_sizes(spec)
        p.layer_names = spec.names
        p._layer_base = np.concatenate([[0], np.cumsum(p.layer_sizes)]).astype(np.int64)
        return p

    @classmethod
    def _from_2d(cls, spec, st, bounds, M0, c0, tol):
        p = cls._common(spec, bounds, M0, c0, tol)
        p.dim = 2
        p.vertices, p.edge_labels, p.offsets = st.V, st.E, st.off
        p.areas, p.points = _area_centroid(st.V, st.off)
        p._finish()
        diam = float(np.hypot(bounds[1] - bounds[0], bounds[3] - bounds[2]))
        i, j, lab, p0, p1 = _adjacency_2d(st.V, st.E, st.off, 10 * tol * diam if tol > 0 else 1e-12 * diam)
        p._set_edges(i, j, lab, np.stack([p0, p1], axis=1))
        return p

    @classmethod
    def _from_1d(cls, spec, pts, plab, bounds, M0, c0, tol):
        p = cls._common(spec, bounds, M0, c0, tol)
        p.dim = 1
        p.intervals = np.stack([pts[:-1], pts[1:]], axis=1)
        p.areas = pts[1:] - pts[:-1]
        p.points = (0.5 * (pts[:-1] + pts[1:]))[:, None]
        p._finish()
        n = len(pts) - 1
        i = np.arange(n - 1)
        seg = np.repeat(pts[1:-1, None, None], 2, axis=1)
        p._set_edges(i, i + 1, plab[1:-1], seg)
        return p

    def _finish(self) -> None:
        M0, c0 = self.plane_map
        self.inputs = c0[None, :] + self.points @ M0.T
        bits = forward_bits(self.spec, self.inputs)
        self.codes = Codes.from_bits(bits, self.layer_sizes, self.layer_names)

    def _set_edges(self, i, j, lab, segments) -> None:
        lab = np.asarray(lab, dtype=np.int64)
        self.edge_index = np.stack([i, j], axis=1).astype(np.int64)  # (E, 2), i < j
        layer = np.searchsorted(self._layer_base, lab, side="right") - 1
        self.edge_layer = layer.astype(np.int64)
        self.edge_unit = (lab - self._layer_base[layer]).astype(np.int64)
        self.edge_segments = segments  # (E, 2, dim): the shared boundary piece

    # -- views ----------------------------------------------------------------------------
    @property
    def n_regions(self) -> int:
        return int(self.areas.shape[0])

    def __len__(self) -> int:
        return self.n_regions

    def __repr__(self) -> str:
        return f"Partition(dim={self.dim}, n_regions={self.n_regions}, layer_sizes={self.layer_sizes})"

    def polygon(self, r: int) -> np.ndarray:
        """Vertices (k, 2) of region ``r`` (2-D)."""
        return self.vertices[self.offsets[r] : self.offsets[r + 1]]

    @property
    def regions(self) -> list:
        """shapely Polygons (2-D) or ``(lo, hi)`` tuples (1-D), one per region (built on first use)."""
        if self._regions is None:
            if self.dim == 1:
                self._regions = [tuple(map(float, iv)) for iv in self.intervals]
            else:
                import shapely

                ring_idx = np.repeat(np.arange(self.n_regions), np.diff(self.offsets))
                rings = shapely.linearrings(self.vertices, indices=ring_idx)
                self._regions = list(shapely.polygons(rings))
        return self._regions

    @property
    def graph(self):
        """networkx Graph over region indices; each edge has ``layer`` and ``unit`` attributes."""
        if self._graph is None:
            import networkx as nx

            G = nx.Graph()
            G.add_nodes_from(range(self.n_regions))
            G.add_edges_from(
                (int(i), int(j), {"layer": int(l), "unit": int(u)})
                for (i, j), l, u in zip(self.edge_index, self.edge_layer, self.edge_unit)
            )
            self._graph = G
        return self._graph

    def adjacency(self, weights: Sequence[float] | None = None):
        """Sparse symmetric (R, R) adjacency matrix (CSR, float64), entries = edge layer weight (1 by default)."""
        from scipy.sparse import csr_matrix

        R = self.n_regions
        if weights is None:
            w = np.ones(len(self.edge_index))
        else:
            wl = np.asarray(weights, dtype=np.float64).reshape(-1)
            if wl.shape != (len(self.layer_sizes),):
                raise ValueError(f"weights: expected {len(self.layer_sizes)} layer weights, got shape {wl.shape}")
            if np.any(wl <= 0) or not np.all(np.isfinite(wl)):
                raise ValueError(f"weights: expected positive finite layer weights, got {wl}")
            w = wl[self.edge_layer]
        i, j = self.edge_index[:, 0], self.edge_index[:, 1]
        return csr_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(R, R))

    def distances(
        self, weights: Sequence[float] | None = None, *, sources: Any = None, progress: bool | None = None
    ) -> np.ndarray:
        """d_Omega between regions: hop distance, or with ``weights`` each hop costs its layer's weight.

        Parameters
        ----------
        weights : sequence of float, optional
            One positive weight per coding layer. Without weights the hop distances come
            from a bit-parallel breadth-first search (all pairs of 20,000 regions in seconds);
            with weights from ``scipy.sparse.csgraph.shortest_path`` (Dijkstra).
        sources : array_like of int, optional
            Rows to compute (default: all regions).
        progress : bool, optional
            Show a tqdm bar (unweighted search); default: when there are more than 4096 sources.

        Returns
        -------
        ndarray float64 (len(sources), n_regions)
            ``inf`` between regions in different connected components.
        """
        from ._hops import hop_distances, zorder

        adj = self.adjacency(weights)
        if sources is None:
            idx = np.arange(self.n_regions)
        else:
            idx = np.asarray(sources).reshape(-1)
            if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= self.n_regions)):
                raise ValueError(f"sources: expected region indices in [0, {self.n_regions}), got {idx[:10]}")
            idx = idx.astype(np.int64)
        if weights is None:
            # Nearby sources share a block of the bit-parallel search: order them along a Z-curve.
            show = idx.size > 4096 if progress is None else bool(progress)
            return hop_distances(adj.indptr, adj.indices, idx, zorder(self.points[idx]), progress=show)
        from scipy.sparse.csgraph import shortest_path

        return shortest_path(adj, method="D", directed=False, indices=idx)

    def code_distances(self, weights: Sequence[float] | None = None, *, per_layer: bool = False) -> np.ndarray:
        """VQ distance between the regions' codes: (R, R) float64, or (L, R, R) int64 with ``per_layer``."""
        bits = self.codes.unpack()
        out = []
        start = 0
        for b in self.layer_sizes:
            s = np.where(bits[:, start : start + b], 1.0, -1.0)
            # +-1 Gram: Hamming = (b - <s, t>) / 2, exact in float64 for b < 2**52.
            out.append(np.rint((b - s @ s.T) / 2).astype(np.int64))
            start += b
        per = np.stack(out) if out else np.zeros((0, self.n_regions, self.n_regions), dtype=np.int64)
        if per_layer:
            return per
        w = np.ones(len(self.layer_sizes)) if weights is None else np.asarray(weights, dtype=np.float64)
        return np.tensordot(w, per.astype(np.float64), axes=1) if len(w) else np.zeros(per.shape[1:])
