"""Plots of partitions: regions, boundaries by layer, the adjacency graph, d against d_Omega.

matplotlib is imported on first use; pass an ``ax`` to draw into an existing figure.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._partition import Partition

__all__ = ["plot_partition", "plot_graph", "plot_distance_scatter", "layer_colors"]


def _axes(ax: Any):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(5, 5)).add_subplot(111)


def layer_colors(n_layers: int) -> np.ndarray:
    """One RGBA colour per coding layer (tab10, cycling), shape (n_layers, 4)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return np.array([cmap(l % 10) for l in range(max(n_layers, 1))])


def _face_colors(part: Partition, values: Any, cmap: str, seed: int) -> np.ndarray:
    import matplotlib

    if values is None:
        rng = np.random.default_rng(seed)
        return np.concatenate([0.35 + 0.6 * rng.random((part.n_regions, 3)), np.ones((part.n_regions, 1))], axis=1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != (part.n_regions,):
        raise ValueError(f"values: expected one value per region ({part.n_regions},), got shape {v.shape}")
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return matplotlib.colormaps[cmap]((v - lo) / (hi - lo if hi > lo else 1.0))


def plot_partition(
    part: Partition,
    ax: Any = None,
    *,
    values: Any = None,
    cmap: str = "viridis",
    boundaries: bool = True,
    linewidth: float = 0.6,
    seed: int = 0,
):
    """Draw the regions (random colours, or ``values`` through ``cmap``) and their boundaries by layer.

    Parameters
    ----------
    part : Partition
        1-D or 2-D.
    ax : matplotlib Axes, optional
    values : array_like float (n_regions,), optional
        Colour the regions by these values instead of random colours.
    boundaries : bool
        Draw the shared boundaries, coloured by the layer of their hyperplane (tab10).
    linewidth : float
    seed : int
        Seed of the random region colours.

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.collections import LineCollection, PolyCollection

    if not isinstance(part, Partition):
        raise TypeError(f"part: expected a Partition, got {type(part).__name__}")
    ax = _axes(ax)
    fc = _face_colors(part, values, cmap, seed)
    colors = layer_colors(len(part.layer_sizes))
    if part.dim == 2:
        polys = np.split(part.vertices, part.offsets[1:-1])
        ax.add_collection(PolyCollection(polys, facecolors=fc, edgecolors="none"))
        if boundaries and len(part.edge_segments):
            ax.add_collection(
                LineCollection(part.edge_segments, colors=colors[part.edge_layer], linewidths=linewidth)
            )
        x0, x1, y0, y1 = part.bounds
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="k", lw=linewidth)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
    else:
        for (lo, hi), c in zip(part.intervals, fc):
            ax.axvspan(lo, hi, color=c, lw=0)
        if boundaries:
            for x, l in zip(part.edge_segments[:, 0, 0], part.edge_layer):
                ax.axvline(x, color=colors[l], lw=linewidth * 2)
        ax.set_xlim(*part.bounds)
        ax.set_yticks([])
    from matplotlib.lines import Line2D

    if boundaries and len(part.layer_sizes) > 1:
        handles = [Line2D([0], [0], color=colors[l], lw=2) for l in range(len(part.layer_sizes))]
        ax.legend(handles, [f"layer {l + 1}" for l in range(len(part.layer_sizes))], fontsize=7, loc="upper right")
    return ax


def plot_graph(part: Partition, ax: Any = None, *, node_size: float = 6.0, linewidth: float = 0.5, show_partition: bool = True):
    """Draw the adjacency graph over the partition: a node at each region's representative
    point, an edge per shared boundary, coloured by the layer of its hyperplane.

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.collections import LineCollection

    if not isinstance(part, Partition):
        raise TypeError(f"part: expected a Partition, got {type(part).__name__}")
    ax = _axes(ax)
    if show_partition:
        plot_partition(part, ax, boundaries=False)
        if part.dim == 2:
            for coll in ax.collections:
                coll.set_alpha(0.35)
    pts = part.points if part.dim == 2 else np.stack([part.points[:, 0], np.zeros(part.n_regions)], axis=1)
    colors = layer_colors(len(part.layer_sizes))
    segs = pts[part.edge_index]
    ax.add_collection(LineCollection(segs, colors=colors[part.edge_layer], linewidths=linewidth))
    ax.scatter(pts[:, 0], pts[:, 1], s=node_size, c="k", zorder=3, linewidths=0)
    if part.dim == 1:
        ax.set_ylim(-1, 1)
    return ax


def _marker_area(counts: Any) -> np.ndarray:
    """Marker area (points^2) of :func:`plot_distance_scatter` for a number of pairs."""
    return 8 + 12 * np.log1p(np.asarray(counts, dtype=np.float64))


def count_legend(ax: Any, counts: Sequence[int] = (1, 10, 100), **kwargs: Any) -> Any:
    """A legend of :func:`plot_distance_scatter`'s marker sizes (grey markers for the given pair counts)."""
    handles = [ax.scatter([], [], s=float(_marker_area(c)), color="0.5", alpha=0.7, label=f"{c} pair{'s' if c != 1 else ''}")
               for c in counts]
    return ax.legend(handles=handles, title="marker area", **kwargs)


def plot_distance_scatter(d_omega: Any, d: Any, ax: Any = None, *, label: str | None = None, color: Any = None):
    """Scatter of VQ distance ``d`` against d_Omega over all pairs ``i < j``; marker area ~ log(count).

    Parameters
    ----------
    d_omega, d : array_like float (R, R)
        The two distance matrices over the same regions.

    Returns
    -------
    matplotlib Axes
    """
    d_omega = np.asarray(d_omega, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if d_omega.ndim != 2 or d_omega.shape != d.shape or d.shape[0] != d.shape[1]:
        raise ValueError(f"d_omega, d: expected two square matrices of one shape, got {d_omega.shape} and {d.shape}")
    ax = _axes(ax)
    iu = np.triu_indices(d.shape[0], k=1)
    pairs = np.stack([d_omega[iu], d[iu]], axis=1)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs):
        uniq, counts = np.unique(pairs, axis=0, return_counts=True)
        ax.scatter(uniq[:, 0], uniq[:, 1], s=_marker_area(counts), alpha=0.7, label=label, color=color)
        top = float(max(uniq.max(), 1.0))
        ax.plot([0, top], [0, top], color="0.5", lw=0.8, ls="--")
    ax.set_xlabel(r"$d_\Omega$ (hops)")
    ax.set_ylabel("VQ distance $d$")
    return ax
