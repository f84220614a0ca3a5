"""The GPU a kernel runs on: its limits, a device guard, and every kernel launch.

Kernel configurations are derived from :class:`DeviceInfo` (opt-in shared memory per
block, multiprocessor count, compute capability, registers) instead of one GPU's
numbers. ``TARGETS`` lists the architectures the library is checked against ahead of
time (``python -m vqgeom.kernels.triton.aot``: every default launch compiled for each
target by Triton's compiler on the CPU, its shared memory and registers read from the
compiled kernel and compared with the target's limits).

Every launch goes through :func:`launch`, which checks the grid against CUDA's limits
(a bug, never the user's input, if it fails: the wrappers fold or loop instead), and,
while :mod:`vqgeom.kernels.triton.aot` captures launches for a target, compiles the
kernel for that target instead of running it.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["DeviceInfo", "TARGETS", "MIN_CC", "MAX_GRID_X", "MAX_GRID_YZ", "device_info", "check_arch",
           "device_guard", "launch", "capturing", "fold_rows"]

# CUDA's grid limits: x up to 2^31 - 1 blocks, y and z up to 65,535.
MAX_GRID_X = 2**31 - 1
MAX_GRID_YZ = 65535
# The oldest architecture the kernels are built and checked for: Turing (sm_75, T4).
MIN_CC = 75


@dataclass(frozen=True)
class DeviceInfo:
    """What the kernel configurations depend on.

    Attributes
    ----------
    name : str
    cc : int
        Compute capability as ``10 * major + minor`` (90 for sm_90).
    smem_optin : int
        Shared memory a block may use after opting in (bytes).
    sm_count : int
        Multiprocessors.
    regs_per_block : int
        32-bit registers one block may use.
    regs_per_thread : int
        Most registers one thread may use.
    """

    name: str
    cc: int
    smem_optin: int
    sm_count: int
    regs_per_block: int = 65536
    regs_per_thread: int = 255

    @property
    def int8_mma(self) -> bool:
        """Whether Triton lowers int8 x int8 -> int32 dots to tensor cores (sm_80 on;
        Triton 3.9 rejects them for sm_75, where the int8 kernels take float16 dots)."""
        return self.cc >= 80

    @property
    def tma(self) -> bool:
        """Bulk tensor copies (Hopper on)."""
        return self.cc >= 90


# Opt-in shared memory per block from the CUDA C Programming Guide's table of technical
# specifications per compute capability (cudaDevAttrMaxSharedMemoryPerBlockOptin):
# 7.5: 64 KB, 8.0: 163 KB, 8.6 / 8.9: 99 KB, 9.0: 227 KB. Multiprocessor counts are those
# of the named card (they only size grids).
TARGETS: dict[int, DeviceInfo] = {
    75: DeviceInfo("Tesla T4 (sm_75)", 75, 64 * 1024, 40),
    80: DeviceInfo("A100 (sm_80)", 80, 163 * 1024, 108),
    86: DeviceInfo("RTX 3090 / A10 (sm_86)", 86, 99 * 1024, 82),
    89: DeviceInfo("L4 / RTX 4090 (sm_89)", 89, 99 * 1024, 58),
    90: DeviceInfo("H100 / H200 (sm_90)", 90, 227 * 1024, 132),
}
# The interpreter (CPU tensors) runs the configurations of this target.
INTERPRETER_TARGET = 90

_CAPTURE: dict[str, Any] = {"target": None, "launches": None}


def capturing() -> DeviceInfo | None:
    """The target launches are being compiled for (None: launches run)."""
    return _CAPTURE["target"]


@functools.lru_cache(maxsize=None)
def _cuda_info(index: int) -> DeviceInfo:
    import torch

    p = torch.cuda.get_device_properties(index)
    cc = 10 * p.major + p.minor
    table = TARGETS.get(cc) or TARGETS[max((c for c in TARGETS if c <= cc), default=MIN_CC)]
    return DeviceInfo(
        name=f"{p.name} (sm_{cc})",
        cc=cc,
        smem_optin=int(getattr(p, "shared_memory_per_block_optin", 0) or table.smem_optin),
        sm_count=int(p.multi_processor_count),
        regs_per_block=int(getattr(p, "regs_per_multiprocessor", 0) or table.regs_per_block),
    )


def device_info(t: Any = None) -> DeviceInfo:
    """Limits of the device of tensor (or torch.device) ``t``.

    While launches are captured for a target: that target. CPU tensors (the Triton
    interpreter): ``TARGETS[INTERPRETER_TARGET]``, so the interpreter runs the same
    configurations as that GPU.
    """
    if _CAPTURE["target"] is not None:
        return _CAPTURE["target"]
    dev = getattr(t, "device", t)
    if dev is not None and getattr(dev, "type", None) == "cuda":
        import torch

        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return _cuda_info(int(index))
    return TARGETS[INTERPRETER_TARGET]


def check_arch(info: DeviceInfo) -> DeviceInfo:
    """Raise a clear error for a GPU older than ``MIN_CC``."""
    if info.cc < MIN_CC:
        raise RuntimeError(
            f"vqgeom's Triton kernels need a GPU of compute capability {MIN_CC // 10}.{MIN_CC % 10} (Turing, "
            f"e.g. T4) or newer; this one is {info.name}, compute capability {info.cc // 10}.{info.cc % 10}. "
            "Use backend='cpu' (or move the codes to the CPU)."
        )
    return info


def device_guard(t: Any):
    """A context that makes ``t``'s GPU the current one (kernels launch on the current
    device and stream), after checking its architecture; a no-op for CPU tensors."""
    if getattr(t, "is_cuda", False) and _CAPTURE["target"] is None:
        import torch

        check_arch(device_info(t))
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def guarded(first: str) -> Callable:
    """Decorator: run the wrapper under :func:`device_guard` of its argument ``first``
    (the first positional argument, or that keyword)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            t = kwargs.get(first, args[0] if args else None)
            with device_guard(t):
                return fn(*args, **kwargs)

        return run

    return wrap


def fold_rows(tiles: int) -> int:
    """Grid extent along y (or z) for ``tiles`` row tiles: at most ``MAX_GRID_YZ``; the
    kernel loops over the rest (``for t in range(program_id(1), tiles, num_programs(1))``)."""
    return max(1, min(int(tiles), MAX_GRID_YZ))


def launch(kernel: Any, grid: tuple[int, ...], *args: Any, **kwargs: Any) -> Any:
    """``kernel[grid](*args, **kwargs)`` after checking the grid; while capturing for a
    target, compile for it instead (``kernel.warmup``) and record the launch."""
    grid = tuple(int(g) for g in grid)
    limits = (MAX_GRID_X, MAX_GRID_YZ, MAX_GRID_YZ)
    if not 1 <= len(grid) <= 3 or any(g > lim for g, lim in zip(grid, limits)):
        raise RuntimeError(f"{getattr(kernel, '__name__', kernel)}: grid {grid} exceeds CUDA's limits {limits} "
                           "(a bug in vqgeom's wrapper, which must fold large grids; please report it)")
    if _CAPTURE["target"] is not None:
        compiled = kernel.warmup(*args, grid=grid, **kwargs)
        _CAPTURE["launches"].append(dict(kernel=kernel, grid=grid, compiled=compiled,
                                         num_warps=kwargs.get("num_warps", 4)))
        return compiled
    return kernel[grid](*args, **kwargs)
