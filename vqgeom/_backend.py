"""Backend resolution: the argument, then ``$VQGEOM_BACKEND``, then the input's array type.

``numpy``  the float64 reference (slow, for checking)
``cpu``    exact fast CPU paths (integer GEMM through torch, blocked)
``triton`` Triton kernels on CUDA torch tensors
``cupy``   CUDA C kernels through CuPy on cupy arrays

``auto`` never raises for availability: torch CUDA tensors go to triton if it imports
(else the CPU path after a host copy), cupy arrays to cupy, everything else to cpu.
Every entry point with a Triton kernel (distances, k-NN, heat products and embeddings,
``compare``) resolves through :func:`kernel_backend`, which then hands cupy codes to the
Triton kernels through DLPack (zero-copy views, :func:`torch_view` and
:func:`caller_array`) when Triton is importable and cupy was not asked for by name
(:func:`cupy_via_triton`); results come back as cupy arrays, again without a copy.
Naming an unavailable backend raises a ``ValueError`` listing the available ones.
Nothing here imports triton or cupy until a backend is actually asked for.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from typing import Any

from ._arrays import array_module

__all__ = ["BACKENDS", "available_backends", "resolve_backend", "kernel_backend", "cupy_via_triton",
           "dlpack_torch_words", "dlpack_result", "torch_view", "caller_array", "torch_out_dtype"]

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


def cupy_via_triton(backend: str | None) -> bool:
    """Whether a call on cupy arrays that resolved to ``"cupy"`` should run the Triton
    kernels instead (through DLPack): only when neither the argument nor
    ``$VQGEOM_BACKEND`` named cupy, and Triton can run here."""
    named = (backend or "auto").lower() != "auto" or os.environ.get(ENV_VAR, "").strip().lower() not in ("", "auto")
    return not named and _triton_ok()


def kernel_backend(backend: str | None, *arrays: Any) -> str:
    """:func:`resolve_backend`, then cupy arrays to ``"triton"`` where :func:`cupy_via_triton`
    says so: the one routing rule of every entry point that has a Triton kernel. Its
    ``"triton"`` branch takes the arrays through :func:`torch_view` and hands results back
    with :func:`caller_array`."""
    name = resolve_backend(backend, *arrays)
    if name == "cupy" and cupy_via_triton(backend):
        name = "triton"  # the Triton kernels on zero-copy DLPack views of the cupy arrays
    return name


def torch_view(a: Any) -> Any:
    """``a`` as the Triton kernels take it: a torch tensor as is; packed uint32 words of
    another array library (cupy on the GPU) as a zero-copy int32 view
    (:func:`dlpack_torch_words`); other arrays of such a library as zero-copy views."""
    import torch

    if isinstance(a, torch.Tensor):
        return a
    if str(getattr(a, "dtype", "")) == "uint32":
        return dlpack_torch_words(a)
    return torch.from_dlpack(a)


def caller_array(t: Any, like: Any, np_dtype: Any = None) -> Any:
    """A torch result of a Triton kernel in ``like``'s array library: unchanged for torch,
    else a zero-copy DLPack view (:func:`dlpack_result`) as ``np_dtype`` (default: the
    same dtype)."""
    import torch

    if isinstance(like, torch.Tensor):
        return t
    if np_dtype is None:
        np_dtype = str(t.dtype).replace("torch.", "")
    return dlpack_result(t, like, np_dtype)


def dlpack_torch_words(words: Any) -> Any:
    """A zero-copy torch view (DLPack) of packed words from another array library
    (cupy on the GPU), as the Triton kernels take them: int32 (uint32 words are
    reinterpreted, same bits)."""
    import torch

    t = torch.from_dlpack(words)
    if t.dtype == torch.uint32:
        t = t.view(torch.int32)
    if t.dtype != torch.int32:
        raise TypeError(f"words: expected uint32 or int32 packed words, got {t.dtype}")
    return t


# Unsigned results the kernels cannot store as such are computed in the signed type of
# the same width (values below 2^31 resp. 2^63, checked by the kernels) and viewed back.
_TORCH_FOR_NUMPY = {"uint8": "uint8", "uint16": "uint16", "uint32": "int32", "uint64": "int64",
                    "int16": "int16", "int32": "int32", "int64": "int64", "float32": "float32",
                    "float64": "float64"}


def torch_out_dtype(np_dtype: Any) -> Any:
    """The torch dtype a kernel writes for a numpy result dtype (same item size)."""
    import numpy as np
    import torch

    name = np.dtype(np_dtype).name
    return getattr(torch, _TORCH_FOR_NUMPY[name])


def dlpack_result(t: Any, like: Any, np_dtype: Any) -> Any:
    """Hand a torch result back to ``like``'s array library without a copy (DLPack),
    viewed as ``np_dtype`` (same item size; e.g. int32 -> uint32)."""
    import numpy as np

    mod = sys.modules[type(like).__module__.split(".")[0]]
    out = mod.from_dlpack(t)
    dt = np.dtype(np_dtype)
    return out if out.dtype == dt else out.view(dt)
