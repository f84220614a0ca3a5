"""vqgeom.compare: one-pass joint histograms against streaming the kernels, at the Fig. 3/4 size.

Four networks' codes on N = 2000 inputs (widths 16 x depths 4, 6, 4, 6: distances up to 96, like
the MNIST networks of Figs. 3/4), a sweep of S = 21 sigma2 values:

- ``direct``    streams exp of every distance block, for every sigma2 (the route before issue 13);
- ``histogram`` one pass of joint histograms, then every sigma2 from the counts;
- ``histogram+all``: the same pass with the row products the CKA measures need, all four measures;
- ``sweeps from counts``: three more sweeps (both heat-kernel forms, per-network medians) from one
  ``joint_histogram`` object, the way fig3 and fig4 share one pass.

Correctness first: the histogram route's cosines equal the direct route's to 1e-12. Then medians
of ``--repeats`` runs; the machine's CPU model and load average are recorded (the machine is
shared, so the ratio measured in the same run is the number to read).

Usage::

    python benchmarks/bench_compare.py [--repeats 3] [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import vqgeom
from vqgeom.codes import Codes
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent



def timed(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="inputs (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per route (default 3)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    codes = [Codes.from_bits(rng.random((args.n, 16 * d)) < 0.5, [16] * d) for d in (4, 6, 4, 6)]
    s2 = np.logspace(0, 5, 21)
    d = vqgeom.compare(codes, sigma2s=s2, method="direct").similarity
    h = vqgeom.compare(codes, sigma2s=s2, method="histogram").similarity
    err = float(np.abs(d - h).max())
    assert err < 1e-12, err
    rows = {}
    load0 = os.getloadavg()
    rows["direct (heat_cosine, 21 sigma2)"] = timed(lambda: vqgeom.compare(codes, sigma2s=s2, method="direct"), args.repeats)
    rows["histogram (heat_cosine, 21 sigma2)"] = timed(
        lambda: vqgeom.compare(codes, sigma2s=s2, method="histogram"), args.repeats)
    rows["histogram + row products (all 4 measures, 21 sigma2)"] = timed(
        lambda: vqgeom.compare(codes, sigma2s=s2, method="histogram", measure="all"), args.repeats)
    hist = vqgeom.joint_histogram(codes)
    rows["3 more sweeps from one joint_histogram"] = timed(
        lambda: (hist.compare(s2, "all"), hist.compare(s2, "all", squared=True), hist.compare("per_network", "all")),
        args.repeats)
    load1 = os.getloadavg()
    base = rows["direct (heat_cosine, 21 sigma2)"][0]
    lines = [f"# vqgeom.compare routes, N = {args.n}, 4 networks (16 x 4/6/4/6), 21 sigma2",
             "", f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {load0[0]:.1f} before, {load1[0]:.1f} after;"
             f" torch threads default; max |histogram - direct| = {err:.1e}", "",
             "| route | median s | runs s | direct / this |", "|---|---|---|---|"]
    for k, (med, ts) in rows.items():
        lines.append(f"| {k} | {med:.3f} | {', '.join(f'{t:.3f}' for t in ts)} | {base / med:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "compare.md").write_text(text)
    (out / "compare.json").write_text(json.dumps(
        {"n": args.n, "cpu": cpu_name(), "load_before": load0, "load_after": load1, "max_abs_diff": err,
         "seconds": {k: {"median": m, "runs": ts} for k, (m, ts) in rows.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
