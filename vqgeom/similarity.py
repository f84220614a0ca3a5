"""Network comparison by VQ distances: four measures, streamed, and exact sigma^2 sweeps from joint histograms.

Every measure compares two networks ``a`` and ``b`` through their VQ distance matrices
``D_a`` and ``D_b`` on the same N inputs (all N^2 ordered pairs, diagonal included, unless
said otherwise):

``heat_cosine``
    ``<K_a, K_b> / (||K_a|| ||K_b||)`` (Frobenius), ``K = exp(-D / sigma2)`` (``exp(-D**2 / sigma2)``
    with ``squared``): the paper's Fig. 3/4 similarity. It depends on the distance *scale*: one
    sigma2 shared by networks whose distances differ in scale rewards the small-scale ones.
``rbf_cka``
    Centred kernel alignment (Kornblith et al. 2019) of the two heat kernels:
    ``HSIC(K_a, K_b) / sqrt(HSIC(K_a, K_a) HSIC(K_b, K_b))`` with ``HSIC(K, L) = <HKH, HLH>``,
    ``H = I - 11^T / N``.
``linear_cka``
    CKA of the kernels ``-D_a`` and ``-D_b``. The VQ distance is a squared Euclidean distance
    of the (layer-weighted) +-1 codes, ``d = ||s - t||^2 / 4``, so ``-D/2`` centred is the
    centred Gram matrix of the codes (up to a factor): this is linear CKA of the codes. It also
    equals the squared sample distance correlation ``dCor_N^2`` (Szekely, Rizzo & Bakirov
    2007) computed with the VQ distances, since both double-centre the distance matrices.
    No sigma2; invariant to scaling either network's distances.
``mantel``
    Pearson correlation of the off-diagonal distances ``D_a[i, j]`` and ``D_b[i, j]``,
    ``i != j`` (the Mantel statistic). No sigma2; invariant to scale and shift.

``heat_cosine`` and ``rbf_cka`` become scale-free with ``sigma2s="per_network"``: each network
gets its own median-heuristic bandwidth, the median of its N (N - 1) / 2 off-diagonal
distances (squared distances with ``squared``; the mean of the two middle values when their
number is even). Doubling every distance of a network (e.g. duplicating each of its
hyperplanes) then leaves every measure unchanged.

How it is computed
------------------
*Histogram route (integer distances).* Every measure at every sigma2 is a function of a few
integer count arrays over the distance values ``u`` of ``a`` and ``v`` of ``b``:

- the joint histogram ``J_ab[u, v] = #{(i, j) : D_a[i, j] = u, D_b[i, j] = v}``;
- the marginals ``h_a[u] = #{(i, j) : D_a[i, j] = u}``;
- the row-histogram products ``P_ab[u, v] = sum_i h_a^i[u] h_b^i[v]`` where ``h_a^i`` is the
  histogram of row ``i`` of ``D_a``: the number of triples ``(i, j, k)`` with
  ``D_a[i, j] = u`` and ``D_b[i, k] = v``. Needed only by the CKA measures.

With ``f_a = f(u / sigma2_a)`` the kernel's value at each bin, ``<K_a, K_b> = f_a^T J_ab f_b``,
the row-sum product ``(K_a 1) . (K_b 1) = f_a^T P_ab f_b`` and ``1^T K_a 1 = h_a . f_a``; HSIC
with centring is ``<K_a, K_b> - 2/N (K_a 1).(K_b 1) + (1^T K_a 1)(1^T K_b 1) / N^2``. One pass
over the distances (row blocks, never N x N) gives the counts; any number of sigma2 then costs
O(V_a V_b) each. :func:`joint_histogram` returns the counts (:class:`DistanceHistograms`) for
reuse; :func:`vqgeom.compare` uses them when distances are integers.

*Direct route (real weights, or histograms too large).* The same sums are accumulated tile by
tile from ``exp`` of each distance block, one pass for all sigma2 given.

Numerics: centring cancels large terms; both routes subtract a constant from each kernel first
(HSIC is unchanged by it): the mean distance for ``-D``, and ``expm1(-x) - mean`` for the heat
kernels (``expm1`` keeps the small differences of kernels near 1 at large sigma2). Mantel uses
centred co-moments.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ["MEASURES", "DistanceHistograms", "joint_histogram", "median_sigma2"]

MEASURES = ("heat_cosine", "linear_cka", "rbf_cka", "mantel")
"""The measures :func:`vqgeom.compare` computes."""

SIGMA_FREE = ("linear_cka", "mantel")

# Working memory of one streamed block, bytes (distances and kernel blocks of every network).
_BLOCK_BYTES = 256 << 20
# Host blocks are reduced in numpy (its float64 exp/expm1 measured ~5x and its bincount ~7x faster
# than torch's on this project's 2-core CPU); tests switch it off to run the torch code of the
# CUDA path on the CPU.
_HOST_NUMPY = True
# The histogram route is chosen automatically while its count arrays (joint and, for CKA, row
# products, over the largest possible distance values) stay below this many cells (32 MB each).
_AUTO_HIST_CELLS = 1 << 22
# Asked for explicitly, the histograms may grow to this many cells (2 GB of int64) before refusing.
_MAX_HIST_CELLS = 1 << 28


# --------------------------------------------------------------------------------------------------
# argument parsing


def check_measures(measure: Any) -> tuple[str, ...]:
    """``measure`` as a tuple of names from :data:`MEASURES` (``"all"`` for every one)."""
    if isinstance(measure, str):
        items = list(MEASURES) if measure == "all" else [measure]
    elif isinstance(measure, (list, tuple)) and len(measure) > 0:
        items = list(measure)
    else:
        raise TypeError(f"measure: expected one of {MEASURES}, 'all' or a non-empty sequence of them, got {measure!r}")
    out: list[str] = []
    for m in items:
        if not isinstance(m, str) or m not in MEASURES:
            raise ValueError(f"measure: expected names from {MEASURES} (or 'all'), got {m!r}")
        if m not in out:
            out.append(m)
    return tuple(out)


def parse_sigma2s(sigma2s: Any, m: int) -> np.ndarray | None:
    """Bandwidths as an ``(S, m)`` array (one column per network), or None for ``"per_network"``.

    Accepts a positive number, a 1-D sequence (shared by all networks) or a 2-D ``(S, m)``
    array (one bandwidth per sweep step and network).
    """
    if isinstance(sigma2s, str):
        if sigma2s != "per_network":
            raise ValueError(f"sigma2s: expected positive numbers or 'per_network', got the string {sigma2s!r}")
        return None
    if getattr(sigma2s, "ndim", 1) != 2 and not (isinstance(sigma2s, (list, tuple)) and sigma2s
                                                  and all(isinstance(r, (list, tuple)) for r in sigma2s)):
        from ._validate import check_sigma2s

        return np.repeat(check_sigma2s(sigma2s)[:, None], m, axis=1)
    from ._arrays import to_numpy

    try:
        arr = np.asarray(to_numpy(sigma2s))
    except Exception:  # ragged or odd objects: report the same way as a wrong dtype
        raise TypeError(f"sigma2s: expected positive numbers or 'per_network', got {type(sigma2s).__name__}") from None
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"sigma2s: expected positive real numbers or 'per_network', got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != m:
        raise ValueError(f"sigma2s: expected a number, a 1-D sequence or an (S, {m}) array (one column per network), "
                         f"got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("sigma2s: expected at least one value, got none")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise ValueError(f"sigma2s: expected positive finite values, got {arr[bad].tolist()[:5]}")
    return arr


# --------------------------------------------------------------------------------------------------
# streamed distance blocks




def _as_torch(D: Any, integral: bool) -> Any:
    """A distance block as a torch tensor on its device: int64 for integer distances, else float64."""
    import torch

    from ._arrays import array_module

    xp = array_module(D)
    if xp == "numpy":
        D = np.asarray(D)
        if integral:
            return torch.from_numpy(D.astype(np.int64) if D.dtype.kind in "iu" else np.rint(D).astype(np.int64))
        return torch.from_numpy(D.astype(np.float64))
    if xp == "cupy":
        D = torch.from_dlpack(D)  # zero copy, on the cupy array's own device
    if integral:
        return D.to(torch.int64) if not D.is_floating_point() else torch.round(D).to(torch.int64)
    return D.to(torch.float64)


def _block_rows(block_rows: int, n: int, m: int, per_cell: int) -> int:
    return max(1, min(block_rows, _BLOCK_BYTES // max(1, per_cell * m * max(n, 1))))


def _distance_blocks(codes: Sequence[Any], wts: Sequence[Any], integral: Sequence[bool], backend: str,
                     rows: int, progress: bool, desc: str) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(first_row, [D_a[rows, :] as torch])`` for every network, row block by row block.

    ``wts``: one validated :class:`~vqgeom._validate.Weights` per network.
    """
    from tqdm.auto import tqdm

    from ._backend import kernel_backend
    from .distances import _distances

    n = codes[0].n
    name = kernel_backend(backend, codes[0].words)
    for r in tqdm(range(0, n, rows), desc=desc, disable=not progress, leave=False):
        yield r, [_as_torch(_distances(c[r : r + rows], c, wt, name), integ)
                  for c, wt, integ in zip(codes, wts, integral)]


# --------------------------------------------------------------------------------------------------
# histograms


@dataclass
class DistanceHistograms:
    """Count arrays of integer VQ distances of M networks on the same N inputs (see the module docstring).

    Bin ``u`` holds distance ``u``; arrays end at the largest distance seen (+1).

    Attributes
    ----------
    n : int
        Number of inputs N (counts run over all N^2 ordered pairs, the N diagonal zeros included).
    names : list of str
    marginals : list of ndarray (V_a,), int64
        ``marginals[a][u]``: pairs at distance ``u`` under network ``a``.
    joint : dict (a, b) -> ndarray (V_a, V_b), int64, for a < b
        Joint histogram of the pairs' distances under ``a`` and ``b``.
    row_products : dict (a, b) -> ndarray (V_a, V_b), float64, for a <= b, or None
        ``sum_i h_a^i[u] h_b^i[v]`` over the per-row histograms (exact integers below 2^53,
        i.e. for N up to about 2 * 10^5); needed by the CKA measures.
    """

    n: int
    names: list[str]
    marginals: list[np.ndarray]
    joint: dict[tuple[int, int], np.ndarray]
    row_products: dict[tuple[int, int], np.ndarray] | None = None

    def _joint(self, a: int, b: int) -> np.ndarray:
        if a == b:
            return np.diag(self.marginals[a])
        return self.joint[(a, b)] if a < b else self.joint[(b, a)].T

    def _prod(self, a: int, b: int) -> np.ndarray:
        if self.row_products is None:
            raise ValueError("measure: the CKA measures need row_products; call joint_histogram(row_products=True)")
        return self.row_products[(a, b)] if a <= b else self.row_products[(b, a)].T

    def off_diagonal(self, a: int) -> np.ndarray:
        """Histogram of network ``a``'s distances over the N (N - 1) ordered pairs ``i != j``."""
        h = self.marginals[a].copy()
        h[0] -= self.n
        return h

    def mean(self, a: int) -> float:
        """Mean off-diagonal distance of network ``a`` (NaN for N = 1)."""
        h = self.off_diagonal(a)
        tot = h.sum()
        return float(np.dot(h, np.arange(h.size, dtype=np.float64)) / tot) if tot else float("nan")

    def median(self, a: int, squared: bool = False) -> float:
        """Median of network ``a``'s off-diagonal distances (of their squares with ``squared``), exact."""
        h = self.off_diagonal(a)
        return _median_from_counts(np.arange(h.size, dtype=np.float64), h, squared, self.names[a])

    def compare(self, sigma2s: Any = "per_network", measure: Any = "heat_cosine", *, squared: bool = False) -> Any:
        """Every requested measure at every sigma2 from the counts: a :class:`vqgeom.Comparison`.

        ``sigma2s`` and ``measure`` as in :func:`vqgeom.compare`.
        """
        measures = check_measures(measure)
        m = len(self.marginals)
        bw = parse_sigma2s(sigma2s, m)
        if bw is None:
            needs_sigma = any(x not in SIGMA_FREE for x in measures)
            bw = self.medians(squared) if needs_sigma else np.full((1, m), np.nan)
            shared = np.full(1, np.nan)
        else:
            shared = _shared(bw)
        return self._evaluate(bw, shared, measures, squared)

    def _evaluate(self, bw: np.ndarray, shared: np.ndarray, measures: tuple[str, ...], squared: bool) -> Any:
        m = len(self.marginals)
        stats = _hist_stats(self, bw, bool(squared), measures)
        values = _finish(stats, self.n, measures, bw.shape[0], m, self.names)
        return _comparison(values, measures, shared, bw, self.names, squared, "histogram")

    def medians(self, squared: bool = False) -> np.ndarray:
        """``(1, M)`` median-heuristic bandwidths (see :meth:`median`)."""
        return np.array([[self.median(a, squared) for a in range(len(self.marginals))]])


def _median_from_counts(values: np.ndarray, counts: np.ndarray, squared: bool, name: str,
                        total: int | None = None) -> float:
    """Median over a multiset given as sorted ``values`` with ``counts`` (np.median's convention).

    ``total``: the size of the whole multiset when ``counts`` covers only its lower part (which
    must hold both middle ranks).
    """
    tot = int(counts.sum()) if total is None else int(total)
    if tot == 0:
        raise ValueError(f"sigma2s: the median heuristic needs at least 2 inputs (network {name!r} has 1)")
    cum = np.cumsum(counts)
    lo = values[int(np.searchsorted(cum, (tot - 1) // 2, side="right"))]
    hi = values[int(np.searchsorted(cum, tot // 2, side="right"))]
    med = (lo * lo + hi * hi) / 2 if squared else (lo + hi) / 2
    if not med > 0:
        raise ValueError(f"sigma2s: the median-heuristic bandwidth of network {name!r} is 0 (more than half of its "
                         f"pairs of inputs share a code); give sigma2s explicitly")
    return float(med)


class _HistAccumulator:
    """Streams integer distance blocks into the count arrays: numpy on the host (its bincount
    measured ~7x faster than torch's there), torch ops (bincount, matmul) on CUDA."""

    def __init__(self, m: int, row_products: bool, device: Any):
        import torch

        self.m, self.rp = m, row_products
        self.torch = device.type != "cpu" or not _HOST_NUMPY
        if self.torch:
            z = lambda shape, dt: torch.zeros(shape, dtype=dt, device=device)  # noqa: E731
            i64, f64 = torch.int64, torch.float64
        else:
            z, i64, f64 = np.zeros, np.int64, np.float64
        self.V = [1] * m
        self.marg = [z((1,), i64) for _ in range(m)]
        self.joint = {(a, b): z((1, 1), i64) for a in range(m) for b in range(a + 1, m)}
        self.prod = {(a, b): z((1, 1), f64) for a in range(m) for b in range(a, m)} if row_products else {}

    def _pad(self, t: Any, widths: tuple[int, ...]) -> Any:
        if self.torch:
            import torch.nn.functional as F

            # F.pad takes (last dim before, after, previous dim before, after)
            return F.pad(t, (0, widths[-1]) if t.ndim == 1 else (0, widths[1], 0, widths[0]))
        return np.pad(t, [(0, w) for w in widths])

    def _bincount(self, idx: Any, n: int) -> Any:
        if self.torch:
            import torch

            return torch.bincount(idx, minlength=n)
        return np.bincount(idx, minlength=n)

    def _grow(self, need: list[int]) -> None:
        V = [max(v, w) for v, w in zip(self.V, need)]
        cells = sum(V[a] * V[b] for table in (self.joint, self.prod) for (a, b) in table) + sum(V)
        if cells > _MAX_HIST_CELLS:
            raise ValueError(f"method: the histograms of distances up to {[v - 1 for v in V]} would need {cells:,} "
                             f"cells (more than {_MAX_HIST_CELLS:,}); use method='direct'")
        for a in range(self.m):
            if need[a] > self.V[a]:
                self.marg[a] = self._pad(self.marg[a], (need[a] - self.V[a],))
        for table in (self.joint, self.prod):
            for (a, b), t in table.items():
                pa, pb = max(0, need[a] - t.shape[0]), max(0, need[b] - t.shape[1])
                if pa or pb:
                    table[(a, b)] = self._pad(t, (pa, pb))
        self.V = [max(v, w) for v, w in zip(self.V, need)]

    def add(self, ds: list[Any]) -> None:
        import torch

        rows = ds[0].shape[0]
        if rows == 0:
            return
        if not self.torch:
            ds = [d.numpy() for d in ds]
        lo = min(int(d.min()) for d in ds)
        if lo < 0:
            raise ValueError(f"weights: expected non-negative distances, got {lo}")
        self._grow([int(d.max()) + 1 for d in ds])
        V = self.V
        H = []
        for a, d in enumerate(ds):
            if self.rp:
                ar = (torch.arange(rows, device=d.device, dtype=torch.int64) if self.torch
                      else np.arange(rows, dtype=np.int64))
                Ha = self._bincount((ar[:, None] * V[a] + d).reshape(-1), rows * V[a]).reshape(rows, V[a])
                self.marg[a] += Ha.sum(0)
                H.append(Ha.to(torch.float64) if self.torch else Ha.astype(np.float64))
            else:
                self.marg[a] += self._bincount(d.reshape(-1), V[a])
        for (a, b) in self.joint:
            idx = (ds[a] * V[b] + ds[b]).reshape(-1)
            self.joint[(a, b)] += self._bincount(idx, V[a] * V[b]).reshape(V[a], V[b])
        for (a, b) in self.prod:
            self.prod[(a, b)] += H[a].T @ H[b]

    def result(self, n: int, names: list[str]) -> DistanceHistograms:
        host = (lambda t: t.cpu().numpy()) if self.torch else (lambda t: t)  # noqa: E731
        return DistanceHistograms(
            n, list(names), [host(t) for t in self.marg], {k: host(t) for k, t in self.joint.items()},
            {k: host(t) for k, t in self.prod.items()} if self.rp else None)


def joint_histogram(
    models: Sequence[Any],
    X: Any = None,
    *,
    weights: Any = None,
    names: Sequence[str] | None = None,
    row_products: bool = True,
    backend: str = "auto",
    block_rows: int = 1024,
    progress: bool = False,
) -> DistanceHistograms:
    """One streamed pass over M networks' integer VQ distances, kept as count arrays.

    The counts determine every measure of :func:`vqgeom.compare` at every sigma2 exactly:
    call :meth:`DistanceHistograms.compare` as often as needed (a sigma2 sweep, per-network
    medians, both heat-kernel forms) without touching the distances again.

    Parameters
    ----------
    models, X, weights, names, backend, block_rows, progress
        As in :func:`vqgeom.compare`. Weights must be integers (integer-valued floats are
        accepted): real-valued distances have no finite histogram.
    row_products : bool
        Also accumulate the per-row histogram products the CKA measures need (cost
        O(N V_a V_b) per pair of networks, V the largest distance + 1).

    Returns
    -------
    DistanceHistograms
        Host numpy arrays; memory O(sum_ab V_a V_b). Working memory of the pass: a block of
        rows of every network's distances (at most ~256 MB), never N x N. On CUDA codes the
        counting runs on the GPU with ``torch.bincount`` and matrix products.
    """
    from .heat import _prepare

    codes, wts, names = _prepare(models, X, weights, names, backend)
    block_rows = _check_block_rows(block_rows)
    return _histograms(codes, wts, names, backend, block_rows, progress, row_products)


def median_sigma2(
    models: Sequence[Any],
    X: Any = None,
    *,
    squared: bool = False,
    weights: Any = None,
    names: Sequence[str] | None = None,
    backend: str = "auto",
    block_rows: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """Each network's median-heuristic bandwidth, as ``compare(sigma2s="per_network")`` uses it.

    The median of the N (N - 1) / 2 off-diagonal VQ distances ``d(x_i, x_j)``, ``i < j`` (of
    ``d**2`` with ``squared``); the mean of the two middle values when their number is even.
    Exact: integer distances are counted (one streamed pass), real ones are binned and the
    two bins holding the middle ranks gathered exactly (two passes). Never N x N.

    Parameters
    ----------
    models, X, weights, names, backend, block_rows, progress
        As in :func:`vqgeom.compare`.
    squared : bool

    Returns
    -------
    ndarray (M,), float64

    Raises
    ------
    ValueError
        For N < 2, or a median of 0 (more than half of the pairs share a code).
    """
    from .heat import _prepare

    codes, wts, names = _prepare(models, X, weights, names, backend)
    block_rows = _check_block_rows(block_rows)
    return _median_direct(codes, wts, names, bool(squared), backend, block_rows, progress)[0]


def _check_block_rows(block_rows: Any) -> int:
    from ._validate import check_int

    return check_int(block_rows, "block_rows")


def _histograms(codes, wts, names, backend, block_rows, progress, row_products) -> DistanceHistograms:
    for i, wt in enumerate(wts):
        if not wt.integer:
            raise ValueError(f"weights: the histogram route needs integer weights; network {i} ({names[i]!r}) has "
                             f"{list(wt.values)} (use method='direct')")
    n, m = codes[0].n, len(codes)
    rows = _block_rows(block_rows, n, m, 3 * 8)
    acc = None
    for _, ds in _distance_blocks(codes, wts, [True] * m, backend, rows, progress, "histogram"):
        if acc is None:
            acc = _HistAccumulator(m, row_products, ds[0].device)
        acc.add(ds)
    return acc.result(n, names)


def _hist_stats(h: DistanceHistograms, bw: np.ndarray, squared: bool, measures: tuple[str, ...]) -> dict:
    """The sufficient sums of :func:`_finish` from the count arrays."""
    m, n = len(h.marginals), h.n
    S = bw.shape[0]
    need_cka = "rbf_cka" in measures or "linear_cka" in measures
    u = [np.arange(t.size, dtype=np.float64) for t in h.marginals]
    hm = [t.astype(np.float64) for t in h.marginals]
    J = {(a, b): (hm[a] if a == b else h._joint(a, b).astype(np.float64)) for a in range(m) for b in range(a, m)}
    P = {(a, b): h._prod(a, b) for a in range(m) for b in range(a, m)} if need_cka else {}
    out: dict[str, Any] = {}

    def gram(F: list[np.ndarray], table: dict) -> np.ndarray:
        # F[a]: (S, V_a) kernel values per bin; returns (S, m, m) of F_a^T table_ab F_b.
        G = np.zeros((F[0].shape[0], m, m))
        for (a, b), T in table.items():
            # 1-D T: a network against itself, whose joint histogram is diagonal (the marginal).
            v = (F[a] * F[b]) @ T if T.ndim == 1 else np.einsum("sv,sv->s", F[a] @ T, F[b])
            G[:, a, b] = G[:, b, a] = v
        return G

    if any(x in measures for x in ("heat_cosine", "rbf_cka")):
        x = [(u[a] ** 2 if squared else u[a])[None, :] / bw[:, a : a + 1] for a in range(m)]  # (S, V_a)
        if "heat_cosine" in measures:
            out["KK"] = gram([np.exp(-xa) for xa in x], J)
        if "rbf_cka" in measures:
            g = [np.expm1(-xa) for xa in x]
            g = [ga - (ga @ hm[a])[:, None] / n**2 for a, ga in enumerate(g)]  # minus the mean (exact)
            out["GG"], out["GR"] = gram(g, J), gram(g, P)
            out["GS"] = np.stack([g[a] @ hm[a] for a in range(m)], axis=1)  # (S, m)
    if need_cka or "mantel" in measures:
        c = np.array([hm[a] @ u[a] / n**2 for a in range(m)])
        t = [(u[a] - c[a])[None, :] for a in range(m)]
        out["DD"] = gram(t, J)[0]
        if need_cka:
            out["DR"] = gram(t, P)[0]
        out["DS"] = np.array([t[a][0] @ hm[a] for a in range(m)])
        out["c"] = c
    out["S"] = S
    return out


# --------------------------------------------------------------------------------------------------
# direct streamed route


def _direct_stats(codes, wts, names, bw: np.ndarray, squared: bool, measures, backend, block_rows, progress) -> dict:
    """The sufficient sums of :func:`_finish` accumulated from distance blocks (any weights)."""
    import torch

    m, n = len(codes), codes[0].n
    S = bw.shape[0]
    need_heat, need_rbf = "heat_cosine" in measures, "rbf_cka" in measures
    need_lin = "linear_cka" in measures or "mantel" in measures
    need_cka = "linear_cka" in measures
    rows = _block_rows(block_rows, n, m, 8 * 5)
    acc: dict[str, Any] = {}
    shift_g = None  # (S, m) means of expm1(-x) from the first block
    c = None  # (m,) mean distances from the first block

    def add(key, val):
        acc[key] = acc[key] + val if key in acc else val

    for _, ds in _distance_blocks(codes, wts, [False] * m, backend, rows, progress, "compare"):
        xp = np if ds[0].device.type == "cpu" and _HOST_NUMPY else torch
        D = xp.stack([d.numpy() for d in ds] if xp is np else ds)  # (m, rows, n) float64
        if need_lin:
            if c is None:
                c = D.reshape(m, -1).mean(1)
            T = D - c[:, None, None]
            Tf = T.reshape(m, -1)
            add("DD", Tf @ Tf.T)
            R = T.sum(2)  # (m, rows)
            if need_cka:
                add("DR", R @ R.T)
            add("DS", R.sum(1))
        if need_heat or need_rbf:
            X = D * D if squared else D
            bwt = bw if xp is np else torch.as_tensor(bw, dtype=torch.float64, device=D.device)
            if need_rbf and shift_g is None:  # the kernels' means over the first block
                shift_g = xp.stack([xp.expm1(-X / bwt[s][:, None, None]).reshape(m, -1).mean(1) for s in range(S)])
            KK, GG, GR, GS = [], [], [], []
            for s in range(S):
                G = xp.expm1(-X / bwt[s][:, None, None])
                if need_heat:
                    Kf = (G + 1).reshape(m, -1)
                    KK.append(Kf @ Kf.T)
                if need_rbf:
                    Gc = G - shift_g[s][:, None, None]
                    Gf = Gc.reshape(m, -1)
                    R = Gc.sum(2)
                    GG.append(Gf @ Gf.T)
                    GR.append(R @ R.T)
                    GS.append(R.sum(1))
            if need_heat:
                add("KK", xp.stack(KK))
            if need_rbf:
                add("GG", xp.stack(GG))
                add("GR", xp.stack(GR))
                add("GS", xp.stack(GS))
    host = lambda v: v if isinstance(v, np.ndarray) else v.cpu().numpy()  # noqa: E731
    out = {k: host(v) for k, v in acc.items()}
    if need_lin:
        out["c"] = host(c)
    out["S"] = S
    return out


def _median_direct(codes, wts, names, squared: bool, backend, block_rows, progress) -> np.ndarray:
    """(1, m) exact median-heuristic bandwidths by streaming (two passes when distances are real).

    Integer distances: one pass of bincounts. Real distances: pass 1 counts them in 4096
    equal bins over [0, largest possible distance]; pass 2 gathers the distinct values (with
    counts) inside the bins holding the two middle ranks and picks them exactly.
    """
    import torch

    m, n = len(codes), codes[0].n
    integ = [wt.integer for wt in wts]
    dmax = [float(wt.max_distance) for wt in wts]
    nb = 4096
    rows = _block_rows(block_rows, n, m, 8 * 3)
    counts: list[Any] = [None] * m

    def binned(d, a):
        if integ[a]:
            return d.reshape(-1)
        return torch.clamp((d * (nb / max(dmax[a], 1e-300))).to(torch.int64), 0, nb - 1).reshape(-1)

    for _, ds in _distance_blocks(codes, wts, integ, backend, rows, progress, "median"):
        for a, d in enumerate(ds):
            cnt = torch.bincount(binned(d, a), minlength=1 if integ[a] else nb).cpu().numpy()
            if counts[a] is None:
                counts[a] = cnt
            else:
                k = max(cnt.size, counts[a].size)
                counts[a] = np.pad(counts[a], (0, k - counts[a].size)) + np.pad(cnt, (0, k - cnt.size))
    out = np.zeros((1, m))
    gather: dict[int, tuple[np.ndarray, dict]] = {}
    for a in range(m):
        h = counts[a].copy()
        h[0] -= n  # the diagonal zeros
        if integ[a]:
            out[0, a] = _median_from_counts(np.arange(h.size, dtype=np.float64), h, squared, names[a])
        else:
            tot = int(h.sum())
            if tot == 0:
                _median_from_counts(np.zeros(1), np.zeros(1, dtype=np.int64), squared, names[a])
            cum = np.cumsum(h)
            bins = sorted({int(np.searchsorted(cum, (tot - 1) // 2, side="right")),
                           int(np.searchsorted(cum, tot // 2, side="right"))})
            gather[a] = (np.array(bins), {})
    if gather:
        for _, ds in _distance_blocks(codes, wts, integ, backend, rows, progress, "median (pass 2)"):
            for a, (bins, vals) in gather.items():
                d = ds[a].reshape(-1)
                b = binned(ds[a], a)
                sel = d[torch.isin(b, torch.as_tensor(bins, device=b.device))]
                v, k = torch.unique(sel, return_counts=True)
                for x, y in zip(v.cpu().numpy().tolist(), k.cpu().numpy().tolist()):
                    vals[x] = vals.get(x, 0) + y
        for a, (bins, vals) in gather.items():
            h = counts[a].copy()
            h[0] -= n
            below = int(h[: bins[0]].sum())
            if 0.0 in vals and bins[0] == 0:
                vals[0.0] -= n
            v = np.array(sorted(vals), dtype=np.float64)
            k = np.array([vals[x] for x in sorted(vals)], dtype=np.int64)
            # Prefix the ranks below the gathered bins as one count at a value below all of them.
            v = np.concatenate([[-np.inf], v])
            k = np.concatenate([[below], k])
            # The two middle ranks are adjacent, so any bin between the two gathered ones is empty.
            out[0, a] = _median_from_counts(v, k, squared, names[a], total=int(h.sum()))
    return out


# --------------------------------------------------------------------------------------------------
# the measures from the sums


def _finish(st: dict, n: int, measures: tuple[str, ...], S: int, m: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each measure as an ``(S, m, m)`` array (sigma-free ones repeated along S)."""
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "heat_cosine" in measures:
            KK = st["KK"]
            d = np.sqrt(np.einsum("saa->sa", KK))
            out["heat_cosine"] = KK / (d[:, :, None] * d[:, None, :])
        if "rbf_cka" in measures:
            GS = st["GS"]
            hs = st["GG"] - (2.0 / n) * st["GR"] + GS[:, :, None] * GS[:, None, :] / n**2
            out["rbf_cka"] = _normalise(hs, names, "rbf_cka")
        if "linear_cka" in measures:
            DS = st["DS"]
            hs = st["DD"] - (2.0 / n) * st["DR"] + DS[:, None] * DS[None, :] / n**2
            out["linear_cka"] = np.repeat(_normalise(hs[None], names, "linear_cka"), S, axis=0)
        if "mantel" in measures:
            c, noff = st["c"], n * (n - 1)
            so = st["DS"] + n * c  # off-diagonal sums of D - c (the diagonal holds -c)
            sp = st["DD"] - n * c[:, None] * c[None, :]
            mu = so / noff if noff else np.full(m, np.nan)
            cov = sp / noff - mu[:, None] * mu[None, :] if noff else np.full((m, m), np.nan)
            out["mantel"] = np.repeat(_normalise(cov[None], names, "mantel"), S, axis=0)
    return out


def _normalise(hs: np.ndarray, names: Sequence[str], measure: str) -> np.ndarray:
    """``hs_ab / sqrt(hs_aa hs_bb)``; NaN (with a warning) where a network's own term is not positive."""
    d = np.einsum("saa->sa", hs)
    bad = ~(d > 0)
    if bad.any():
        who = sorted({names[a] for a in np.nonzero(bad)[1]})
        warnings.warn(f"{measure}: undefined (NaN) for network(s) {who}: their distances are constant over the "
                      f"inputs (or N < 2), so the centred kernel is zero", RuntimeWarning, stacklevel=4)
    d = np.where(bad, np.nan, d)
    r = np.sqrt(d)
    return hs / (r[:, :, None] * r[:, None, :])


def _shared(bw: np.ndarray) -> np.ndarray:
    """``(S,)`` the shared sigma2 per row of ``bw``, NaN where the networks' bandwidths differ."""
    return np.where(np.all(bw == bw[:, :1], axis=1), bw[:, 0], np.nan)


def _comparison(values, measures, shared, bw, names, squared, route) -> Any:
    from .heat import Comparison

    return Comparison(values[measures[0]], shared, list(names), bool(squared), measure=measures[0],
                      values=values, bandwidths=bw, route=route)


# --------------------------------------------------------------------------------------------------
# the driver behind vqgeom.compare


def run_compare(codes, wts, names, sigma2s, measures, squared, backend, method, block_rows, progress) -> Any:
    """Resolve the route and compute (see :func:`vqgeom.compare`)."""
    from ._backend import kernel_backend

    m, n = len(codes), codes[0].n
    bw = parse_sigma2s(sigma2s, m)
    per_network = bw is None
    needs_sigma = any(x not in SIGMA_FREE for x in measures)
    if not needs_sigma and per_network:
        bw = np.full((1, m), np.nan)  # no bandwidth is used
    if method not in ("auto", "histogram", "direct", "sym"):
        raise ValueError(f"method: expected 'auto', 'histogram', 'direct' or 'sym', got {method!r}")
    integral = all(wt.integer for wt in wts)
    name = kernel_backend(backend, codes[0].words)  # cupy codes: Triton through DLPack unless cupy is named
    if method == "sym" and (name != "triton" or measures != ("heat_cosine",) or per_network
                            or np.isnan(_shared(bw)).any()):
        raise ValueError(f"method: 'sym' is the fused Triton cosine kernel's variant: it needs the triton backend "
                         f"(got {name!r}), measure='heat_cosine' alone (got {measures}) and sigma2s shared by all "
                         f"networks")
    if method == "histogram" and not integral:
        bad = [names[i] for i, wt in enumerate(wts) if not wt.integer]
        raise ValueError(f"method: 'histogram' needs integer distances (integer weights); networks {bad} have real "
                         f"weights (use method='direct' or 'auto')")
    if method == "auto":
        if name == "triton":
            # The counting route on CUDA (torch.bincount) has not been timed on a GPU: explicit only.
            method = "direct"
        else:
            vmax = [float(wt.max_distance) + 1 for wt in wts]
            cells = sum(vmax[a] * vmax[b] for a in range(m) for b in range(a, m))
            method = "histogram" if integral and cells <= _AUTO_HIST_CELLS else "direct"
    if method == "histogram":
        need_cka = any(x in measures for x in ("rbf_cka", "linear_cka"))
        h = _histograms(codes, wts, names, backend, block_rows, progress, need_cka)
        if per_network:
            return h.compare("per_network", measures, squared=squared)
        return h._evaluate(bw, _shared(bw), measures, squared)
    if per_network and needs_sigma:
        bw = _median_direct(codes, wts, names, squared, backend, block_rows, progress)
    if name == "triton" and measures == ("heat_cosine",) and not np.isnan(_shared(bw)).any():
        from .heat import _compare_triton

        sim = _compare_triton(codes, wts, bw[:, 0], squared, magic=method == "sym")
        return _comparison({"heat_cosine": sim}, measures, _shared(bw), bw, names, squared, "triton")
    st = _direct_stats(codes, wts, names, bw, squared, measures, backend, block_rows, progress)
    values = _finish(st, n, measures, bw.shape[0], m, names)
    shared = np.full(1, np.nan) if per_network else _shared(bw)
    return _comparison(values, measures, shared, bw, names, squared, "direct")
