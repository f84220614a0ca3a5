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
``None``                     no activation: an output layer, which adds no bits

For a two-threshold activation the layer's units are threshold-major: first the
``pre >= lo`` bit of every unit, then the ``pre >= hi`` bit of every unit.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "mlp_bits",
    "hyperplane_bits",
    "activate",
    "thresholds",
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
    raise ValueError(f"act: unknown activation spec {act!r}")


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


def layer_hamming(bits_x: np.ndarray, bits_y: np.ndarray, layer_sizes: Sequence[int]) -> np.ndarray:
    """Per-layer Hamming distances ``(L, N, M)`` (int64), unit by unit."""
    bits_x = np.asarray(bits_x, dtype=bool)
    bits_y = np.asarray(bits_y, dtype=bool)
    out = np.zeros((len(layer_sizes), bits_x.shape[0], bits_y.shape[0]), dtype=np.int64)
    start = 0
    for l, b in enumerate(layer_sizes):
        for u in range(start, start + b):
            out[l] += bits_x[:, u][:, None] != bits_y[:, u][None, :]
        start += b
    return out


def hamming(
    bits_x: np.ndarray,
    bits_y: np.ndarray,
    layer_sizes: Sequence[int],
    weights: Sequence[float] | None = None,
    halved: Sequence[bool] | None = None,
) -> np.ndarray:
    """``d(x_i, y_j) = sum_l w_l * Hamming_l``, Hamming_l halved for the ``halved`` layers.

    Integer weights (every value integral, of any type) give exact Python integers (an
    object array): no float rounding at any size. Real weights give float64, one term
    ``w_l * Hamming_l`` per layer added in layer order.
    """
    per = layer_hamming(bits_x, bits_y, layer_sizes)
    half = [False] * len(layer_sizes) if halved is None else [bool(h) for h in halved]
    for l, h in enumerate(half):
        if h:
            if np.any(per[l] % 2):
                raise ValueError(f"halved: layer {l} has an odd Hamming distance; it cannot be halved")
            per[l] //= 2
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
