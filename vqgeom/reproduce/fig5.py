"""Figure 5: a wide shallow network and a deep narrow one with the identical partition, different VQ distances.

The construction and the figure belong to the geometry module
(:func:`vqgeom.geometry.figures.fig5`: the tent-map net of ERRATA item 1 with ``L`` layers and the
shallow net with ``2**L - 1`` units, both cutting [0, 1] into ``2**L`` intervals). This target
calls it with the paper's depth, times it and prints the numbers that check Lemmas 1 and 2.
"""

from __future__ import annotations

from typing import Any

from ._common import Context, save_json

PAPER_L = 4  # Fig. 5 does not state L; 4 gives 16 regions, readable in one figure
SMALL_L = 3

CHECKS = ("identical_partition", "d_omega_identical", "shallow_equals_d_omega", "deep_le_d_omega", "deep_le_L")


def run(ctx: Context) -> dict[str, Any]:
    """Draw Fig. 5 into ``ctx.out`` through the geometry module; return its numbers."""
    from ..geometry.figures import fig5

    L = SMALL_L if ctx.small else PAPER_L
    with ctx.step(f"partitions and distances of the deep tent-map net (L = {L}) and the shallow net"):
        res = fig5(ctx.out, L)
    ctx.log(f"regions: deep {res['n_regions_deep']}, shallow {res['n_regions_shallow']} "
            f"({res['shallow_units']} units); max d_Omega {res['max_d_omega']:.0f}, max deep VQ distance "
            f"{res['max_d_deep']:.0f}; share of region pairs with d_deep < d_Omega {res['deep_strict_share']:.3f}")
    for key in CHECKS:
        ctx.log(f"  {key}: {res[key]}")
    result = dict(figure="fig5", L=L, small=ctx.small, geometry=res, machine=ctx.machine(), seconds=ctx.steps)
    save_json(result, ctx.out / "fig5_reproduce.json")
    return result
