"""Spectral embedding of the heat kernel ``exp(-d / sigma2)`` of a VQ-Kernel, without the
N x N matrix.

Heat kernels are not low rank, so their leading eigenpairs come from Lanczos iterations
(``scipy.sparse.linalg.eigsh``) on a streamed operator ``V -> K V``: on CUDA torch codes
one Triton kernel per product (:func:`vqgeom.kernels.triton.reductions.heat_matmat`,
memory O(N)); elsewhere row blocks of exact distances (memory O(block_rows * N)); on dask
codes a graph of tiles per product (see :func:`vqgeom.heat_matmat`).
"""

from __future__ import annotations

import dataclasses
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
    method: str = "auto",
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
        ``"triton"`` (CUDA torch codes, or cupy codes through DLPack unless ``"cupy"`` is
        named: streamed GPU products) or a CPU backend
        (see :mod:`vqgeom._backend`). Dask codes: Lanczos runs on the client over products
        computed tile by tile on the workers (:func:`vqgeom.heat_matmat`), each tile with
        this backend; ``eigenvectors`` and ``embedding`` come back as dask arrays.
    block_rows : int
        Rows per block on the CPU route, at most (shrunk so a float64 block stays near
        128 MB).
    tol : float
        Lanczos tolerance (the GPU products are float32: about 1e-6 relative).
    method : {"auto", "sym"}
        The Triton route's product kernel (see :func:`vqgeom.heat_matmat`; ``"sym"``: the
        symmetric kernel, opt-in until timed on a GPU).

    Returns
    -------
    HeatEmbedding

    Notes
    -----
    Memory: ``O(N k)`` for the Lanczos vectors plus one block of distances (CPU: about
    128 MB of float64 rows; GPU: the streamed kernel's tiles), never the ``N x N`` kernel.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    if not isinstance(codes, Codes):
        raise TypeError(f"codes: expected vqgeom.Codes, got {type(codes).__name__}")
    s2 = check_positive_scalar(sigma2, "sigma2")
    k = check_int(n_components, "n_components")
    block_rows = check_int(block_rows, "block_rows")
    n = codes.n
    if k >= n:
        raise ValueError(f"n_components: expected fewer than the {n} rows, got {k}")
    if method not in ("auto", "sym"):
        raise ValueError(f"method: expected 'auto' or 'sym', got {method!r}")
    from .distances import codes_weights
    from .heat import heat_matmat

    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared: expected a bool, got {type(squared).__name__} {squared!r}")
    tol = float(check_positive_scalar(tol, "tol")) if tol != 0 else 0.0
    wt = codes_weights(codes, weights)
    if codes.array_type == "dask":
        # Lanczos runs here; each product is a graph of tiles on the workers. The codes are
        # persisted once so that the iterations do not recompute them (e.g. re-encode).
        codes = dataclasses.replace(codes, words=codes.words.persist())

    def matmat(V: np.ndarray) -> np.ndarray:
        # triton: float32 products on the GPU; CPU: float64 row blocks; dask: graphs of tiles
        out = heat_matmat(codes, np.asarray(V, dtype=np.float64).reshape(n, -1), s2, weights=wt, squared=squared,
                          backend=backend, block_rows=block_rows, method=method)
        return to_numpy(out).astype(np.float64).reshape(n, -1)

    op = LinearOperator((n, n), matvec=lambda v: matmat(v)[:, 0], matmat=matmat, dtype=np.float64)
    vals, vecs = eigsh(op, k=k, which="LA", tol=tol, v0=np.ones(n) / np.sqrt(n))
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    for j in range(k):
        if vecs[np.argmax(np.abs(vecs[:, j])), j] < 0:
            vecs[:, j] = -vecs[:, j]
    if codes.array_type == "dask":  # N-row results chunked like the codes
        import dask.array as da

        vecs = da.from_array(vecs, chunks=(codes.words.chunks[0], -1))
    return HeatEmbedding(vals, vecs, vecs * np.sqrt(np.maximum(vals, 0.0)))
