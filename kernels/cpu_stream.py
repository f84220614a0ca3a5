"""Fused CPU reductions over blocks of distances, compiled by numba: k-NN selection and
heat-kernel products, applied to a small (cache-resident) block of distances as soon as the
distance kernel (:mod:`vqgeom.kernels.cpu`) has written it, so no large matrix and no
``exp`` per pair is ever needed.

Imported lazily by :mod:`vqgeom._cpu_stream` (``import vqgeom`` does not load numba). Every
function releases the GIL: callers run one block per Python thread.

k-NN (:func:`topk_update`)
    Each row keeps its ``k`` best ``(distance, column)`` pairs sorted lexicographically
    (ties to the smaller column: the library's tie rule). Columns arrive in increasing
    order, so a new entry enters only when it is strictly below the row's current worst,
    and goes after every kept entry of equal distance. The scan tests 32 columns at a time
    against the worst (vectorised compares, OR-reduced) and only looks at single entries in
    the rare groups that hold a candidate.

Heat kernel (:func:`heat_table`, :func:`heat_exp`)
    ``out[r, c] += sum_j h(D[r, j]) * Vt[c, c0 + j]``. Integer distances take ``h`` from a table
    of ``exp(-d / sigma2)`` for ``d = 0 .. max distance`` (computed once by numpy: the same
    values as ``np.exp`` on the distance matrix); real (or huge integer) distances call
    ``exp`` per pair. The row of ``h`` is built once and reused for every column of ``V``.
    Sums are reassociated (vectorised): the order differs from a BLAS product, a relative
    difference of a few ulp per row for these positive terms.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["topk_update", "heat_table", "heat_exp", "GROUP"]

GROUP = 32  # columns tested against a row's worst at once


@njit(cache=True, nogil=True, boundscheck=False)
def _insert(bd, bi, f, d, idx):
    """Insert ``(d, idx)`` (``idx`` above every kept index) into the sorted ``bd[:f]``; when
    ``f == len(bd)`` the last entry is dropped. Returns the new fill."""
    k = bd.shape[0]
    p = f if f < k else k - 1
    while p > 0 and bd[p - 1] > d:
        bd[p] = bd[p - 1]
        bi[p] = bi[p - 1]
        p -= 1
    bd[p] = d
    bi[p] = idx
    return f + 1 if f < k else k


@njit(cache=True, nogil=True, boundscheck=False)
def topk_update(D, c0, own0, best_d, best_i, fill):
    """Merge a block of distances into each row's best ``k``.

    Parameters
    ----------
    D : (R, C) distances (any integer dtype or float64), column ``j`` is global column ``c0 + j``
    c0 : int
    own0 : int
        Row ``r``'s own column is local column ``own0 + r`` (skipped); pass a value that puts
        it out of range (e.g. ``-2**62``) to keep every column.
    best_d : (R, k) of ``D``'s dtype, best_i : (R, k) int64, fill : (R,) int64
        Each row's kept entries ``[:fill[r]]``, sorted by (distance, index); updated in place.
    """
    R, C = D.shape
    k = best_d.shape[1]
    for r in range(R):
        row = D[r]
        bd = best_d[r]
        bi = best_i[r]
        f = fill[r]
        own = own0 + r
        j = 0
        while f < k and j < C:  # the first k columns enter unconditionally
            if j != own:
                f = _insert(bd, bi, f, row[j], c0 + j)
            j += 1
        if f == k:
            worst = bd[k - 1]
            while j < C:
                e = min(j + GROUP, C)
                hit = False
                for q in range(j, e):  # vectorised: one compare per lane, OR-reduced
                    hit |= row[q] < worst
                if hit:
                    for q in range(j, e):
                        if row[q] < worst and q != own:
                            _insert(bd, bi, k, row[q], c0 + q)
                            worst = bd[k - 1]
                j = e
        fill[r] = f


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "nsz", "contract"})
def _dots(h, Vt, c0, out_row):
    C = h.shape[0]
    for c in range(Vt.shape[0]):
        v = Vt[c, c0 : c0 + C]
        acc = 0.0
        for j in range(C):
            acc += h[j] * v[j]
        out_row[c] += acc


@njit(cache=True, nogil=True, boundscheck=False)
def heat_table(D, table, Vt, c0, out):
    """``out[r, c] += sum_j table[D[r, j]] * Vt[c, c0 + j]`` for integer ``D`` (R, C), ``Vt`` (p, M)."""
    R, C = D.shape
    h = np.empty(C)
    for r in range(R):
        row = D[r]
        for j in range(C):
            h[j] = table[row[j]]
        _dots(h, Vt, c0, out[r])


@njit(cache=True, nogil=True, boundscheck=False)
def heat_exp(D, s2, squared, Vt, c0, out):
    """``out[r, c] += sum_j exp(-x / s2) * Vt[c, c0 + j]``, ``x = D[r, j]`` (``D[r, j]**2`` when
    ``squared``), in float64 for any dtype of ``D``."""
    R, C = D.shape
    h = np.empty(C)
    for r in range(R):
        row = D[r]
        for j in range(C):
            x = np.float64(row[j])
            if squared:
                x = x * x
            h[j] = np.exp(-x / s2)
        _dots(h, Vt, c0, out[r])
