"""CPU all-pairs VQ distances against their peers, same run, with the core's limit.

Methods (one thread unless named):

- ``vqgeom-cpu``: the library's CPU route (``kernels.cpu.pairwise_hamming``, the popcount
  kernel; it allocates its result) on one code set, ``X`` against itself: from
  ``SYM_MIN_WORDS`` words on it computes the upper triangle and mirrors it;
- ``vqgeom-cpu-cross``: the same kernel on ``X`` against a copy of ``X`` (two code sets:
  every pair computed);
- ``...-2threads``: the same with 2 threads (the scaling column divides the 1-thread time
  of the same round by it);
- ``vqgeom-int8``: the int8 GEMM kernel (``torch._int_mm``; torch's threads set to 1);
- ``faiss-cpu``: faiss-cpu's packed Hamming (``faiss.hammings``, one thread) into a
  preallocated int32 result; ``faiss-cpu-alloc`` into a fresh one every call (as the
  library allocates its result: allocation costs page faults).

Every result is first checked against the numpy reference (a 256-row slice).

Timing: ``--rounds`` rounds; each round times every method once, in a shuffled order (seeded), so
the ratios of one round share the machine's state (its load average is recorded before
and after). The table gives the median and best time over the rounds and, per method, the
median over rounds of ``t_faiss / t`` (same round): the speed-up over faiss-cpu.

The core's limit. The micro-kernel's inner step is ``VPXORD``, ``VPOPCNTD`` and ``VPADDD``
on 512 bits per pair of words: three vector ALU operations per 512 bit-pairs. The limit is
``(vector ALU ops per cycle) / 3 * 512 * clock`` with the ALU op rate given by
``--zmm-ops-per-cycle`` (default 2: Zen 4 runs a 512-bit integer op on two of its four
256-bit pipes, so two 512-bit ops a cycle at most). The clock is measured here: a
dependent chain of three 1-cycle integer ops (shift, add, xor) runs at 3 cycles per
iteration. ``fraction of limit`` counts the bit-pairs each method actually XOR-popcounts
(the upper triangle and the diagonal blocks for the symmetric route) in its best round;
``G bit-pairs/s`` is the effective rate, ``N * N * B`` over the best time. Also reported:
the kernel's rate on cache-resident data (512 rows x 256 columns x 1024 bits, repeated).

Usage::

    python benchmarks/bench_cpu.py            # N in {1024, 4096, 16384}, B in {64, 288, 1024}
    python benchmarks/bench_cpu.py --quick    # N in {1024, 4096}
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import vqgeom
from vqgeom.kernels import cpu, reference
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
FLAGS_OF_INTEREST = (
    "popcnt", "avx2", "avx512f", "avx512bw", "avx512_vpopcntdq", "avx512_bitalg", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_bf16", "amx_int8",
)



def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def clock_ghz() -> float:
    """Clock from a dependent chain of three 1-cycle ops per iteration: best of 100 short
    trials (about 2 ms each), so that a shared machine still gives an undisturbed one."""
    from numba import njit

    @njit(cache=False)
    def chain(n, x):
        for i in range(n):
            x = (x + (x >> np.uint64(7))) ^ np.uint64(i)
        return x

    n = 2_000_000
    chain(10, np.uint64(1))
    best = min(_timed(lambda: chain(n, np.uint64(12345))) for _ in range(100))
    return 3 * n / best / 1e9


def parallel_capacity() -> float:
    """How many cores' worth of work two threads get done here: one thread runs a dependent
    integer chain (numba, GIL released, about 30 ms), then two threads run one each at once;
    ``2 t_1 / t_2`` with the median times of 5 trials. About 2 on a free 2-core machine,
    about 1 where another process holds a core or the host gives the VM one core's time
    (seen on this VM with no other process running)."""
    import threading

    from numba import njit

    @njit(cache=False, nogil=True)
    def chain(n, x):
        for i in range(n):
            x = (x + (x >> np.uint64(7))) ^ np.uint64(i)
        return x

    n = 40_000_000
    chain(10, np.uint64(1))

    def two():
        ts = [threading.Thread(target=chain, args=(n, np.uint64(k + 1))) for k in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    t1 = statistics.median(_timed(lambda: chain(n, np.uint64(1))) for _ in range(5))
    t2 = statistics.median(_timed(two) for _ in range(5))
    return 2 * t1 / t2


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def resident_rate() -> float:
    """G bit-pairs/s of the popcount kernel on cache-resident data (best of 30 trials)."""
    from vqgeom.kernels import cpu_popcount as cp

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**32, size=(512, 32), dtype=np.uint32)
    y = rng.integers(0, 2**32, size=(256, 32), dtype=np.uint32)
    out = np.empty((1, 512, 256), np.uint16)
    reps = 10

    def run():
        for _ in range(reps):
            cp.pairwise(x, y, [0, 32], cp.MODE_TOTAL, out, threads=1)

    run()
    best = min(_timed(run) for _ in range(30))
    return reps * 512 * 256 * 1024 / best / 1e9


def _symmetric_pairs(n: int) -> int:
    """Pairs the symmetric route XOR-popcounts: each block of ``IB`` rows from its diagonal
    on (the mirrored lower triangle is copied, not computed)."""
    from vqgeom.kernels import cpu_popcount as cp

    return sum(min(cp.IB, n - i0) * (n - i0) for i0 in range(0, n, cp.IB))


def random_codes(n: int, b: int, seed: int) -> vqgeom.Codes:
    rng = np.random.default_rng(seed)
    return vqgeom.Codes.from_bits(rng.random((n, b)) < 0.5, [b])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N in 1024, 4096 only, no mds timing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--zmm-ops-per-cycle", type=float, default=2.0, help="512-bit vector ALU ops per cycle")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for cpu.csv / cpu.json / cpu.md")
    ap.add_argument("--note", default="", help="a line for the results page (e.g. what else ran on the machine)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        faiss = None
    from vqgeom.kernels import cpu_popcount as cp

    load_before = load_average()
    flags = set(cpu.cpu_features())
    choice = cpu.kernel_choice()
    ghz = clock_ghz()
    limit = args.zmm_ops_per_cycle / 3 * 512 * ghz  # G bit-pairs/s
    resident = resident_rate()
    capacity_before = parallel_capacity()
    print(f"kernel={choice} clock~{ghz:.2f} GHz limit={limit:.0f} G/s resident={resident:.0f} G/s "
          f"2-thread capacity={capacity_before:.2f} load={load_before}", flush=True)

    Ns = [1024, 4096] if args.quick else [1024, 4096, 16384]
    Bs = [64, 288, 1024]
    rows = []
    for b in Bs:
        for n in Ns:
            codes = random_codes(n, b, seed=n + b)
            bits = codes.unpack()
            words = codes.words_numpy()
            dt_out = np.dtype(np.uint8 if b <= 255 else np.uint16)  # the library's result dtype for B bits
            copy = words.copy()  # a second code set with the same codes: the cross route
            fns = {
                "vqgeom-cpu": lambda: cpu.pairwise_hamming(words, None, [b], None, dt_out, method="popcount", threads=1),
                "vqgeom-cpu-2threads": lambda: cpu.pairwise_hamming(words, None, [b], None, dt_out, method="popcount", threads=2),
                "vqgeom-cpu-cross": lambda: cpu.pairwise_hamming(words, copy, [b], None, dt_out, method="popcount", threads=1),
                "vqgeom-cpu-cross-2threads": lambda: cpu.pairwise_hamming(words, copy, [b], None, dt_out, method="popcount", threads=2),
                "vqgeom-int8": lambda: cpu.pairwise_hamming(words, None, [b], None, dt_out, method="int8"),
            }
            if faiss is not None:
                packed = np.ascontiguousarray(words).view(np.uint8)
                fout = np.empty((n, n), dtype=np.int32)

                def run_faiss(packed=packed, fout=fout, n=n):
                    faiss.hammings(faiss.swig_ptr(packed), faiss.swig_ptr(packed), n, n, packed.shape[1], faiss.swig_ptr(fout))
                    return fout

                fns["faiss-cpu"] = run_faiss

                def run_faiss_alloc(packed=packed, n=n):
                    o = np.empty((n, n), dtype=np.int32)
                    faiss.hammings(faiss.swig_ptr(packed), faiss.swig_ptr(packed), n, n, packed.shape[1], faiss.swig_ptr(o))
                    return o

                fns["faiss-cpu-alloc"] = run_faiss_alloc
            m = min(n, 256)
            ref = reference.hamming(bits[:m], bits, [b]).astype(np.int64)
            for name, fn in fns.items():
                got = np.asarray(fn())[:m]
                if not np.array_equal(np.rint(got).astype(np.int64), ref):
                    print(f"MISMATCH: {name} at N={n}, B={b}", file=sys.stderr)
                    return 1
            names = list(fns)
            times = {k: [] for k in names}
            for r in range(args.rounds):
                # a fresh order every round (seeded): a rotation keeps each method after the same
                # neighbour, whose writes leave the caches in the same state every time
                order = list(names)
                random.Random(r).shuffle(order)
                for k in order:
                    times[k].append(_timed(fns[k]))
            ref_t = times.get("faiss-cpu", times["vqgeom-cpu"])
            w = words.shape[1]
            sym_pairs = _symmetric_pairs(n) if w >= cp.SYM_MIN_WORDS else n * n
            for k in names:
                t, best = statistics.median(times[k]), min(times[k])
                computed = sym_pairs if k in ("vqgeom-cpu", "vqgeom-cpu-2threads") else n * n
                base = k.replace("-2threads", "")
                rows.append({
                    "N": n, "B": b, "method": k, "median_s": t, "best_s": best,
                    "Gbitpairs_per_s_best": n * n * b / best / 1e9,
                    "fraction_of_limit_best": computed * b / best / 1e9 / (limit * (2 if k.endswith("-2threads") else 1)),
                    "speedup_over_faiss_median_of_rounds": statistics.median([f / c for f, c in zip(ref_t, times[k])]),
                    "speedup_over_faiss_best": min(ref_t) / best,
                    "scaling_2threads_median_of_rounds": (
                        statistics.median([a / c for a, c in zip(times[base], times[k])]) if k.endswith("-2threads") else None
                    ),
                })
            line = "  ".join(f"{k}={statistics.median(v) * 1e3:.1f}ms" for k, v in times.items())
            print(f"N={n:6d} B={b:5d}  {line}", flush=True)

    mds_t = None
    if not args.quick:
        codes = vqgeom.Codes.from_bits(np.random.default_rng(1).random((100_000, 288)) < 0.5, [96, 96, 96])
        mds_t = statistics.median(_timed(lambda: vqgeom.mds(codes, 3)) for _ in range(3))
    load_after = load_average()
    capacity_after = parallel_capacity()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "note": args.note,
        "cpu_flags": sorted(f for f in FLAGS_OF_INTEREST if f in flags),
        "kernel_choice": choice,
        "tile": "{rows} rows x {panel} columns ({lanes} 32-bit lanes x {vectors} vectors), blocks of {block} rows, "
        "symmetric saving from {sym_min_words} words".format(**cp.tile_shape()),
        "clock_ghz_measured": ghz,
        "zmm_ops_per_cycle": args.zmm_ops_per_cycle,
        "limit_Gbitpairs_per_s": limit,
        "resident_Gbitpairs_per_s": resident,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": _version("numba"),
        "faiss": None if faiss is None else faiss.__version__,
        "rounds": args.rounds,
        "parallel_capacity_before": capacity_before,
        "parallel_capacity_after": capacity_after,
        "mds_codes_N100000_B288_s": mds_t,
    }
    with open(out / "cpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    history = _load_runs(out / "cpu.json")
    (out / "cpu.json").write_text(json.dumps({"runs": [{"meta": meta, "rows": rows}] + history}, indent=2))

    md = _page(meta, rows)
    old = (out / "cpu.md").read_text() if (out / "cpu.md").exists() else ""
    if old:
        marker = "\n## Earlier runs\n"
        if marker in old:  # our own page: its newest run and its history, both kept
            head, hist = old.split(marker, 1)
            old_runs = _demote(head) + "\n" + hist.lstrip("\n")
        else:
            old_runs = _demote(old)
        md += marker + "\n" + old_runs
    (out / "cpu.md").write_text(md)
    print(_page(meta, rows))
    return 0


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except ImportError:
        return None


def _load_runs(path: Path) -> list:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return data["runs"] if "runs" in data else [data]


def _demote(text: str) -> str:
    """An older page's headings one level down, so it sits under 'Earlier runs'."""
    return "\n".join("#" + line if line.startswith("#") else line for line in text.strip().splitlines()) + "\n"


def _page(meta: dict, rows: list) -> str:
    def row(n, b, k):
        return next((r for r in rows if r["N"] == n and r["B"] == b and r["method"] == k), None)

    headline = []
    for n in sorted({r["N"] for r in rows}):
        parts = []
        for b in sorted({r["B"] for r in rows}):
            r = row(n, b, "vqgeom-cpu")
            if r is None or row(n, b, "faiss-cpu") is None:
                continue
            s = r["speedup_over_faiss_median_of_rounds"]
            parts.append(f"B = {b}: {s:.2f}x ({'meets' if s >= 3 else 'short of'} 3x; "
                         f"{r['fraction_of_limit_best']:.2f} of the limit)")
        if parts:
            headline.append(f"- N = {n}, `vqgeom-cpu` over `faiss-cpu` (one thread, median of rounds): " + "; ".join(parts))
    lines = [
        f"# CPU all-pairs VQ distances — {meta['machine']}, {meta['date']}",
        "",
        *headline,
        f"- CPU flags (of interest): {', '.join(meta['cpu_flags'])}; kernel chosen: `{meta['kernel_choice']}`; "
        f"micro-kernel tile {meta.get('tile', '')}; {meta['logical_cpus']} logical CPUs",
        f"- load average before / after: {meta['load_average_before']} / {meta['load_average_after']}"
        + (f" ({meta['note']})" if meta["note"] else ""),
        f"- clock measured {meta['clock_ghz_measured']:.2f} GHz; core's limit = {meta['zmm_ops_per_cycle']:g} "
        f"512-bit ALU ops/cycle / 3 ops per 512 bit-pairs x 512 x clock = {meta['limit_Gbitpairs_per_s']:.0f} "
        f"G bit-pairs/s; the kernel on cache-resident data: {meta['resident_Gbitpairs_per_s']:.0f} G bit-pairs/s "
        f"({meta['resident_Gbitpairs_per_s'] / meta['limit_Gbitpairs_per_s']:.0%} of the limit)",
        f"- one thread unless named; {meta['rounds']} rounds, each timing every method once in a shuffled order; "
        "`speed-up over faiss` is the median over rounds of `t_faiss / t` in the same round (and the ratio of best "
        "times); `fraction of limit` counts the bit-pairs actually computed (the symmetric `vqgeom-cpu` route: the "
        "upper triangle and the diagonal blocks) in the best round; `G bit-pairs/s` is `N * N * B` / best time; "
        "`2-thread scaling` is the same round's 1-thread time over the 2-thread time (median over rounds); "
        "`vqgeom-cpu` and `faiss-cpu-alloc` allocate their results, `faiss-cpu` writes into a preallocated int32 array",
        f"- two threads' capacity (a dependent integer chain on 1 thread, then on 2 at once: `2 t_1 / t_2`, 2 = two "
        f"free cores): {meta['parallel_capacity_before']:.2f} before, {meta['parallel_capacity_after']:.2f} after; "
        "the 2-thread rows' `fraction of limit` is against two cores' limit",
        f"- numba {meta['numba']}, torch {meta['torch']}, numpy {meta['numpy']}, faiss {meta['faiss']}",
        "",
        "| N | B | method | median (ms) | best (ms) | G bit-pairs/s (best) | fraction of core's limit | "
        "speed-up over faiss (rounds) | speed-up over faiss (best) | 2-thread scaling |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sc = r.get("scaling_2threads_median_of_rounds")
        lines.append(
            f"| {r['N']} | {r['B']} | {r['method']} | {r['median_s'] * 1e3:.2f} | {r['best_s'] * 1e3:.2f} | "
            f"{r['Gbitpairs_per_s_best']:.0f} | {r['fraction_of_limit_best']:.2f} | "
            f"{r['speedup_over_faiss_median_of_rounds']:.2f} | {r['speedup_over_faiss_best']:.2f} | "
            f"{'' if sc is None else f'{sc:.2f}'} |"
        )
    if meta.get("mds_codes_N100000_B288_s") is not None:
        lines += ["", f"mds from codes, N = 100,000, B = 288: {meta['mds_codes_N100000_B288_s']:.2f} s (median of 3)"]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
