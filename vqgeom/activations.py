"""The activation registry: what vqgeom knows about each continuous piecewise-affine (CPA) operation.

One place for every reader: the tracer of :func:`vqgeom.encode`, the MLP reader
(:mod:`vqgeom._netspec`, used by ``backend="numpy"`` and the geometry module), the Triton
encoder's layer reader and the exact partitions. The numpy oracle
:mod:`vqgeom.kernels.reference` keeps its own few lines per operation on purpose, so that a
bug here is caught by the tests.

Two families of units
---------------------
**Kink units** (one input, fixed kinks): ``relu``, ``leaky``, ``prelu``, ``hardtanh`` (also
ReLU6), ``clamp_min``, ``clamp_max``, ``hardsigmoid``, ``softshrink``, ``abs``. A unit
gives one bit per kink ``t``, set iff its pre-activation is ``>= t``; a layer with several
kinks is threshold-major (every unit's bit at the first kink, then at the second, ...).

**Max-type units** (a max over ``k`` candidates): max-pooling windows, maxout groups
(``amax`` / ``max(dim=...)``), elementwise ``maximum``/``minimum``/``fmax``/``fmin``. A unit
is coded by its argmax, ties going to the first maximal candidate in the window's
row-major order (what torch's CPU ``return_indices`` and :func:`numpy.argmax` give); for
``min`` the argmin, ties to the first. Storage:

* ``k == 2`` (elementwise ``maximum(a, b)`` / ``minimum(a, b)``, pooling windows of two,
  maxout pairs): **one plain bit**, set iff the first candidate ``a >= b``. For
  ``maximum`` that is "``a`` is the argmax" and ReLU is ``maximum(x, 0)``; for ``minimum``
  it is the ``>=`` side of the same kink ``a - b = 0``, as ``clamp_max(x, t)`` codes
  ``x >= t``.
* ``k >= 3``: a **one-hot group** of ``g`` bits per unit, ``g`` the layer's largest window
  (candidates outside a padded or smaller window are never set). Such a layer is
  *halved*: two different argmaxes differ in exactly two bits, so the unit adds
  ``popcount(xor) / 2 = 1`` to the layer's distance (see :class:`vqgeom.Codes`).

Network specs (the ``act`` of a float64 layer ``(A, b, act)``)
--------------------------------------------------------------
``"relu"``, ``("leaky", s)``, ``("prelu", slopes)``, ``("hardtanh", lo, hi)``,
``("clamp_min", lo)``, ``("clamp_max", hi)``, ``("hardsigmoid",)``, ``("softshrink", lam)``,
``("abs",)``, ``("maxout", k)`` and ``("minout", k)`` (the layer's units in consecutive
groups of ``k``, each group one max/min unit: ``k`` equal to the layer's width is a max
over all of its units), or ``None`` (an output layer, no bits).

Functions here take such specs: :func:`kinks`, :func:`evaluate`, :func:`bits`,
:func:`n_bits`, :func:`group_width`, :func:`halved`, :func:`out_units`,
:func:`affine_piece` (a kink unit's affine piece from its bits), :func:`max_index` (a
max-type unit's argmax, first on ties), :func:`argmax_first`, :func:`one_hot`. The torch side (which functions and modules map to
which operation, and how the tracer records them) is :func:`torch_ops` /
:func:`torch_modules`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = [
    "KINK_KINDS",
    "MAX_KINDS",
    "normalize",
    "kinks",
    "is_max_type",
    "group_width",
    "n_bits",
    "out_units",
    "evaluate",
    "bits",
    "argmax_first",
    "max_index",
    "one_hot",
    "affine_piece",
    "halved",
    "torch_ops",
    "torch_modules",
    "module_spec",
    "adaptive_windows",
    "TorchOp",
]

#: Spec kinds of kink units and of max-type units.
KINK_KINDS = ("relu", "leaky", "prelu", "hardtanh", "clamp_min", "clamp_max", "hardsigmoid", "softshrink", "abs")
MAX_KINDS = ("maxout", "minout")


def normalize(act: Any) -> Any:
    """The canonical form of a spec (``"relu"`` for ``("relu",)``); raises on an unknown spec."""
    if act is None or act == "relu":
        return act
    if isinstance(act, tuple) and act and act[0] == "relu" and len(act) == 1:
        return "relu"
    if not isinstance(act, tuple) or not act or act[0] not in KINK_KINDS + MAX_KINDS:
        raise ValueError(f"act: unknown activation spec {act!r}; expected one of {KINK_KINDS + MAX_KINDS} or None")
    kind = act[0]
    if kind in MAX_KINDS:
        k = act[1] if len(act) == 2 else None
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"act: expected ({kind!r}, k) with an integer group size k >= 1, got {act!r}")
        return (kind, int(k))
    return act


def _kind(act: Any) -> str | None:
    act = normalize(act)
    return act if act is None or isinstance(act, str) else act[0]


def kinks(act: Any) -> list[float]:
    """The pre-activation values at which a kink unit bends (one bit each); ``[]`` for none.

    Max-type specs have no fixed kinks (their kinks are ties between candidates): ``[]``.
    """
    kind = _kind(act)
    if kind is None or kind in MAX_KINDS:
        return []
    if kind in ("relu", "leaky", "prelu", "abs"):
        return [0.0]
    if kind == "hardtanh":
        return [float(act[1]), float(act[2])]
    if kind in ("clamp_min", "clamp_max"):
        return [float(act[1])]
    if kind == "hardsigmoid":
        return [-3.0, 3.0]
    if kind == "softshrink":
        return [-float(act[1]), float(act[1])]
    raise AssertionError(kind)  # unreachable: normalize() rejects unknown kinds


def is_max_type(act: Any) -> bool:
    """Whether ``act`` is a max-type spec (``maxout`` / ``minout``)."""
    return _kind(act) in MAX_KINDS


def group_width(act: Any) -> int:
    """Bits per unit group: 1 for plain bits (kink units, ``k <= 2``), ``k`` for one-hot groups."""
    act = normalize(act)
    if is_max_type(act) and act[1] >= 3:
        return int(act[1])
    return 1


def halved(act: Any) -> bool:
    """Whether the layer's Hamming distance is halved (one-hot groups, ``k >= 3``)."""
    return group_width(act) >= 3


def out_units(act: Any, units: int) -> int:
    """Width of the layer's output for ``units`` pre-activations."""
    act = normalize(act)
    if is_max_type(act):
        k = act[1]
        if units % k:
            raise ValueError(f"act: {act!r} groups {k} units, got a layer of {units} units (not a multiple of {k})")
        return units // k
    return units


def n_bits(act: Any, units: int) -> int:
    """Bits a layer of ``units`` pre-activations adds to the codes."""
    act = normalize(act)
    if act is None:
        return 0
    if is_max_type(act):
        k = act[1]
        m = out_units(act, units)
        return 0 if k == 1 else m * (1 if k == 2 else k)
    return len(kinks(act)) * units


def argmax_first(cands: np.ndarray, axis: int = -1) -> np.ndarray:
    """Index of the first maximal candidate along ``axis`` (int64)."""
    return np.argmax(np.asarray(cands), axis=axis).astype(np.int64)


def one_hot(index: np.ndarray, g: int) -> np.ndarray:
    """``(..., m)`` indices -> ``(..., m * g)`` bool, unit ``u``'s group at bits ``[u g, u g + g)``."""
    index = np.asarray(index)
    out = index[..., None] == np.arange(g)
    return out.reshape(index.shape[:-1] + (index.shape[-1] * g,))


def _groups(act: Any, pre: np.ndarray) -> np.ndarray:
    k = act[1]
    out_units(act, pre.shape[-1])  # checks divisibility
    return pre.reshape(pre.shape[:-1] + (pre.shape[-1] // k, k))


def evaluate(act: Any, pre: np.ndarray) -> np.ndarray:
    """Apply a spec to pre-activations ``(N, units)`` in float64: ``(N, out_units)``."""
    act = normalize(act)
    pre = np.asarray(pre, dtype=np.float64)
    kind = _kind(act)
    if kind is None:
        return pre
    if kind == "relu":
        return np.maximum(pre, 0.0)
    if kind == "leaky":
        return np.where(pre >= 0, pre, float(act[1]) * pre)
    if kind == "prelu":
        return np.where(pre >= 0, pre, np.asarray(act[1], dtype=np.float64) * pre)
    if kind == "hardtanh":
        return np.minimum(np.maximum(pre, float(act[1])), float(act[2]))
    if kind == "clamp_min":
        return np.maximum(pre, float(act[1]))
    if kind == "clamp_max":
        return np.minimum(pre, float(act[1]))
    if kind == "hardsigmoid":
        return np.minimum(np.maximum(pre / 6.0 + 0.5, 0.0), 1.0)
    if kind == "softshrink":
        lam = float(act[1])
        return np.where(pre > lam, pre - lam, np.where(pre < -lam, pre + lam, 0.0))
    if kind == "abs":
        return np.abs(pre)
    g = _groups(act, pre)
    return g.max(axis=-1) if kind == "maxout" else g.min(axis=-1)


def max_index(act: Any, pre: np.ndarray) -> np.ndarray:
    """Argmax (``maxout``) / argmin (``minout``) of each group, first on ties: ``(N, out_units)`` int64."""
    act = normalize(act)
    g = _groups(act, np.asarray(pre, dtype=np.float64))
    return argmax_first(g if act[0] == "maxout" else -g)


def bits(act: Any, pre: np.ndarray) -> np.ndarray:
    """The code bits of a layer from its pre-activations ``(N, units)``: bool ``(N, n_bits)``."""
    act = normalize(act)
    pre = np.asarray(pre, dtype=np.float64)
    if act is None:
        return np.zeros((pre.shape[0], 0), dtype=bool)
    if is_max_type(act):
        k = act[1]
        if k == 1:
            return np.zeros((pre.shape[0], 0), dtype=bool)
        idx = max_index(act, pre)
        return idx == 0 if k == 2 else one_hot(idx, k)
    cols = [pre >= t for t in kinks(act)]
    return np.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]


def affine_piece(act: Any, layer_bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of each unit's active piece, given the unit's bits.

    For a kink spec: ``layer_bits`` is ``(n_kinks * U, ...)`` threshold-major (as
    :func:`bits`, transposed to units first); returns ``(slope, intercept)`` of shape
    ``(U, ...)`` with ``output = slope * pre + intercept`` on that piece. Max-type specs
    select a candidate instead (see :func:`max_index`) and raise here.
    """
    act = normalize(act)
    kind = _kind(act)
    b = np.asarray(layer_bits, dtype=bool)
    if kind in MAX_KINDS or kind is None:
        raise ValueError(f"act: {act!r} has no per-unit affine piece (a max-type unit selects a candidate)")
    n = b.shape[0] // len(kinks(act))
    if kind == "relu":
        return b.astype(np.float64), np.zeros(b.shape)
    if kind in ("leaky", "prelu"):
        s = np.asarray(act[1], dtype=np.float64)
        s = np.broadcast_to(s.reshape((-1,) + (1,) * (b.ndim - 1)) if s.ndim else s, b.shape)
        return np.where(b, 1.0, s), np.zeros(b.shape)
    if kind == "abs":
        return np.where(b, 1.0, -1.0), np.zeros(b.shape)
    if kind == "clamp_min":
        return b.astype(np.float64), np.where(b, 0.0, float(act[1]))
    if kind == "clamp_max":
        return (~b).astype(np.float64), np.where(b, float(act[1]), 0.0)
    lo_b, hi_b = b[:n], b[n:]
    mid = (lo_b & ~hi_b).astype(np.float64)
    if kind == "hardtanh":
        return mid, np.where(hi_b, float(act[2]), np.where(lo_b, 0.0, float(act[1])))
    if kind == "hardsigmoid":
        return mid / 6.0, np.where(hi_b, 1.0, np.where(lo_b, 0.5, 0.0))
    lam = float(act[1])  # softshrink: lo bit pre >= -lam, hi bit pre >= lam
    return (~lo_b | hi_b).astype(np.float64), np.where(hi_b, -lam, np.where(lo_b, 0.0, lam))


# =====================================================================================
# The torch side: which functions and modules map to which operation.
# Imported lazily (torch is only needed when a torch network is read).
# =====================================================================================


class TorchOp:
    """How the tracer handles one torch function.

    Attributes
    ----------
    name : str
        The operation's name in error messages and layer names.
    kind : {"kink", "pair", "max"}
        ``kink``: one input and kinks (:attr:`kinks` gives them from the call's
        arguments, scalars or tensors broadcastable to the input); ``pair``: elementwise
        ``maximum``/``minimum`` of two tensors (one bit ``a >= b`` per output element);
        ``max``: a max/min over windows or reduced dimensions (:attr:`argmax` gives the
        output and each unit's candidate index and the group width).
    """

    __slots__ = ("name", "kind", "kinks", "argmax", "check")

    def __init__(self, name: str, kind: str, kinks=None, argmax=None, check=None):
        self.name, self.kind, self.kinks, self.argmax, self.check = name, kind, kinks, argmax, check

    def __repr__(self) -> str:
        return f"TorchOp({self.name!r}, {self.kind!r})"


def _arg(args: tuple, kwargs: dict, i: int, key: str, default: Any = None) -> Any:
    if key in kwargs:
        return kwargs[key]
    return args[i] if len(args) > i else default


@functools.lru_cache(maxsize=None)
def torch_ops() -> dict:
    """``{torch function: TorchOp}`` for every registered CPA function (functional, method and
    in-place spellings)."""
    import torch
    import torch.nn.functional as F

    ops: dict = {}

    def reg(fs, op):
        for f in fs:
            ops[f] = op

    zero = lambda a, k: [0.0]  # noqa: E731
    reg((F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_), TorchOp("relu", "kink", zero))
    reg((F.leaky_relu, F.leaky_relu_), TorchOp("leaky_relu", "kink", zero))
    reg((F.prelu, torch.prelu, torch.Tensor.prelu), TorchOp("prelu", "kink", zero))

    def rrelu_check(a, k):
        if _arg(a, k, 3, "training", False):
            return "rrelu with training=True draws random slopes (not a fixed CPA function); call it with training=False"
        return None

    reg((F.rrelu, F.rrelu_), TorchOp("rrelu", "kink", zero, check=rrelu_check))

    def hardtanh(a, k):
        return [float(_arg(a, k, 1, "min_val", -1.0)), float(_arg(a, k, 2, "max_val", 1.0))]

    reg((F.hardtanh, F.hardtanh_), TorchOp("hardtanh", "kink", hardtanh))
    reg((F.relu6,), TorchOp("relu6", "kink", lambda a, k: [0.0, 6.0]))
    reg((F.hardsigmoid,), TorchOp("hardsigmoid", "kink", lambda a, k: [-3.0, 3.0]))
    reg((F.softshrink,), TorchOp("softshrink", "kink",
                                  lambda a, k: [-float(_arg(a, k, 1, "lambd", 0.5)), float(_arg(a, k, 1, "lambd", 0.5))]))
    reg((torch.abs, torch.absolute, torch.Tensor.abs, torch.Tensor.absolute, torch.abs_, torch.Tensor.abs_,
         torch.Tensor.absolute_), TorchOp("abs", "kink", zero))

    def threshold_check(a, k):
        th, val = _arg(a, k, 1, "threshold"), _arg(a, k, 2, "value")
        if float(th) != float(val):
            return (f"threshold(x, {th}, {val}) jumps from {val} to {th} at its kink (not continuous); only "
                    "threshold(x, t, t) = max(x, t) is CPA")
        return None

    reg((F.threshold, F.threshold_, torch.threshold, torch.threshold_),
        TorchOp("threshold", "kink", lambda a, k: [float(_arg(a, k, 1, "threshold"))], check=threshold_check))

    def clamp(a, k):
        return [v for v in (_arg(a, k, 1, "min"), _arg(a, k, 2, "max")) if v is not None]

    reg((torch.clamp, torch.clip, torch.clamp_, torch.clip_, torch.Tensor.clamp, torch.Tensor.clip,
         torch.Tensor.clamp_, torch.Tensor.clip_), TorchOp("clamp", "kink", clamp))
    reg((torch.clamp_min, torch.clamp_min_, torch.Tensor.clamp_min, torch.Tensor.clamp_min_),
        TorchOp("clamp_min", "kink", lambda a, k: [_arg(a, k, 1, "min")]))
    reg((torch.clamp_max, torch.clamp_max_, torch.Tensor.clamp_max, torch.Tensor.clamp_max_),
        TorchOp("clamp_max", "kink", lambda a, k: [_arg(a, k, 1, "max")]))

    # Elementwise max/min of two tensors: one bit a >= b. (torch.max(a, b) with a tensor
    # second argument is the same; with an int it is a reduction, handled below.)
    reg((torch.maximum, torch.Tensor.maximum, torch.fmax, torch.Tensor.fmax), TorchOp("maximum", "pair"))
    reg((torch.minimum, torch.Tensor.minimum, torch.fmin, torch.Tensor.fmin), TorchOp("minimum", "pair"))

    reg((torch.amax, torch.Tensor.amax), TorchOp("amax", "max", argmax=_amax(False)))
    reg((torch.amin, torch.Tensor.amin), TorchOp("amin", "max", argmax=_amax(True)))
    reg((torch.max, torch.Tensor.max), TorchOp("max", "max", argmax=_max_dim(False)))
    reg((torch.min, torch.Tensor.min), TorchOp("min", "max", argmax=_max_dim(True)))
    for nd in (1, 2, 3):
        pool = getattr(F, f"max_pool{nd}d")
        reg((pool, getattr(F, f"max_pool{nd}d_with_indices"), getattr(torch, f"max_pool{nd}d")),
            TorchOp(f"max_pool{nd}d", "max", argmax=_max_pool(nd)))
        reg((getattr(F, f"adaptive_max_pool{nd}d"), getattr(F, f"adaptive_max_pool{nd}d_with_indices")),
            TorchOp(f"adaptive_max_pool{nd}d", "max", argmax=_adaptive_max_pool(nd)))
    return ops


@functools.lru_cache(maxsize=None)
def torch_modules() -> dict:
    """``{nn.Module class: operation name}`` for torch's CPA activation and max-type modules."""
    import torch.nn as nn

    return {
        nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu", nn.ReLU6: "relu6",
        nn.Hardtanh: "hardtanh", nn.Hardsigmoid: "hardsigmoid", nn.Softshrink: "softshrink",
        nn.RReLU: "rrelu", nn.Threshold: "threshold",
        nn.MaxPool1d: "max_pool1d", nn.MaxPool2d: "max_pool2d", nn.MaxPool3d: "max_pool3d",
        nn.AdaptiveMaxPool1d: "adaptive_max_pool1d", nn.AdaptiveMaxPool2d: "adaptive_max_pool2d",
        nn.AdaptiveMaxPool3d: "adaptive_max_pool3d",
    }


def module_spec(m: Any) -> tuple[Any, str] | None:
    """The network spec of an elementwise CPA module and its function name (as
    :func:`vqgeom.encode` names its layers), or None for any other module.

    ReLU -> ``"relu"``; LeakyReLU -> ``("leaky", s)``; PReLU -> ``("prelu", slopes)``
    (float64 numpy); ReLU6 / Hardtanh -> ``("hardtanh", lo, hi)``; Hardsigmoid,
    Softshrink; RReLU in eval mode -> ``("leaky", (lower + upper) / 2)``; Threshold(t, t)
    -> ``("clamp_min", t)``.
    """
    import torch.nn as nn

    # ReLU6 subclasses Hardtanh: test the specific classes first.
    if isinstance(m, nn.ReLU):
        return "relu", "relu"
    if isinstance(m, nn.ReLU6):
        return ("hardtanh", 0.0, 6.0), "hardtanh"  # nn.ReLU6 calls F.hardtanh
    if isinstance(m, nn.Hardtanh):
        return ("hardtanh", float(m.min_val), float(m.max_val)), "hardtanh"
    if isinstance(m, nn.LeakyReLU):
        return ("leaky", float(m.negative_slope)), "leaky_relu"
    if isinstance(m, nn.PReLU):
        return ("prelu", m.weight.detach().cpu().double().numpy().reshape(-1).copy()), "prelu"  # a copy, never a view
    if isinstance(m, nn.Hardsigmoid):
        return ("hardsigmoid",), "hardsigmoid"
    if isinstance(m, nn.Softshrink):
        return ("softshrink", float(m.lambd)), "softshrink"
    if isinstance(m, nn.RReLU) and not m.training:
        return ("leaky", (float(m.lower) + float(m.upper)) / 2.0), "rrelu"
    if isinstance(m, nn.Threshold) and float(m.threshold) == float(m.value):
        return ("clamp_min", float(m.threshold)), "threshold"
    from .models import Maxout

    if isinstance(m, Maxout):
        return ("maxout", int(m.k)), "amax"
    return None


# -- max-type argmax readers ---------------------------------------------------------------
# Each returns (values, index, g): the op's output values (as the model asked for them),
# the candidate index of every output element in its window's row-major order (int64,
# the output's shape), and the group width g (the largest window).


def _dims(dim: Any, ndim: int) -> list[int]:
    if isinstance(dim, int):
        dim = [dim]
    return sorted({d % ndim for d in dim})


def _reduce_index(x, dims: list[int], minimum: bool):
    """Index of the first max (min) over ``dims`` in their row-major order, and k."""
    import torch

    keep = [d for d in range(x.ndim) if d not in dims]
    k = 1
    for d in dims:
        k *= int(x.shape[d])
    flat = x.permute(keep + dims).reshape([x.shape[d] for d in keep] + [k])
    idx = (flat.argmin(-1) if minimum else flat.argmax(-1)) if k > 0 else torch.zeros(flat.shape[:-1], dtype=torch.long)
    return idx, k


def _amax(minimum: bool):
    def read(func, args, kwargs):
        x = args[0]
        dim = _arg(args, kwargs, 1, "dim", ())
        keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
        dims = _dims(dim, x.ndim) if dim not in ((), [], None) else list(range(x.ndim))
        values = func(*args, **kwargs)
        idx, k = _reduce_index(x, dims, minimum)
        if keepdim:
            for d in dims:
                idx = idx.unsqueeze(d)
        return values, idx.reshape(values.shape), k, dims
    return read


def _max_dim(minimum: bool):
    def read(func, args, kwargs):
        x = args[0]
        dim = _arg(args, kwargs, 1, "dim", None)
        if dim is None:  # a full reduction (over the batch too)
            values = func(*args, **kwargs)
            return values, None, int(x.numel()), list(range(x.ndim))
        values = func(*args, **kwargs)  # (values, indices): indices are the first max
        d = dim % x.ndim
        return values, values[1], int(x.shape[d]), [d]
    return read


def _tuple(v: Any, nd: int) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(int(a) for a in v) if len(v) == nd else tuple(int(v[0]) for _ in range(nd))
    return tuple(int(v) for _ in range(nd))


def _max_pool(nd: int):
    def read(func, args, kwargs):
        import torch
        import torch.nn.functional as F

        x = args[0]
        ks = _tuple(_arg(args, kwargs, 1, "kernel_size"), nd)
        stride = _arg(args, kwargs, 2, "stride", None)
        stride = ks if stride in (None, [], ()) else _tuple(stride, nd)
        pad = _tuple(_arg(args, kwargs, 3, "padding", 0), nd)
        dil = _tuple(_arg(args, kwargs, 4, "dilation", 1), nd)
        ceil = bool(_arg(args, kwargs, 5, "ceil_mode", False))
        want_idx = bool(_arg(args, kwargs, 6, "return_indices", False))
        pool = getattr(F, f"max_pool{nd}d")
        values, flat_idx = pool(x, ks, stride, pad, dil, ceil_mode=ceil, return_indices=True)
        # Flat index into the input plane -> kernel offset of the candidate, row-major.
        # int32 arithmetic (8x faster than int64 on the CPU); planes have < 2**31 elements.
        in_sp = x.shape[-nd:]
        out_sp = values.shape[-nd:]
        coords = _unravel(flat_idx, in_sp)
        off = None
        for d in range(nd):
            shape = [1] * (values.ndim - nd + d) + [out_sp[d]] + [1] * (nd - d - 1)
            start = (torch.arange(out_sp[d], device=x.device, dtype=torch.int32) * stride[d] - pad[d]).reshape(shape)
            k_d = coords[d] - start
            if dil[d] != 1:  # k_d >= 0: the candidate lies inside its window
                k_d = torch.div(k_d, dil[d], rounding_mode="trunc")
            off = k_d if off is None else off * ks[d] + k_d
        g = 1
        for v in ks:
            g *= v
        return ((values, flat_idx) if want_idx else values), off, g, None
    return read


def _unravel(flat_idx, in_sp) -> list:
    """Coordinates (int32) of flat indices into a plane of shape ``in_sp``."""
    import torch

    rest = flat_idx.to(torch.int32)
    coords = []
    for d in reversed(range(len(in_sp))):
        if d == 0:
            coords.append(rest)
            break
        w = int(in_sp[d])
        if w & (w - 1) == 0:  # a power of two: shifts (integer division is the slow op here)
            q = rest >> (w.bit_length() - 1)
        else:  # indices are >= 0, so truncation is the floor, and faster
            q = torch.div(rest, w, rounding_mode="trunc")
        coords.append(rest - q * w)
        rest = q
    return coords[::-1]


def adaptive_windows(n_in: int, n_out: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each adaptive pooling window (torch's rule)."""
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def _adaptive_max_pool(nd: int):
    def read(func, args, kwargs):
        import torch
        import torch.nn.functional as F

        x = args[0]
        want_idx = bool(_arg(args, kwargs, 2, "return_indices", False))
        out_size = _arg(args, kwargs, 1, "output_size")
        pool = getattr(F, f"adaptive_max_pool{nd}d")
        values, flat_idx = pool(x, out_size, return_indices=True)
        in_sp = x.shape[-nd:]
        out_sp = values.shape[-nd:]
        coords = _unravel(flat_idx, in_sp)
        off = torch.zeros_like(coords[0])
        g = 1
        for d in range(nd):
            wins = adaptive_windows(int(in_sp[d]), int(out_sp[d]))
            shape = [1] * (values.ndim - nd + d) + [out_sp[d]] + [1] * (nd - d - 1)
            start = torch.tensor([s for s, _ in wins], device=x.device, dtype=torch.int32).reshape(shape)
            width = torch.tensor([e - s for s, e in wins], device=x.device, dtype=torch.int32).reshape(shape)
            off = off * width + (coords[d] - start)
            g *= max(e - s for s, e in wins)
        return ((values, flat_idx) if want_idx else values), off, g, None
    return read
