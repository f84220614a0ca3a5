"""Input checks shared by the public functions. Each raises with the argument's name,
what was expected and what came; none uses ``assert`` (it vanishes under ``python -O``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ._arrays import array_module, describe

__all__ = ["check_finite_nonempty", "reject_codes", "make_weights", "Weights", "result_dtype", "check_positive_scalar", "check_int", "check_sigma2s"]


def reject_codes(X: Any, name: str) -> None:
    """A :class:`~vqgeom.Codes` where an array is expected: a ``TypeError`` at once."""
    from .codes import Codes

    if isinstance(X, Codes):
        raise TypeError(
            f"{name}: expected an array, got Codes; pass Codes to the functions that take codes "
            "(pairwise_distances, knn, mds, heat_embedding, compare), or codes.unpack() for the bits"
        )


def check_finite_nonempty(X: Any, name: str = "X") -> None:
    """``X`` must have at least one row and no NaN or inf."""
    reject_codes(X, name)
    xp = array_module(X)
    shape = tuple(X.shape)
    if len(shape) == 0:
        raise ValueError(f"{name}: expected an array of inputs with a leading batch dimension, got a scalar")
    if shape[0] == 0:
        raise ValueError(f"{name}: expected at least one input row, got an empty array {describe(X)}")
    if xp == "torch":
        import torch

        if X.device.type == "meta":  # no data to check (and bool() of a meta tensor raises RuntimeError)
            raise ValueError(f"{name}: expected a tensor with data, got a meta tensor {describe(X)}")
        if X.is_floating_point() and not bool(torch.isfinite(X).all()):
            raise ValueError(f"{name}: expected finite values, got NaN or inf in {describe(X)}")
    else:
        arr = np.asarray(X) if xp == "numpy" else X
        if arr.dtype.kind in "fc" and not bool((arr == arr).all() & (abs(arr) != np.inf).all()):
            raise ValueError(f"{name}: expected finite values, got NaN or inf in {describe(X)}")


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_positive_scalar(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return v


# Result dtypes of integer distances, smallest first. torch has arithmetic on uint8 but not
# on uint16/32/64: it gets the signed types.
_NUMPY_INTS = ("uint8", "uint16", "uint32", "uint64")
_TORCH_INTS = ("uint8", "int16", "int32", "int64")
# The largest integer distance each array type can return exactly.
INT_LIMITS = {"numpy": 2**64 - 1, "cupy": 2**64 - 1, "torch": 2**63 - 1}


def result_dtype(max_value: int | float, integer: bool, array_type: str = "numpy") -> Any:
    """The distance dtype: the smallest integer type holding ``max_value``, or float64.

    numpy and cupy get unsigned types (uint8/16/32/64); torch gets uint8, int16, int32 or
    int64. Integer distances beyond the largest type raise (never a float64 fallback).
    """
    names = _TORCH_INTS if array_type == "torch" else _NUMPY_INTS
    if array_type == "torch":
        import torch

        get = lambda n: getattr(torch, n)  # noqa: E731
        info = lambda n: torch.iinfo(getattr(torch, n)).max  # noqa: E731
    else:
        get = np.dtype  # noqa: E731
        info = lambda n: int(np.iinfo(n).max)  # noqa: E731
    if not integer:
        return get("float64")
    for n in names:
        if max_value <= info(n):
            return get(n)
    raise ValueError(f"weights: integer distances up to {max_value} do not fit {names[-1]}")


@dataclass(frozen=True)
class Weights:
    """Per-layer weights of the VQ distance, validated once and carried to every backend.

    ``d(x, y) = sum_l w_l H_l(x, y)``, where ``H_l`` is layer ``l``'s Hamming distance, halved
    for a *halved* layer (one whose codes always differ in an even number of bits, e.g. a
    max-type unit coded one-hot by its argmax: ``H_l = popcount_l / 2``).

    Kernels only see :attr:`kernel`, ordinary per-layer weights of the popcounts: they
    compute ``sum_l kernel_l popcount_l`` and the distance is that divided by
    :attr:`divisor` (exactly: the sum is a multiple of it).

    Integer weights (every value finite, positive and integral, whatever its dtype):
    ``kernel_l = 2 w_l`` for plain and ``w_l`` for halved layers with ``divisor = 2`` when
    some layer is halved, else ``kernel_l = w_l`` and ``divisor = 1``; results are exact
    integers of :attr:`dtype`. Real weights: ``kernel_l = w_l`` (``w_l / 2`` when halved),
    float64 results, each layer's term ``kernel_l * popcount_l`` rounded once and the terms
    summed in layer order (relative error below ``L * 2**-53``; the Triton reductions
    accumulate in float32, see :mod:`vqgeom.kernels.triton.reductions`).

    Attributes
    ----------
    values : tuple of int or float
        The user's weights as Python numbers (ints when integer).
    layer_sizes : tuple of int
    halved : tuple of bool
    integer : bool
    kernel : ndarray (L,) or None
        int64 (uint64 only when a value exceeds int64) for integer weights, float64 for
        real ones; None means all ones (the unweighted kernels).
    divisor : int
        1 or 2.
    max_kernel : int or float
        ``sum_l kernel_l B_l``, the largest kernel sum (Python int when integer).
    max_distance : int or float
        The largest possible distance, ``max_kernel // divisor``.
    array_type : str
        ``"numpy"``, ``"torch"`` or ``"cupy"``: the results' array type.
    dtype : numpy or torch dtype
        The result dtype (:func:`result_dtype` of ``max_distance``).
    """

    values: tuple
    layer_sizes: tuple
    halved: tuple
    integer: bool
    kernel: Any
    divisor: int
    max_kernel: Any
    max_distance: Any
    array_type: str
    dtype: Any

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    def kernel_dtype(self, array_type: str | None = None) -> Any:
        """The dtype holding every kernel sum (before the division by :attr:`divisor`)."""
        return result_dtype(self.max_kernel, self.integer, array_type or self.array_type)

    def kernel_int32(self) -> bool:
        """Whether integer kernel sums fit int32 (the Triton reductions' exact accumulator)."""
        return self.integer and self.max_kernel <= 2**31 - 1


def _weight_values(weights: Any, n_layers: int) -> list:
    """The user's weights as a list of Python ints/floats, or raise naming ``weights``."""
    if array_module(weights) != "numpy":
        from ._arrays import to_numpy

        weights = to_numpy(weights)
    if isinstance(weights, (numbers.Number, str, bytes)) or getattr(weights, "ndim", 1) == 0:
        raise TypeError(
            f"weights: expected a sequence of {n_layers} positive numbers (one per layer), got a scalar {type(weights).__name__} {weights!r}"
        )
    if isinstance(weights, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in weights):
        raise TypeError(f"weights: expected real numbers, got booleans in {weights!r}")
    if isinstance(weights, dict):
        raise TypeError(f"weights: expected a sequence of {n_layers} numbers, got a dict")
    try:
        w = np.asarray(weights)
    except (ValueError, TypeError):
        raise TypeError(f"weights: expected a flat sequence of {n_layers} numbers, got {weights!r}") from None
    if w.ndim != 1 or w.shape[0] != n_layers:
        raise ValueError(f"weights: expected {n_layers} values (one per layer), got shape {w.shape}")
    if w.dtype == object:
        vals = list(w)
        for v in vals:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise TypeError(f"weights: expected real numbers, got {type(v).__name__} {v!r} in {vals}")
        vals = [int(v) if isinstance(v, numbers.Integral) else float(v) for v in vals]
    elif w.dtype.kind not in "iuf":
        raise TypeError(f"weights: expected real numbers, got dtype {w.dtype}")
    else:
        vals = w.tolist()
    bad = [i for i, v in enumerate(vals) if not (v > 0 and (isinstance(v, int) or math.isfinite(v)))]
    if bad:
        raise ValueError(f"weights: expected positive finite values (the paper's w_l > 0), got {vals} (layer(s) {bad})")
    return vals


def make_weights(
    weights: Any, layer_sizes: Sequence[int], halved: Any = None, array_type: str = "numpy"
) -> Weights:
    """Validate per-layer ``weights`` once: the :class:`Weights` every backend consumes.

    Parameters
    ----------
    weights : None or sequence of L positive finite numbers (list, numpy, torch, cupy)
        None means all ones. Integer values (of any dtype) give exact integer results.
    layer_sizes : sequence of L int
    halved : None or sequence of L bool
        Layers whose Hamming distance is halved (default none).
    array_type : {"numpy", "torch", "cupy"}
        The results' array type (fixes the integer result dtype and its limit).

    Raises
    ------
    TypeError, ValueError
        Naming ``weights`` (or ``halved``); a ``ValueError`` when integer distances
        ``sum_l w_l B_l`` (the kernel sum, see :class:`Weights`) exceed the array type's
        largest integer (uint64 for numpy/cupy, int64 for torch).
    """
    sizes = tuple(int(b) for b in layer_sizes)
    n_layers = len(sizes)
    if halved is None:
        half = (False,) * n_layers
    else:
        half = tuple(halved.tolist() if hasattr(halved, "tolist") else halved)
        if len(half) != n_layers or not all(isinstance(h, (bool, np.bool_)) for h in half):
            raise ValueError(f"halved: expected {n_layers} booleans (one per layer), got {halved!r}")
        half = tuple(bool(h) for h in half)
    vals = [1] * n_layers if weights is None else _weight_values(weights, n_layers)
    integer = all(isinstance(v, int) or float(v).is_integer() for v in vals)
    if integer:
        vals = [int(v) for v in vals]
        divisor = 2 if any(half) else 1
        kern = [v if h or divisor == 1 else 2 * v for v, h in zip(vals, half)]
        # Empty layers add nothing: weight 1 keeps the kernel weights small.
        kern = [k if b else 1 for k, b in zip(kern, sizes)]
        max_kernel = sum(k * b for k, b in zip(kern, sizes))
        limit = INT_LIMITS.get(array_type, INT_LIMITS["numpy"])
        if max_kernel > limit:
            what = "sum_l w_l B_l" if divisor == 1 else "sum_l 2 w_l B_l (plain) + w_l B_l (halved)"
            raise ValueError(
                f"weights: integer weights {vals} over layer sizes {list(sizes)} give distances up to {what} = "
                f"{max_kernel}, more than the largest exact integer of a {array_type} result ({limit}); "
                f"use smaller weights or real (non-integer) weights for float64 results"
            )
        max_distance = max_kernel // divisor
        if all(k == 1 for k in kern):
            kernel = None
        else:
            kernel = np.asarray(kern, dtype=np.int64 if max(kern) <= 2**63 - 1 else np.uint64)
        values = tuple(vals)
    else:
        divisor = 1
        kern_f = [float(v) / 2.0 if h else float(v) for v, h in zip(vals, half)]
        kernel = np.asarray(kern_f, dtype=np.float64)
        max_kernel = max_distance = float(np.dot(kernel, np.asarray(sizes, dtype=np.float64)))
        if not math.isfinite(max_kernel):
            raise ValueError(f"weights: distances up to sum_l w_l B_l overflow float64 with weights {vals}")
        values = tuple(float(v) for v in vals)
    dtype = result_dtype(max_distance, integer, array_type)
    return Weights(values, sizes, half, integer, kernel, divisor, max_kernel, max_distance, array_type, dtype)


def check_sigma2s(sigma2s: Any, name: str = "sigma2s") -> np.ndarray:
    """One positive finite number or a flat non-empty sequence of them, as float64 (S,)."""
    if isinstance(sigma2s, (str, bytes)):
        raise TypeError(f"{name}: expected positive numbers, got {type(sigma2s).__name__} {sigma2s!r}")
    vals = [sigma2s] if isinstance(sigma2s, numbers.Number) or getattr(sigma2s, "ndim", 1) == 0 else sigma2s
    try:
        vals = list(vals)
    except TypeError:
        raise TypeError(f"{name}: expected a positive number or a sequence of them, got {type(sigma2s).__name__}") from None
    if not vals:
        raise ValueError(f"{name}: expected at least one value, got an empty sequence")
    out = np.empty(len(vals))
    for i, v in enumerate(vals):
        if hasattr(v, "ndim") and getattr(v, "ndim") == 0 and hasattr(v, "item"):
            v = v.item()
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}: expected positive real numbers, got {type(v).__name__} {v!r} at position {i}")
        out[i] = check_positive_scalar(v, f"{name}[{i}]")
    return out


def check_layer_sizes_match(a: Sequence[int], b: Sequence[int], name: str = "codes_y") -> None:
    if tuple(a) != tuple(b):
        raise ValueError(f"{name}: expected codes of the same layers as codes_x, layer_sizes {tuple(a)}, got {tuple(b)}")
