"""One GPU check for vqgeom's kernels (H100/H200), in one call of a few minutes.

1. prints the device; measures the copy bandwidth (device-to-device copy, bytes read
   plus written) and the int8 matmul rate (``torch._int_mm``, 8192^3);
2. runs the ``gpu``-marked tests (full-size kernels against the numpy reference);
3. checks each benchmarked result against the reference on sampled rows, then times it
   (warm-up, repeats, median) against its floor (bytes / measured bandwidth or
   operations / measured int8 rate) and against peers measured in the same run:
   ``torch.cdist(p=0)`` on unpacked codes and a ``torch._int_mm`` +-1 product;
4. measures the popcount / int8 crossover and fused-query vs encode-then-distance;
   the opt-in kernels (``--only optin``: symmetric heat products, cosine without I2F,
   threshold-filtered k-NN) beside the default kernels, and cupy codes through the
   public entry points (Triton via DLPack) beside the named CUDA C backend;
5. prints a table last and writes ``gpu_check.csv`` + ``gpu_check.json`` into the folder
   given by ``--out`` or ``$VQGEOM_GPU_CHECK_OUT`` (default ``benchmarks/results``).

Needs only torch, triton, numpy (cupy optional), nothing to install:
``python3 benchmarks/gpu_check.py --out DIR [--quick] [--skip-tests]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

DEV = "cuda"
ROWS: list[dict] = []
META: dict = {}
T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def bench(fn, reps: int = 10, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` over ``reps`` runs timed with CUDA events."""
    if DEV == "cpu":  # --dry-run: the interpreter on the CPU, to check the script itself
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


# Datasheet figures per GPU (leads, not measurements): HBM bandwidth (B/s), dense int8
# tensor-core rate (ops/s), boost clock (Hz), and the special-function (exp2) and
# int-to-float conversion rates per clock per multiprocessor (16 each from sm_80 on, per
# the CUDA C Programming Guide's arithmetic-instruction throughput table).
SPECS = {
    "H200": dict(hbm=4.8e12, int8=1979e12, clock=1.98e9, sfu=16, cvt=16),
    "H100": dict(hbm=3.35e12, int8=1979e12, clock=1.98e9, sfu=16, cvt=16),
    "A100": dict(hbm=2.0e12, int8=624e12, clock=1.41e9, sfu=16, cvt=16),
    "L4": dict(hbm=0.3e12, int8=242e12, clock=2.04e9, sfu=16, cvt=16),
    "T4": dict(hbm=0.32e12, int8=130e12, clock=1.59e9, sfu=16, cvt=16),
}


def spec() -> dict | None:
    """The datasheet entry of this GPU (matched by name), or None."""
    name = META.get("device", "")
    for key, val in SPECS.items():
        if key in name:
            return dict(val, sms=META.get("sms", 0))
    return None


def unit_floor_ms(pairs: float, per_pair_sfu: float, per_pair_cvt: float, sp: dict | None) -> float | None:
    """Time the exp2 and int-to-float conversions alone need at the datasheet rate
    (summed: both use the same per-multiprocessor budget of 16 per clock)."""
    if not sp or not sp.get("sms"):
        return None
    per_s = sp["sms"] * sp["clock"]
    return (pairs * per_pair_sfu / (sp["sfu"] * per_s) + pairs * per_pair_cvt / (sp["cvt"] * per_s)) * 1e3


def padded_k(sizes, per_layer: bool = False, seg=None) -> int:
    """Columns of the +-1 int8 codes the kernels really multiply (segments padded)."""
    from vqgeom.kernels.triton import int8

    words = torch.zeros((1, sum((b + 31) // 32 for b in sizes)), dtype=torch.int32, device=DEV)
    return int8.pm1_codes(words, sizes, per_layer, seg=seg).koff[-1]


def row(bench_name, variant, n, b, ms, floor_ms=None, floor_kind="", peer=None, peer_ms=None, note="",
        spec_ms=None, spec_kind=""):
    """One result; ``floor_ms`` from measured ceilings, ``spec_ms`` from the datasheet:
    both ratios are printed and stored."""
    r = dict(benchmark=bench_name, variant=variant, N=n, B=b, time_ms=round(ms, 4),
             floor_ms=None if floor_ms is None else round(floor_ms, 4), floor_kind=floor_kind,
             x_floor=None if not floor_ms else round(ms / floor_ms, 3),
             spec_floor_ms=None if spec_ms is None else round(spec_ms, 4), spec_kind=spec_kind,
             x_spec=None if not spec_ms else round(ms / spec_ms, 3), peer=peer or "",
             peer_ms=None if peer_ms is None else round(peer_ms, 4),
             speedup_vs_peer=None if not peer_ms else round(peer_ms / ms, 2), note=note)
    ROWS.append(r)
    log(f"{bench_name:<22} {variant:<28} N={n:<8} B={b:<5} {ms:10.3f} ms"
        + (f"  floor {floor_ms:.3f} ms ({floor_kind}) x{ms / floor_ms:.2f}" if floor_ms else "")
        + (f"  spec {spec_ms:.3f} ms ({spec_kind}) x{ms / spec_ms:.2f}" if spec_ms else "")
        + (f"  vs {peer} {peer_ms:.3f} ms: {peer_ms / ms:.1f}x" if peer_ms else "")
        + (f"  [{note}]" if note else ""))
    return r


def guarded(fn):
    def run(*a, **k):
        try:
            return fn(*a, **k)
        except Exception as exc:  # one failing benchmark must not cost the rest of the call
            log(f"FAILED {fn.__name__}: {exc!r}")
            traceback.print_exc(limit=4)
            ROWS.append(dict(benchmark=fn.__name__, variant="ERROR", N=0, B=0, time_ms=None, note=repr(exc)[:300]))
    return run


# ----------------------------------------------------------------------------- helpers
def random_words(n, sizes, gen, p=0.5):
    """Random packed codes (torch int32 on the GPU), padding bits zero."""
    from vqgeom.kernels.triton._popcount import layer_offsets

    offs = layer_offsets(sizes)
    w = torch.randint(-(2**31), 2**31 - 1, (n, offs[-1]), dtype=torch.int32, device=DEV, generator=gen)
    for l, b in enumerate(sizes):
        rem = b % 32
        if rem:
            last = offs[l + 1] - 1
            w[:, last] &= (1 << rem) - 1
    return w


def unpack(words, sizes):
    from vqgeom.codes import unpack_words

    return unpack_words(words.cpu().numpy().view(np.uint32), sizes)


def check_rows(name, got_rows, bits_rows, bits_all, sizes, weights=None):
    from vqgeom.kernels import reference as R

    want = R.hamming(bits_rows, bits_all, sizes, weights)
    np.testing.assert_array_equal(got_rows, want, err_msg=name)


# ----------------------------------------------------------------------------- ceilings
def ceilings(quick):
    n = 1 << 29 if not quick else 1 << 27  # int32 elements: 2 GiB (512 MiB quick)
    a = torch.empty(n, dtype=torch.int32, device=DEV).random_()
    b = torch.empty_like(a)
    ms = bench(lambda: b.copy_(a), reps=10)
    bw = 2 * a.numel() * 4 / (ms * 1e-3)
    del a, b
    s = 8192
    x = torch.randint(-128, 127, (s, s), dtype=torch.int8, device=DEV)
    y = torch.randint(-128, 127, (s, s), dtype=torch.int8, device=DEV)
    ms2 = bench(lambda: torch._int_mm(x, y), reps=10)
    rate_torch = 2 * s**3 / (ms2 * 1e-3)
    row("ceiling", "d2d copy (read+write)", n, 0, ms, note=f"{bw / 1e12:.3f} TB/s")
    row("ceiling", "torch._int_mm 8192^3", s, s, ms2, note=f"{rate_torch / 1e12:.1f} TOPS")
    from _int8_gemm import int8_gemm

    rate = rate_torch
    yt = y.t().contiguous()  # (N, K): K-major operand for the Triton GEMM
    ref = torch._int_mm(x[:256], y)
    for cfg in [(128, 256, 128, 8, 3), (128, 128, 128, 8, 4), (256, 128, 128, 8, 3)]:
        try:
            assert torch.equal(int8_gemm(x, yt, cfg)[:256], ref), "Triton int8 GEMM disagrees with torch._int_mm"
            ms3 = bench(lambda c=cfg: int8_gemm(x, yt, c), reps=10)
        except Exception as exc:  # a tile that does not fit this card: keep the others
            log(f"int8 GEMM {cfg} failed: {exc!r}"[:300])
            continue
        r3 = 2 * s**3 / (ms3 * 1e-3)
        row("ceiling", f"triton int8 GEMM {cfg[:3]}", s, s, ms3, note=f"{r3 / 1e12:.1f} TOPS")
        rate = max(rate, r3)
    META.update(copy_bandwidth_Bps=bw, int8_ops_per_s=rate, int8_ops_torch_int_mm=rate_torch)
    log(f"copy bandwidth {bw / 1e12:.2f} TB/s (read+write); int8 rate {rate / 1e12:.0f} TOPS "
        f"(best of torch._int_mm {rate_torch / 1e12:.0f} and Triton GEMMs)")
    return bw, rate


# ----------------------------------------------------------------------------- benchmarks
@guarded
def bench_pairwise(bw, rate, gen, n_full):
    from vqgeom.kernels.triton import hamming, int8

    sizes = (288,)
    words = random_words(n_full, sizes, gen)
    idx = torch.randperm(n_full, generator=gen, device=DEV)[:64].sort().values
    bits_rows = unpack(words[idx.to(DEV)], sizes)
    cols = torch.arange(0, n_full, max(1, n_full // 512), device=DEV)
    bits_cols = unpack(words[cols], sizes)
    # The measured HBM write floor: filling an output of the same size (write-only).
    buf = torch.empty((n_full, n_full), dtype=torch.int16, device=DEV)
    fill_ms = bench(lambda: buf.fill_(7), reps=5, warmup=1)
    del buf
    torch.cuda.empty_cache() if DEV == "cuda" else None
    row("ceiling", "HBM write: fill N x N int16", n_full, 0, fill_ms,
        note=f"{n_full * n_full * 2 / (fill_ms * 1e-3) / 1e12:.2f} TB/s write-only")
    # Write floor: the output's bytes at the measured device-to-device copy rate (which
    # counts bytes read plus written; fill_ is slower than that, so it is no floor), and
    # at the datasheet bandwidth.
    out_bytes = n_full * n_full * 2
    copy_floor = out_bytes / bw * 1e3
    sp = spec()
    spec_write = out_bytes / sp["hbm"] * 1e3 if sp else None
    k = padded_k(sizes, seg=32)  # int8_hamming's K: 288
    int8_floor = n_full * n_full * k * 2 / 2 / rate * 1e3  # symmetric: half the products
    int8_spec = n_full * n_full * k * 2 / 2 / sp["int8"] * 1e3 if sp else None
    write_floor = copy_floor
    floors = dict(floor_ms=max(copy_floor, int8_floor), floor_kind="max(write at copy rate, int8 ops measured)",
                  spec_ms=max(spec_write, int8_spec) if sp else None, spec_kind="max(write at HBM spec, int8 spec)")
    note = (f"write floor (copy rate) {copy_floor:.2f} ms, (fill) {fill_ms:.2f} ms, (spec) "
            f"{spec_write if spec_write else float('nan'):.2f} ms; int8 floor {int8_floor:.2f} ms")
    # The store pattern alone (same grids, no loads or products): the store path's share.
    from _store_tiles import store_tiles

    from vqgeom.kernels.triton._popcount import tma_ok

    buf = torch.empty((n_full, n_full), dtype=torch.int16, device=DEV)
    for sym, chunk, tma in [(True, 1, False), (True, 8, False), (True, 8, True), (False, 8, False)]:
        if tma and not tma_ok(buf):
            continue  # rows not 16-byte aligned (the dry run's toy size)
        try:
            buf.zero_()
            store_tiles(buf, sym, 128 if DEV == "cuda" else 16, chunk, tma)
            want = int(np.int64(n_full - 1).astype(np.int16))  # i + j, wrapped to int16 like the kernel
            ok = int(buf[-1, 0]) == want and int(buf[0, -1]) == want and int(buf[-1, -2]) == int(
                np.int64(2 * n_full - 3).astype(np.int16))
            ms = bench(lambda s=sym, c=chunk, t=tma: store_tiles(buf, s, 128 if DEV == "cuda" else 16, c, t),
                       reps=5, warmup=1)
        except Exception as exc:  # one failing variant must not cost the rest
            log(f"store-only {sym, chunk, tma} failed: {exc!r}"[:300])
            continue
        row("pairwise_store_only", f"{'sym' if sym else 'full'} chunk {chunk}" + (" tma" if tma else ""),
            n_full, 0, ms, write_floor, "HBM write (copy rate)", note=f"corners ok={ok}", spec_ms=spec_write,
            spec_kind="HBM write (spec)")
    del buf
    torch.cuda.empty_cache() if DEV == "cuda" else None
    results = {}
    configs = [("popcount", dict(block=(64, 64), num_warps=4))] + [
        ("int8", dict(block=blk, num_warps=nw, num_stages=st, chunk=ch, hold=hold, tma=tma))
        for blk, nw, st, ch, hold, tma in [
            ((128, 128, 64), 8, 3, 1, False, False),  # one tile per program, as the first session's kernel
            ((128, 128, 32), 8, 3, 8, True, False),
            ((128, 128, 32), 8, 3, 32, True, False),
            ((128, 128, 32), 8, 3, 128, True, False),  # INT8_CONFIG
            ((128, 128, 32), 8, 3, 256, True, False),
            ((128, 128, 32), 8, 4, 128, True, False),
            ((128, 128, 32), 8, 3, 128, True, True),
            ((64, 64, 32), 4, 3, 64, True, False),
        ]]
    for method, cfg in configs:
        label = f"{method} {cfg['block']} w{cfg['num_warps']}" + (
            f" s{cfg['num_stages']} c{cfg['chunk']}{' hold' if cfg['hold'] else ''}{' tma' if cfg['tma'] else ''}"
            if method == "int8" else "")
        fn = (lambda c=cfg: int8.int8_hamming(words, None, sizes, None, torch.int16, **c)) if method == "int8" \
            else (lambda c=cfg: hamming.popcount_hamming(words, None, sizes, None, torch.int16, **c))
        try:
            out = fn()
            if DEV == "cuda":
                torch.cuda.synchronize()
            got = out[idx.to(DEV)][:, cols].cpu().numpy()
            check_rows(f"pairwise {label}", got, bits_rows, bits_cols, sizes)
            sym_ok = bool(torch.equal(out[:2048, :2048], out[:2048, :2048].T))
            del out
            torch.cuda.empty_cache() if DEV == "cuda" else None
            ms = bench(fn, reps=5, warmup=1)
        except Exception as exc:  # a tile that does not fit this card: keep the others
            log(f"pairwise {label} failed: {exc!r}"[:300])
            ROWS.append(dict(benchmark="pairwise_sym_int16", variant=label + " FAILED", N=n_full, B=288,
                             time_ms=None, note=repr(exc)[:200]))
            continue
        results[label] = ms
        row("pairwise_sym_int16", label, n_full, 288, ms, **floors, note=f"{note}; mirror ok={sym_ok}")
    best = min(results.items(), key=lambda kv: kv[1])
    META["pairwise_best"] = dict(config=best[0], ms=best[1], write_floor_ms=write_floor,
                                 x_write_floor=best[1] / write_floor)
    # Condensed (upper triangle, pdist layout): half the bytes of the full matrix.
    try:
        fn = lambda: int8.int8_hamming(words, None, sizes, None, torch.int16, condensed=True)  # noqa: E731
        cond = fn()
        if DEV == "cuda":
            torch.cuda.synchronize()
        # spot check: condensed position of (i, j), i < j, against the full matrix's rows
        full_rows = int8.int8_hamming(words[idx.to(DEV)], words, sizes, None, torch.int16)
        ii = idx.cpu().numpy().astype(np.int64)
        jj = np.minimum(ii + 1 + np.arange(len(ii)) % 7, n_full - 1)
        keep = jj > ii
        pos = ii * n_full - ii * (ii + 1) // 2 + jj - ii - 1
        ok_c = bool(np.array_equal(cond[torch.from_numpy(pos[keep]).to(DEV)].cpu().numpy(),
                                   full_rows.cpu().numpy()[np.arange(len(ii))[keep], jj[keep]]))
        del cond, full_rows
        ms_c = bench(fn, reps=5, warmup=1)
        row("pairwise_condensed", "int8 default, upper triangle", n_full, 288, ms_c, copy_floor / 2,
            "half write at copy rate", peer="full matrix (best)", peer_ms=best[1],
            note=f"ok={ok_c}; {ms_c / best[1]:.2f} of the full matrix's time",
            spec_ms=spec_write / 2 if spec_write else None, spec_kind="half write at HBM spec")
        META["condensed_over_full"] = ms_c / best[1]
    except Exception as exc:  # keep the rest of the run
        log(f"condensed failed: {exc!r}"[:300])
    del words
    torch.cuda.empty_cache()


@guarded
def bench_peers(bw, rate, gen, sizes_n=(4096, 16384)):
    """Same codes through torch.cdist(p=0), torch._int_mm and our kernels (full matrices)."""
    from vqgeom.kernels.triton import hamming
    from vqgeom.kernels.triton.int8 import pm1_codes

    sizes = (288,)
    for n in sizes_n:
        words = random_words(n, sizes, gen)
        bits = torch.from_numpy(unpack(words, sizes)).to(DEV)
        ours = lambda: hamming.pairwise_hamming(words, None, sizes, None, torch.int16)  # noqa: E731
        d = ours()
        ms = bench(ours, reps=10)
        if n <= 4096:
            f = bits.float()
            cd = lambda: torch.cdist(f, f, p=0)  # noqa: E731
            ref = cd()
            assert torch.equal(ref.to(torch.int16), d), "cdist(p=0) disagrees"
            ms_c = bench(cd, reps=3, warmup=1)
            row("vs_cdist_p0", "pairwise auto (int16)", n, 288, ms, peer="torch.cdist(p=0) float32", peer_ms=ms_c)
        p = pm1_codes(words, sizes, per_layer=False)
        s = p.s

        def intmm():
            dot = torch._int_mm(s, s.t())
            return ((288 - dot) >> 1).to(torch.int16)

        assert torch.equal(intmm(), d), "_int_mm route disagrees"
        ms_i = bench(intmm, reps=10)
        row("vs_int_mm", "pairwise auto (int16)", n, 288, ms, n * n * 2 / bw * 1e3, "HBM write",
            peer="torch._int_mm +-1 (+ epilogue)", peer_ms=ms_i)
        del words, bits, d
        torch.cuda.empty_cache()


@guarded
def bench_crossover(bw, rate, gen, n):
    from vqgeom.kernels.triton import hamming, int8

    cross = None
    rec = []
    for b in (32, 64, 96, 128, 192, 288, 512, 1024):
        sizes = (b,)
        words = random_words(n, sizes, gen)
        a = hamming.popcount_hamming(words, None, sizes, None, torch.int16)
        c = int8.int8_hamming(words, None, sizes, None, torch.int16)
        assert torch.equal(a, c), f"popcount and int8 disagree at B={b}"
        del a, c
        t_p = bench(lambda: hamming.popcount_hamming(words, None, sizes, None, torch.int16), reps=5)
        t_i = bench(lambda: int8.int8_hamming(words, None, sizes, None, torch.int16), reps=5)
        rec.append((b, t_p, t_i))
        row("crossover", f"popcount vs int8 W={(b + 31) // 32}", n, b, t_i, n * n * 2 / bw * 1e3, "HBM write",
            peer="popcount", peer_ms=t_p)
        if cross is None and t_i < t_p:
            cross = (b + 31) // 32
        del words
    META["crossover_words"] = cross
    META["crossover_table"] = rec
    log(f"int8 beats popcount from {cross} words per code (INT8_MIN_WORDS)")


@guarded
def bench_heat(bw, rate, gen, n):
    from vqgeom.kernels.triton import hamming, reductions

    sizes = (288,)
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()  # the peak below is this benchmark's alone
    words = random_words(n, sizes, gen)
    v = torch.randn(n, device=DEV, generator=gen)
    s2 = 60.0
    rows = torch.arange(0, n, n // 97, device=DEV)[:96]
    d = hamming.pairwise_hamming(words[rows], words, sizes, None, torch.int16).double()
    want = torch.exp(-d / s2) @ v.double()
    n_s = min(n, 200_000)
    best_cfg, best_ms = None, None
    for blk, nw in [((128, 64), 4), ((128, 64), 8)]:
        ms_s = bench(lambda b=blk, w=nw: reductions.heat_matmat(words[:n_s], sizes, v[:n_s], s2, block=b, num_warps=w),
                     reps=3, warmup=1)
        row("heat_matvec_sweep", f"block {blk} w{nw}", n_s, 288, ms_s, 2 * n_s * n_s * 288 / rate * 1e3, "int8 ops")
        if best_ms is None or ms_s < best_ms:
            best_cfg, best_ms = (blk, nw), ms_s
    META["heat_best_config"] = best_cfg
    y = reductions.heat_matmat(words, sizes, v, s2, block=best_cfg[0], num_warps=best_cfg[1])
    err = float((y[rows].double() - want).abs().max() / want.abs().max())
    assert err < 1e-4, f"heat matvec (best config) relative error {err}"
    reps = 3 if n >= 500_000 else 5
    ms = bench(lambda: reductions.heat_matmat(words, sizes, v, s2, block=best_cfg[0], num_warps=best_cfg[1]),
               reps=reps, warmup=1)
    sp = spec()
    k = padded_k(sizes)  # the reductions' K (segments padded to 64 here: 320 columns)
    mma = 2 * n * n * k / rate * 1e3
    units = unit_floor_ms(n * n, 1, 1, sp)  # one exp2 and one int-to-float per pair
    floor = max(mma, units or 0.0)
    mma_spec = 2 * n * n * k / sp["int8"] * 1e3 if sp else None
    exp_note = (f"exp per pair: {n * n / (ms * 1e-3) / 1e12:.2f} T/s; K={k}; MMA measured {mma:.1f} ms, "
                f"exp+cvt at 16/clk/SM {units if units else float('nan'):.1f} ms")
    row("heat_matvec", f"int8 tiles + exp2, {best_cfg}", n, 288, ms, floor, "max(int8 ops measured, exp+cvt units)",
        note=f"rel err {err:.1e}; {exp_note}", spec_ms=max(mma_spec, units or 0.0) if sp else None,
        spec_kind="max(int8 spec, exp+cvt units)")
    k = 16
    n2 = min(n, 200_000)
    V = torch.randn(n2, k, device=DEV, generator=gen)
    w2 = words[:n2]
    Y = reductions.heat_matmat(w2, sizes, V, s2)
    d2 = hamming.pairwise_hamming(w2[:64], w2, sizes, None, torch.int16).double()
    want2 = torch.exp(-d2 / s2) @ V.double()
    err2 = float((Y[:64].double() - want2).abs().max() / want2.abs().max())
    assert err2 < 1e-4, f"heat matmat relative error {err2}"
    ms2 = bench(lambda: reductions.heat_matmat(w2, sizes, V, s2), reps=3, warmup=1)
    row("heat_matmat", "k=16 (tf32x3 dot)", n2, 288, ms2, 2 * n2 * n2 * 288 / rate * 1e3, "int8 ops",
        note=f"rel err {err2:.1e}")
    if DEV == "cuda":
        META["heat_matvec_peak_alloc_GB"] = torch.cuda.max_memory_allocated() / 1e9


@guarded
def bench_cosine_knn(bw, rate, gen, n):
    from vqgeom.kernels import reference as R
    from vqgeom.kernels.triton import reductions

    sa, sb = (288,), (16,) * 6
    wa, wb = random_words(n, sa, gen), random_words(n, sb, gen)
    s2s = [10.0, 30.0, 100.0, 300.0]
    m = 1500
    got_small = reductions.heat_cosine(wa[:m], sa, wb[:m], sb, s2s)
    ba, bb = unpack(wa[:m], sa), unpack(wb[:m], sb)
    Da, Db = R.hamming(ba, ba, sa), R.hamming(bb, bb, sb)
    want = [R.cosine_similarity(R.heat_kernel(Da, s), R.heat_kernel(Db, s)) for s in s2s]
    np.testing.assert_allclose(got_small, want, rtol=1e-5)
    ka, kb = padded_k(sa), padded_k(sb)  # K as the kernel pads it, per network
    ops = n * n / 2 * 2 * (ka + kb)  # upper triangle, both networks
    sp = spec()
    # per pair of the upper triangle: one exp2 per network and sigma2, one conversion per network
    units = unit_floor_ms(n * n / 2, 2 * len(s2s), 2, sp)
    for blk, nw in [(64, 4)]:
        ms = bench(lambda b=blk, w=nw: reductions.heat_cosine(wa, sa, wb, sb, s2s, block=b, num_warps=w), reps=3, warmup=1)
        row("heat_cosine", f"{len(s2s)} sigma2, block {blk} w{nw}", n, 288, ms, max(ops / rate * 1e3, units or 0.0),
            "max(int8 ops measured, exp+cvt units)", note=f"K={ka}+{kb}",
            spec_ms=max(ops / sp["int8"] * 1e3, units or 0.0) if sp else None, spec_kind="max(int8 spec, exp+cvt units)")
    k = 10
    dd, ii = reductions.knn(wa, sa, k)
    q = torch.arange(0, n, n // 50, device=DEV)[:50]
    bq = unpack(wa[q], sa)
    ball = unpack(wa, sa)
    rd, ri = R.knn(R.hamming(bq, ball, sa), k)
    np.testing.assert_array_equal(ii[q].cpu().numpy(), ri)
    np.testing.assert_array_equal(dd[q].cpu().numpy(), rd)
    for blk, nw in [((64, 64), 4)]:
        ms_k = bench(lambda b=blk, w=nw: reductions.knn(wa, sa, k, block=b, num_warps=w), reps=3, warmup=1)
        kk = padded_k(sa)
        row("knn", f"k={k} block {blk} w{nw}", n, 288, ms_k, 2 * n * n * kk / rate * 1e3, "int8 ops measured",
            note=f"K={kk}", spec_ms=2 * n * n * kk / sp["int8"] * 1e3 if sp else None, spec_kind="int8 spec")


@guarded
def bench_optin(bw, rate, gen, n_heat, n_cos):
    """The opt-in kernels (issue 12 items 4 and 5; compiled ahead of time and checked in the
    interpreter, never timed before): each checked against the reference on sampled rows,
    then timed beside the default kernel of the same call (the peer, same run), with both
    floor ratios."""
    from vqgeom.kernels import reference as R
    from vqgeom.kernels.triton import hamming, reductions

    sp = spec()
    sizes = (288,)
    k = padded_k(sizes)
    # heat mat-vec, symmetric tiles + exp2 without I2F. Bar (issue 12): N = 10^6 under 0.35 s.
    words = random_words(n_heat, sizes, gen)
    v = torch.randn(n_heat, device=DEV, generator=gen)
    s2 = 60.0
    rows = torch.arange(0, n_heat, max(1, n_heat // 97), device=DEV)[:96]
    d = hamming.pairwise_hamming(words[rows], words, sizes, None, torch.int16).double()
    want = torch.exp(-d / s2) @ v.double()
    y = reductions.heat_matmat(words, sizes, v, s2, method="sym")
    err = float((y[rows].double() - want).abs().max() / want.abs().max())
    assert err < 1e-4, f"heat matvec sym relative error {err}"
    reps = 3 if n_heat >= 500_000 else 5
    ms = bench(lambda: reductions.heat_matmat(words, sizes, v, s2, method="sym"), reps=reps, warmup=1)
    ms_full = bench(lambda: reductions.heat_matmat(words, sizes, v, s2), reps=reps, warmup=1)
    half = n_heat * n_heat / 2
    mma = 2 * half * k / rate * 1e3  # distance MMA of the upper triangle
    units = unit_floor_ms(half, 1, 0, sp)  # one exp2 per pair of the triangle, no I2F
    row("heat_matvec_sym", "method=sym (triangle, atomics, no I2F)", n_heat, 288, ms, max(mma, units or 0.0),
        "max(int8 ops measured, exp units)", peer="method=full", peer_ms=ms_full,
        note=f"rel err {err:.1e}; K={k}; bar N=10^6 < 350 ms: {ms < 350 if n_heat >= 10**6 else 'n/a'}",
        spec_ms=max(2 * half * k / sp["int8"] * 1e3, units or 0.0) if sp else None,
        spec_kind="max(int8 spec, exp units)")
    n2 = min(n_heat, 200_000)
    V = torch.randn(n2, 16, device=DEV, generator=gen)
    w2 = words[:n2]
    Y = reductions.heat_matmat(w2, sizes, V, s2, method="sym")
    d2 = hamming.pairwise_hamming(w2[:64], w2, sizes, None, torch.int16).double()
    want2 = torch.exp(-d2 / s2) @ V.double()
    err2 = float((Y[:64].double() - want2).abs().max() / want2.abs().max())
    assert err2 < 1e-4, f"heat matmat sym relative error {err2}"
    ms2 = bench(lambda: reductions.heat_matmat(w2, sizes, V, s2, method="sym"), reps=3, warmup=1)
    ms2_full = bench(lambda: reductions.heat_matmat(w2, sizes, V, s2), reps=3, warmup=1)
    h2 = n2 * n2 / 2
    units2 = unit_floor_ms(h2, 1, 0, sp)
    row("heat_matmat_sym", "k=16, method=sym", n2, 288, ms2, max(2 * h2 * k / rate * 1e3, units2 or 0.0),
        "max(int8 ops measured, exp units)", peer="method=full", peer_ms=ms2_full, note=f"rel err {err2:.1e}",
        spec_ms=max(2 * h2 * k / sp["int8"] * 1e3, units2 or 0.0) if sp else None,
        spec_kind="max(int8 spec, exp units)")
    # cosine without I2F (the fused kernel already takes the upper triangle)
    sa, sb = (288,), (16,) * 6
    wa, wb = random_words(n_cos, sa, gen), random_words(n_cos, sb, gen)
    s2s = [10.0, 30.0, 100.0, 300.0]
    m = min(n_cos, 1500)
    got_small = reductions.heat_cosine(wa[:m], sa, wb[:m], sb, s2s, magic=True)
    ba, bb = unpack(wa[:m], sa), unpack(wb[:m], sb)
    Da, Db = R.hamming(ba, ba, sa), R.hamming(bb, bb, sb)
    want_c = [R.cosine_similarity(R.heat_kernel(Da, s), R.heat_kernel(Db, s)) for s in s2s]
    np.testing.assert_allclose(got_small, want_c, rtol=1e-5)
    ka, kb = padded_k(sa), padded_k(sb)
    ops = n_cos * n_cos / 2 * 2 * (ka + kb)
    units_c = unit_floor_ms(n_cos * n_cos / 2, 2 * len(s2s), 0, sp)
    ms_c = bench(lambda: reductions.heat_cosine(wa, sa, wb, sb, s2s, magic=True), reps=3, warmup=1)
    ms_c0 = bench(lambda: reductions.heat_cosine(wa, sa, wb, sb, s2s), reps=3, warmup=1)
    row("heat_cosine_magic", f"{len(s2s)} sigma2, magic=True (no I2F)", n_cos, 288, ms_c,
        max(ops / rate * 1e3, units_c or 0.0), "max(int8 ops measured, exp units)", peer="magic=False",
        peer_ms=ms_c0, note=f"K={ka}+{kb}", spec_ms=max(ops / sp["int8"] * 1e3, units_c or 0.0) if sp else None,
        spec_kind="max(int8 spec, exp units)")
    # k-NN, threshold-filtered top-k. Bar (issue 12): within 2.5x its floor.
    kn = 10
    dd, ii = reductions.knn(wa, sa, kn, method="select")
    q = torch.arange(0, n_cos, max(1, n_cos // 50), device=DEV)[:50]
    rd, ri = R.knn(R.hamming(unpack(wa[q], sa), unpack(wa, sa), sa), kn)
    np.testing.assert_array_equal(ii[q].cpu().numpy(), ri)
    np.testing.assert_array_equal(dd[q].cpu().numpy(), rd)
    ms_k = bench(lambda: reductions.knn(wa, sa, kn, method="select"), reps=3, warmup=1)
    ms_k0 = bench(lambda: reductions.knn(wa, sa, kn), reps=3, warmup=1)
    floor_k = 2 * n_cos * n_cos * ka / rate * 1e3
    row("knn_select", f"k={kn} method=select", n_cos, 288, ms_k, floor_k, "int8 ops measured",
        peer="method=passes", peer_ms=ms_k0, note=f"K={ka}; bar x_floor <= 2.5: {ms_k / floor_k <= 2.5}",
        spec_ms=2 * n_cos * n_cos * ka / sp["int8"] * 1e3 if sp else None, spec_kind="int8 spec")


def mlp_784_16x6(seed: int):
    """The issue's 784 -> 16 x 6 ReLU MLP: Triton layers on the device and float64 reference layers."""
    rng = np.random.default_rng(seed)
    layers, ref = [], []
    din = 784
    for w in (16,) * 6:
        A = (rng.standard_normal((w, din)) / math.sqrt(din)).astype(np.float32)
        b = (0.1 * rng.standard_normal(w)).astype(np.float32)
        layers.append((torch.from_numpy(A).to(DEV), torch.from_numpy(b).to(DEV), 0.0))
        ref.append((A.astype(np.float64), b.astype(np.float64), "relu"))
        din = w
    return layers, ref


@guarded
def bench_encoder(bw, rate, gen, n):
    from vqgeom.kernels import reference as R
    from vqgeom.kernels.triton import encode

    d = 784
    layers, ref = mlp_784_16x6(seed=0)
    X = torch.randn(n, d, device=DEV, generator=gen)
    sub = X[:2000].cpu().numpy()
    bits, sizes = R.mlp_bits(ref, sub)
    # The measured read bandwidth: a read-only pass over the same X (torch.sum).
    read_ms = bench(lambda: X.sum(), reps=10)
    read_bw = X.numel() * 4 / (read_ms * 1e-3)
    row("ceiling", "HBM read: torch.sum over X", n, 784, read_ms, note=f"{read_bw / 1e12:.2f} TB/s read-only")
    META["read_bandwidth_Bps"] = read_bw
    read_floor = read_ms
    best = None
    stack = encode.prepare_mlp(layers, DEV)  # prepared once, as repeated callers do
    sms = torch.cuda.get_device_properties(0).multi_processor_count if DEV == "cuda" else 2
    variants = [("tf32x3", None, layers), ("ieee", None, stack), ("tf32", None, stack),
                ("tf32x3", None, stack),  # ENCODER_CONFIG
                ("tf32x3", dict(tma=False), stack), ("tf32x3", dict(bk=64, num_stages=3), stack),
                ("tf32x3", dict(bk=64, num_stages=4), stack), ("tf32x3", dict(num_stages=6), stack),
                ("tf32x3", dict(bm=32, num_warps=2), stack), ("tf32x3", dict(bm=128, num_warps=8), stack),
                ("tf32x3", dict(programs=4 * sms), stack)]
    for prec, cfg, lay in variants:
        short = dict(bm="m", bk="k", num_warps="w", num_stages="s", programs="p")
        label = f"{prec} {'prep' if lay is stack else 'api'} " + (" ".join(
            ("tma" if v else "no-tma") if k == "tma" else f"{short[k]}{v}" for k, v in cfg.items())
            if cfg else "default")
        fn = lambda p=prec, c=cfg, s=lay: encode.encode_mlp(s, X, precision=p, config=c)  # noqa: E731
        try:
            out = fn()
            got = unpack(out[:2000], sizes)
            mism = int((got != bits).sum())
            ms = bench(fn, reps=10)
        except Exception as exc:  # a tile that does not fit this card: keep the others
            log(f"encoder {label} failed: {exc!r}"[:300])
            ROWS.append(dict(benchmark="encoder_784_16x6", variant=label + " FAILED", N=n, B=96, time_ms=None,
                             note=repr(exc)[:200]))
            continue
        frac = read_ms / ms
        row("encoder_784_16x6", label, n, 96, ms, read_floor, "read of X (measured)",
            note=f"{frac * 100:.0f}% of read bandwidth ({X.numel() * 4 / (ms * 1e-3) / bw * 100:.0f}% of copy rate); "
                 f"{mism} bits differ from float64 ref in 2000 rows")
        if mism == 0 and (best is None or ms < best[2]):
            best = (prec, label, ms, frac)

    def torch_encode():
        h = X
        outs = []
        for A, b, _ in layers:
            pre = torch.addmm(b, h, A.t())
            outs.append(pre >= 0)
            h = torch.relu(pre)
        return torch.cat(outs, 1)

    ms_t = bench(torch_encode, reps=5)
    row("encoder_784_16x6", "peer: torch matmuls + signs (unpacked)", n, 96, ms_t, read_floor, "read of X (measured)")
    if best is not None:
        META["encoder_best"] = dict(precision=best[0], variant=best[1], ms=best[2], fraction_of_bandwidth=best[3])
    del X
    torch.cuda.empty_cache()


@guarded
def bench_query(bw, rate, gen, nq, m):
    from vqgeom.kernels import reference as R
    from vqgeom.kernels.triton import encode

    d = 784
    layers, ref = mlp_784_16x6(seed=1)
    Xr = torch.randn(m, d, device=DEV, generator=gen)
    Xq = torch.randn(nq, d, device=DEV, generator=gen)
    refw = encode.encode_mlp(layers, Xr)
    res = {}
    for fused in (True, False):
        fn = lambda f=fused: encode.query_distances(layers, Xq, refw, None, torch.int16, fused=f)  # noqa: E731
        dist, qw = fn()
        bq, sizes = R.mlp_bits(ref, Xq[:40].cpu().numpy())
        br = unpack(refw[:3000], sizes)
        np.testing.assert_array_equal(dist[:40, :3000].cpu().numpy(), R.hamming(bq, br, sizes))
        del dist, qw
        res[fused] = bench(fn, reps=5)
    floor = (nq * m * 2 + Xq.numel() * 4) / bw * 1e3
    row("query_encode+distance", "fused one pass", nq, 96, res[True], floor, "HBM write + read",
        peer="encode then pairwise", peer_ms=res[False], note=f"M={m}")
    META["fused_query_faster"] = res[True] < res[False]


@guarded
def bench_cupy(bw, rate, gen, n):
    try:
        import cupy  # noqa: F401
    except ImportError:
        log("cupy not installed: CuPy benchmark skipped")
        return
    from vqgeom.kernels.cuda import loader
    from vqgeom.kernels.triton import hamming

    sizes = (288,)
    words = random_words(n, sizes, gen)
    cw = cupy.asarray(words).view(cupy.uint32)
    out = loader.pairwise_hamming(cw, None, sizes, None, "int16")
    tri = hamming.pairwise_hamming(words, None, sizes, None, torch.int16)
    assert torch.equal(torch.as_tensor(out, device=DEV), tri), "cupy and triton disagree"
    ms_c = bench(lambda: loader.pairwise_hamming(cw, None, sizes, None, "int16"), reps=5)
    ms_t = bench(lambda: hamming.pairwise_hamming(words, None, sizes, None, torch.int16), reps=5)
    row("cupy_pairwise", "CUDA C popc, 16x16 tiles", n, 288, ms_c, n * n * 2 / bw * 1e3, "write at copy rate",
        peer="triton auto", peer_ms=ms_t)
    # cupy codes through the public entry points: Triton via DLPack unless cupy is named
    import vqgeom

    codes = vqgeom.Codes(cw, sizes)
    routed = vqgeom.pairwise_distances(codes)
    assert isinstance(routed, cupy.ndarray) and bool((routed == out).all()), "cupy via DLPack: wrong result"
    d_k, i_k = vqgeom.knn(codes[:2048], codes, k=5)
    assert isinstance(i_k, cupy.ndarray), "knn of cupy codes did not return cupy arrays"
    hv = vqgeom.heat_matmat(codes[:4096], cupy.ones(4096), 60.0)
    assert isinstance(hv, cupy.ndarray), "heat_matmat of cupy codes did not return a cupy array"
    ms_r = bench(lambda: vqgeom.pairwise_distances(codes), reps=5)
    row("cupy_codes_auto", "pairwise_distances(cupy codes) -> Triton via DLPack", n, 288, ms_r, n * n * 2 / bw * 1e3,
        "write at copy rate", peer="backend='cupy' (CUDA C)",
        peer_ms=bench(lambda: vqgeom.pairwise_distances(codes, backend="cupy"), reps=5))
    # The binary tensor-core kernel (method="bmma", never chosen automatically): long codes.
    for bits_per_code in (288, 4096, 32768):
        nb = min(n, 16384)
        lsz = (bits_per_code,)
        wl = random_words(nb, lsz, gen)
        cl = cupy.asarray(wl).view(cupy.uint32)
        try:
            got = loader.pairwise_hamming(cl, None, lsz, None, "int32", method="bmma")
            want = hamming.pairwise_hamming(wl, None, lsz, None, torch.int32)
            ok = bool(torch.equal(torch.as_tensor(got, device=DEV), want))
            ms_b = bench(lambda: loader.pairwise_hamming(cl, None, lsz, None, "int32", method="bmma"), reps=5)
            ms_i = bench(lambda: hamming.pairwise_hamming(wl, None, lsz, None, torch.int32), reps=5)
        except Exception as exc:  # report, keep the run going
            log(f"bmma B={bits_per_code} failed: {exc!r}"[:300])
            continue
        # AND-popcount over all bits, symmetric: half the N^2 pairs, 2 ops per bit
        row("cupy_bmma", f"m8n8k128 .b1 AND+popc, B={bits_per_code}", nb, bits_per_code, ms_b,
            max(nb * nb * 4 / bw, nb * nb * padded_k(lsz, seg=32) / rate) * 1e3,
            "max(write at copy rate, int8-equivalent ops)", peer="triton auto (int8)", peer_ms=ms_i, note=f"ok={ok}")


def run_tests() -> None:
    """All kernel tests, compiled on the GPU (small ones too), full-size ``gpu`` ones included."""
    import importlib.util

    par = ["-n", "8"] if importlib.util.find_spec("xdist") else []
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *par,
           "tests/test_triton_kernels.py", "tests/test_cupy_backend.py", "tests/test_gpu_imports.py",
           "tests/test_gpu_optin.py"]
    log("running: " + " ".join(cmd[2:]))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        res = subprocess.CompletedProcess(cmd, 124, out, "pytest timed out after 300 s")
    lines = [ln for ln in (res.stdout + res.stderr).strip().splitlines() if "Warning" not in ln and "warner(" not in ln]
    summary = next((ln for ln in reversed(lines) if " passed" in ln or " failed" in ln), "no summary")
    lines.append(summary)
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    for ln in failed[:20] + lines[-1:]:
        print("   ", ln[:300])
    if res.returncode != 0:
        tail = "\n".join(lines[-60:])
        print(tail[-6000:])
    META["gpu_tests"] = lines[-1] if lines else "no output"
    ROWS.append(dict(benchmark="gpu_tests", variant=lines[-1] if lines else "", N=0, B=0, time_ms=None,
                     note=f"exit {res.returncode}"))


KEYS = ["benchmark", "variant", "N", "B", "time_ms", "floor_ms", "floor_kind", "x_floor", "spec_floor_ms",
        "spec_kind", "x_spec", "peer", "peer_ms",
        "speedup_vs_peer", "note"]


def write_results(out: Path, name: str) -> None:
    with open(out / "gpu_check.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=["device", "date"] + KEYS)
        wr.writeheader()
        for r in ROWS:
            wr.writerow({"device": name, "date": META["date"], **{k: r.get(k) for k in KEYS}})
    (out / "gpu_check.json").write_text(json.dumps(META, indent=1, default=str))


def dry_run(args) -> int:
    """Every benchmark at toy sizes on the CPU under the interpreter; numbers mean nothing."""
    os.environ["TRITON_INTERPRET"] = "1"
    gen = torch.Generator(device=DEV).manual_seed(0)
    bw, rate = 1e11, 1e12
    bench_pairwise(bw, rate, gen, 300)
    bench_crossover(bw, rate, gen, 70)
    bench_peers(bw, rate, gen, (64,))
    bench_heat(bw, rate, gen, 300)
    bench_cosine_knn(bw, rate, gen, 200)
    bench_query(bw, rate, gen, 50, 300)
    bench_encoder(bw, rate, gen, 2100)
    bench_optin(bw, rate, gen, 300, 200)
    errors = [r for r in ROWS if r.get("variant") == "ERROR"]
    print(f"dry run: {len(ROWS)} rows, {len(errors)} errors")
    return 1 if errors else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("VQGEOM_GPU_CHECK_OUT", "benchmarks/results"),
                    help="output folder for gpu_check.csv / .json (or $VQGEOM_GPU_CHECK_OUT)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the gpu-marked tests")
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run (default all)")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: run every step at toy sizes in the Triton interpreter (checks the script only)")
    args = ap.parse_args(argv)
    global DEV
    if args.dry_run:
        DEV = "cpu"
        return dry_run(args)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing to measure")
        return 2
    name = torch.cuda.get_device_name()
    props = torch.cuda.get_device_properties(0)
    META.update(device=name, sms=props.multi_processor_count, memory_GB=props.total_memory / 1e9,
                date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), torch=torch.__version__)
    import triton

    META["triton"] = triton.__version__
    log(f"device: {name} ({props.multi_processor_count} SMs, {props.total_memory / 1e9:.0f} GB); "
        f"torch {torch.__version__}, triton {triton.__version__}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only  # noqa: E731
    q = args.quick
    gen = torch.Generator(device=DEV).manual_seed(0)
    bw, rate = ceilings(q)
    if not args.skip_tests and want("tests"):
        run_tests()
    steps = [
        ("pairwise", lambda: bench_pairwise(bw, rate, gen, 20_000 if q else 100_000)),
        ("peers", lambda: bench_peers(bw, rate, gen)),
        ("crossover", lambda: bench_crossover(bw, rate, gen, 8192 if q else 32768)),
        ("encoder", lambda: bench_encoder(bw, rate, gen, 100_000 if q else 1_000_000)),
        ("query", lambda: bench_query(bw, rate, gen, 2000 if q else 10_000, 20_000 if q else 100_000)),
        ("cosine", lambda: bench_cosine_knn(bw, rate, gen, 10_000 if q else 100_000)),
        ("cupy", lambda: bench_cupy(bw, rate, gen, 8192 if q else 32768)),
        ("heat", lambda: bench_heat(bw, rate, gen, 50_000 if q else 1_000_000)),
        ("optin", lambda: bench_optin(bw, rate, gen, 50_000 if q else 1_000_000, 10_000 if q else 100_000)),
    ]
    for key, step in steps:
        if want(key):
            step()
            write_results(out, name)  # after every step: a run cut short keeps what it measured
    META["total_s"] = time.time() - T0
    write_results(out, name)
    print(f"\n=== vqgeom gpu_check on {name}, {META['date']} ({META['total_s']:.0f} s) ===")
    print(f"copy {bw / 1e12:.2f} TB/s, int8 {rate / 1e12:.0f} TOPS; tests: {META.get('gpu_tests', 'not run')}")
    hdr = (f"{'benchmark':<22} {'variant':<40} {'N':>8} {'B':>5} {'ms':>10} {'floor':>9} {'xfloor':>6} "
           f"{'spec':>9} {'xspec':>6} {'peer':>10} {'speedup':>7}")
    print(hdr)
    for r in ROWS:
        if r.get("time_ms") is None:
            print(f"{r['benchmark']:<22} {str(r['variant'])[:40]:<40} {r.get('note', '')[:80]}")
            continue
        print(f"{r['benchmark']:<22} {str(r['variant'])[:40]:<40} {r['N']:>8} {r['B']:>5} {r['time_ms']:>10.3f} "
              f"{(r['floor_ms'] or 0):>9.3f} {(r['x_floor'] or 0):>6.2f} {(r.get('spec_floor_ms') or 0):>9.3f} "
              f"{(r.get('x_spec') or 0):>6.2f} {(r['peer_ms'] or 0):>10.3f} "
              f"{(r['speedup_vs_peer'] or 0):>7.1f}")
    print(json.dumps({k: v for k, v in META.items() if k != "crossover_table"}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
