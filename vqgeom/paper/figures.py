"""Fig. 5: a deep tent-map net and a shallow net with the identical partition of [0, 1].

Both nets cut [0, 1] into the ``2**L`` intervals ``[k/2**L, (k+1)/2**L]``, so their region
graphs, and d_Omega, are the same path. The shallow net's VQ distance equals d_Omega
(Lemma 1); the deep net's is at most ``L`` (one switching hyperplane per layer), far below
d_Omega for distant regions (Lemma 2 with shortcuts).
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import numpy as np

from ..geometry import Partition, partition, shallow_tent_net, tent_breakpoints, tent_map_net, verify_lemma1, verify_lemma2

__all__ = ["fig5", "partition_panels"]


def fig5(out_dir: str | os.PathLike, L: int = 4, *, dpi: int = 150) -> dict[str, Any]:
    """Reproduce Fig. 5 and write ``fig5.png``, ``fig5.pdf``, ``fig5_pairs.csv`` and ``fig5.json``.

    Parameters
    ----------
    out_dir : path
        Created if missing.
    L : int
        Depth of the tent-map net (``2**L`` regions; the shallow net has ``2**L - 1`` units).
    dpi : int
        PNG resolution.

    Returns
    -------
    dict
        ``L``, ``n_regions_deep``, ``n_regions_shallow``, ``shallow_units``,
        ``identical_partition`` (bool), ``max_breakpoint_error`` (vs ``k / 2**L``),
        ``d_omega_identical`` (bool), ``max_d_omega``, ``max_d_deep``, ``deep_le_L`` (bool),
        ``shallow_equals_d_omega`` (bool), ``deep_strict_share`` (share of pairs with
        ``d_deep < d_Omega``), ``files`` (written paths).
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or not 1 <= L <= 12:
        raise ValueError(f"L: expected an integer depth in [1, 12], got {L!r}")
    from matplotlib.figure import Figure

    from ..geometry.plot import count_legend, layer_colors, plot_distance_scatter, plot_partition

    os.makedirs(out_dir, exist_ok=True)
    deep = partition(tent_map_net(L), (0.0, 1.0))
    shallow = partition(shallow_tent_net(L), (0.0, 1.0))
    exact = np.concatenate([[0.0], tent_breakpoints(L), [1.0]])
    same = deep.n_regions == shallow.n_regions == 2**L
    err = float(max(np.abs(deep.intervals.ravel() - np.repeat(exact, 2)[1:-1]).max(),
                    np.abs(shallow.intervals.ravel() - np.repeat(exact, 2)[1:-1]).max())) if same else float("inf")
    identical = bool(same and np.array_equal(deep.intervals, shallow.intervals))
    dom_deep, dom_shallow = deep.distances(), shallow.distances()
    d_deep, d_shallow = deep.code_distances(), shallow.code_distances()
    out: dict[str, Any] = {
        "L": int(L),
        "n_regions_deep": deep.n_regions,
        "n_regions_shallow": shallow.n_regions,
        "shallow_units": int(sum(shallow.layer_sizes)),
        "identical_partition": identical,
        "max_breakpoint_error": err,
        "d_omega_identical": bool(identical and np.array_equal(dom_deep, dom_shallow)),
        "max_d_omega": float(dom_deep.max()),
        "max_d_deep": float(d_deep.max()),
        "deep_le_L": bool(d_deep.max() <= L),
        "shallow_equals_d_omega": bool(np.array_equal(d_shallow, dom_shallow)),
        "deep_le_d_omega": bool(np.all(d_deep <= dom_deep)),
        "deep_strict_share": float(np.mean((d_deep < dom_deep)[np.triu_indices(deep.n_regions, 1)])),
    }

    fig = Figure(figsize=(13, 8), layout="constrained")
    axs = fig.subplots(2, 3)
    plot_partition(shallow, axs[0, 0], values=np.arange(shallow.n_regions), cmap="twilight")
    axs[0, 0].set_title(f"shallow: 1 layer, {out['shallow_units']} units")
    plot_partition(deep, axs[0, 1], values=np.arange(deep.n_regions), cmap="twilight")
    axs[0, 1].set_title(f"deep tent map: {L} layers (breakpoints by layer)")
    for ax in axs[0, :2]:
        ax.set_xlabel("input $z$ (regions shaded by index)")
    cols = layer_colors(2)
    plot_distance_scatter(dom_shallow, d_shallow, axs[0, 2], label="shallow", color=cols[0])
    plot_distance_scatter(dom_deep, d_deep, axs[0, 2], label="deep", color=cols[1])
    nets = axs[0, 2].legend(fontsize=8, loc="upper left")
    axs[0, 2].add_artist(nets)
    count_legend(axs[0, 2], (1, 4, 16), fontsize=8, title_fontsize=8, loc="upper center")
    axs[0, 2].set_title(r"VQ distance against $d_\Omega$ (dashed: $d = d_\Omega$)")
    vmax = float(dom_deep.max())
    ticks = np.arange(0, deep.n_regions, max(1, deep.n_regions // 8))
    for ax, M, title in (
        (axs[1, 0], dom_deep, r"$d_\Omega$ (both nets)"),
        (axs[1, 1], d_shallow, "VQ distance, shallow"),
        (axs[1, 2], d_deep, "VQ distance, deep"),
    ):
        im = ax.imshow(M, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("region")
        ax.set_ylabel("region")
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    fig.colorbar(im, ax=axs[1, 2], fraction=0.046, pad=0.04, label="distance (hops; hyperplanes)")
    fig.suptitle(f"Fig. 5: identical partitions of [0, 1] into {2**L} regions, different VQ distances")
    base = os.path.join(os.fspath(out_dir), "fig5")
    fig.savefig(base + ".png", dpi=dpi)
    fig.savefig(base + ".pdf")

    iu = np.triu_indices(deep.n_regions, k=1)
    with open(base + "_pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["i", "j", "d_omega", "d_shallow", "d_deep"])
        for i, j in zip(*iu):
            w.writerow([int(i), int(j), int(dom_deep[i, j]), int(d_shallow[i, j]), int(d_deep[i, j])])
    out["files"] = [base + ".png", base + ".pdf", base + "_pairs.csv", base + ".json"]
    with open(base + ".json", "w") as f:
        json.dump({**out, "breakpoints": deep.intervals[1:, 0].tolist()}, f, indent=2)
    return out


def partition_panels(
    net_or_partition: Any,
    out_dir: str | os.PathLike,
    bounds: Any = None,
    *,
    plane: Any = None,
    name: str = "partition",
    dpi: int = 150,
) -> dict[str, Any]:
    """Three panels: the partition (boundaries by layer), its adjacency graph, and d against d_Omega.

    Writes ``{name}.png``, ``{name}.pdf`` and ``{name}.json`` (region and edge counts, edges
    per layer, and the Lemma 2 report, plus Lemma 1's for a single layer).

    Parameters
    ----------
    net_or_partition : Partition, or anything :func:`partition` accepts
    out_dir : path
    bounds, plane
        Passed to :func:`partition` when a network is given.
    name : str
        File stem.
    dpi : int

    Returns
    -------
    dict
        The numbers written to the JSON file, with ``files``.
    """
    from matplotlib.figure import Figure

    from ..geometry.plot import plot_distance_scatter, plot_graph, plot_partition

    if isinstance(net_or_partition, Partition):
        part = net_or_partition
    else:
        if bounds is None:
            raise ValueError("bounds: expected (xmin, xmax, ymin, ymax) or (lo, hi) with a network, got None")
        part = partition(net_or_partition, bounds, plane=plane)
    os.makedirs(out_dir, exist_ok=True)
    d_om, d_vq = part.distances(), part.code_distances()
    rep2 = verify_lemma2(part)
    out: dict[str, Any] = {
        "n_regions": part.n_regions,
        "n_edges": int(len(part.edge_index)),
        "layer_sizes": list(part.layer_sizes),
        "edges_per_layer": np.bincount(part.edge_layer, minlength=len(part.layer_sizes)).tolist(),
        "lemma2": {k: getattr(rep2, k) for k in ("pairs", "equal", "less", "greater", "violations")},
    }
    if len(part.layer_sizes) == 1:
        rep1 = verify_lemma1(part)
        out["lemma1"] = {k: getattr(rep1, k) for k in ("pairs", "equal", "less", "greater", "violations")}
    fig = Figure(figsize=(15, 5), layout="constrained")
    axs = fig.subplots(1, 3)
    plot_partition(part, axs[0])
    axs[0].set_title(f"{part.n_regions} regions (boundaries by layer)")
    plot_graph(part, axs[1])
    axs[1].set_title(f"adjacency graph: {out['n_edges']} edges")
    plot_distance_scatter(d_om, d_vq, axs[2])
    axs[2].set_title(f"VQ distance vs $d_\\Omega$: {100 * rep2.strict_share:.1f}% of pairs strictly below")
    base = os.path.join(os.fspath(out_dir), name)
    fig.savefig(base + ".png", dpi=dpi)
    fig.savefig(base + ".pdf")
    out["files"] = [base + ".png", base + ".pdf", base + ".json"]
    with open(base + ".json", "w") as f:
        json.dump(out, f, indent=2)
    return out
