"""k-NN and the heat-kernel mat-vec on a dask LocalCluster (2 worker processes x 1 thread) against the
in-memory functions on 1 and 2 threads, with peak memory per process.

    python benchmarks/bench_distributed.py                       # N = 200,000, B = 288 (issue 11's size)
    python benchmarks/bench_distributed.py --n 20000 --repeats 3 # what fits a shared 2-core machine

Each in-memory configuration runs in a fresh subprocess (so its peak RSS is its own); the cluster's
workers are restarted before each operation and report their own peak RSS. Correctness first: the
cluster's k-NN must equal the in-memory one exactly (indices and distances), the mat-vec to 1e-10
relative. Writes ``benchmarks/results/distributed.{json,csv,md}`` with the CPU model and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import cpu_name as cpu_model  # benchmarks/ is on sys.path when a script runs

SIZES = (96, 96, 96)  # B = 288, as in bench_cpu.py and the H200 check
K = 10
SIGMA2 = 40.0



def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def make_codes(n: int):
    from vqgeom.codes import Codes

    rng = np.random.default_rng(20261201)
    return Codes.from_bits(rng.random((n, sum(SIZES))) < 0.5, SIZES)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: a rate per CPU second does not
    depend on how many other processes share the cores (the machine is shared)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def warm() -> None:
    """Import what the tiles use and load the compiled kernels, so that no timed task pays
    for importing torch or loading numba's cache."""
    import vqgeom._dask  # noqa: F401
    import vqgeom.kernels.cpu  # noqa: F401
    import vqgeom.neighbors  # noqa: F401
    from vqgeom import _cpu_stream
    from vqgeom.distances import codes_weights

    c = make_codes(64)
    wt = codes_weights(c, None)
    _cpu_stream.knn_rows(c.words, c.words, SIZES, wt, K, exclude_self=True, threads=1)
    _cpu_stream.heat_rows(c.words, c.words, SIZES, wt, np.ones(64), SIGMA2, threads=1)


def inmem(args) -> None:
    """Subprocess: one in-memory operation on ``--threads`` torch threads; prints JSON."""
    import torch

    torch.set_num_threads(args.threads)
    import vqgeom

    codes = make_codes(args.n)
    v = np.ones(args.n)
    times, cpus = [], []
    for _ in range(args.repeats):
        c0, t = cpu_seconds(), time.perf_counter()
        if args.op == "knn":
            out = vqgeom.knn(codes, k=K)
        else:
            out = vqgeom.heat_matmat(codes, v, SIGMA2)
        times.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c0)
    np.save(args.save, np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in (out if isinstance(out, tuple) else (out,))]))
    print(json.dumps({"times": times, "cpu_s": cpus, "peak_rss": peak_rss()}))


def tile(args) -> None:
    """Subprocess: CPU seconds of one ``chunk x chunk`` k-NN tile and heat tile on one thread,
    by the fused route and by the previous route (whole distance slabs, then selection by
    ``vqgeom.neighbors.smallest`` / ``np.exp`` and a BLAS product); prints JSON. Run with and
    without dask's worker setting MALLOC_TRIM_THRESHOLD_=65536 (freed memory goes back to
    the OS at once, so every fresh block page-faults)."""
    import torch

    torch.set_num_threads(1)
    from vqgeom import _dask

    codes = make_codes(args.chunk)
    w, meta = codes.words, _dask._meta(codes)
    v = np.ones((args.chunk, 1))
    routes = {
        "knn fused": lambda: _dask._tile_topk(w, w, 0, 0, meta, None, "auto", K, True, 2048),
        "knn slabs + smallest (before)": lambda: _dask._tile_topk_blocks(w, w, 0, 0, meta, None, "auto", K, True, 2048),
        "heat fused": lambda: _dask._tile_heat(w, w, v, meta, None, "auto", SIGMA2, False, 2048),
        "heat slabs + np.exp + BLAS (before)": lambda: _heat_before(w, v, meta),
    }
    out = {}
    for name, fn in routes.items():
        fn()  # warm-up (compilation, imports)
        ts = []
        for _ in range(3):
            c0 = cpu_seconds()
            fn()
            ts.append(cpu_seconds() - c0)
        out[name] = statistics.median(ts)
    print(json.dumps(out))


def _heat_before(w, v, meta):
    """The previous heat tile: float64 distance slabs, np.exp, a BLAS product (as in-memory did)."""
    from vqgeom import _dask

    out = np.empty((w.shape[0], 1))
    rng, step = _dask._slabs(w.shape[0], w.shape[0], 2048)
    for s in rng:
        D = _dask._tile_distance(w[s : s + step], w, meta, None, False, "auto").astype(np.float64)
        out[s : s + step] = np.exp(-D / SIGMA2) @ v
    return out


def cluster(args, ops, ref_files) -> list[dict]:
    import dask
    import dask.array as da
    import distributed

    import vqgeom
    from vqgeom.codes import Codes

    rows = []
    codes = make_codes(args.n)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl, \
            distributed.Client(cl) as client:
        for op in ops:
            client.restart()  # fresh workers: their peak RSS is this operation's
            # codes on the workers before timing (what a real job has after encode or from_zarr)
            dcodes = Codes(da.from_array(codes.words, chunks=(args.chunk, -1)).persist(), SIZES)
            distributed.wait(dcodes.words)
            client.run(warm)
            times, loads, cpus = [], [], []
            for _ in range(args.repeats):
                loads.append(load())
                c0, t = sum(client.run(cpu_seconds).values()), time.perf_counter()
                if op == "knn":
                    out = dask.compute(*vqgeom.knn(dcodes, k=K))
                else:
                    out = (vqgeom.heat_matmat(dcodes, np.ones(args.n), SIGMA2).compute(),)
                times.append(time.perf_counter() - t)
                cpus.append(sum(client.run(cpu_seconds).values()) - c0)  # both workers' CPU time
            got = np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in out])
            want = np.load(ref_files[op])
            if op == "knn":
                np.testing.assert_array_equal(got, want)  # indices and distances, exactly
                check = "equal to in-memory (exact)"
            else:
                err = float(np.abs(got - want).max() / np.abs(want).max())
                if err > 1e-10:
                    raise AssertionError(f"heat mat-vec differs from in-memory by {err:.2e} relative")
                check = f"max rel. diff to in-memory {err:.1e}"
            peaks = client.run(peak_rss)
            rows.append({"op": op, "config": "LocalCluster 2 x 1 thread", "median_s": statistics.median(times),
                         "times_s": times, "cpu_s": statistics.median(cpus), "peak_rss_MB": [round(p / 2**20) for p in peaks.values()],
                         "check": check, "load": loads})
    return rows


# Per-GPU rates from benchmarks/results/gpu-h200-2026-11-26.md (B = 288): heat-kernel mat-vec at N = 10^6 in
# 663 ms; streamed k-NN (k = 10) at N = 10^5 in 54.6 ms.
H200_PAIRS_PER_S = {"heat": 1e12 / 0.663, "knn": 1e10 / 0.0546}
LINK_BYTES_PER_S = 1.25e9  # 10 Gb/s between nodes


def cost_model(rows: list[dict]) -> list[str]:
    """Markdown table: work at N = 10^7 and 10^8 from the measured rates (cluster, per CPU second)."""
    cpu = {r["op"]: r["pairs_per_cpu_s"] for r in rows if r["config"].startswith("LocalCluster")}
    lines = ["| N | op | pairs | CPU core-hours (measured rate) | H200 GPU-hours | codes (36 B/row) | "
             "codes to each worker per pass at 10 Gb/s |", "|---:|---|---:|---:|---:|---:|---:|"]
    for n in (10**7, 10**8):
        for op in ("knn", "heat"):
            if op not in cpu:
                continue
            pairs = float(n) * n
            lines.append(f"| 10^{int(np.log10(n))} | {op} | {pairs:.0e} | {pairs / cpu[op] / 3600:,.0f} "
                         f"({cpu[op]:.2g} pairs/CPU-s) | {pairs / H200_PAIRS_PER_S[op] / 3600:.2f} | "
                         f"{n * 36 / 1e9:.2f} GB | {n * 36 / LINK_BYTES_PER_S:.1f} s |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=None, help="rows per dask block (default N / 16)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--ops", default="knn,heat")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--tiles-only", action="store_true", help="only the per-tile diagnostic (one thread)")
    ap.add_argument("--inmem", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--op", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inmem:
        return inmem(args)
    args.chunk = args.chunk or max(1, -(-args.n // 16))
    if args.tile:
        return tile(args)
    ops = args.ops.split(",")
    meta = {"cpu": cpu_model(), "cores": os.cpu_count(), "n": args.n, "bits": sum(SIZES), "layer_sizes": SIZES,
            "k": K, "sigma2": SIGMA2, "chunk_rows": args.chunk, "repeats": args.repeats,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": load()}
    tiles = {}
    for env_name, extra in (("plain", {}), ("MALLOC_TRIM_THRESHOLD_=65536 (dask worker)", {"MALLOC_TRIM_THRESHOLD_": "65536"})):
        proc = subprocess.run([sys.executable, __file__, "--tile", "--n", str(args.n), "--chunk", str(args.chunk)],
                              capture_output=True, text=True, check=True, env={**os.environ, **extra})
        tiles[env_name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(env_name, tiles[env_name], flush=True)
    meta["tile_cpu_s"] = tiles
    if args.tiles_only:
        print(json.dumps(meta, indent=1))
        return
    rows = []
    tmp = tempfile.mkdtemp()
    ref_files = {}
    for op in ops:
        for threads in (1, 2):
            save = os.path.join(tmp, f"{op}-{threads}.npy")
            l0 = load()
            proc = subprocess.run([sys.executable, __file__, "--inmem", "--op", op, "--threads", str(threads),
                                   "--n", str(args.n), "--repeats", str(args.repeats), "--save", save],
                                  capture_output=True, text=True, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            ref_files.setdefault(op, save)
            rows.append({"op": op, "config": f"in-memory, {threads} thread{'s' if threads > 1 else ''}",
                         "median_s": statistics.median(res["times"]), "times_s": res["times"],
                         "cpu_s": statistics.median(res["cpu_s"]),
                         "peak_rss_MB": [round(res["peak_rss"] / 2**20)], "check": "reference run" if threads == 1 else "",
                         "load": [l0]})
            print(rows[-1], flush=True)
    rows += cluster(args, ops, ref_files)
    meta["load_end"] = load()
    pairs = args.n * args.n
    for r in rows:
        r["G_bit_pairs_per_s"] = pairs * sum(SIZES) / r["median_s"] / 1e9
        r["pairs_per_s"] = pairs / r["median_s"]
        r["pairs_per_cpu_s"] = pairs / r["cpu_s"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distributed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    with open(out / "distributed.csv", "w") as f:
        f.write("op,config,n,bits,median_s,cpu_s,pairs_per_s,pairs_per_cpu_s,peak_rss_MB,check\n")
        for r in rows:
            f.write(f"{r['op']},{r['config']},{args.n},{sum(SIZES)},{r['median_s']:.3f},{r['cpu_s']:.3f},"
                    f"{r['pairs_per_s']:.3e},{r['pairs_per_cpu_s']:.3e},"
                    f"{'/'.join(map(str, r['peak_rss_MB']))},{r['check']}\n")
    base = {op: next(r["median_s"] for r in rows if r["op"] == op and r["config"].endswith("1 thread")) for op in ops}
    lines = [f"# Dask LocalCluster vs in-memory — {meta['cpu']}, {meta['cores']} cores, {meta['date']}", "",
             f"N = {args.n:,}, B = {sum(SIZES)} ({SIZES}), k = {K}, sigma2 = {SIGMA2}, dask blocks of {args.chunk} rows, "
             f"median of {args.repeats}. Load average (1/5/15 min) at start {meta['load_start']}, end {meta['load_end']}.",
             "", "| op | configuration | median wall (s) | CPU (s) | pairs/s (wall) | pairs per CPU second | "
             "wall vs in-memory 1 thread | peak RSS per process (MB) | check | load at start |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['config']} | {r['median_s']:.2f} | {r['cpu_s']:.1f} | {r['pairs_per_s']:.3g} | "
                     f"{r['pairs_per_cpu_s']:.3g} | "
                     f"{r['median_s'] / base[r['op']]:.2f} | {' / '.join(map(str, r['peak_rss_MB']))} | {r['check']} | {r['load'][0]} |")
    lines += ["", f"One {args.chunk} x {args.chunk} tile on one thread (CPU seconds, median of 3; what each cluster task "
              "computes):", "", "| route | " + " | ".join(tiles) + " |", "|---|" + "---:|" * len(tiles)]
    for route in next(iter(tiles.values())):
        lines.append(f"| {route} | " + " | ".join(f"{t[route]:.3f}" for t in tiles.values()) + " |")
    lines += ["", "Cost model (all pairs; B = 288; the per-core rate is the cluster's pairs per CPU second above, the "
              "per-GPU rate from gpu-h200-2026-11-26.md):", ""] + cost_model(rows)
    (out / "distributed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
