"""Ahead-of-time check: every default launch of every Triton kernel, compiled for each
GPU target by Triton's own compiler on the CPU (no GPU needed), must fit the target.

``python -m vqgeom.kernels.triton.aot [--targets 75,80,86,89,90] [--optin-targets ...] [--json]``

The opt-in kernels (explicit options not yet timed on a GPU: the symmetric heat product,
the cosine without I2F, the threshold-filtered k-NN) are compiled for every target by
default; ``--optin-targets`` narrows that (the CI test compiles them for a subset).

The real wrappers (``pairwise_hamming``, ``int8_hamming``, ``encode_mlp``,
``heat_matmat`` ...) run on small CPU tensors while :func:`capture` makes
:func:`vqgeom.kernels.triton._device.launch` compile instead of launch, with
:func:`vqgeom.kernels.triton._device.device_info` answering the target's limits. So
the check compiles exactly the configurations the wrappers would choose on that GPU
(sizes only change grids, never the compiled code, except through the chosen tiles,
which depend on the target's limits, not on N). For each compiled kernel it reads the
shared memory Triton launches it with (``metadata.shared``, which Triton's launcher
compares with the device's opt-in limit) and the registers and static shared memory of
the cubin (``cuobjdump -res-usage``, shipped with Triton), and compares them with the
target's limits: shared memory per block (opt-in), registers per thread (255) and per
block (65,536).

Must run in a process without ``TRITON_INTERPRET=1`` (the kernels have to be JIT
functions); the test suite runs it in a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from . import _device
from ._device import TARGETS, DeviceInfo

__all__ = ["capture", "scenarios", "check_target", "main"]


class _CompileOnlyDriver:
    """The parts of Triton's active driver that compilation (``JITFunction.warmup``)
    asks for: a current device, stream and target. One per target, so each target has
    its own device id and hence its own in-memory kernel cache."""

    def __init__(self, target: DeviceInfo):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", target.cc, 32)
        self.device = 1000 + target.cc

    def get_current_device(self) -> int:
        return self.device

    def get_current_stream(self, device: Any = None) -> int:
        return 0

    def get_current_target(self) -> Any:
        return self.target

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"compile-only driver: {name} is not available without a GPU")


@contextlib.contextmanager
def capture(target: DeviceInfo) -> Iterator[list]:
    """Within: launches compile for ``target`` (and are listed in the yielded list)."""
    from triton.runtime import driver

    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("aot: run without TRITON_INTERPRET=1 (the kernels must be compiled, not interpreted)")
    launches: list = []
    previous = driver._active  # None without a GPU (no driver is usable then)
    driver.set_active(_CompileOnlyDriver(target))
    _device._CAPTURE.update(target=target, launches=launches)
    try:
        yield launches
    finally:
        _device._CAPTURE.update(target=None, launches=None)
        driver._active = previous


def _words(seed: int, n: int, sizes: tuple[int, ...]):
    import torch

    from vqgeom.codes import pack_bits

    rng = np.random.default_rng(seed)
    return torch.from_numpy(pack_bits(rng.random((n, sum(sizes))) < 0.5, sizes).view(np.int32))


def optin_scenarios() -> list[tuple[str, Callable[[], Any]]]:
    """``(name, call)`` for the opt-in launches (see the module docstring)."""
    import torch

    from . import reductions

    short = (20, 30)
    b288 = (64,) * 4 + (32,)
    long = (1000, 700, 300)
    out = []
    for name, sizes in (("b288", b288), ("long", long)):
        wx = _words(1, 70, sizes)
        out.append((f"heat sym {name}", lambda wx=wx, s=sizes: reductions.heat_matmat(wx, s, torch.ones(70), 10.0,
                                                                                      method="sym")))
        out.append((f"knn select {name} k=5", lambda wx=wx, s=sizes: reductions.knn(wx, s, 5, method="select")))
    out.append(("heat sym b288 k=8", lambda: reductions.heat_matmat(_words(1, 70, b288), b288, torch.ones(70, 8),
                                                                      10.0, method="sym")))
    b512 = (512,)  # the deepest pipelines the shared-memory model allows on sm_90 (185-193 KB)
    out.append(("heat sym b512 k=32", lambda: reductions.heat_matmat(_words(1, 70, b512), b512, torch.ones(70, 32),
                                                                       10.0, method="sym")))
    wa, wb = _words(3, 70, b288), _words(4, 70, short)
    out.append(("cosine magic b288 x short", lambda: reductions.heat_cosine(wa, b288, wb, short, [1.0, 10.0],
                                                                             magic=True)))
    return out


def scenarios() -> list[tuple[str, Callable[[], Any]]]:
    """``(name, call)`` for each default launch family: every public wrapper with its
    default configuration, over the code shapes that select different kernels or
    configurations (1-2 words, one segment held in registers, several segments,
    weights, 1- to 8-byte outputs, condensed, wide MLP layers)."""
    import torch

    from . import encode, hamming, int8, reductions

    short = (20, 30)  # 2 words: popcount
    b288 = (64,) * 4 + (32,)  # B = 288, one segment held in registers (the benchmarked shape)
    long = (1000, 700, 300)  # one segment of 2048 columns (segment loop), three with weights
    out = []
    for name, sizes in (("short", short), ("b288", b288), ("long", long)):
        wx, wy = _words(1, 70, sizes), _words(2, 40, sizes)
        out.append((f"distances {name} sym int16",
                    lambda wx=wx, s=sizes: hamming.pairwise_hamming(wx, None, s, None, torch.int16)))
        if name != "long":
            out.append((f"distances {name} condensed int16",
                        lambda wx=wx, s=sizes: hamming.pairwise_hamming(wx, None, s, None, torch.int16,
                                                                         condensed=True)))
            out.append((f"distances {name} cross int32",
                        lambda wx=wx, wy=wy, s=sizes: hamming.pairwise_hamming(wx, wy, s, None, torch.int32)))
        if name != "short":
            w = np.linspace(0.5, 2.0, len(sizes))
            out.append((f"distances {name} weighted float64",
                        lambda wx=wx, s=sizes, w=w: hamming.pairwise_hamming(wx, None, s, w, torch.float64)))
            if name == "b288":
                out.append((f"heat {name}",
                            lambda wx=wx, s=sizes: reductions.heat_matmat(wx, s, torch.ones(70), 10.0)))
            out.append((f"knn {name} k=5", lambda wx=wx, s=sizes: reductions.knn(wx, s, 5)))
    out.append(("heat b288 k=8", lambda: reductions.heat_matmat(_words(1, 70, b288), b288, torch.ones(70, 8), 10.0)))
    wa, wb = _words(3, 70, b288), _words(4, 70, short)
    out.append(("cosine b288 x short", lambda: reductions.heat_cosine(wa, b288, wb, short, [1.0, 10.0])))
    gen = torch.Generator().manual_seed(5)

    def mlp(widths):
        return [(torch.randn(o, i, generator=gen), torch.randn(o, generator=gen), 0.1)
                for i, o in zip(widths[:-1], widths[1:])]

    X = torch.randn(70, 784, generator=gen)
    for widths in ((784,) + (16,) * 6, (784, 64, 64), (784, 300, 100)):
        layers = mlp(widths)
        out.append((f"encode {'x'.join(map(str, widths))}", lambda l=layers: encode.encode_mlp(l, X)))
    q16 = mlp((784,) + (16,) * 6)
    ref = _words(6, 90, (16,) * 6)
    out.append(("query fused 784-16x6", lambda: encode.query_distances(q16, X, ref, fused=True)))
    return out


def _cuobjdump() -> str:
    import triton.backends.nvidia as nv

    return str(Path(nv.__file__).parent / "bin" / "cuobjdump")


def _resources(cubin: bytes, tmp: Path) -> dict:
    """Registers, stack frame and static shared memory of the cubin's kernel."""
    path = tmp / "k.cubin"
    path.write_bytes(cubin)
    res = subprocess.run([_cuobjdump(), "-res-usage", str(path)], capture_output=True, text=True, check=True)
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", res.stdout)
    if not m:
        raise RuntimeError(f"aot: cannot read cuobjdump's resource usage:\n{res.stdout}")
    reg, stack, shared, local = map(int, m.groups())
    return dict(regs=reg, stack=stack, static_shared=shared, local=local)


def check_target(target: DeviceInfo, tmp: Path, optin: bool = True, default: bool = True) -> list[dict]:
    """Compile every scenario's launches for ``target`` (the default ones unless not
    ``default``, the opt-in ones with ``optin``); one row per compiled kernel."""
    rows = []
    seen: dict = {}
    for name, call in (scenarios() if default else []) + (optin_scenarios() if optin else []):
        t0 = time.time()
        with capture(target) as launches:
            try:
                call()
                error = None
            except Exception as exc:  # a compile failure is a finding, reported with the scenario
                error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}"
        secs = round(time.time() - t0, 2)
        if error is not None:
            rows.append(dict(target=target.cc, scenario=name, kernel="", ok=False, error=error, seconds=secs))
            continue
        for item in launches:
            ck = item["compiled"]
            key = (ck.hash if hasattr(ck, "hash") else id(ck), ck.metadata.hash)
            if key in seen:
                continue
            res = _resources(ck.asm["cubin"], tmp)
            seen[key] = res
            warps = int(ck.metadata.num_warps)
            shared = int(ck.metadata.shared)
            problems = []
            if shared + res["static_shared"] > target.smem_optin:
                problems.append(f"shared memory {shared + res['static_shared']} B > {target.smem_optin} B")
            if res["regs"] > target.regs_per_thread:
                problems.append(f"{res['regs']} registers per thread > {target.regs_per_thread}")
            if res["regs"] * 32 * warps > target.regs_per_block:
                problems.append(f"{res['regs']} x {32 * warps} threads > {target.regs_per_block} registers")
            rows.append(dict(target=target.cc, scenario=name, kernel=ck.metadata.name, num_warps=warps,
                             num_stages=int(ck.metadata.num_stages), shared=shared, **res, seconds=secs,
                             ok=not problems,
                             error="; ".join(problems) or None))
    return rows


def _check_one(job: tuple[int, bool, bool]) -> tuple[list[dict], float]:
    import tempfile

    cc, optin, default = job
    t = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = check_target(TARGETS[cc], Path(tmp), optin, default)
    return rows, time.time() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=",".join(str(c) for c in TARGETS),
                    help="compute capabilities, comma-separated (default: all of TARGETS)")
    ap.add_argument("--optin-targets", default=None,
                    help="targets on which the opt-in kernels are compiled too (default: all of --targets)")
    ap.add_argument("--only-optin", action="store_true", help="compile the opt-in kernels only")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (last line)")
    ap.add_argument("--jobs", type=int, default=1, help="targets compiled in parallel processes")
    args = ap.parse_args(argv)
    ccs = [int(c) for c in args.targets.split(",") if c.strip()]
    unknown = [c for c in ccs if c not in TARGETS]
    if unknown:
        ap.error(f"--targets: unknown {unknown}; known {sorted(TARGETS)}")
    optin = ccs if args.optin_targets is None else [int(c) for c in args.optin_targets.split(",") if c.strip()]
    jobs = [(cc, cc in optin, not args.only_optin) for cc in ccs]
    rows = []
    t0 = time.time()
    if args.jobs > 1 and len(ccs) > 1:
        # One process per target (fresh Triton state each), ``--jobs`` at a time.
        import concurrent.futures as cf

        import multiprocessing

        with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            parts = list(ex.map(_check_one, jobs))
    else:
        parts = [_check_one(job) for job in jobs]
    for cc, (part, secs) in zip(ccs, parts):
        rows += part
        bad = [r for r in part if not r["ok"]]
        print(f"sm_{cc} {TARGETS[cc].name}: {len(part)} kernels, {len(bad)} failing, {secs:.1f} s", file=sys.stderr)
        for r in part:
            print(f"  {r['scenario']:<36} {r['kernel']:<24} "
                  + (f"smem {r['shared']:>6} regs {r['regs']:>3} stack {r['stack']:>4} warps {r['num_warps']}"
                     if "shared" in r else "") + f" {r['seconds']:6.1f} s" + ("" if r["ok"] else f"  FAIL {r['error']}"), file=sys.stderr)
    print(f"total {time.time() - t0:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
