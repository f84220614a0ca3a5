"""Exact linear-region partitions of CPA networks on a 1-D interval or a 2-D box.

Algorithm (2-D)
---------------
Layer by layer. At the start of layer ``l`` every current region ``r`` (a convex
polygon) carries the affine map ``z = M_r x + c_r`` from plane coordinates to the
layer's input (one GEMM for all regions), so each of the layer's hyperplanes (unit ``j``,
threshold ``t``) is the straight line ``(W_j M_r) x + (W_j c_r + b_j - t) = 0`` inside
``r``. The regions live in a half-edge structure (:mod:`vqgeom.geometry._clip`, the model
of regioncam) and one compiled loop per layer cuts every region by every hyperplane in
turn: a split interpolates the crossing point on the two edges it cuts, and both the
regions on either side of a cut edge get the new vertex at once. Each edge keeps the label
of the hyperplane it lies on (``-1``: domain boundary). Nets whose coding layers are all
ReLU / leaky ReLU / PReLU run every layer in one compiled call
(:func:`vqgeom.geometry._clip.cut_homogeneous_net`, the same steps), which also packs the
regions' codes while cutting (the sign of each pre-activation map inside each face); other
activations go layer by layer from Python and their codes come from a forward pass at the
regions' centroids when first read. The adjacency graph is computed when first read.

Tolerance
---------
All geometry is float64 in plane coordinates. A vertex whose distance to a line is at
most ``tol * diam`` (``diam`` = the domain's diagonal, default ``tol = 1e-10``) counts as
*on* the line. A line therefore splits a region only if vertices lie farther than that on
both sides: no region thinner than ``tol * diam`` across a cut is ever created, lines
through existing vertices reuse them, concurrent lines meet in shared vertices, and a
hyperplane coincident with an existing edge (duplicate or antiparallel units, parallel
copies closer than the tolerance) adds no region. Regions of zero area never exist. A
vertex's value on a hyperplane is computed once and shared by all regions around it, so
regions never disagree about the side of a shared vertex (also at ``tol=0``).

Adjacency
---------
Two regions are adjacent iff they share a boundary segment longer than ``10 * tol * diam``
(positive length at ``tol=0``). Shared boundaries are the half-edge twins
(:mod:`vqgeom.geometry._adjacency`): no vertex matching, so slivers thinner than any
tolerance keep their true neighbours. Each graph edge records the ``(layer, unit)`` of the
hyperplane it lies on.
"""

from __future__ import annotations

import itertools
import math
import sys
from typing import Any, Sequence

import numpy as np

from .. import activations as _act
from ..codes import Codes, layer_word_offsets
from .._netspec import NetSpec, as_netspec, layer_groups, layer_sizes

__all__ = ["partition", "Partition", "plane_through", "forward_bits"]

DEFAULT_TOL = 1e-10


# ----------------------------------------------------------------------------------------
# layers, read from the activation registry (vqgeom.activations)
# ----------------------------------------------------------------------------------------
def _layer_lines(pre: np.ndarray, act: Any) -> np.ndarray:
    """The hyperplanes of a layer with plain bits, per region: (H, R, k+1), in bit order.

    Kink units: ``pre - t`` for every kink ``t``, threshold-major. Max-type units over two
    candidates: ``a - b`` (the bit ``a >= b``). Max over one candidate: none. (Max over
    ``k >= 3`` candidates is cut group by group: see :func:`_max_candidates`.)
    """
    if _act.is_max_type(act):
        k = _act.normalize(act)[1]
        if k == 1:
            return pre[:0]
        return pre[0::2] - pre[1::2]
    ths = _act.kinks(act)
    if ths == [0.0]:
        return pre
    out = np.concatenate([pre] * len(ths), axis=0)
    n = pre.shape[0]
    for i, t in enumerate(ths):
        out[i * n : (i + 1) * n, :, -1] -= t
    return out


def _max_candidates(pre: np.ndarray, act: Any) -> np.ndarray:
    """(U, k, R, k+1) candidate maps of a max-type layer, as a max (a min is the max of the
    negatives, with the same first-on-ties index)."""
    k = _act.normalize(act)[1]
    cand = pre if act[0] == "maxout" else -pre
    return cand.reshape((pre.shape[0] // k, k) + pre.shape[1:])


def _pow2_rows(lines: np.ndarray, axes: tuple) -> np.ndarray:
    """Scale by powers of two (exact) so that the largest entry over ``axes`` is in [0.5, 1).

    The same factor over every region: a vertex's value on a line must not depend on the
    region asking. Keeps values far from overflow and underflow whatever the weights' scale.
    """
    if lines.size == 0:
        return lines
    m = np.abs(lines).max(axis=axes, keepdims=True)
    ex = np.frexp(np.where(np.isfinite(m) & (m > 0), m, 1.0))[1]
    return np.ldexp(lines, -ex)


def _next_maps(pre: np.ndarray, par: np.ndarray, pts: np.ndarray, act: Any) -> np.ndarray:
    """Affine maps (n_out, R, k+1) of a layer's outputs in every region.

    pre : (n, R0, k+1) the layer's pre-activation maps per layer-start region; par : (R,)
    each region's layer-start region; pts : (R, k) an interior point of each region, where
    the active piece (kink units) or the argmax (max-type units) is read.
    """
    pts1 = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
    P = np.take(pre, par, axis=1)  # (n, R, k+1)
    if _act.is_max_type(act):
        vals = np.einsum("nrk,rk->rn", P, pts1)
        k = _act.normalize(act)[1]
        idx = _act.max_index(act, vals)  # (R, U), first on ties
        sel = np.arange(idx.shape[1])[None, :] * k + idx
        return P[sel.T, np.arange(len(par))[None, :]]
    raw = _layer_lines(P, act)
    bits = np.einsum("hrk,rk->hr", raw, pts1) >= 0
    slope, icpt = _act.affine_piece(act, bits)
    P *= slope[:, :, None]
    P[:, :, -1] += icpt
    return P


def forward_bits(spec: NetSpec, X: np.ndarray) -> np.ndarray:
    """The code bits of every coding layer at inputs ``X`` (N, D), float64, vectorised.

    Read from the activation registry: the same convention and order as ``vqgeom.encode``
    (and the oracle ``vqgeom.kernels.reference.mlp_bits``).
    """
    z = np.asarray(X, dtype=np.float64)
    cols = []
    for A, b, act in spec.layers:
        pre = z @ A.T + b
        if act is not None:
            cols.append(_act.bits(act, pre))
        z = _act.evaluate(act, pre)
    if not cols:
        return np.zeros((z.shape[0], 0), dtype=bool)
    return np.concatenate(cols, axis=1)


# ----------------------------------------------------------------------------------------
# 2-D
# ----------------------------------------------------------------------------------------
def _finite_pre(P: np.ndarray, layer: int) -> np.ndarray:
    """``P`` if every affine map is finite, else a ValueError (the network overflows float64)."""
    if not np.isfinite(P).all():
        raise ValueError(
            f"net_or_hyperplanes: the pre-activations of coding layer {layer} overflow float64 on this domain "
            "(weights too large for the depth); rescale the weights or the domain"
        )
    return P


def _layer_pre(Z: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pre-activations of a layer as affine maps of the plane coordinates, per region.

    Z : (d, R, k+1), unit-major: row ``Z[j, r]`` holds the coefficients and the constant of
    input unit ``j`` in region ``r``. Returns (n, R, k+1); one GEMM for all regions.
    """
    d, R, k1 = Z.shape
    P = (A @ Z.reshape(d, R * k1)).reshape(A.shape[0], R, k1)
    P[:, :, -1] += b[:, None]
    return P


class _Faces2D:
    """The result of the 2-D cutting: ragged polygons and the half-edge structure."""

    def __init__(self, he, V, E, off, area, centroid, words=None):
        self.he, self.V, self.E, self.off = he, V, E, off
        self.area, self.centroid = area, centroid
        self.words = words  # the regions' packed codes when the cut computed them, else None


def _homogeneous(act: Any) -> bool:
    """ReLU, leaky ReLU, PReLU: one hyperplane per unit, slope 1 above it."""
    return act == "relu" or (isinstance(act, tuple) and act[0] in ("leaky", "prelu"))


def _partition_2d_compiled(coding, Z, bounds, atol):
    """All layers homogeneous (see :func:`_homogeneous`): the whole cut in one compiled call."""
    from ._clip import HalfEdges, cut_homogeneous_net

    Ws = np.concatenate([A.ravel() for A, _, _ in coding], dtype=np.float64)
    bs = np.concatenate([b for _, b, _ in coding], dtype=np.float64)
    dims = np.array([Z.shape[0]] + [A.shape[0] for A, _, _ in coding], dtype=np.int64)
    if all(act == "relu" for _, _, act in coding):
        slopes = np.zeros(bs.size)
    else:
        slopes = np.concatenate([
            np.zeros(A.shape[0]) if act == "relu"
            else np.broadcast_to(np.asarray(act[1], dtype=np.float64), (A.shape[0],))
            for A, _, act in coding
        ])
    woffs = np.array(layer_word_offsets(dims[1:]), dtype=np.int64)
    *arrays, V, E, off, area, cent, words, bad = cut_homogeneous_net(
        Ws, bs, dims, slopes, woffs, Z, np.array(bounds), atol, 256)
    if bad >= 0:
        _finite_pre(np.array([np.inf]), int(bad))  # raises, naming the layer
    he = HalfEdges.from_arrays(*arrays, next_stamp=int(bs.size))
    return _Faces2D(he, V, E, off, area, cent, words)


def _partition_2d(spec: NetSpec, M0: np.ndarray, c0: np.ndarray, bounds, tol: float, progress: bool):
    from ._clip import HalfEdges, homogeneous_next_maps

    diam = float(np.hypot(bounds[1] - bounds[0], bounds[3] - bounds[2]))
    atol = tol * diam
    Z = np.concatenate([M0, c0[:, None]], axis=1)[:, None, :].astype(np.float64)  # (D, 1, 3)
    coding = [(A, b, act) for A, b, act in spec.layers if act is not None]
    if coding and not progress and all(_homogeneous(act) for _, _, act in coding):
        return _partition_2d_compiled(coding, Z, bounds, atol)
    he = HalfEdges(bounds)
    V, E, off, cen, rad, area, cent = he.export()
    base = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(A.shape[0] for A, _, _ in coding), desc="partition", unit="unit")
    for li, (A, b, act) in enumerate(coding):
        with np.errstate(over="ignore", invalid="ignore"):
            pre = _finite_pre(_layer_pre(Z, A, b), li)  # (n, R0, 3), per layer-start region
        he.start_layer()
        if _act.group_width(act) >= 3:
            # One max unit at a time: its argmax cells inside every region.
            cand = _max_candidates(pre, act)
            for u in range(cand.shape[0]):
                he.cut_max(_pow2_rows(cand[u], (0, 1, 2)), cen, rad, atol, base + u * cand.shape[1])
        else:
            lines = _layer_lines(pre, act)
            if lines.shape[0]:
                he.cut_layer(_pow2_rows(lines, (1, 2)), cen, rad, atol, base)
        par = he.fpar[: he.nf].copy()
        V, E, off, cen, rad, area, cent = he.export()
        nb = _act.n_bits(act, A.shape[0])
        base += nb
        if bar is not None:
            bar.update(A.shape[0])
        if li == len(coding) - 1:
            break
        # The active pieces (argmaxes) at an interior point of each region (the vertex mean
        # of a convex polygon) give the next affine maps.
        if act == "relu" or act[0] in ("leaky", "prelu"):
            slope = np.zeros(pre.shape[0]) if act == "relu" else np.broadcast_to(
                np.asarray(act[1], dtype=np.float64), (pre.shape[0],)).copy()
            Z = homogeneous_next_maps(pre, par, cen, slope)
        else:
            Z = _next_maps(pre, par, cen, act)
    if bar is not None:
        bar.close()
    return _Faces2D(he, V, E, off, area, cent)


# ----------------------------------------------------------------------------------------
# 1-D: intervals
# ----------------------------------------------------------------------------------------
def _merge_points(pts, plab, newx, newl, atol):
    """Breakpoints ``pts`` plus ``newx``: sorted, coincident ones (closer than atol) merged
    keeping the first label (stable on (position, label))."""
    allx = np.concatenate([pts, newx])
    alll = np.concatenate([plab, newl])
    order = np.lexsort((alll, allx))
    allx, alll = allx[order], alll[order]
    keep = np.ones(allx.size, dtype=bool)
    keep[1:] = np.diff(allx) > atol
    return allx[keep], alll[keep]


def _max_breakpoints(cand, pts, atol, base):
    """Breakpoints of the argmax cells of max units inside the intervals between ``pts``.

    cand : (U, k, R, 2) candidate maps ``a x + q`` per interval. Candidate points are the
    pairwise crossings inside each interval; one is kept iff some unit's argmax (first on
    ties) differs on its two sides within the same interval. Labels: ``base + u k``.
    """
    U, k, R, _ = cand.shape
    ii, jj = np.triu_indices(k, 1)
    da = cand[:, ii, :, 0] - cand[:, jj, :, 0]  # (U, pairs, R)
    dq = cand[:, ii, :, 1] - cand[:, jj, :, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = -dq / da
    left, right = pts[:-1], pts[1:]
    inside = (da != 0) & (x > left + atol) & (x < right - atol)
    uu, _, rr = np.nonzero(inside)
    if uu.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    cx = x[inside]
    # Sub-intervals of each parent: sort the candidates per parent.
    order = np.lexsort((cx, rr))
    cx, rr = cx[order], rr[order]
    prev = np.where(np.r_[True, rr[1:] != rr[:-1]], left[rr], np.r_[-np.inf, cx[:-1]])
    nxt = np.where(np.r_[rr[1:] != rr[:-1], True], right[rr], np.r_[cx[1:], np.inf])
    ml, mr = 0.5 * (prev + cx), 0.5 * (cx + nxt)  # points just left and right of each candidate
    c = cand[:, :, rr, :]  # (U, k, C, 2)
    il = np.argmax(c[..., 0] * ml + c[..., 1], axis=1)  # (U, C)
    ir = np.argmax(c[..., 0] * mr + c[..., 1], axis=1)
    change = il != ir
    keep = change.any(axis=0)
    first_u = np.argmax(change, axis=0)
    return cx[keep], (base + first_u * k)[keep].astype(np.int64)


def _partition_1d(spec: NetSpec, M0: np.ndarray, c0: np.ndarray, bounds, tol: float, progress: bool):
    lo, hi = float(bounds[0]), float(bounds[1])
    atol = tol * (hi - lo)
    pts = np.array([lo, hi])
    plab = np.array([-1, -1], dtype=np.int64)  # label of each breakpoint
    Z = np.concatenate([M0, c0[:, None]], axis=1)[:, None, :].astype(np.float64)  # (D, 1, 2)
    base = 0
    li = 0
    for A, b, act in spec.layers:
        if act is None:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            pre = _finite_pre(_layer_pre(Z, A, b), li)
        li += 1
        if _act.group_width(act) >= 3:
            newx, newl = _max_breakpoints(_max_candidates(pre, act), pts, atol, base)
        else:
            raw = _layer_lines(pre, act)  # (H, R, 2): a x + q
            a, q = raw[:, :, 0], raw[:, :, 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                x = -q / a
            inside = (a != 0) & (x > pts[:-1][None, :] + atol) & (x < pts[1:][None, :] - atol)
            kk, rr = np.nonzero(inside)
            newx, newl = x[kk, rr], base + kk
        allx, alll = _merge_points(pts, plab, newx, newl, atol)
        mids = 0.5 * (allx[:-1] + allx[1:])
        par = np.clip(np.searchsorted(pts, mids) - 1, 0, len(pts) - 2)
        Z = _next_maps(pre, par, mids[:, None], act)
        pts, plab = allx, alll
        base += _act.n_bits(act, A.shape[0])
    return pts, plab


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
    net_or_hyperplanes : torch.nn.Sequential, list of (A, b), (normals, offsets), vqgeom.Hyperplanes or NetSpec
        See :func:`vqgeom._netspec.as_netspec`. Every activation of the registry
        (:mod:`vqgeom.activations`): kink units (ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh,
        Hardsigmoid, Softshrink, ...) and max-type units (``vqgeom.models.Maxout``: a max over
        groups of ``k`` units, ``k`` = the width for a max over the whole layer), whose
        argmax cells split each region; a trailing ``nn.Linear`` is an output layer (no bits).
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
    spec = net_or_hyperplanes if isinstance(net_or_hyperplanes, NetSpec) else as_netspec(net_or_hyperplanes)
    try:
        bounds = tuple(float(v) for v in bounds)
    except TypeError:
        raise TypeError(f"bounds: expected (xmin, xmax, ymin, ymax) or (lo, hi), got {bounds!r}") from None
    if len(bounds) not in (2, 4):
        raise ValueError(f"bounds: expected 4 numbers (2-D box) or 2 (1-D interval), got {len(bounds)}")
    # Python floats (IEEE doubles, as float64): a few scalar checks, no numpy calls.
    if not all(map(math.isfinite, bounds)) or any(bounds[2 * i] >= bounds[2 * i + 1] for i in range(len(bounds) // 2)):
        raise ValueError(f"bounds: expected finite bounds with min < max on each axis, got {bounds}")
    ext = [bounds[2 * i + 1] - bounds[2 * i] for i in range(len(bounds) // 2)]
    size = math.prod(ext)  # inf on overflow, no exception
    if not (all(map(math.isfinite, ext)) and math.isfinite(size) and math.isfinite(math.hypot(*ext))):
        raise ValueError(
            f"bounds: expected a domain whose side lengths, {'area' if len(ext) == 2 else 'length'} and diagonal "
            f"are finite in float64 (at most about 1e154 across), got {bounds}; rescale the inputs"
        )
    if not size >= sys.float_info.min:
        raise ValueError(
            f"bounds: expected a domain whose {'area' if len(ext) == 2 else 'length'} is a normal float64 "
            f"(at least about 1e-154 across), got {bounds}; rescale the inputs"
        )
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
        The coding layer and the unit of each edge's hyperplane: the bit index within the
        layer, or for one-hot (max over ``k >= 3``) layers the max unit whose argmax changes.
    layer_groups : tuple of int
        Per coding layer, 1 for plain bits or the one-hot width ``k >= 3`` (as ``codes.groups``).
    edge_segments : ndarray float64 (E, 2, dim)
        The shared boundary piece of each edge (1-D: the breakpoint, twice).
    plane_map : (ndarray (D, dim), ndarray (D,))
        ``x = plane_map[1] + plane_map[0] @ u`` for plane coordinates ``u``.

    ``inputs``, ``codes`` and the ``edge_*`` arrays are computed when first read (2-D: the
    edges from the half-edge structure the partition keeps until then; ReLU / leaky ReLU /
    PReLU nets: the codes from the words the compiled cut packed).
    """

    def __init__(self) -> None:  # built by partition()
        self._graph = None
        self._regions = None
        self._inputs = None
        self._codes = None
        self._words = None
        self._edges = None  # (edge_index, edge_layer, edge_unit, edge_segments)
        self._he = None  # 2-D: the half-edge structure, until the edges are read off it

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def _common(cls, spec, bounds, M0, c0, tol):
        p = cls()
        p.spec = spec
        p.bounds = bounds
        p.tol = tol
        p.plane_map = (M0, c0)
        p.layer_sizes = layer_sizes(spec)
        p.layer_groups = layer_groups(spec)
        p.layer_names = spec.names
        return p

    @property
    def _layer_base(self) -> np.ndarray:
        """Global index of each coding layer's first bit, and the total (L + 1,)."""
        return np.array((0, *itertools.accumulate(self.layer_sizes)), dtype=np.int64)

    @classmethod
    def _from_2d(cls, spec, st, bounds, M0, c0, tol):
        p = cls._common(spec, bounds, M0, c0, tol)
        p.dim = 2
        p.vertices, p.edge_labels, p.offsets = st.V, st.E, st.off
        p.areas, p.points = st.area, st.centroid
        p._he = st.he  # codes and edges are computed when first read
        p._words = st.words  # the codes packed by the compiled cut, or None
        return p

    @classmethod
    def _from_1d(cls, spec, pts, plab, bounds, M0, c0, tol):
        p = cls._common(spec, bounds, M0, c0, tol)
        p.dim = 1
        p.intervals = np.stack([pts[:-1], pts[1:]], axis=1)
        p.areas = pts[1:] - pts[:-1]
        p.points = (0.5 * (pts[:-1] + pts[1:]))[:, None]
        n = len(pts) - 1
        i = np.arange(n - 1)
        seg = np.repeat(pts[1:-1, None, None], 2, axis=1)
        p._set_edges(i, i + 1, plab[1:-1], seg)
        return p

    # -- computed on first use: codes and adjacency (partition() itself builds the regions) --
    @property
    def inputs(self) -> np.ndarray:
        if self._inputs is None:
            M0, c0 = self.plane_map
            self._inputs = c0[None, :] + self.points @ M0.T
        return self._inputs

    @property
    def codes(self) -> Codes:
        if self._codes is None:
            names = tuple(self.layer_names)
            if self._words is not None and len(names) == len(self.layer_sizes):
                # Packed by the compiled cut (all layers ReLU-type), in the Codes layout.
                self._codes = Codes._trusted(self._words, self.layer_sizes, names, self.layer_groups)
                self._words = None
            else:
                bits = forward_bits(self.spec, self.inputs)
                self._codes = Codes.from_bits(bits, self.layer_sizes, self.layer_names, self.layer_groups)
        return self._codes

    def _edge_arrays(self) -> tuple:
        if self._edges is None:
            b = self.bounds
            diam = math.hypot(b[1] - b[0], b[3] - b[2])
            grp = np.array(self.layer_groups, dtype=np.int64)
            self._edges = self._he.adjacency(10 * self.tol * diam, self._layer_base, grp)
            self._he = None
        return self._edges

    @property
    def edge_index(self) -> np.ndarray:
        return self._edge_arrays()[0]

    @property
    def edge_layer(self) -> np.ndarray:
        return self._edge_arrays()[1]

    @property
    def edge_unit(self) -> np.ndarray:
        return self._edge_arrays()[2]

    @property
    def edge_segments(self) -> np.ndarray:
        return self._edge_arrays()[3]

    def _set_edges(self, i, j, lab, segments) -> None:
        lab = np.asarray(lab, dtype=np.int64)
        edge_index = np.stack([i, j], axis=1).astype(np.int64)  # (E, 2), i < j
        base = self._layer_base
        layer = (np.searchsorted(base, lab, side="right") - 1).astype(np.int64)
        # One-hot layers: the unit is the max unit (a hop changes its argmax), not a bit.
        g = np.asarray(self.layer_groups, dtype=np.int64)[layer] if len(layer) else np.zeros(0, dtype=np.int64)
        unit = ((lab - base[layer]) // np.maximum(g, 1)).astype(np.int64)
        self._edges = (edge_index, layer, unit, segments)  # segments (E, 2, dim): the shared boundary piece

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
        self, weights: Sequence[float] | None = None, *, sources: Any = None, progress: bool | None = None,
        threads: int | None = None, out: np.ndarray | None = None,
    ) -> np.ndarray:
        """d_Omega between regions: hop distance, or with ``weights`` each hop costs its layer's weight.

        Parameters
        ----------
        weights : sequence of float, optional
            One positive weight per coding layer. Without weights, or with weights that are
            integer multiples (at most 64) of one unit, such as ``(1, 2, 3)`` or
            ``(0.5, 1.5)``, the distances are integer levels (times the unit, so equal to the
            weighted hop sums up to one rounding) from a compiled search over blocks of 64
            nearby sources (:mod:`vqgeom.geometry._dial`: seconds for all pairs of 20,000
            regions, ``benchmarks/results/partition.md``); other weights go through
            ``scipy.sparse.csgraph.shortest_path`` (Dijkstra, about 1-4 ms per source on a
            20,000-region graph).
        sources : array_like of int, optional
            Rows to compute (default: all regions).
        progress : bool, optional
            Show a tqdm bar; default: when there are more than 4096 sources.
        threads : int, optional
            Threads for the compiled search (default: the CPU count).
        out : ndarray float64 (len(sources), n_regions), optional
            Written in place and returned: one buffer reused over chunks of sources saves
            allocating (and the system zeroing) a fresh result every time.

        Returns
        -------
        ndarray float64 (len(sources), n_regions)
            ``inf`` between regions in different connected components. All pairs of
            ``R`` regions take ``8 R**2`` bytes (3.4 GB at 20,000): pass ``sources`` in
            chunks for larger partitions.
        """
        from ._dial import dial_distances, integer_weights, zorder

        adj = self.adjacency(weights)
        if sources is None:
            idx = np.arange(self.n_regions)
        else:
            idx = np.asarray(sources).reshape(-1)
            if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= self.n_regions)):
                raise ValueError(f"sources: expected region indices in [0, {self.n_regions}), got {idx[:10]}")
            idx = idx.astype(np.int64)
        show = idx.size > 4096 if progress is None else bool(progress)
        if out is not None and not (isinstance(out, np.ndarray) and out.dtype == np.float64
                                    and out.shape == (idx.size, self.n_regions) and out.flags.c_contiguous):
            raise ValueError(f"out: expected a C-contiguous float64 array of shape {(idx.size, self.n_regions)}, got "
                             f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}")
        if weights is None:
            ew, unit = np.ones(adj.indices.size, dtype=np.int64), 1.0
        else:
            iw = integer_weights(np.asarray(weights, dtype=np.float64).reshape(-1))
            if iw is None:
                from scipy.sparse.csgraph import shortest_path

                D = shortest_path(adj, method="D", directed=False, indices=idx)
                if out is None:
                    return D
                out[...] = D
                return out
            unit = iw[1]
            # adj.data holds each edge's layer weight: as integer multiples of the unit.
            ew = np.rint(adj.data / unit).astype(np.int64)
        # Nearby regions come close along a Z-curve of their positions (blocks of sources).
        return dial_distances(adj.indptr, adj.indices, ew, idx, zorder(self.points), unit=unit, threads=threads,
                              progress=show, out=out)

    def code_distances(self, weights: Sequence[float] | None = None, *, per_layer: bool = False) -> np.ndarray:
        """VQ distance between the regions' codes: (R, R) float64, or (L, R, R) int64 with ``per_layer``.

        As ``vqgeom.pairwise_distances``: one-hot (max-type) layers count one per unit whose
        argmax differs (``popcount(xor) / 2``).
        """
        bits = self.codes.unpack()
        out = []
        start = 0
        for b, g in zip(self.layer_sizes, self.layer_groups):
            s = np.where(bits[:, start : start + b], 1.0, -1.0)
            # +-1 Gram: Hamming = (b - <s, t>) / 2, exact in float64 for b < 2**52;
            # one-hot layers count popcount(xor) / 2 (one per changed argmax).
            out.append(np.rint((b - s @ s.T) / (4 if g >= 3 else 2)).astype(np.int64))
            start += b
        per = np.stack(out) if out else np.zeros((0, self.n_regions, self.n_regions), dtype=np.int64)
        if per_layer:
            return per
        w = np.ones(len(self.layer_sizes)) if weights is None else np.asarray(weights, dtype=np.float64)
        return np.tensordot(w, per.astype(np.float64), axes=1) if len(w) else np.zeros(per.shape[1:])
