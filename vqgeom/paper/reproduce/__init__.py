"""``vqgeom reproduce fig1|fig2|fig3|fig4|fig5|all [--out DIR] [--small]``: the paper's figures.

Each target trains what it needs with the settings of the paper's Appendix A, writes the figure as
PNG and PDF and the numbers behind it as CSV/JSON into ``OUT/<target>/``, prints its progress and
the time it took. ``all`` runs every target and writes ``OUT/summary.json`` with the times.

==========  ========================================================================  =============
target      what                                                                       module
==========  ========================================================================  =============
fig1        MDS eigenvectors over the unit disc, two moons vs rotated; claims measured  ``fig1``
fig2        MDS embeddings of the high-dimensional two moons (R^100); claims measured  ``fig2``
fig3        4 x 4 heat-kernel cosine table, MNIST, beside the paper's values           ``mnist``
fig4        the same similarities over a sweep of sigma^2                              ``mnist``
fig5        shallow vs deep network with one partition (geometry module)               ``fig5``
==========  ========================================================================  =============

fig3 and fig4 share the trained MNIST networks: they are saved as checkpoints under
``OUT/mnist-models/`` and reused when the settings match.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

TARGETS = {
    "fig1": ("vqgeom.paper.reproduce.fig1", "run"),
    "fig2": ("vqgeom.paper.reproduce.fig2", "run"),
    "fig3": ("vqgeom.paper.reproduce.mnist", "run_fig3"),
    "fig4": ("vqgeom.paper.reproduce.mnist", "run_fig4"),
    "fig5": ("vqgeom.paper.reproduce.fig5", "run"),
}

__all__ = ["main", "run", "TARGETS"]


def run(target: str, out: str | Path = "out/reproduce", *, small: bool = False, progress: bool = True,
        mnist: str | None = None) -> dict:
    """Reproduce one figure into ``out/<target>`` and return its summary (also written as JSON).

    Parameters
    ----------
    target : {"fig1", "fig2", "fig3", "fig4", "fig5"}
    out : path
        Parent output folder.
    small : bool
        Reduced sizes (smoke tests); not the paper's settings.
    progress : bool
        Progress bars.
    mnist : path, optional
        Folder with the MNIST IDX files (else ``$VQGEOM_MNIST``); fig3 and fig4 only.

    Returns
    -------
    dict
        The figure's results (settings, measurements, seconds per step).
    """
    from ._common import Context

    if target not in TARGETS:
        raise ValueError(f"target: expected one of {sorted(TARGETS)}, got {target!r}")
    module, fn = TARGETS[target]
    ctx = Context(Path(out) / target, small=small, progress=progress, mnist=mnist, name=target)
    return getattr(importlib.import_module(module), fn)(ctx)


_HELP = """Reproduce the figures of the VQ-Kernels paper.

Each target trains what it needs with the settings of the paper's Appendix A, writes the figure
as PNG and PDF and the numbers behind it as CSV/JSON into OUT/<target>/, and prints its progress
and the time it took.

targets:
  fig1   MDS eigenvectors over the unit disc, two moons vs rotated; claims measured
  fig2   MDS embeddings of the high-dimensional two moons (R^100); claims measured
  fig3   4 x 4 table of network similarities on MNIST, beside the paper's values
  fig4   the same similarities over a sweep of sigma^2
  fig5   shallow vs deep network with one partition
  all    every target in order; also writes OUT/summary.json with the times

fig3 and fig4 share the trained MNIST networks (checkpoints under OUT/mnist-models/, reused
when the settings match)."""


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``vqgeom reproduce ...``); returns the exit status."""
    import torch

    from ._common import save_json

    p = argparse.ArgumentParser(prog="vqgeom reproduce", description=_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", choices=[*TARGETS, "all"], help="which figure (all: every one, in order)")
    p.add_argument("--out", default="out/reproduce", help="output folder (default: %(default)s)")
    p.add_argument("--small", action="store_true", help="reduced sizes for a quick smoke run (not the paper's settings)")
    p.add_argument("--mnist", default=None, help="folder with the MNIST IDX files (default: $VQGEOM_MNIST, else downloaded into ~/.cache/vqgeom/mnist)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for encoding and distances (default: torch's choice; training always uses one)")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    targets = list(TARGETS) if args.target == "all" else [args.target]
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    for target in targets:
        print(f"=== {target} ===", flush=True)
        t = time.perf_counter()
        run(target, args.out, small=args.small, progress=not args.no_progress, mnist=args.mnist)
        times[target] = time.perf_counter() - t
        print(f"=== {target} done in {times[target]:.1f}s -> {Path(args.out) / target}", flush=True)
    total = time.perf_counter() - t_all
    if len(targets) > 1:
        print("time per figure: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()) + f"; total {total:.1f}s")
        save_json({"seconds": times, "total_seconds": total, "small": args.small}, Path(args.out) / "summary.json")
    return 0
