"""The MDS of a VQ-Kernel (Appendix A.1 and ERRATA item 3).

The paper's MDS matrix is ``B = (I - J/N) K (I - J/N)``. For ±1 codes,
``Hamming(s, t) = ||s - t||^2 / 4``, so with ``S_w`` the codes scaled by ``sqrt(w_l)`` and
``C = I - J/N``, ``B = -1/2 (C S_w)(C S_w)^T``: negative semidefinite, its dominant
(largest-magnitude) eigenpairs are the principal components of the centred codes.
Given codes, :func:`mds` takes that route — ``O(N B^2)``, no ``N x N`` matrix.

``K`` is a matrix of squared Euclidean distances (of ``S_w / 2``), so the classical
MDS coordinates are ``v_k * sqrt(-lambda_k / 2)``: the centred codes' PCA scores / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import array_module, like_input, to_numpy
from ._validate import check_int
from .codes import Codes

__all__ = ["mds", "MDSResult"]


@dataclass
class MDSResult:
    """Dominant eigenpairs of the MDS matrix ``B`` and the MDS coordinates.

    Attributes
    ----------
    eigenvalues : array (k,)
        Eigenvalues of ``B``, largest magnitude first, divided by the leading one
        (so ``eigenvalues[0] == 1`` and, for a VQ-Kernel, all are in ``[0, 1]``).
    raw_eigenvalues : array (k,)
        The eigenvalues of ``B`` themselves (non-positive for a VQ-Kernel).
    eigenvectors : array (N, k)
        Unit eigenvectors; each column's sign is fixed so that its largest-magnitude
        entry is positive. A column whose eigenvalue is zero up to rounding (beyond the
        rank of ``B``: any vector of the null space would do) is returned as zeros, and
        its eigenvalue as exactly 0, on both routes.
    embedding : array (N, k)
        Classical MDS coordinates, ``eigenvectors * sqrt(max(-raw_eigenvalues / 2, 0))``.
    """

    eigenvalues: Any
    raw_eigenvalues: Any
    eigenvectors: Any
    embedding: Any


def _fix_signs(vecs: np.ndarray) -> np.ndarray:
    idx = np.argmax(np.abs(vecs), axis=0)
    signs = np.sign(vecs[idx, np.arange(vecs.shape[1])])
    signs[signs == 0] = 1
    return vecs * signs


def mds(K_or_codes: Any, n_components: int = 3, *, weights: Any = None) -> MDSResult:
    """Dominant eigenpairs of ``B = (I - J/N) K (I - J/N)`` and classical MDS coordinates.

    Parameters
    ----------
    K_or_codes : Codes, or array (N, N)
        Codes (exact route through the centred codes, no ``N x N`` matrix) or a
        symmetric distance matrix such as a VQ-Kernel (dense route). Dask codes: the column
        means and the ``B x B`` Gram matrix are tree reductions over row blocks; eigenvalues
        come back as numpy, eigenvectors and embedding as lazy dask arrays.
    n_components : int
        Number of eigenpairs ``k``.
    weights : per-layer weights, with Codes only
        Must match the weights the kernel would use.

    Returns
    -------
    MDSResult
        Arrays in the input's array type (codes: their words' type).

    Notes
    -----
    Memory: from codes, the centred float64 codes ``N x B`` (8 N B bytes) and the ``B x B``
    Gram matrix; from a matrix, a float64 copy of ``K`` and its centred form.
    """
    k = check_int(n_components, "n_components")
    if isinstance(K_or_codes, Codes):
        vals, vecs = _from_codes(K_or_codes, k, weights)
        like = K_or_codes.words
    else:
        if weights is not None:
            raise ValueError("weights: only used with Codes; a kernel matrix already includes its weights")
        vals, vecs = _from_matrix(K_or_codes, k)
        like = K_or_codes
    if vals[0] == 0:
        raise ValueError("K_or_codes: the MDS matrix is zero (all inputs have the same code); nothing to embed")
    emb = vecs * np.sqrt(np.maximum(-vals / 2.0, 0.0))
    if array_module(like) in ("numpy", "dask"):  # dask: numpy eigenvalues, lazy (N, k) arrays
        return MDSResult(vals / vals[0], vals, vecs, emb)
    return MDSResult(*(like_input(a, like) for a in (vals / vals[0], vals, vecs, emb)))


def _from_codes(codes: Codes, k: int, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    from .distances import codes_weights

    wt = codes_weights(codes, weights)
    w = np.asarray(wt.kernel, dtype=np.float64) / wt.divisor if wt.kernel is not None else None
    n, b = codes.n, codes.n_units
    if k > min(n, b):
        raise ValueError(f"n_components: expected at most min(N, B) = {min(n, b)} for {n} codes of {b} units, got {k}")
    if codes.array_type == "dask":  # the B x B Gram as a tree reduction (vqgeom._dask)
        from . import _dask

        return _dask.mds_from_codes(codes, k, w)
    scale = np.repeat(np.sqrt(np.ones(codes.n_layers) if w is None else w), codes.layer_sizes)
    S = codes.unpack().astype(np.float64)
    S = (2.0 * S - 1.0) * scale
    S -= S.mean(axis=0)
    # B = -1/2 (CS)(CS)^T: eigenpairs from the B x B Gram matrix (CS)^T (CS) = V diag(s^2) V^T.
    G = S.T @ S
    ev, V = np.linalg.eigh(G)
    order = np.argsort(-ev, kind="stable")[:k]
    ev, V = np.clip(ev[order], 0.0, None), V[:, order]
    U = S @ V
    norms = np.linalg.norm(U, axis=0)
    U = np.divide(U, norms, out=np.zeros_like(U), where=norms > 0)
    vals, U = _null_columns(-0.5 * ev, U, max(n, b))
    return vals, _fix_signs(U)


def _null_columns(vals: np.ndarray, vecs: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues at rounding level (``|lambda| <= size * eps * max |lambda|``, the error
    bound of a symmetric eigensolver on a ``size x size`` matrix) are zero, and their
    eigenvectors, which rounding alone picks, are returned as zero columns."""
    top = float(np.abs(vals).max(initial=0.0))
    null = np.abs(vals) <= size * np.finfo(np.float64).eps * top
    vals = np.where(null, 0.0, vals)
    vecs = np.where(null[None, :], 0.0, vecs)
    return vals, vecs


def _from_matrix(K: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    K = to_numpy(K)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K_or_codes: expected Codes or a square (N, N) matrix, got shape {K.shape}")
    if K.dtype.kind not in "biuf":
        raise TypeError(f"K_or_codes: expected a real-valued matrix, got dtype {K.dtype}")
    K = K.astype(np.float64)
    if not np.isfinite(K).all():
        raise ValueError("K_or_codes: expected finite values, got NaN or inf")
    n = K.shape[0]
    if k > n:
        raise ValueError(f"n_components: expected at most N = {n}, got {k}")
    scale = max(1.0, float(np.abs(K).max()))
    if np.abs(K - K.T).max() > 1e-9 * scale:
        raise ValueError("K_or_codes: expected a symmetric matrix, got an asymmetric one")
    Bm = K - K.mean(axis=0, keepdims=True)
    Bm -= Bm.mean(axis=1, keepdims=True)
    Bm = (Bm + Bm.T) / 2
    if n <= 2000 or k >= n - 1:
        vals, vecs = np.linalg.eigh(Bm)
    else:
        from scipy.sparse.linalg import eigsh

        vals, vecs = eigsh(Bm, k=k, which="LM")
    order = np.argsort(-np.abs(vals), kind="stable")[:k]
    vals, vecs = _null_columns(vals[order], vecs[:, order], n)
    return vals, _fix_signs(vecs)
