"""Empirical checks of Lemma 1 (d = d_Omega for one layer) and Lemma 2 (d <= d_Omega).

Both compare, over every pair of regions of a :class:`~vqgeom.geometry.Partition`, the VQ
distance between the regions' codes with the hop distance d_Omega in the region
adjacency graph (the weighted variants use the layer weights on both sides).

Non-generic exceptions (documented and tested):

* **duplicate units** (two units with the same hyperplane and orientation) and
  **antiparallel units** (``(a, b)`` and ``(-a, -b)``): one hop across their common
  hyperplane flips two bits, so the VQ distance exceeds d_Omega. Lemma 1 assumes
  distinct hyperplanes, and Lemma 2's "generic" network excludes this;
* a hyperplane that misses the domain, a zero-weight unit or a dead unit never flips a
  bit and never adds a region: it changes neither side, so the lemmas still hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._partition import Partition, partition

__all__ = ["LemmaReport", "verify_lemma1", "verify_lemma2"]


@dataclass
class LemmaReport:
    """Outcome of a lemma check over all unordered pairs of distinct regions.

    Attributes
    ----------
    lemma : int
        1 or 2.
    n_regions, pairs : int
        Regions, and unordered pairs ``i < j`` checked.
    equal, less, greater : int
        Pairs with ``d == d_Omega``, ``d < d_Omega`` (strict), ``d > d_Omega``.
    violations : int
        Lemma 1: pairs with ``d != d_Omega``; Lemma 2: pairs with ``d > d_Omega``.
    examples : list of dict
        Up to ``max_examples`` violating pairs: regions, representative inputs, both distances.
    connected : bool
        Whether the adjacency graph is connected (d_Omega finite everywhere).
    """

    lemma: int
    n_regions: int
    pairs: int
    equal: int
    less: int
    greater: int
    violations: int
    connected: bool
    examples: list = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """No violation and a connected graph."""
        return self.violations == 0 and self.connected

    @property
    def strict_share(self) -> float:
        """Share of pairs with ``d < d_Omega``."""
        return self.less / self.pairs if self.pairs else 0.0

    def __str__(self) -> str:
        return (
            f"Lemma {self.lemma}: {self.n_regions} regions, {self.pairs} pairs: {self.equal} equal, "
            f"{self.less} strictly less, {self.greater} greater -> "
            f"{'holds' if self.holds else f'{self.violations} violations'}"
        )


def _as_partition(obj: Any, bounds: Any, plane: Any) -> Partition:
    if isinstance(obj, Partition):
        if bounds is not None or plane is not None:
            raise ValueError("bounds, plane: expected None when a Partition is given (it has its own)")
        return obj
    if bounds is None:
        raise ValueError("bounds: expected (xmin, xmax, ymin, ymax) or (lo, hi) with a network, got None")
    return partition(obj, bounds, plane=plane)


def _compare(part: Partition, lemma: int, weights: Sequence[float] | None, max_examples: int) -> LemmaReport:
    R = part.n_regions
    d_om = part.distances(weights)
    d_vq = part.code_distances(weights)
    iu = np.triu_indices(R, k=1)
    a, b = d_vq[iu], d_om[iu]
    connected = bool(np.isfinite(b).all())
    if weights is None:
        eq, lt = a == b, a < b
    else:
        # Sums of float weights: compare with a relative tolerance of 1e-9 (a few ulps per hop).
        tol = 1e-9 * np.maximum(1.0, np.abs(b))
        eq = np.abs(a - b) <= tol
        lt = (a < b) & ~eq
    gt = ~eq & ~lt
    bad = ~eq if lemma == 1 else gt
    idx = np.flatnonzero(bad)[:max_examples]
    examples = [
        {
            "regions": (int(iu[0][k]), int(iu[1][k])),
            "inputs": (part.inputs[iu[0][k]].tolist(), part.inputs[iu[1][k]].tolist()),
            "d": float(a[k]),
            "d_omega": float(b[k]),
        }
        for k in idx
    ]
    return LemmaReport(lemma, R, int(a.size), int(eq.sum()), int(lt.sum()), int(gt.sum()), int(bad.sum()), connected, examples)


def verify_lemma1(
    net_or_partition: Any,
    bounds: Sequence[float] | None = None,
    *,
    plane: Any = None,
    weights: Sequence[float] | None = None,
    max_examples: int = 5,
) -> LemmaReport:
    """Check Lemma 1: for one layer of hyperplanes, the VQ distance equals d_Omega.

    Parameters
    ----------
    net_or_partition : Partition, or anything :func:`partition` accepts
        Must have exactly one coding layer (a hyperplane set or a one-hidden-layer net).
    bounds, plane
        Passed to :func:`partition` when a network is given.
    weights : sequence of float, optional
        Layer weights (one here).
    max_examples : int
        Violating pairs to keep in the report.

    Returns
    -------
    LemmaReport
        ``violations`` counts pairs with ``d != d_Omega``. Expect 0 in general position;
        duplicate or antiparallel units give ``d > d_Omega``.
    """
    part = _as_partition(net_or_partition, bounds, plane)
    if len(part.layer_sizes) != 1:
        raise ValueError(
            f"net_or_partition: Lemma 1 is about one layer of hyperplanes, got {len(part.layer_sizes)} coding layers "
            "(use verify_lemma2 for deep networks)"
        )
    return _compare(part, 1, weights, max_examples)


def verify_lemma2(
    net_or_partition: Any,
    bounds: Sequence[float] | None = None,
    *,
    plane: Any = None,
    weights: Sequence[float] | None = None,
    max_examples: int = 5,
) -> LemmaReport:
    """Check Lemma 2: for any network, the VQ distance is at most d_Omega.

    Parameters and return as :func:`verify_lemma1`; ``violations`` counts pairs with
    ``d > d_Omega`` and ``less`` the strict cases (the deep network's shortcuts).
    """
    part = _as_partition(net_or_partition, bounds, plane)
    return _compare(part, 2, weights, max_examples)
