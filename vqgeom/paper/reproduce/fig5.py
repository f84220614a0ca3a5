"""Figure 5: a wide shallow network and a deep narrow one with the identical partition, different VQ distances.

The construction and the figure belong to the geometry module
(:func:`vqgeom.paper.figures.fig5`: the tent-map net of ERRATA item 1 with ``L`` layers and the
shallow net with ``2**L - 1`` units, both cutting [0, 1] into ``2**L`` intervals). This target
calls it with the paper's depth, times it and prints the numbers that check Lemmas 1 and 2.

Beyond the tent map, Lemma 2 (d <= d_Omega) and the share of region pairs where it is strict are
measured on the *trained* networks of the other figures, through exact 2-D partitions
(:func:`vqgeom.geometry.partition`): the two-moons networks of Fig. 1 on a window of their input
plane, and the networks of Fig. 2 (R^100) and Figs. 3/4 (MNIST, R^784) on the affine plane through
three of their held-out inputs (:func:`vqgeom.geometry.plane_through`; bounds [-0.25, 1.25]^2 in the
plane's coordinates, so the three inputs and the triangle between them lie inside). It reads the
checkpoints those targets wrote into the same output folder (``reproduce all`` runs fig5 last);
networks whose checkpoints are missing are listed as such.
"""

from __future__ import annotations

from typing import Any

from pathlib import Path

import numpy as np

from ._common import Context, save_csv, save_json

PAPER_L = 4  # Fig. 5 does not state L; 4 gives 16 regions, readable in one figure
SMALL_L = 3

CHECKS = ("identical_partition", "d_omega_identical", "shallow_equals_d_omega", "deep_le_d_omega", "deep_le_L")


def run(ctx: Context) -> dict[str, Any]:
    """Draw Fig. 5 into ``ctx.out`` through the geometry module; return its numbers."""
    from ..figures import fig5

    L = SMALL_L if ctx.small else PAPER_L
    with ctx.step(f"partitions and distances of the deep tent-map net (L = {L}) and the shallow net"):
        res = fig5(ctx.out, L)
    ctx.log(f"regions: deep {res['n_regions_deep']}, shallow {res['n_regions_shallow']} "
            f"({res['shallow_units']} units); max d_Omega {res['max_d_omega']:.0f}, max deep VQ distance "
            f"{res['max_d_deep']:.0f}; share of region pairs with d_deep < d_Omega {res['deep_strict_share']:.3f}")
    for key in CHECKS:
        ctx.log(f"  {key}: {res[key]}")
    with ctx.step("Lemma 2 on the trained networks of Figs. 1-4 through exact 2-D slices"):
        slices = trained_slices(ctx)
    result = dict(figure="fig5", L=L, small=ctx.small, geometry=res, trained_slices=slices, machine=ctx.machine(),
                  seconds=ctx.steps)
    save_json(result, ctx.out / "fig5_reproduce.json")
    return result


SLICE_BOUNDS = (-0.25, 1.25, -0.25, 1.25)
FIG1_WINDOW = (-0.3, 0.3, -0.3, 0.3)  # the whole [-1, 1]^2 has ~14,000 regions: d_Omega over all pairs takes minutes
SLICE_SEEDS = 2  # networks of Figs. 1 and 2 per setting (1,000-3,500 regions each on the slice); MNIST: every replicate


def _slice_cases(ctx: Context) -> list[tuple[str, Path, object, object, tuple]]:
    """(label, checkpoint, plane or None, bounds) of every network whose checkpoint the other targets wrote."""
    from .. import data
    from . import fig1, fig2, mnist

    root = ctx.out.parent
    cases = []
    s1 = fig1.settings(ctx.small)
    for seed in range(min(s1.seeds, SLICE_SEEDS)):
        cases.append((f"fig1 original seed {seed} (2-D input, window)", root / "fig1" / f"model_original_seed{seed}.pt",
                      None, FIG1_WINDOW))
    s2 = fig2.settings(ctx.small)
    Xt, _ = data.high_dim_moons(3 * s2.seeds, s2.noise, s2.data_seed + 1, dim=s2.dim, scale=s2.scale)
    Xg, _ = data.high_dim_moons(3 * s2.seeds, s2.noise, s2.data_seed + 1, dim=s2.dim, scale=s2.gen_scale)
    for seed in range(min(s2.seeds, SLICE_SEEDS)):
        for tag, X in (("original", Xt), ("generalising", Xg)):
            cases.append((f"fig2 {tag} seed {seed} (R^{s2.dim}, plane through 3 held-out points)",
                          root / "fig2" / f"model_{tag}_seed{seed}.pt", X[3 * seed : 3 * seed + 3], SLICE_BOUNDS))
    s3 = mnist.settings(ctx.small)
    cache = root / "mnist-models"
    test = None
    if (cache / "settings.json").is_file():
        try:
            test = mnist._test_set(ctx, s3)[2]
        except (FileNotFoundError, OSError, ValueError):  # no MNIST files here: those cases are reported as missing
            test = None
    for rep in range(s3.seeds):
        for kind in ("trained", "init"):
            for depth in s3.depths:
                X = None if test is None else test[3 * rep : 3 * rep + 3]
                cases.append((f"MNIST {kind.capitalize()}({depth}) rep {rep} (R^784, plane through 3 test images)",
                              cache / f"{kind}{depth}_rep{rep}.pt", X, SLICE_BOUNDS))
    return cases


def trained_slices(ctx: Context) -> list[dict]:
    """Lemma 2 on exact 2-D partitions of the trained networks (see the module docstring); writes fig5_slices.csv."""
    from ... import models
    from ...geometry import partition, plane_through, verify_lemma2

    rows = []
    for label, path, X, bounds in _slice_cases(ctx):
        if not path.is_file() or (X is None and "fig1" not in label):
            rows.append(dict(network=label, available=False))
            continue
        net, _ = models.load_checkpoint(path)
        plane = None if X is None else plane_through(*np.asarray(X, dtype=np.float64))
        part = partition(net, bounds, plane=plane)
        rep = verify_lemma2(part)
        rows.append(dict(network=label, available=True, layers=len(part.layer_sizes), regions=rep.n_regions,
                         pairs=rep.pairs, equal=rep.equal, less=rep.less, greater=rep.greater,
                         strict_share=rep.strict_share, holds=rep.holds))
        ctx.log(f"  {label}: {rep.n_regions} regions, {rep.pairs} pairs, d < d_Omega for {100 * rep.strict_share:.1f}%, "
                f"d > d_Omega for {rep.greater} -> {'holds' if rep.holds else 'VIOLATED'}")
    missing = [r["network"] for r in rows if not r["available"]]
    if missing:
        ctx.log(f"  no checkpoint (run fig1-fig3 into the same folder first) for {len(missing)} network(s)")
    keys = ["network", "available", "layers", "regions", "pairs", "equal", "less", "greater", "strict_share", "holds"]
    save_csv(ctx.out / "fig5_slices.csv", keys, [[r.get(k, "") for k in keys] for r in rows])
    return rows
