"""Spectral embedding of the heat kernel ``exp(-d / sigma2)`` of a VQ-Kernel, without the
N x N matrix.

Heat kernels are not low rank, so their leading eigenpairs come from Lanczos iterations
(``scipy.sparse.linalg.eigsh``) on a streamed operator ``V -> K V``: on CUDA torch codes
one Triton kernel per product (:func:`vqgeom.kernels.triton.reductions.heat_matmat`,
memory O(N)); elsewhere row blocks of exact distances (memory O(block_rows * N)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import to_numpy
from ._validate import check_int, check_positive_scalar
from .codes import Codes

__all__ = ["heat_embedding", "HeatEmbedding"]


@dataclass
class HeatEmbedding:
    """Leading eigenpairs of a heat kernel.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        Largest first (algebraic).
    eigenvectors : ndarray (N, k)
        Unit columns, each signed so that its largest-magnitude entry is positive.
    embedding : ndarray (N, k)
        ``eigenvectors * sqrt(max(eigenvalues, 0))`` (kernel-PCA coordinates).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    embedding: np.ndarray


def heat_embedding(
    codes: Codes,
    sigma2: float,
    n_components: int = 3,
    *,
    weights: Any = None,
    squared: bool = False,
    backend: str = "auto",
    block_rows: int = 1024,
    tol: float = 1e-6,
) -> HeatEmbedding:
    """The ``n_components`` leading eigenpairs of ``K = exp(-d / sigma2)`` over ``codes``.

    Parameters
    ----------
    codes : Codes, N rows
    sigma2 : float > 0
    n_components : int, ``1 <= n_components < N``
    weights : per-layer weights of the VQ distance, optional
    squared : bool
        ``exp(-d**2 / sigma2)`` (Appendix A.2) instead.
    backend : str
        ``"triton"`` (CUDA torch codes: streamed GPU products) or a CPU backend
        (see :mod:`vqgeom._backend`).
    block_rows : int
        Rows per block on the CPU route, at most (shrunk so a float64 block stays near
        128 MB).
    tol : float
        Lanczos tolerance (the GPU products are float32: about 1e-6 relative).

    Returns
    -------
    HeatEmbedding

    Notes
    -----
    Memory: ``O(N k)`` for the Lanczos vectors plus one block of distances (CPU: about
    128 MB of float64 rows; GPU: the streamed kernel's tiles), never the ``N x N`` kernel.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    from ._backend import resolve_backend

    if not isinstance(codes, Codes):
        raise TypeError(f"codes: expected vqgeom.Codes, got {type(codes).__name__}")
    s2 = check_positive_scalar(sigma2, "sigma2")
    k = check_int(n_components, "n_components")
    block_rows = check_int(block_rows, "block_rows")
    n = codes.n
    if k >= n:
        raise ValueError(f"n_components: expected fewer than the {n} rows, got {k}")
    from .distances import _distances, codes_weights

    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared: expected a bool, got {type(squared).__name__} {squared!r}")
    tol = float(check_positive_scalar(tol, "tol")) if tol != 0 else 0.0
    wt = codes_weights(codes, weights)
    name = resolve_backend(backend, codes.words)
    if name == "triton":
        import torch

        from .kernels.triton import reductions

        def matmat(V: np.ndarray) -> np.ndarray:
            Vt = torch.as_tensor(np.asarray(V, dtype=np.float32).reshape(n, -1), device=codes.words.device)
            out = reductions.heat_matmat(codes.words, codes.layer_sizes, Vt, s2, weights=wt.kernel, squared=squared,
                                         divisor=wt.divisor)
            return out.double().cpu().numpy()

    else:
        # Row blocks of at most ~128 MB of float64 (the block, its square and exponential).
        rows = int(max(1, min(block_rows, (128 << 20) // (24 * n))))

        def matmat(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, dtype=np.float64).reshape(n, -1)
            out = np.empty_like(V)
            for r in range(0, n, rows):
                D = to_numpy(_distances(codes[r : r + rows], codes, wt, name)).astype(np.float64)
                out[r : r + D.shape[0]] = np.exp(-(D * D if squared else D) / s2) @ V
            return out

    op = LinearOperator((n, n), matvec=lambda v: matmat(v)[:, 0], matmat=matmat, dtype=np.float64)
    vals, vecs = eigsh(op, k=k, which="LA", tol=tol, v0=np.ones(n) / np.sqrt(n))
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    for j in range(k):
        if vecs[np.argmax(np.abs(vecs[:, j])), j] < 0:
            vecs[:, j] = -vecs[:, j]
    return HeatEmbedding(vals, vecs, vecs * np.sqrt(np.maximum(vals, 0.0)))
