"""CPU all-pairs VQ distances against their peers, one thread, same run.

Peers: ``scipy.spatial.distance.cdist(..., 'hamming') * B``, ``torch.cdist(p=0)`` on
unpacked codes, and faiss-cpu's packed Hamming (``faiss.hammings``) where installed.
Each result is first checked against the numpy reference (a 256-row slice), then timed
with warm-up and repeats; the table reports medians, bit-pairs per second
(``N * N * B / t``) and each peer's time over ours. Peers that would take longer than
``--peer-budget`` seconds (estimated from a smaller run) are skipped and marked.

Also times ``vqgeom.mds`` from codes at N = 100,000, B = 288.

Usage::

    python benchmarks/bench_cpu.py                 # full grid, writes benchmarks/results/cpu.{csv,json,md}
    python benchmarks/bench_cpu.py --quick         # N in {1k, 4k}, B in {64, 288}
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import vqgeom
from vqgeom.kernels import reference

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timeit(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def random_codes(n: int, b: int, seed: int) -> vqgeom.Codes:
    rng = np.random.default_rng(seed)
    return vqgeom.Codes.from_bits(rng.random((n, b)) < 0.5, [b])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid (N in 1k, 4k; B in 64, 288)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peer-budget", type=float, default=30.0, help="skip a peer whose estimated time exceeds this (s)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for cpu.csv / cpu.json / cpu.md")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        faiss = None
    from scipy.spatial.distance import cdist

    Ns = [1024, 4096] if args.quick else [1024, 4096, 16384]
    Bs = [64, 288] if args.quick else [64, 288, 1024]
    rows = []
    per_pair_cost: dict[str, float] = {}  # seconds per (pair * bit), from the last measured size

    def peer_fns(codes, bits, n, b):
        fns = {"vqgeom-cpu": lambda: vqgeom.pairwise_distances(codes, backend="cpu")}
        fns["scipy-cdist"] = lambda: cdist(bits, bits, "hamming") * b
        fb = torch.from_numpy(bits.astype(np.float32))
        fns["torch-cdist-p0"] = lambda: torch.cdist(fb, fb, p=0)
        if faiss is not None:
            packed = np.ascontiguousarray(codes.words_numpy()).view(np.uint8)
            nbytes = packed.shape[1]
            out = np.empty((n, n), dtype=np.int32)

            def run_faiss():
                faiss.hammings(faiss.swig_ptr(packed), faiss.swig_ptr(packed), n, n, nbytes, faiss.swig_ptr(out))
                return out

            fns["faiss-cpu"] = run_faiss
        return fns

    for b in Bs:
        for n in Ns:
            codes = random_codes(n, b, seed=n + b)
            bits = codes.unpack()
            fns = peer_fns(codes, bits, n, b)
            # correctness first: a slice of every method against the reference
            m = min(n, 256)
            ref = reference.hamming(bits[:m], bits, [b])
            timings = {}
            for name, fn in fns.items():
                est = per_pair_cost.get(name, 0.0) * n * n * b
                if name != "vqgeom-cpu" and est > args.peer_budget:
                    timings[name] = None
                    continue
                got = np.asarray(fn())[:m]
                if not np.array_equal(np.rint(got).astype(np.int64), ref.astype(np.int64)):
                    print(f"MISMATCH: {name} at N={n}, B={b}", file=sys.stderr)
                    return 1
                reps = args.repeats if est < 5 else 1
                ts = timeit(fn, reps)
                timings[name] = statistics.median(ts)
                per_pair_cost[name] = timings[name] / (n * n * b)
            ours = timings["vqgeom-cpu"]
            for name, t in timings.items():
                rows.append(
                    {
                        "N": n,
                        "B": b,
                        "method": name,
                        "median_s": t,
                        "Gbitpairs_per_s": None if t is None else n * n * b / t / 1e9,
                        "time_over_vqgeom": None if t is None else t / ours,
                    }
                )
            line = "  ".join(
                f"{k}={'skip' if v is None else f'{v * 1e3:.1f}ms'}" for k, v in timings.items()
            )
            print(f"N={n:6d} B={b:5d}  {line}", flush=True)

    # MDS from codes at N = 100k, B = 288 (3 layers of 96)
    codes = vqgeom.Codes.from_bits(np.random.default_rng(1).random((100_000, 288)) < 0.5, [96, 96, 96])
    mds_t = statistics.median(timeit(lambda: vqgeom.mds(codes, 3), 3))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": cpu_name(),
        "threads": 1,
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": None if faiss is None else faiss.__version__,
        "mds_codes_N100000_B288_s": mds_t,
    }
    with open(out / "cpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "cpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))

    lines = [
        f"# CPU all-pairs VQ distances — {meta['machine']}, 1 thread, {meta['date']}",
        "",
        "| N | B | method | median (ms) | G bit-pairs/s | time / vqgeom |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        t = r["median_s"]
        lines.append(
            f"| {r['N']} | {r['B']} | {r['method']} | "
            + ("skipped (over budget) | | |" if t is None else f"{t * 1e3:.1f} | {r['Gbitpairs_per_s']:.1f} | {r['time_over_vqgeom']:.2f} |")
        )
    lines += ["", f"mds from codes, N = 100,000, B = 288: {mds_t:.2f} s (median of 3)"]
    (out / "cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
