"""``vqgeom lemmas``: a randomised campaign checking Lemmas 1 and 2 on exact partitions.

Cases (each over several seeds, on the box [-1, 1]^2 unless stated):

* ``arrangement``: random lines (Lemma 1: expect d = d_Omega for every pair);
* ``shallow``: one-hidden-layer ReLU nets (Lemma 1);
* ``deep``: ReLU nets of several depths and widths (Lemma 2: expect no d > d_Omega,
  and report the share of pairs with a strict d < d_Omega);
* ``tent``: the Appendix B.2 tent-map net on [0, 1] (Lemma 2 with many strict pairs);
* ``duplicate`` / ``antiparallel``: a random arrangement with one unit repeated, or
  repeated with both signs flipped. Non-generic: crossing the doubled hyperplane flips
  two bits in one hop, so d > d_Omega is *expected* there (the row reports it).

Exit status 0 iff every row meets its expectation.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from ..geometry import partition, tent_map_net, verify_lemma1, verify_lemma2

__all__ = ["main", "run_campaign"]


def _random_lines(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    ang = rng.uniform(0, 2 * np.pi, n)
    return np.stack([np.cos(ang), np.sin(ang)], axis=1), rng.uniform(-0.9, 0.9, n)


def _random_mlp(rng: np.random.Generator, widths: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    layers, d = [], 2
    for w in widths:
        layers.append((rng.normal(size=(w, d)) / np.sqrt(d), rng.normal(size=w) * 0.5))
        d = w
    return layers


def run_campaign(
    seeds: int = 5,
    widths: tuple[int, ...] = (4, 8, 16),
    depths: tuple[int, ...] = (2, 3, 4, 5),
    shallow_widths: tuple[int, ...] = (8, 16, 32),
    lines: tuple[int, ...] = (6, 12, 24),
    tent_depths: tuple[int, ...] = (3, 5, 7),
    seed0: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every case and return one summary row per (kind, size).

    Returns
    -------
    list of dict
        Keys: ``kind``, ``lemma``, ``depth``, ``width``, ``seeds``, ``regions`` (mean),
        ``pairs``, ``equal``, ``less``, ``greater``, ``strict_share``, ``expect``
        (``"d = d_Omega"``, ``"d <= d_Omega"`` or ``"d > d_Omega somewhere"``), ``ok``.
    """
    jobs: list[tuple[str, int, int, int, Any]] = []  # kind, lemma, depth, width, factory(seed)
    for n in lines:
        jobs.append(("arrangement", 1, 1, n, lambda s, n=n: (_random_lines(np.random.default_rng(s), n), (-1, 1, -1, 1))))
    for w in shallow_widths:
        jobs.append(("shallow", 1, 1, w, lambda s, w=w: (_random_mlp(np.random.default_rng(s), [w]), (-1, 1, -1, 1))))
    for L in depths:
        for w in widths:
            jobs.append(("deep", 2, L, w, lambda s, L=L, w=w: (_random_mlp(np.random.default_rng(s), [w] * L), (-1, 1, -1, 1))))
    for L in tent_depths:
        jobs.append(("tent", 2, L, 2, lambda s, L=L: (tent_map_net(L), (0.0, 1.0))))

    def doubled(s: int, flip: float):
        N, o = _random_lines(np.random.default_rng(s), 6)
        return (np.concatenate([N, flip * N[:1]]), np.concatenate([o, flip * o[:1]])), (-1, 1, -1, 1)

    jobs.append(("duplicate", 1, 1, 7, lambda s: doubled(s, 1.0)))
    jobs.append(("antiparallel", 1, 1, 7, lambda s: doubled(s, -1.0)))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs) * seeds, desc="lemmas", unit="case")
    rows = []
    for kind, lemma, depth, width, make in jobs:
        acc = {"regions": 0, "pairs": 0, "equal": 0, "less": 0, "greater": 0, "connected": True}
        n_seeds = 1 if kind == "tent" else seeds  # deterministic net: one run
        for s in range(n_seeds):
            net, bounds = make(seed0 + s)
            part = partition(net, bounds)
            rep = (verify_lemma1 if lemma == 1 else verify_lemma2)(part)
            for k in ("pairs", "equal", "less", "greater"):
                acc[k] += getattr(rep, k)
            acc["regions"] += rep.n_regions
            acc["connected"] &= rep.connected
            if bar is not None:
                bar.update(1 if kind != "tent" else seeds)
        if kind in ("duplicate", "antiparallel"):
            expect, ok = "d > d_Omega somewhere", acc["greater"] > 0 and acc["less"] == 0
        elif lemma == 1:
            expect, ok = "d = d_Omega", acc["equal"] == acc["pairs"]
        else:
            expect, ok = "d <= d_Omega", acc["greater"] == 0
        rows.append(
            {
                "kind": kind,
                "lemma": lemma,
                "depth": depth,
                "width": width,
                "seeds": n_seeds,
                "regions": acc["regions"] / n_seeds,
                "pairs": acc["pairs"],
                "equal": acc["equal"],
                "less": acc["less"],
                "greater": acc["greater"],
                "strict_share": acc["less"] / acc["pairs"] if acc["pairs"] else 0.0,
                "expect": expect,
                "ok": bool(ok and acc["connected"]),
            }
        )
    if bar is not None:
        bar.close()
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The campaign's rows as a fixed-width text table."""
    head = f"{'case':<13}{'lemma':>6}{'depth':>6}{'width':>6}{'seeds':>6}{'regions':>9}{'pairs':>10}" \
           f"{'equal':>10}{'d<dO':>9}{'d>dO':>7}{'strict%':>9}  {'expected':<22}{'ok':>4}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['kind']:<13}{r['lemma']:>6}{r['depth']:>6}{r['width']:>6}{r['seeds']:>6}{r['regions']:>9.1f}"
            f"{r['pairs']:>10}{r['equal']:>10}{r['less']:>9}{r['greater']:>7}{100 * r['strict_share']:>8.1f}%"
            f"  {r['expect']:<22}{'yes' if r['ok'] else 'NO':>4}"
        )
    return "\n".join(lines)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def main(argv: list[str] | None = None) -> int:
    """``vqgeom lemmas [--seeds N] [--widths 4,8] [--depths 2,3,4] ...``: print the table; 0 iff all rows pass."""
    from ..cli import plain

    ap = argparse.ArgumentParser(prog="vqgeom lemmas", description=plain(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="random seeds per case (default 5)")
    ap.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--widths", type=_int_list, default=(4, 8, 16), help="deep-net widths (default 4,8,16)")
    ap.add_argument("--depths", type=_int_list, default=(2, 3, 4, 5), help="deep-net depths (default 2,3,4,5)")
    ap.add_argument("--shallow-widths", type=_int_list, default=(8, 16, 32), help="shallow-net widths (default 8,16,32)")
    ap.add_argument("--lines", type=_int_list, default=(6, 12, 24), help="arrangement sizes (default 6,12,24)")
    ap.add_argument("--tent-depths", type=_int_list, default=(3, 5, 7), help="tent-map depths (default 3,5,7)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds: expected a positive integer, got {args.seeds}")
    t0 = time.perf_counter()
    rows = run_campaign(
        seeds=args.seeds,
        widths=args.widths,
        depths=args.depths,
        shallow_widths=args.shallow_widths,
        lines=args.lines,
        tent_depths=args.tent_depths,
        seed0=args.seed0,
        progress=not args.no_progress,
    )
    print(format_table(rows))
    bad = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} rows as expected ({time.perf_counter() - t0:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if not bad else 1
