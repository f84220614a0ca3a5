"""Backend resolution: the argument, then ``$VQGEOM_BACKEND``, then the input's array type.

``numpy``  the float64 reference (slow, for checking)
``cpu``    exact fast CPU paths (integer GEMM through torch, blocked)
``triton`` Triton kernels on CUDA torch tensors
``cupy``   CUDA C kernels through CuPy on cupy arrays

``auto`` never raises for availability: torch CUDA tensors go to triton if it imports
(else the CPU path after a host copy), cupy arrays to cupy, everything else to cpu.
Naming an unavailable backend raises a ``ValueError`` listing the available ones.
Nothing here imports triton or cupy until a backend is actually asked for.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

from ._arrays import array_module

__all__ = ["BACKENDS", "available_backends", "resolve_backend"]

BACKENDS = ("numpy", "cpu", "triton", "cupy")
ENV_VAR = "VQGEOM_BACKEND"


@functools.lru_cache(maxsize=None)
def _triton_ok() -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    import torch

    return torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def _cupy_ok() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device: cupy is installed but unusable here
        return False


def available_backends() -> tuple[str, ...]:
    """The backends that can run on this machine now."""
    out = ["numpy", "cpu"]
    if _triton_ok():
        out.append("triton")
    if _cupy_ok():
        out.append("cupy")
    return tuple(out)


def resolve_backend(backend: str | None, *arrays: Any) -> str:
    """Pick the backend for a call on ``arrays`` (see the module docstring)."""
    if backend is None:
        backend = "auto"
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a string in {('auto',) + BACKENDS}, got {type(backend).__name__}")
    name = backend.lower()
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env and env != "auto":
            name = env
            source = f"${ENV_VAR}"
        else:
            return _from_arrays(arrays)
    else:
        source = "backend"
    if name not in BACKENDS:
        raise ValueError(f"{source}: expected one of {('auto',) + BACKENDS}, got {backend!r}")
    avail = available_backends()
    if name not in avail:
        raise ValueError(f"{source}: backend {name!r} is not available here; available: {avail}")
    return name


def _from_arrays(arrays: tuple[Any, ...]) -> str:
    for a in arrays:
        xp = array_module(a)
        if xp == "cupy" and _cupy_ok():
            return "cupy"
        if xp == "torch" and a.device.type == "cuda" and _triton_ok():
            return "triton"
    return "cpu"
