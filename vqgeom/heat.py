"""Heat kernels of VQ-Kernels and comparing networks through them (Section 3.1, Fig. 3/4).

Two forms exist in the paper (see ERRATA item 2): Section 3.1 uses ``exp(-d / sigma2)``,
Appendix A.2 ``exp(-d**2 / sigma2)``; ``squared`` picks the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._arrays import array_module, to_numpy
from ._validate import check_int, check_positive_scalar, check_sigma2s
from .codes import Codes

__all__ = ["heat_kernel", "heat_matmat", "kernel_cosine", "compare", "Comparison"]


def heat_kernel(K: Any, sigma2: float, *, squared: bool = False) -> Any:
    """Elementwise heat kernel ``exp(-K / sigma2)`` (or ``exp(-K**2 / sigma2)``).

    Parameters
    ----------
    K : array (N, M), numpy / torch / cupy
        Distances, e.g. a VQ-Kernel.
    sigma2 : float > 0
    squared : bool
        Use the Appendix A.2 form ``exp(-K**2 / sigma2)``.

    Returns
    -------
    array (N, M), float64 (float32 for float32 input), in ``K``'s array type and device.
    """
    s = check_positive_scalar(sigma2, "sigma2")
    Kf = _real_matrix(K, "K")
    return exp_neg(Kf * Kf if squared else Kf, s)


def _real_matrix(K: Any, name: str) -> Any:
    """``K`` as a finite real float array of its own array type (float32 stays float32)."""
    if isinstance(K, Codes):
        raise TypeError(f"{name}: expected a distance matrix (e.g. vqgeom.pairwise_distances(codes)), got Codes")
    xp = array_module(K)
    if xp == "torch":
        import torch

        if K.is_complex():
            raise TypeError(f"{name}: expected a real-valued distance matrix, got dtype {K.dtype}")
        Kf = K if K.dtype in (torch.float32, torch.float64) else K.to(torch.float64)
        if Kf.device.type != "meta" and not bool(torch.isfinite(Kf).all()):
            raise ValueError(f"{name}: expected finite distances, got NaN or inf")
        return Kf
    if xp == "cupy":
        import cupy

        if K.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a real-valued distance matrix, got dtype {K.dtype}")
        Kf = K if K.dtype in (np.float32, np.float64) else K.astype(np.float64)
        if not bool(cupy.isfinite(Kf).all()):
            raise ValueError(f"{name}: expected finite distances, got NaN or inf")
        return Kf
    try:
        K = np.asarray(K)
    except (ValueError, TypeError):
        raise TypeError(f"{name}: expected a real-valued distance matrix, got {type(K).__name__}") from None
    if K.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real-valued distance matrix, got dtype {K.dtype}")
    Kf = K if K.dtype in (np.float32, np.float64) else K.astype(np.float64)
    if not np.isfinite(Kf).all():
        raise ValueError(f"{name}: expected finite distances, got NaN or inf")
    return Kf


def exp_neg(D: Any, sigma2: float) -> Any:
    """``exp(-D / sigma2)`` in ``D``'s array type."""
    xp = array_module(D)
    if xp == "torch":
        import torch

        return torch.exp(-D / sigma2)
    if xp == "cupy":
        import cupy

        return cupy.exp(-D / sigma2)
    return np.exp(-D / sigma2)


def kernel_cosine(K1: Any, K2: Any) -> float:
    """Frobenius cosine similarity ``<K1, K2> / (||K1|| ||K2||)`` of two matrices of one shape."""
    a = to_numpy(_real_matrix(K1, "K1")).astype(np.float64, copy=False)
    b = to_numpy(_real_matrix(K2, "K2")).astype(np.float64, copy=False)
    if a.shape != b.shape:
        raise ValueError(f"K2: expected the shape of K1 {a.shape}, got {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("K1/K2: cosine similarity is undefined for an all-zero matrix")
    return float(np.vdot(a, b) / (na * nb))


@dataclass
class Comparison:
    """Cosine similarities between the heat kernels of several networks.

    Attributes
    ----------
    similarity : ndarray (S, M, M)
        ``similarity[s, a, b]`` is the cosine between network ``a``'s and ``b``'s heat
        kernels at ``sigma2s[s]``.
    sigma2s : ndarray (S,)
    names : list of str
    squared : bool
        Whether the Appendix A.2 form ``exp(-d**2 / sigma2)`` was used.
    """

    similarity: np.ndarray
    sigma2s: np.ndarray
    names: list[str] = field(default_factory=list)
    squared: bool = False

    def table(self, s: int = 0) -> str:
        """A printable table of the similarities at ``sigma2s[s]``."""
        w = max(8, max((len(n) for n in self.names), default=0) + 1)
        head = " " * w + "".join(f"{n:>{w}}" for n in self.names)
        rows = [f"{a:<{w}}" + "".join(f"{v:>{w}.2f}" for v in self.similarity[s, i]) for i, a in enumerate(self.names)]
        form = "exp(-d^2/sigma2)" if self.squared else "exp(-d/sigma2)"
        return f"sigma2 = {self.sigma2s[s]:g}, heat kernel {form}\n" + "\n".join([head] + rows)


def compare(
    models: Sequence[Any],
    X: Any = None,
    sigma2s: Any = (1.0,),
    *,
    squared: bool = False,
    weights: Any = None,
    names: Sequence[str] | None = None,
    backend: str = "auto",
    block_rows: int = 1024,
    progress: bool = False,
) -> Comparison:
    """Cosine similarities of the heat kernels of several networks, for several sigma2 at once.

    The kernels are streamed by row blocks: memory is ``O(M * block_rows * N)`` (blocks are
    shrunk to stay near 256 MB), never an ``N x N`` matrix per network.

    Parameters
    ----------
    models : sequence of networks (anything :func:`vqgeom.encode` takes) or of Codes
    X : array (N, ...), optional
        The sample; not needed when ``models`` are Codes of one sample. A dask array (or dask
        codes) runs on the cluster: each (row block, column block) tile's partial sums on a
        worker, summed by a tree; only the ``(S, M, M)`` sums come back.
    sigma2s : float or sequence of floats > 0
    squared : bool
        Heat kernel ``exp(-d**2 / sigma2)`` (Appendix A.2) instead of ``exp(-d / sigma2)``.
    weights : per-layer weights, optional
        One sequence for all networks, or a list with one entry (or None) per network.
    names : labels for the table
    backend : compute backend for the distances
    block_rows : rows per streamed block (at most; shrunk to the memory budget)
    progress : show a progress bar over blocks

    Returns
    -------
    Comparison
    """
    from .distances import _distances, codes_weights
    from .encoding import encode

    if isinstance(models, Codes) or isinstance(models, (str, bytes)):
        raise TypeError(f"models: expected a sequence of networks or of Codes, got {type(models).__name__}")
    try:
        models = list(models)
    except TypeError:
        raise TypeError(f"models: expected a sequence of networks or of Codes, got {type(models).__name__}") from None
    if len(models) < 1:
        raise ValueError("models: expected at least one network, got none")
    s2 = check_sigma2s(sigma2s)
    block_rows = check_int(block_rows, "block_rows")
    codes: list[Codes] = []
    for i, m in enumerate(models):
        if isinstance(m, Codes):
            codes.append(m)
        else:
            if X is None:
                raise ValueError(f"X: expected the sample to encode models[{i}], got None")
            codes.append(encode(m, X, backend=backend))
    n = codes[0].n
    for i, c in enumerate(codes):
        if c.n != n:
            raise ValueError(f"models[{i}]: expected codes of {n} rows like models[0], got {c.n}")
    if n == 0:
        raise ValueError("models: expected codes of at least one row, got 0 (the cosine of empty kernels is undefined)")
    # One weight vector for all networks, or one entry (None or a vector) per network.
    if _per_network(weights, len(codes)):
        per_w = list(weights)
        if len(per_w) != len(codes):
            raise ValueError(f"weights: expected one entry per network ({len(codes)}), got {len(per_w)}")
    else:
        per_w = [weights] * len(codes)
    wts = [codes_weights(c, w) for c, w in zip(codes, per_w)]
    if names is None:
        names = [f"net{i}" for i in range(len(codes))]
    names = list(names)
    if len(names) != len(codes):
        raise ValueError(f"names: expected {len(codes)} names, got {len(names)}")

    from ._backend import resolve_backend

    if any(c.array_type == "dask" for c in codes):  # per-tile partial sums, tree-summed (vqgeom._dask)
        from . import _dask

        dots = _dask.compare_dots(codes, per_w, s2, squared=squared, backend=backend, block_rows=block_rows)
        return Comparison(_cosines(dots), s2, names, squared)
    name = resolve_backend(backend, codes[0].words)
    if name == "triton":
        return Comparison(_compare_triton(codes, wts, s2, squared), s2, names, squared)
    m = len(codes)
    dots = np.zeros((len(s2), m, m))
    from tqdm.auto import tqdm

    # Hold one (rows, N) float64 block per network at a time: about 2 * m * rows * N * 8 bytes.
    rows = max(1, min(block_rows, (256 << 20) // (16 * m * max(n, 1))))
    for r in tqdm(range(0, n, rows), desc="compare", disable=not progress, leave=False):
        ds = []
        for c, wt in zip(codes, wts):
            D = to_numpy(_distances(c[r : r + rows], c, wt, name)).astype(np.float64)
            ds.append(D * D if squared else D)
        for si, sigma2 in enumerate(s2):
            hs = [np.exp(-D / sigma2) for D in ds]
            for a in range(m):
                for b in range(a, m):
                    v = float(np.vdot(hs[a], hs[b]))
                    dots[si, a, b] += v
                    if a != b:
                        dots[si, b, a] += v
    return Comparison(_cosines(dots), s2, names, squared)


def _cosines(dots: np.ndarray) -> np.ndarray:
    """Cosines from the ``(S, M, M)`` Frobenius inner products of the heat kernels."""
    norms = np.sqrt(np.einsum("saa->sa", dots))
    return dots / (norms[:, :, None] * norms[:, None, :])


def _per_network(weights: Any, n_networks: int) -> bool:
    """Whether ``weights`` is a list with one entry (None or a vector) per network rather
    than one vector shared by all."""
    if weights is None or isinstance(weights, (str, bytes)) or np.isscalar(weights):
        return False
    if array_module(weights) != "numpy" or isinstance(weights, np.ndarray):
        return getattr(weights, "ndim", 1) == 2
    try:
        entries = list(weights)
    except TypeError:
        return False
    return any(e is None or (not isinstance(e, (str, bytes)) and np.ndim(e) == 1) for e in entries)


def _compare_triton(codes: list[Codes], wts: list[Any], s2: np.ndarray, squared: bool) -> np.ndarray:
    """The GPU route: each pair's cosines for every sigma2 in one streamed kernel pass."""
    from .kernels.triton import reductions

    m = len(codes)
    sim = np.ones((len(s2), m, m))
    for a in range(m):
        for b in range(a + 1, m):
            if codes[b].array_type != "torch" or codes[b].words.device != codes[a].words.device:
                raise ValueError(f"models[{b}]: expected codes on {codes[a].words.device} like models[{a}]")
            c = reductions.heat_cosine(codes[a].words, codes[a].layer_sizes, codes[b].words, codes[b].layer_sizes,
                                       s2, weights_a=wts[a].kernel, weights_b=wts[b].kernel, squared=squared,
                                       divisor_a=wts[a].divisor, divisor_b=wts[b].divisor)
            sim[:, a, b] = sim[:, b, a] = c
    return sim


def heat_matmat(
    codes: Codes,
    V: Any,
    sigma2: float,
    *,
    weights: Any = None,
    squared: bool = False,
    backend: str = "auto",
    block_rows: int = 1024,
) -> Any:
    """Heat-kernel products ``exp(-D / sigma2) @ V`` over the VQ distances ``D`` of ``codes``.

    Streamed: the ``N x N`` kernel is never held (memory ``O(block_rows * N)`` on the CPU route,
    ``O(N)`` on the Triton route).

    Parameters
    ----------
    codes : Codes, N rows
    V : array (N,) or (N, k)
        A vector (mat-vec) or the columns of a matrix (mat-mat).
    sigma2 : float > 0
    weights : per-layer weights of the VQ distance, optional
    squared : bool
        ``exp(-D**2 / sigma2)`` (Appendix A.2) instead.
    backend : str
        ``"triton"`` (CUDA torch codes; float32 products, about 1e-6 relative) or a CPU backend
        (float64). Dask codes: the backend of each tile on its worker.
    block_rows : int
        Rows of ``D`` computed at a time, at most (shrunk so a float64 block stays near 128 MB).

    Returns
    -------
    array of ``V``'s shape, float64
        numpy for in-memory codes (torch float32 on the Triton route); for dask codes a lazy
        dask array chunked like the codes' rows (per-tile products summed by a tree).
    """
    from .distances import _distances, codes_weights

    if not isinstance(codes, Codes):
        raise TypeError(f"codes: expected vqgeom.Codes, got {type(codes).__name__}")
    s2 = check_positive_scalar(sigma2, "sigma2")
    block_rows = check_int(block_rows, "block_rows")
    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared: expected a bool, got {type(squared).__name__} {squared!r}")
    wt = codes_weights(codes, weights)
    n = codes.n
    if tuple(V.shape[:1]) != (n,) or len(V.shape) not in (1, 2):
        raise ValueError(f"V: expected shape ({n},) or ({n}, k) to match the {n} codes, got {tuple(V.shape)}")
    vector = len(V.shape) == 1
    if codes.array_type == "dask":
        from . import _dask

        out = _dask.heat_matmat(codes, V.reshape(n, 1) if vector else V, s2, weights=weights, squared=squared,
                                backend=backend, block_rows=block_rows)
        return out[:, 0] if vector else out
    from ._backend import resolve_backend

    name = resolve_backend(backend, codes.words)
    if name == "triton":
        import torch

        from .kernels.triton import reductions

        Vt = torch.as_tensor(to_numpy(V), dtype=torch.float32, device=codes.words.device).reshape(n, -1)
        out = reductions.heat_matmat(codes.words, codes.layer_sizes, Vt, s2, weights=wt.kernel, squared=squared,
                                     divisor=wt.divisor)
        return out[:, 0] if vector else out
    # Row blocks of at most ~128 MB of float64 (the block, its square and exponential).
    rows = int(max(1, min(block_rows, (128 << 20) // (24 * max(n, 1)))))
    Vn = to_numpy(V).astype(np.float64, copy=False).reshape(n, -1)
    out = np.empty_like(Vn)
    for r in range(0, n, rows):
        D = to_numpy(_distances(codes[r : r + rows], codes, wt, name)).astype(np.float64)
        out[r : r + D.shape[0]] = np.exp(-(D * D if squared else D) / s2) @ Vn
    return out[:, 0] if vector else out
