"""The numpy oracle: explicit, slow and obviously right (integers exact, reals in float64).

Every fast path in vqgeom (CPU, Triton, CuPy) is tested against the functions here
and nothing else. Nothing in this module is optimised, and nothing here packs bits:
codes are plain boolean matrices ``(N, B)``, units in layer-major order, a unit's
bit set iff its pre-activation is ``>= 0``.

Activation specs understood by :func:`mlp_bits` (one hyperplane per threshold):

``"relu"``                   one threshold at 0
``("leaky", slope)``         one threshold at 0 (LeakyReLU / PReLU with a scalar slope)
``("prelu", slopes)``        one threshold at 0, one slope per unit
``("hardtanh", lo, hi)``     two thresholds, ``lo`` then ``hi`` (ReLU6 is ``("hardtanh", 0, 6)``)
``("clamp_min", lo)``        one threshold at ``lo`` (``max(pre, lo)``)
``("clamp_max", hi)``        one threshold at ``hi`` (``min(pre, hi)``)
``("hardsigmoid",)``         two thresholds, -3 then 3 (``clip(pre / 6 + 1/2, 0, 1)``)
``("softshrink", lam)``      two thresholds, ``-lam`` then ``lam``
``("abs",)``                 one threshold at 0
``("maxout", k)``            max over consecutive groups of ``k`` units (``("minout", k)``: min)
``None``                     no activation: an output layer, which adds no bits

For a two-threshold activation the layer's units are threshold-major: first the
``pre >= lo`` bit of every unit, then the ``pre >= hi`` bit of every unit.

Max-type units (a max over ``k`` candidates: maxout groups, max-pooling windows) are
coded by the index of the first maximal candidate (argmin for ``minout``): for ``k == 2``
one bit, set iff that index is 0; for ``k >= 3`` a one-hot group of ``g`` bits (``g`` the
layer's largest window), whose layer distance is half the number of differing bits
(:func:`layer_hamming` with ``groups``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "mlp_bits",
    "hyperplane_bits",
    "activate",
    "thresholds",
    "max_pool_index",
    "adaptive_max_pool_index",
    "reduce_max_index",
    "max_bits",
    "layer_hamming",
    "hamming",
    "heat_kernel",
    "cosine_similarity",
    "mds_dense",
    "knn",
]


def thresholds(act: Any) -> list[float]:
    """The pre-activation values at which ``act`` bends (one bit each)."""
    if act is None:
        return []
    if act == "relu":
        return [0.0]
    kind = act[0]
    if kind in ("leaky", "prelu"):
        return [0.0]
    if kind == "hardtanh":
        return [float(act[1]), float(act[2])]
    if kind in ("clamp_min", "clamp_max"):
        return [float(act[1])]
    if kind == "hardsigmoid":
        return [-3.0, 3.0]
    if kind == "softshrink":
        return [-float(act[1]), float(act[1])]
    if kind == "abs":
        return [0.0]
    if kind in ("maxout", "minout"):
        return []
    raise ValueError(f"act: unknown activation spec {act!r}")


def activate(pre: np.ndarray, act: Any) -> np.ndarray:
    """Apply an activation spec elementwise (float64)."""
    if act is None:
        return pre
    if act == "relu":
        return np.where(pre > 0, pre, 0.0)
    kind = act[0]
    if kind == "leaky":
        return np.where(pre >= 0, pre, float(act[1]) * pre)
    if kind == "prelu":
        slopes = np.asarray(act[1], dtype=np.float64)
        return np.where(pre >= 0, pre, slopes * pre)
    if kind == "hardtanh":
        return np.minimum(np.maximum(pre, float(act[1])), float(act[2]))
    if kind == "clamp_min":
        return np.where(pre >= float(act[1]), pre, float(act[1]))
    if kind == "clamp_max":
        return np.where(pre >= float(act[1]), float(act[1]), pre)
    if kind == "hardsigmoid":
        return np.where(pre >= 3.0, 1.0, np.where(pre >= -3.0, pre / 6.0 + 0.5, 0.0))
    if kind == "softshrink":
        lam = float(act[1])
        return np.where(pre >= lam, pre - lam, np.where(pre >= -lam, 0.0, pre + lam))
    if kind == "abs":
        return np.where(pre >= 0, pre, -pre)
    if kind in ("maxout", "minout"):
        k = int(act[1])
        out = np.empty((pre.shape[0], pre.shape[1] // k))
        for j in range(out.shape[1]):
            group = pre[:, j * k : (j + 1) * k]
            out[:, j] = group.max(axis=1) if kind == "maxout" else group.min(axis=1)
        return out
    raise ValueError(f"act: unknown activation spec {act!r}")


def _first_best(cands: list[float], minimum: bool = False) -> int:
    """Index of the first maximal (minimal) entry of a list, by an explicit scan."""
    best = 0
    for i in range(1, len(cands)):
        if (cands[i] < cands[best]) if minimum else (cands[i] > cands[best]):
            best = i
    return best


def max_bits(index: np.ndarray, g: int) -> np.ndarray:
    """Code bits of max-type units from their candidate indices ``(N, M)``.

    ``g == 2``: one bit per unit, set iff the index is 0; ``g >= 3``: ``g`` bits per unit,
    bit ``u * g + index`` set; ``g == 1``: no bits.
    """
    index = np.asarray(index)
    n, m = index.shape
    if g == 1:
        return np.zeros((n, 0), dtype=bool)
    if g == 2:
        return index == 0
    out = np.zeros((n, m * g), dtype=bool)
    for i in range(n):
        for u in range(m):
            out[i, u * g + int(index[i, u])] = True
    return out


def _pool_out(L: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = L + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= L + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


def max_pool_index(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max-pooling by explicit loops over windows.

    ``x`` is ``(N, C, *spatial)`` with ``nd = len(kernel_size)`` spatial dims. Returns the
    pooled values ``(N, C, *out)`` and, per output, the candidate index of the first
    maximal value in row-major kernel order (padded candidates are never chosen), and
    the group width ``prod(kernel_size)``.
    """
    x = np.asarray(x, dtype=np.float64)
    ks = tuple(int(k) for k in kernel_size)
    nd = len(ks)
    st = ks if stride is None else tuple(int(v) for v in stride)
    pad = tuple(int(v) for v in (padding if np.ndim(padding) else [padding] * nd))
    dil = tuple(int(v) for v in (dilation if np.ndim(dilation) else [dilation] * nd))
    sp = x.shape[2:]
    out_sp = tuple(_pool_out(sp[d], ks[d], st[d], pad[d], dil[d], ceil_mode) for d in range(nd))
    lead = x.shape[:2]
    vals = np.empty(lead + out_sp)
    idx = np.empty(lead + out_sp, dtype=np.int64)
    offsets = list(np.ndindex(*ks))  # row-major kernel order
    for nc in np.ndindex(*lead):
        for o in np.ndindex(*out_sp):
            cands, where = [], []
            for j, kk in enumerate(offsets):
                pos = tuple(o[d] * st[d] - pad[d] + kk[d] * dil[d] for d in range(nd))
                if all(0 <= pos[d] < sp[d] for d in range(nd)):
                    cands.append(x[nc + pos])
                    where.append(j)
            b = _first_best(cands)
            vals[nc + o], idx[nc + o] = cands[b], where[b]
    return vals, idx, int(np.prod(ks))


def adaptive_max_pool_index(x, output_size):
    """Adaptive max-pooling by explicit loops: window ``i`` of a dim spans
    ``[floor(i L / out), ceil((i + 1) L / out))``. Returns values, the first max's index in
    the window's own row-major order, and the group width (the largest window's size)."""
    x = np.asarray(x, dtype=np.float64)
    out_sp = tuple(int(v) for v in output_size)
    nd = len(out_sp)
    sp = x.shape[2:]
    wins = [[(i * sp[d] // out_sp[d], -(-(i + 1) * sp[d] // out_sp[d])) for i in range(out_sp[d])] for d in range(nd)]
    lead = x.shape[:2]
    vals = np.empty(lead + out_sp)
    idx = np.empty(lead + out_sp, dtype=np.int64)
    for nc in np.ndindex(*lead):
        for o in np.ndindex(*out_sp):
            ranges = [range(wins[d][o[d]][0], wins[d][o[d]][1]) for d in range(nd)]
            cands = [x[nc + pos] for pos in _product(ranges)]
            b = _first_best(cands)
            vals[nc + o], idx[nc + o] = cands[b], b
    g = 1
    for d in range(nd):
        g *= max(e - s for s, e in wins[d])
    return vals, idx, g


def _product(ranges):
    if not ranges:
        yield ()
        return
    for a in ranges[0]:
        for rest in _product(ranges[1:]):
            yield (a,) + rest


def reduce_max_index(x, dims, minimum=False):
    """Max (min) over the axes ``dims`` by an explicit scan in their row-major order.

    Returns values and the first best candidate's index (shape of ``x`` without ``dims``)
    and ``k``, the number of candidates."""
    x = np.asarray(x, dtype=np.float64)
    dims = sorted(d % x.ndim for d in dims)
    keep = [d for d in range(x.ndim) if d not in dims]
    moved = np.transpose(x, keep + dims)
    k = int(np.prod([x.shape[d] for d in dims]))
    flat = moved.reshape(moved.shape[: len(keep)] + (k,))
    vals = np.empty(flat.shape[:-1])
    idx = np.empty(flat.shape[:-1], dtype=np.int64)
    for o in np.ndindex(*flat.shape[:-1]):
        b = _first_best(list(flat[o]), minimum)
        vals[o], idx[o] = flat[o][b], b
    return vals, idx, k


def mlp_bits(layers: Sequence[tuple], X: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Codes of an MLP given as ``[(A, b, act), ...]`` with ``A`` of shape (out, in).

    Returns the boolean code matrix ``(N, B)`` and the per-layer unit counts
    (layers with ``act=None`` contribute nothing).
    """
    z = np.asarray(X, dtype=np.float64)
    columns: list[np.ndarray] = []
    sizes: list[int] = []
    for A, b, act in layers:
        A = np.asarray(A, dtype=np.float64)
        b = np.zeros(A.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
        pre = np.empty((z.shape[0], A.shape[0]))
        for i in range(z.shape[0]):  # explicit rows: no BLAS reassociation surprises
            pre[i] = A @ z[i] + b
        if act is not None and act != "relu" and act[0] in ("maxout", "minout"):
            k = int(act[1])
            idx = np.empty((pre.shape[0], pre.shape[1] // k), dtype=np.int64)
            for j in range(idx.shape[1]):
                for i in range(pre.shape[0]):
                    idx[i, j] = _first_best(list(pre[i, j * k : (j + 1) * k]), act[0] == "minout")
            if k >= 2:
                columns.append(max_bits(idx, k))
                sizes.append(columns[-1].shape[1])
            z = activate(pre, act)
            continue
        ths = thresholds(act)
        for t in ths:
            columns.append(pre >= t)
        if ths:
            sizes.append(len(ths) * A.shape[0])
        z = activate(pre, act)
    bits = np.concatenate(columns, axis=1) if columns else np.zeros((z.shape[0], 0), dtype=bool)
    return bits, sizes


def hyperplane_bits(normals: np.ndarray, offsets: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``bits[i, h] = <normals[h], X[i]> + offsets[h] >= 0`` (one layer)."""
    normals = np.asarray(normals, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], normals.shape[0]), dtype=bool)
    for i in range(X.shape[0]):
        for h in range(normals.shape[0]):
            out[i, h] = float(np.dot(normals[h], X[i])) + offsets[h] >= 0
    return out


def layer_hamming(
    bits_x: np.ndarray, bits_y: np.ndarray, layer_sizes: Sequence[int], groups: Sequence[int] | None = None
) -> np.ndarray:
    """Per-layer distances ``(L, N, M)`` (int64), unit by unit.

    ``groups[l] == 1`` (default): the number of differing bits. ``groups[l] = g >= 3``: the
    layer is one-hot groups of ``g`` bits, one per max-type unit, and its distance is the
    number of groups whose set bit differs.
    """
    bits_x = np.asarray(bits_x, dtype=bool)
    bits_y = np.asarray(bits_y, dtype=bool)
    groups = [1] * len(layer_sizes) if groups is None else [int(g) for g in groups]
    out = np.zeros((len(layer_sizes), bits_x.shape[0], bits_y.shape[0]), dtype=np.int64)
    start = 0
    for l, b in enumerate(layer_sizes):
        g = groups[l]
        if g == 1:
            for u in range(start, start + b):
                out[l] += bits_x[:, u][:, None] != bits_y[:, u][None, :]
        else:
            for u in range(start, start + b, g):  # one max-type unit: do the set bits differ?
                ix = np.argmax(bits_x[:, u : u + g], axis=1)
                iy = np.argmax(bits_y[:, u : u + g], axis=1)
                out[l] += ix[:, None] != iy[None, :]
        start += b
    return out


def hamming(
    bits_x: np.ndarray,
    bits_y: np.ndarray,
    layer_sizes: Sequence[int],
    weights: Sequence[float] | None = None,
    groups: Sequence[int] | None = None,
) -> np.ndarray:
    """``d(x_i, y_j) = sum_l w_l * d_l``, ``d_l`` from :func:`layer_hamming` (``groups`` as there).

    Integer weights (every value integral, of any type) give exact integers: int64 while
    ``sum_l w_l B_l`` fits, Python integers (an object array) beyond; never float rounding.
    Real weights give float64, one term ``w_l * d_l`` per layer added in layer order.
    """
    per = layer_hamming(bits_x, bits_y, layer_sizes, groups)
    w = [1] * len(layer_sizes) if weights is None else list(np.asarray(weights, dtype=object).ravel())
    if all(isinstance(v, (int, np.integer)) or float(v).is_integer() for v in w):
        w = [int(v) for v in w]
        # int64 while the largest possible sum fits (no partial sum can exceed it), else
        # Python integers.
        bound = sum(v * int(b) for v, b in zip(w, layer_sizes))
        out = np.zeros(per.shape[1:], dtype=np.int64 if bound <= 2**63 - 1 else object)
        for l in range(len(layer_sizes)):
            if int(layer_sizes[l]) == 0:
                continue
            out = out + (w[l] * per[l] if out.dtype == np.int64 else w[l] * per[l].astype(object))
        return out
    out = np.zeros(per.shape[1:])
    for l in range(len(layer_sizes)):
        out += float(w[l]) * per[l].astype(np.float64)
    return out


def heat_kernel(K: np.ndarray, sigma2: float, squared: bool = False) -> np.ndarray:
    """``exp(-K / sigma2)``, or ``exp(-K**2 / sigma2)`` with ``squared=True``."""
    K = np.asarray(K, dtype=np.float64)
    return np.exp(-(K**2 if squared else K) / float(sigma2))


def cosine_similarity(A: np.ndarray, B: np.ndarray) -> float:
    """Frobenius cosine ``<A, B> / (||A|| ||B||)``."""
    A = np.asarray(A, dtype=np.float64).ravel()
    B = np.asarray(B, dtype=np.float64).ravel()
    return float(np.dot(A, B) / (np.sqrt(np.dot(A, A)) * np.sqrt(np.dot(B, B))))


def mds_dense(K: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of ``B = (I - J/N) K (I - J/N)`` with the ``k`` largest magnitudes.

    Returns raw eigenvalues (largest magnitude first) and unit eigenvectors ``(N, k)``,
    each vector's sign fixed so that its largest-magnitude entry is positive.
    """
    K = np.asarray(K, dtype=np.float64)
    n = K.shape[0]
    C = np.eye(n) - np.ones((n, n)) / n
    Bm = C @ K @ C
    vals, vecs = np.linalg.eigh((Bm + Bm.T) / 2)
    order = np.argsort(-np.abs(vals), kind="stable")[:k]
    vals, vecs = vals[order], vecs[:, order]
    for j in range(vecs.shape[1]):
        if vecs[np.argmax(np.abs(vecs[:, j])), j] < 0:
            vecs[:, j] = -vecs[:, j]
    return vals, vecs


def knn(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` smallest distances, ties broken by the smaller column index."""
    D = np.asarray(D)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, idx, axis=1), idx
