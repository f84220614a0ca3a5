"""Heat kernels of VQ-Kernels and comparing networks through them (Section 3.1, Fig. 3/4).

Two forms exist in the paper (see ERRATA item 2): Section 3.1 uses ``exp(-d / sigma2)``,
Appendix A.2 ``exp(-d**2 / sigma2)``; ``squared`` picks the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._arrays import array_module, to_numpy
from ._validate import check_int, check_positive_scalar
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
        Memory: the result (and a float64 copy of an integer ``K``). For the heat kernel
        of codes without an N x N matrix, see :func:`compare` and
        :func:`vqgeom.heat_embedding`.

    Raises
    ------
    TypeError
        ``K`` is Codes, complex or not numeric.
    ValueError
        ``K`` holds NaN or inf; ``sigma2`` is not positive and finite.
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
    """Similarities between several networks, for each sigma2 of a sweep.

    Attributes
    ----------
    similarity : ndarray (S, M, M)
        ``similarity[s, a, b]``: the (first) requested measure between networks ``a`` and ``b``
        at the ``s``-th bandwidth; ``values[measure]``.
    sigma2s : ndarray (S,)
        The sigma2 shared by all networks at each step (NaN where each network had its own:
        see ``bandwidths``).
    names : list of str
    squared : bool
        Whether the Appendix A.2 form ``exp(-d**2 / sigma2)`` was used for the heat kernels.
    measure : str
        The measure in ``similarity``.
    values : dict str -> ndarray (S, M, M)
        Every measure computed (see :func:`compare`); sigma-free measures (``linear_cka``,
        ``mantel``) are repeated along S.
    bandwidths : ndarray (S, M) or None
        Each network's sigma2 at each step (NaN when only sigma-free measures were asked).
    route : str
        How it was computed: ``"histogram"`` (joint histograms of integer distances),
        ``"direct"`` (streamed kernel blocks) or ``"triton"`` (the fused GPU cosine kernel).
    """

    similarity: np.ndarray
    sigma2s: np.ndarray
    names: list[str] = field(default_factory=list)
    squared: bool = False
    measure: str = "heat_cosine"
    values: dict[str, np.ndarray] = field(default_factory=dict)
    bandwidths: np.ndarray | None = None
    route: str = ""

    def __getitem__(self, measure: str) -> np.ndarray:
        """``values[measure]``, an (S, M, M) array."""
        if measure not in self.values:
            raise KeyError(f"measure: {measure!r} was not computed; have {sorted(self.values)}")
        return self.values[measure]

    def table(self, s: int = 0, measure: str | None = None) -> str:
        """A printable table of ``measure`` (default: :attr:`measure`) at step ``s``."""
        measure = self.measure if measure is None else measure
        vals = self.similarity if measure == self.measure and not self.values else self[measure]
        w = max(8, max((len(n) for n in self.names), default=0) + 1)
        head = " " * w + "".join(f"{n:>{w}}" for n in self.names)
        rows = [f"{a:<{w}}" + "".join(f"{v:>{w}.2f}" for v in vals[s, i]) for i, a in enumerate(self.names)]
        form = "exp(-d^2/sigma2)" if self.squared else "exp(-d/sigma2)"
        if measure in ("linear_cka", "mantel"):
            title = measure
        elif np.isnan(self.sigma2s[s]) and self.bandwidths is not None:
            bws = ", ".join(f"{n} {b:g}" for n, b in zip(self.names, self.bandwidths[s]))
            title = f"{measure}, heat kernel {form}, sigma2 per network: {bws}"
        else:
            title = f"{measure}, sigma2 = {self.sigma2s[s]:g}, heat kernel {form}"
        return title + "\n" + "\n".join([head] + rows)


def _prepare(models: Sequence[Any], X: Any, weights: Any, names: Sequence[str] | None,
             backend: str) -> tuple[list[Codes], list[Any], list[str]]:
    """Codes of every network on one sample, their validated weights (one
    :class:`~vqgeom._validate.Weights` per network) and names."""
    from .distances import codes_weights
    from .encoding import encode

    if isinstance(models, Codes) or isinstance(models, (str, bytes)):
        raise TypeError(f"models: expected a sequence of networks or of Codes, got {type(models).__name__}")
    try:
        models = list(models)
    except TypeError:
        raise TypeError(f"models: expected a sequence of networks or of Codes, got {type(models).__name__}") from None
    if len(models) < 1:
        raise ValueError("models: expected at least one network, got none")
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
    return codes, wts, names


def compare(
    models: Sequence[Any],
    X: Any = None,
    sigma2s: Any = (1.0,),
    *,
    measure: str | Sequence[str] = "heat_cosine",
    squared: bool = False,
    weights: Any = None,
    names: Sequence[str] | None = None,
    backend: str = "auto",
    method: str = "auto",
    block_rows: int = 1024,
    progress: bool = False,
) -> Comparison:
    """Similarities of several networks through their VQ distances, for several sigma2 at once.

    Measures (details and formulas in :mod:`vqgeom.similarity`):

    - ``"heat_cosine"``: Frobenius cosine of the heat kernels ``exp(-d / sigma2)`` (the
      paper's Fig. 3/4). Depends on each network's distance scale.
    - ``"rbf_cka"``: centred kernel alignment (CKA) of the heat kernels.
    - ``"linear_cka"``: CKA of the kernels ``-D``, i.e. linear CKA of the +-1 codes (``-D`` is
      their Gram matrix up to a constant and centring); equal to the squared distance
      correlation ``dCor^2`` of Szekely, Rizzo & Bakirov (2007) with the VQ distances. No sigma2.
    - ``"mantel"``: Pearson correlation of the off-diagonal distances. No sigma2.

    The last two are scale-free; the heat-kernel ones become scale-free with
    ``sigma2s="per_network"``. Scale-free measures give the same value when every distance of
    one network doubles (each of its hyperplanes duplicated).

    Routes: with integer distances (no weights or integer weights) one streamed pass builds
    the joint histograms of the networks' distances (:func:`vqgeom.joint_histogram`), from
    which every measure at every sigma2 is exact; otherwise the kernels are streamed by row
    blocks. Memory: a block of rows of each network's distances and kernels (at most ~256 MB)
    plus the histograms (O(sum V_a V_b), V the largest distance + 1); never N x N.

    Parameters
    ----------
    models : sequence of networks (anything :func:`vqgeom.encode` takes) or of Codes
    X : array (N, ...), optional
        The sample; not needed when ``models`` are Codes of one sample. A dask array (or dask
        codes) runs on the cluster. Integer distances: each (row block, column block) tile's
        count arrays (the histogram route's) on a worker, summed by trees; every measure and
        ``"per_network"`` work as in memory, and only the counts (``O(sum V_a V_b)``) come
        back. Real weights (or ``method="direct"``): each tile's heat-kernel inner products,
        ``heat_cosine`` with shared sigma2s only.
    sigma2s : float, sequence of S floats, (S, M) array, or ``"per_network"``
        Bandwidths > 0: shared by all networks (scalar or 1-D), one per network and step
        (2-D), or each network's median heuristic (``"per_network"``: the median of its
        off-diagonal distances, of their squares with ``squared``; exact).
    measure : str or sequence of str
        One or more of ``"heat_cosine"``, ``"rbf_cka"``, ``"linear_cka"``, ``"mantel"``, or
        ``"all"``; all are computed in the same pass.
    squared : bool
        Heat kernel ``exp(-d**2 / sigma2)`` (Appendix A.2) instead of ``exp(-d / sigma2)``.
        Affects the heat-kernel measures only.
    weights : per-layer weights, optional
        One sequence for all networks, or a list with one entry (or None) per network.
    names : labels for the table
    backend : compute backend for the distances (cupy codes: the Triton kernels through
        DLPack when Triton is importable, unless ``"cupy"`` is named)
    method : {"auto", "histogram", "direct", "sym"}
        ``"auto"``: histograms for integer distances on the CPU when they stay small (their
        size bound from the largest possible distances), else direct. On CUDA (triton),
        ``"auto"`` keeps the fused cosine kernel (``heat_cosine`` with shared sigma2) or the
        direct route; the histogram route there (``torch.bincount`` on the GPU) is only taken
        when asked for, as it has not been timed on a GPU.
        ``"sym"``: on the Triton route (CUDA torch codes, or cupy codes through DLPack), the
        fused cosine kernel's variant that converts integer distances to float without I2F
        (the fused kernel already computes the upper triangle only); ``heat_cosine`` with
        shared sigma2s only (``ValueError`` otherwise). Checked in the Triton interpreter and
        compiled ahead of time for every target, not yet timed on a GPU, hence opt-in.
    block_rows : rows per streamed block (at most; shrunk to the memory budget)
    progress : show a progress bar over blocks

    Returns
    -------
    Comparison
        ``similarity`` holds the first measure; ``values`` all of them; ``bandwidths`` each
        network's sigma2.
    """
    from .similarity import check_measures, run_compare

    block_rows = check_int(block_rows, "block_rows")
    measures = check_measures(measure)
    codes, wts, names = _prepare(models, X, weights, names, backend)
    if any(c.array_type == "dask" for c in codes):  # per-tile partial sums, tree-summed (vqgeom._dask)
        from . import _dask
        from ._validate import check_sigma2s

        if method not in ("auto", "histogram", "direct"):
            raise ValueError(f"method: dask codes take 'auto', 'histogram' or 'direct', got {method!r}")
        if method == "histogram" and not all(wt.integer for wt in wts):
            raise ValueError("method: 'histogram' needs integer distances (integer weights); got real weights")
        if all(wt.integer for wt in wts) and method in ("auto", "histogram"):
            # integer distances: the count arrays on the cluster give every measure, as in memory
            need_cka = any(x in measures for x in ("rbf_cka", "linear_cka"))
            h = _dask.compare_histograms(codes, wts, names, need_cka, backend=backend, block_rows=block_rows)
            out = h.compare(sigma2s, measures, squared=bool(squared))
            out.route = "dask-histogram"
            return out
        if measures != ("heat_cosine",):
            raise ValueError(f"measure: with real weights (or method='direct') dask codes support "
                             f"measure='heat_cosine' only (with shared sigma2s), got {measures}; bring the codes into "
                             "memory (codes.to('numpy')) for the other measures")
        if isinstance(sigma2s, str) or np.ndim(sigma2s) > 1:
            got = repr(sigma2s) if isinstance(sigma2s, str) else f"an array of shape {np.shape(sigma2s)}"
            raise ValueError(f"sigma2s: with real weights (or method='direct') dask codes support shared sigma2s only "
                             f"(a number or a 1-D sequence), got {got}; bring the codes into memory "
                             "(codes.to('numpy')) for per-network bandwidths")
        s2 = check_sigma2s(sigma2s)
        per_w = list(weights) if _per_network(weights, len(codes)) else [weights] * len(codes)
        dots = _dask.compare_dots(codes, per_w, s2, squared=squared, backend=backend, block_rows=block_rows)
        sim = _cosines(dots)
        return Comparison(sim, s2, names, bool(squared), values={"heat_cosine": sim},
                          bandwidths=np.repeat(s2[:, None], len(codes), axis=1), route="dask")
    return run_compare(codes, wts, names, sigma2s, measures, bool(squared), backend, method, block_rows, progress)


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


def _compare_triton(codes: list[Codes], wts: list[Any], s2: np.ndarray, squared: bool, magic: bool = False) -> np.ndarray:
    """The GPU route: each pair's cosines for every sigma2 in one streamed kernel pass (torch
    codes, or cupy's through zero-copy DLPack views). ``magic``: the kernel variant that
    converts integer distances without I2F (``method="sym"`` of :func:`compare`)."""
    from ._backend import torch_view
    from .kernels.triton import reductions

    m = len(codes)
    sim = np.ones((len(s2), m, m))
    words = [torch_view(c.words) for c in codes]
    for a in range(m):
        for b in range(a + 1, m):
            if codes[b].array_type != codes[a].array_type or words[b].device != words[a].device:
                raise ValueError(f"models[{b}]: expected codes on {words[a].device} like models[{a}]")
            c = reductions.heat_cosine(words[a], codes[a].layer_sizes, words[b], codes[b].layer_sizes,
                                       s2, weights_a=wts[a].kernel, weights_b=wts[b].kernel, squared=squared,
                                       divisor_a=wts[a].divisor, divisor_b=wts[b].divisor, magic=magic)
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
    method: str = "auto",
) -> Any:
    """Heat-kernel products ``exp(-D / sigma2) @ V`` over the VQ distances ``D`` of ``codes``.

    Streamed: the ``N x N`` kernel is never held. The CPU route folds each cache-sized block of
    distances into the product as soon as it is computed (numba; integer distances take
    ``exp(-d / sigma2)`` from a table of the possible values, no ``exp`` per pair), on
    ``torch.get_num_threads()`` threads; memory ``O(N k)`` plus about 1 MB per thread. Without
    numba (and on the numpy reference backend): row blocks, ``O(block_rows * N)``. The Triton
    route: ``O(N)``.

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
        ``"triton"`` (CUDA torch codes, and cupy codes through DLPack unless ``"cupy"`` is
        named; float32 products, about 1e-6 relative) or a CPU backend (float64). Dask
        codes: the backend of each tile on its worker.
    block_rows : int
        Rows of ``D`` computed at a time, at most (shrunk so a float64 block stays near 128 MB),
        where whole row blocks are used (see above).
    method : {"auto", "sym"}
        The Triton route's kernel. ``"auto"``: the measured kernel (every row block against
        every column block). ``"sym"``: the symmetric kernel (tiles ``i <= j`` only, each
        off-diagonal kernel tile applied to both sides, the column side added with float32
        atomics; integer distances converted to float without I2F); see
        :func:`vqgeom.kernels.triton.reductions.heat_matmat` for the predicted gain. Checked
        in the Triton interpreter and compiled ahead of time for every target, not yet timed
        on a GPU, hence opt-in. Atomic adds make the float32 summation order vary between
        runs (results agree to float32 accuracy, not bit for bit). Other backends ignore it.

    Returns
    -------
    array of ``V``'s shape, float64
        numpy for in-memory codes (float32 of the codes' array type on the Triton route:
        torch, or cupy for cupy codes); for dask codes a lazy dask array chunked like the
        codes' rows (per-tile products summed by a tree).
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
    if method not in ("auto", "sym"):
        raise ValueError(f"method: expected 'auto' or 'sym', got {method!r}")
    if codes.array_type == "dask":
        from . import _dask

        out = _dask.heat_matmat(codes, V.reshape(n, 1) if vector else V, s2, weights=weights, squared=squared,
                                backend=backend, block_rows=block_rows)
        return out[:, 0] if vector else out
    from ._backend import caller_array, kernel_backend, torch_view

    name = kernel_backend(backend, codes.words)  # cupy codes: Triton through DLPack unless cupy is named
    if name == "triton":
        import torch

        from .kernels.triton import reductions

        words = torch_view(codes.words)
        Vt = torch_view(V) if array_module(V) in ("torch", "cupy") else torch.from_numpy(to_numpy(V))
        Vt = Vt.to(device=words.device, dtype=torch.float32).reshape(n, -1)
        out = reductions.heat_matmat(words, codes.layer_sizes, Vt, s2, weights=wt.kernel, squared=squared,
                                     divisor=wt.divisor, method="sym" if method == "sym" else "full")
        return caller_array(out[:, 0] if vector else out, codes.words)
    Vn = to_numpy(V).astype(np.float64, copy=False).reshape(n, -1)
    from . import _cpu_stream

    if name == "cpu" and _cpu_stream.available():
        # distance blocks folded into the product as they are computed, exp from a table
        out = _cpu_stream.heat_rows(codes.words_numpy(), codes.words_numpy(), codes.layer_sizes, wt, Vn, s2,
                                    squared=bool(squared))
        return out[:, 0] if vector else out
    # Row blocks of at most ~128 MB of float64 (the block, its square and exponential).
    rows = int(max(1, min(block_rows, (128 << 20) // (24 * max(n, 1)))))
    out = np.empty_like(Vn)
    for r in range(0, n, rows):
        D = to_numpy(_distances(codes[r : r + rows], codes, wt, name)).astype(np.float64)
        out[r : r + D.shape[0]] = np.exp(-(D * D if squared else D) / s2) @ Vn
    return out[:, 0] if vector else out
