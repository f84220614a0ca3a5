"""Array-type plumbing: which library an array belongs to, and moving results back to it.

Never imports cupy, dask (or triton): an array can only be a cupy or dask array if that library
is already loaded.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["array_module", "to_numpy", "like_input", "describe"]


def array_module(a: Any) -> str:
    """``'torch'``, ``'cupy'``, ``'dask'`` or ``'numpy'`` (anything else array-like counts as numpy)."""
    # getattr: another thread may be importing dask.array right now (a dask worker deserialising a
    # task); until its Array class exists no object can be one.
    dask_array_cls = getattr(sys.modules.get("dask.array.core"), "Array", None)
    if dask_array_cls is not None and isinstance(a, dask_array_cls):
        return "dask"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return "torch"
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(a, cupy.ndarray):
        return "cupy"
    return "numpy"


def to_numpy(a: Any) -> np.ndarray:
    """A host numpy view or copy of ``a`` (torch tensors are detached and moved to the CPU; dask
    arrays are computed)."""
    xp = array_module(a)
    if xp == "dask":
        return to_numpy(a.compute())
    if xp == "torch":
        return a.detach().cpu().numpy()
    if xp == "cupy":
        return a.get()
    return np.asarray(a)


def like_input(result: np.ndarray, like: Any) -> Any:
    """Return host ``result`` in ``like``'s array type and on its device.

    torch has no arithmetic on uint16/uint32/uint64, so those come back as the
    next signed type that holds every value (int32 / int64).
    """
    xp = array_module(like)
    if xp == "torch":
        import torch

        if result.dtype in (np.uint16,):
            result = result.astype(np.int32)
        elif result.dtype in (np.uint32, np.uint64):
            result = result.astype(np.int64)
        return torch.from_numpy(np.ascontiguousarray(result)).to(like.device)
    if xp == "cupy":
        import cupy

        with cupy.cuda.Device(like.device.id):
            return cupy.asarray(result)
    return result


def describe(a: Any) -> str:
    """Short description of an array for error messages: type, shape, dtype, device."""
    xp = array_module(a)
    if xp == "torch":
        return f"torch.Tensor(shape={tuple(a.shape)}, dtype={a.dtype}, device={a.device})"
    if xp == "cupy":
        return f"cupy.ndarray(shape={a.shape}, dtype={a.dtype}, device=cuda:{a.device.id})"
    if xp == "dask":
        return f"dask.array(shape={a.shape}, dtype={a.dtype}, chunks={a.chunksize})"
    if isinstance(a, np.ndarray):
        return f"numpy.ndarray(shape={a.shape}, dtype={a.dtype})"
    return type(a).__name__
