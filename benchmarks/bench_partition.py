"""Benchmark: exact 2-D partitions (vqgeom.geometry) against regioncam, and all-pairs d_Omega.

One thread for both sides (BLAS pinned before numpy loads; regioncam is single-threaded):
on the shared 2-core machine a threaded BLAS spent most of its time waiting.

1. ``2 -> W -> W -> W`` ReLU MLPs (torch default init, several seeds) on [-1, 1]^2. For each
   net, first the checks: region count equal to regioncam's, areas summing to 4 (relative
   1e-9), every region's code equal to the reference oracle's at its representative point.
   Then warm-up and ``--repeats`` interleaved timings of ``partition(net, box)`` (reading
   the torch net, the regions, their areas and centroids; codes and adjacency are computed
   on first read), of the same plus reading ``part.codes`` and ``part.edge_index`` ("full"),
   and of regioncam (weight conversion, regions and its half-edge structure with every
   vertex's activations). Medians and the medians of the per-repeat ratios ours /
   regioncam, measured in the same run.
2. All-pairs d_Omega on the partition of a width-``--dist-width`` net, unweighted and with
   layer weights (1, 2, 3), on 2 threads and on 1: every source once, in chunks of 4096
   consecutive sources along a Z-order of the regions (the full float64 matrix of 20,000
   rows would take 3.2 GB) written into one reused buffer (touched once before timing), the
   time is the chunks' sum; 100 sampled rows checked against
   ``scipy.sparse.csgraph.shortest_path``, whose per-row time gives its all-pairs estimate.

Bars (issue 14): at least as fast as regioncam at W = 16, 32, 64, 96, 128 with equal region
counts; weighted all-pairs d_Omega for 20,000 regions under 10 s.

Usage::

    python benchmarks/bench_partition.py [--widths 16,32,64,96,128] [--seeds 0,1,2] [--repeats 7]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import csv
import json
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs
from vqgeom.geometry import partition
from vqgeom._netspec import as_netspec
from vqgeom.kernels.reference import mlp_bits

BOX = (-1.0, 1.0, -1.0, 1.0)


def machine() -> dict:
    # The load average says how busy the shared machine was (2 cores: load 2 = saturated).
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "loadavg_1_5_15": os.getloadavg()}


def mlp(width: int, depth: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    mods, d = [], 2
    for _ in range(depth):
        mods += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*mods)


def regioncam_run(net: nn.Sequential):
    import regioncam

    rc = regioncam.Regioncam(size=1.0)  # the square [-1, 1]^2
    for m in net:
        if isinstance(m, nn.Linear):
            # regioncam takes float32 weights (in, out); the net's weights are float32 already.
            rc.linear(m.weight.detach().float().numpy().T.copy(), m.bias.detach().float().numpy())
        else:
            rc.relu()
    return rc


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", default="16,32,64,96,128")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dist-width", type=int, default=128, help="width of the net for the d_Omega timing")
    ap.add_argument("--dist-regions", type=int, default=20000,
                    help="regions for the all-pairs d_Omega timing (0: skip it)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    info = machine()
    try:
        import regioncam  # noqa: F401

        from importlib.metadata import version

        info["regioncam"] = version("regioncam")
    except ImportError as e:
        info["regioncam"] = f"unavailable: {e}"
    print(f"machine: {info}", flush=True)

    rows = []
    for w in widths:
        for seed in seeds:
            net = mlp(w, args.depth, seed)
            part = partition(net, BOX)
            # checks first
            assert abs(part.areas.sum() - 4.0) <= 1e-9 * 4.0, "areas do not sum to the box's"
            spec = as_netspec(net)
            ref, _ = mlp_bits(spec.layers, part.inputs)
            assert np.array_equal(part.codes.unpack(), ref), "codes differ from the reference oracle"
            row = {"width": w, "depth": args.depth, "seed": seed, "regions": part.n_regions,
                   "edges": int(len(part.edge_index))}
            def full():
                p = partition(net, BOX)
                return p.codes, p.edge_index

            if info["regioncam"].startswith("unavailable"):
                t_ours, _ = timed(lambda: partition(net, BOX), args.repeats)
                t_full, _ = timed(full, args.repeats)
            else:
                # Interleaved, so that all see the same load on a shared machine; the ratios
                # are the medians of the per-repeat ratios.
                ours, fulls, theirs = [], [], []
                partition(net, BOX)
                full()
                rc = regioncam_run(net)
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    partition(net, BOX)
                    ours.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    full()
                    fulls.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    rc = regioncam_run(net)
                    theirs.append(time.perf_counter() - t)
                t_ours, t_full, t_rc = statistics.median(ours), statistics.median(fulls), statistics.median(theirs)
                row["regioncam_regions"] = rc.num_faces
                row["counts_equal"] = rc.num_faces == part.n_regions
                row["regioncam_s"] = t_rc
                row["regioncam_regions_per_s"] = rc.num_faces / t_rc
                row["ratio_vqgeom_over_regioncam"] = statistics.median(a / b for a, b in zip(ours, theirs))
                row["ratio_full_over_regioncam"] = statistics.median(a / b for a, b in zip(fulls, theirs))
            row["vqgeom_s"] = t_ours
            row["vqgeom_full_s"] = t_full
            row["vqgeom_regions_per_s"] = part.n_regions / t_ours
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    # A single layer (line arrangement) against shapely: node the clipped lines with
    # unary_union and polygonize them (the fast shapely route; splitting polygon by polygon
    # with shapely.ops.split is slower still and not robust).
    import shapely
    from shapely.ops import polygonize, unary_union

    arr_rows = []
    for n_lines in (48, 96):
        rng = np.random.default_rng(n_lines)
        ang = rng.uniform(0, 2 * np.pi, n_lines)
        N, o = np.stack([np.cos(ang), np.sin(ang)], 1), rng.uniform(-0.9, 0.9, n_lines)

        def with_shapely():
            box = shapely.box(-1, -1, 1, 1)
            segs = []
            for (a, b), c in zip(N, o):
                # two far points on the line a x + b y + c = 0, clipped to the box
                p0 = -c * np.array([a, b])
                d = np.array([-b, a])
                segs.append(shapely.LineString([p0 - 3 * d, p0 + 3 * d]).intersection(box))
            return list(polygonize(unary_union(segs + [box.boundary])))

        t_ours, part = timed(lambda: partition((N, o), BOX), args.repeats)
        t_shp, polys = timed(with_shapely, args.repeats)
        arr_rows.append({"lines": n_lines, "regions": part.n_regions, "shapely_regions": len(polys),
                         "vqgeom_s": t_ours, "shapely_polygonize_s": t_shp,
                         "shapely_area_sum_error": abs(sum(p.area for p in polys) - 4.0)})
        print(arr_rows[-1], flush=True)

    # all-pairs d_Omega, unweighted and weighted, in chunks of sources (the full float64
    # matrix of 20,000 rows would take 3.2 GB) along a Z-order of the regions, so that the
    # blocks of each chunk are compact (the library orders a chunk's sources the same way)
    from scipy.sparse.csgraph import shortest_path

    from vqgeom.geometry._dial import zorder

    part = partition(mlp(args.dist_width, args.depth, 0), BOX)
    n = min(args.dist_regions, part.n_regions)
    allsrc = zorder(part.points)[:n] if n < part.n_regions else zorder(part.points)
    sample = np.sort(np.random.default_rng(0).choice(max(n, 1), size=min(100, n), replace=False))
    dist = {"width": args.dist_width, "regions": part.n_regions, "edges": int(len(part.edge_index)), "sources": n,
            "loadavg_before": os.getloadavg(), "chunk": 4096}
    thread_counts = [None, 1] if (os.cpu_count() or 1) > 1 else [None]
    # One result buffer for all chunks (Partition.distances(out=...)): a fresh 680 MB array
    # per chunk would add the system's page zeroing (~0.1-1 s per chunk here) to the search.
    buf = np.empty((min(n, 4096), part.n_regions))
    buf.fill(0.0)  # touch the pages (np.zeros would leave them to the first write)
    for tag, w in (("unweighted", None), ("weights_1_2_3", (1.0, 2.0, 3.0))) if n else ():
        adj = part.adjacency(w)
        for threads in thread_counts:
            part.distances(w, sources=allsrc[:64], threads=threads)  # compile / warm up
            t_dist, dmax = 0.0, 0.0
            for c0 in range(0, n, 4096):
                src = allsrc[c0 : c0 + 4096]
                t = time.perf_counter()
                D = part.distances(w, sources=src, threads=threads, out=buf[: src.size])
                t_dist += time.perf_counter() - t
                dmax = max(dmax, float(D.max()))
                inside = sample[(sample >= c0) & (sample < c0 + 4096)]
                if inside.size:
                    ref = shortest_path(adj, method="D", directed=False, indices=src[inside - c0])
                    assert np.array_equal(D[inside - c0], ref), f"d_Omega ({tag}) rows differ from scipy's"
            key = f"{tag}_threads_{threads or os.cpu_count()}"
            dist[key] = {"all_pairs_s": t_dist, "max_distance": dmax, "loadavg_after": os.getloadavg()}
            print(f"d_Omega {key}: {dist[key]}", flush=True)
        t = time.perf_counter()
        shortest_path(adj, method="D", directed=False, indices=allsrc[sample])
        t_scipy_row = (time.perf_counter() - t) / sample.size
        dist[tag] = {"scipy_dijkstra_per_row_s": t_scipy_row, "scipy_all_pairs_estimate_s": t_scipy_row * n}
        print(f"d_Omega {tag}: {dist[tag]}", flush=True)
    dist["loadavg_after"] = os.getloadavg()

    # table
    print()
    head = f"{'width':>5} {'seed':>4} {'regions':>8} {'rc regions':>10} {'vqgeom s':>9} {'full s':>9} " \
           f"{'regioncam s':>11} {'ratio':>6} {'full ratio':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['width']:>5} {r['seed']:>4} {r['regions']:>8} {r.get('regioncam_regions', '-'):>10} "
              f"{r['vqgeom_s']:>9.4f} {r['vqgeom_full_s']:>9.4f} {r.get('regioncam_s', float('nan')):>11.4f} "
              f"{r.get('ratio_vqgeom_over_regioncam', float('nan')):>6.2f} "
              f"{r.get('ratio_full_over_regioncam', float('nan')):>10.2f}")
    print(f"\nload average at the end: {os.getloadavg()}")
    for key, v in dist.items():
        if isinstance(v, dict) and "all_pairs_s" in v:
            print(f"all-pairs d_Omega ({key}): {n} x {part.n_regions} in {v['all_pairs_s']:.2f} s")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "partition.csv"), "w", newline="") as f:
        keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    with open(os.path.join(args.out, "partition.json"), "w") as f:
        info["loadavg_at_end"] = os.getloadavg()
        json.dump({"machine": info, "partition": rows, "arrangement_vs_shapely": arr_rows, "d_omega": dist}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
