"""Peak memory of the streamed CPU reductions (issue 10 item 5): knn, heat_embedding, compare.

Each case runs in a fresh subprocess (so ``ru_maxrss`` is that case's own peak) on random codes,
checks a few result rows against the numpy oracle, and records wall time, peak RSS and the RSS
of the inputs alone (the codes) in ``benchmarks/results/memory.{json,csv,md}``, with the CPU
model, thread count and load average.

All-pairs k-NN at N = 10^6 is 10^12 distances: hours on one core. So the ``knn`` case queries
``--queries`` rows against all N reference rows: the memory of a run is one block of query rows
against streamed column chunks, the same as in the full run (whose blocks are the same size), and
the time of the full run is extrapolated as ``time * N / queries`` (reported as such, not measured).

Usage::

    python benchmarks/bench_memory.py                      # N = 10^6, B = 288, k = 10
    python benchmarks/bench_memory.py --n 200000 --b 64    # the issue's MemoryError case
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent



def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KB


def _codes(n: int, b: int, seed: int):
    import numpy as np

    from vqgeom.codes import Codes, layer_word_offsets

    rng = np.random.default_rng(seed)
    sizes = [b // 3, b // 3, b - 2 * (b // 3)]
    words = rng.integers(0, 2**32, size=(n, layer_word_offsets(sizes)[-1]), dtype=np.uint32)
    offs = layer_word_offsets(sizes)
    for l, s in enumerate(sizes):  # clear the padding bits (the Codes layout)
        if s % 32:
            words[:, offs[l + 1] - 1] &= np.uint32((1 << (s % 32)) - 1)
    return Codes(words, sizes)


def case(name: str, n: int, b: int, k: int, queries: int) -> dict:
    """One measurement, in this (fresh) process."""
    import numpy as np
    import torch

    import vqgeom
    from vqgeom.kernels import reference

    torch.set_num_threads(1)
    codes = _codes(n, b, seed=n + b)
    base = rss_mb()
    t0 = time.perf_counter()
    if name == "knn":
        q = codes[:queries]
        d, i = vqgeom.knn(q, codes, k)
        wall = time.perf_counter() - t0
        peak = rss_mb()  # before the oracle check below
        bits_q = q[:3].unpack()
        check = []
        for r in range(3):  # brute force over all N columns, chunked, against the oracle
            D = np.concatenate([reference.hamming(bits_q[r : r + 1], codes[c : c + 50000].unpack(), codes.layer_sizes)
                                for c in range(0, n, 50000)], axis=1)
            rd, ri = reference.knn(D, k)
            check.append(bool((rd == d[r]).all() and (ri == i[r]).all()))
        extra = dict(queries=queries, extrapolated_full_s=wall * n / queries, oracle_rows_ok=check)
    elif name == "heat_embedding":
        sub = codes[:queries]
        emb = vqgeom.heat_embedding(sub, 50.0, 3)
        wall = time.perf_counter() - t0
        peak = rss_mb()
        extra = dict(queries=queries, eigenvalues=emb.eigenvalues.tolist())
    elif name == "compare":
        sub = codes[:queries]
        cmp = vqgeom.compare([sub, sub.layers([1, 0, 2]), sub.layers([0])], sigma2s=[10.0, 100.0])
        wall = time.perf_counter() - t0
        peak = rss_mb()
        extra = dict(queries=queries, similarity=cmp.similarity[0].tolist())
    else:
        raise ValueError(name)
    return dict(case=name, n=n, b=b, k=k, wall_s=wall, peak_rss_mb=peak, inputs_rss_mb=base,
                codes_mb=codes.words.nbytes / 2**20, **extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--b", type=int, default=288)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=2048)
    ap.add_argument("--cases", default="knn,heat_embedding,compare")
    ap.add_argument("--heat-n", type=int, default=20000, help="rows for compare (all pairs)")
    ap.add_argument("--embed-n", type=int, default=8000, help="rows for heat_embedding (Lanczos: many passes)")
    ap.add_argument("--out", default=str(HERE / "results" / "memory"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        name, n, b, k, qn = args.one.split(",")
        print(json.dumps(case(name, int(n), int(b), int(k), int(qn))))
        return
    rows = []
    for name in args.cases.split(","):
        n = {"knn": args.n, "compare": args.heat_n, "heat_embedding": args.embed_n}[name]
        qn = args.queries if name == "knn" else n
        cmd = [sys.executable, __file__, "--one", f"{name},{n},{args.b},{args.k},{qn}"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            rows.append(dict(case=name, n=n, b=args.b, error=out.stderr[-2000:], wall_s=time.perf_counter() - t0))
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    meta = dict(cpu=cpu_name(), threads=1, date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                load_average=os.getloadavg(), python=platform.python_version())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    keys = ["case", "n", "b", "k", "queries", "wall_s", "extrapolated_full_s", "peak_rss_mb", "inputs_rss_mb", "codes_mb"]
    with open(args.out + ".csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [f"# Peak memory of the streamed CPU reductions — {meta['cpu']}, 1 thread, {meta['date']}",
             f"load average at the end {tuple(round(x, 2) for x in meta['load_average'])} (shared machine)", "",
             "| case | N | B | k | query rows | wall (s) | full run (s, extrapolated) | peak RSS (MB) | RSS after inputs (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['n']} | {r['b']} | | | failed: {r['error'].splitlines()[-1]} | | | |")
            continue
        ext = f"{r['extrapolated_full_s']:.0f}" if "extrapolated_full_s" in r else ""
        lines.append(f"| {r['case']} | {r['n']} | {r['b']} | {r['k'] if r['case'] == 'knn' else ''} | {r.get('queries', '')} | "
                     f"{r['wall_s']:.1f} | {ext} | {r['peak_rss_mb']:.0f} | {r['inputs_rss_mb']:.0f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
