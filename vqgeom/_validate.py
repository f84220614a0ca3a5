"""Input checks shared by the public functions. Each raises with the argument's name,
what was expected and what came; none uses ``assert`` (it vanishes under ``python -O``)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from ._arrays import array_module, describe

__all__ = ["check_finite_nonempty", "check_weights", "check_positive_scalar", "check_int"]


def check_finite_nonempty(X: Any, name: str = "X") -> None:
    """``X`` must have at least one row and no NaN or inf."""
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


def check_weights(weights: Any, n_layers: int) -> tuple[np.ndarray | None, bool]:
    """Validate per-layer weights.

    Returns ``(w, is_integer)`` with ``w`` a float64 array of length ``n_layers`` (or
    ``None`` for unit weights) and whether the weights were given as integers, which
    keeps results in an integer dtype.
    """
    if weights is None:
        return None, True
    if array_module(weights) != "numpy":
        from ._arrays import to_numpy

        weights = to_numpy(weights)
    if isinstance(weights, numbers.Number):
        raise TypeError(f"weights: expected a sequence of {n_layers} positive numbers (one per layer), got a scalar {weights!r}")
    w = np.asarray(weights)
    if w.ndim != 1 or w.shape[0] != n_layers:
        raise ValueError(f"weights: expected {n_layers} values (one per layer), got shape {w.shape}")
    if w.dtype.kind not in "iuf" or w.dtype == np.bool_:
        raise TypeError(f"weights: expected real numbers, got dtype {w.dtype}")
    wf = w.astype(np.float64)
    bad = ~(np.isfinite(wf) & (wf > 0))
    if bad.any():
        raise ValueError(
            f"weights: expected positive finite values (the paper's w_l > 0), got {w.tolist()} "
            f"(layer(s) {np.flatnonzero(bad).tolist()})"
        )
    return wf, w.dtype.kind in "iu"


def check_layer_sizes_match(a: Sequence[int], b: Sequence[int], name: str = "codes_y") -> None:
    if tuple(a) != tuple(b):
        raise ValueError(f"{name}: expected codes of the same layers as codes_x, layer_sizes {tuple(a)}, got {tuple(b)}")
