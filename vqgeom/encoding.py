"""Activation codes of CPA networks: :func:`encode`.

A network's bits are read off during an ordinary forward pass. A torch function mode
sees every activation call (``nn.ReLU`` modules and ``F.relu`` / ``x.relu()`` /
``torch.clamp`` inside custom ``forward`` methods alike), records the pre-activation's
signs at each of its kinks, and lets the call proceed. Nothing is skipped silently:
a non-CPA activation (sigmoid, tanh, GELU, ...) or an unsupported piecewise operation
(max-pooling, ``torch.maximum``, ...) raises, naming the module it was called from.

Sign convention: a bit is set iff the pre-activation is ``>= 0`` (for an activation
bending at ``t``: iff ``pre >= t``). Exact zeros therefore give set bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._arrays import array_module, describe, to_numpy
from ._validate import check_finite_nonempty, check_int
from .codes import Codes, pack_bits

__all__ = ["encode", "Hyperplanes", "EncodingError"]


class EncodingError(TypeError):
    """A network contains an operation whose activation hyperplanes vqgeom cannot read."""


@dataclass(frozen=True, eq=False)
class Hyperplanes:
    """A plain hyperplane set ``{x : <normals[h], x> + offsets[h] = 0}`` with no network.

    Parameters
    ----------
    normals : array (H, D)
        Nonzero normal vectors (the paper excludes ``a_H = 0``).
    offsets : array (H,)
    """

    normals: Any
    offsets: Any

    def __post_init__(self) -> None:
        n = to_numpy(self.normals)
        o = to_numpy(self.offsets)
        if n.ndim != 2:
            raise ValueError(f"normals: expected a 2-D array (H, D), got shape {n.shape}")
        if o.shape != (n.shape[0],):
            raise ValueError(f"offsets: expected shape ({n.shape[0]},) to match normals (H, D)={n.shape}, got {o.shape}")
        if not (np.isfinite(n).all() and np.isfinite(o).all()):
            raise ValueError("normals/offsets: expected finite values, got NaN or inf")
        zero = np.flatnonzero(np.linalg.norm(n.astype(np.float64), axis=1) == 0)
        if zero.size:
            raise ValueError(
                f"normals: expected nonzero normal vectors (a zero normal is no hyperplane), "
                f"got zero rows at {zero.tolist()[:10]}"
            )

    @property
    def dim(self) -> int:
        return int(self.normals.shape[1])

    def __len__(self) -> int:
        return int(self.normals.shape[0])


# ---------------------------------------------------------------------------------------
# What the tracer knows.
# Each CPA function maps its call to the list of thresholds (kinks) of its input.

def _hardtanh_th(args: tuple, kwargs: dict) -> list[float]:
    lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
    hi = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
    return [float(lo), float(hi)]


def _clamp_th(args: tuple, kwargs: dict) -> list[float]:
    lo = kwargs.get("min", args[1] if len(args) > 1 else None)
    hi = kwargs.get("max", args[2] if len(args) > 2 else None)
    out = []
    for v in (lo, hi):
        if v is None:
            continue
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise EncodingError("clamp with tensor bounds is not supported: its kinks differ per unit")
            v = v.item()
        out.append(float(v))
    return out


def _clamp_min_th(args: tuple, kwargs: dict) -> list[float]:
    return _clamp_th((args[0], kwargs.get("min", args[1] if len(args) > 1 else None)), {})


def _clamp_max_th(args: tuple, kwargs: dict) -> list[float]:
    return _clamp_th((args[0], None, kwargs.get("max", args[1] if len(args) > 1 else None)), {})


def _zero(args: tuple, kwargs: dict) -> list[float]:
    return [0.0]


def _relu6_th(args: tuple, kwargs: dict) -> list[float]:
    return [0.0, 6.0]


def _hardsigmoid_th(args: tuple, kwargs: dict) -> list[float]:
    return [-3.0, 3.0]


_CPA: dict[Callable, Callable[[tuple, dict], list[float]]] = {}
for _f in (F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu_):
    _CPA[_f] = _zero
for _f in (F.leaky_relu, F.leaky_relu_, F.prelu, torch.prelu, torch.Tensor.prelu):
    _CPA[_f] = _zero
for _f in (F.hardtanh, F.hardtanh_):
    _CPA[_f] = _hardtanh_th
_CPA[F.relu6] = _relu6_th
_CPA[F.hardsigmoid] = _hardsigmoid_th
for _f in (torch.clamp, torch.clip, torch.Tensor.clamp, torch.Tensor.clip, torch.Tensor.clamp_, torch.Tensor.clip_, torch.clamp_):
    _CPA[_f] = _clamp_th
for _f in (torch.clamp_min, torch.Tensor.clamp_min, torch.Tensor.clamp_min_, torch.clamp_min_):
    _CPA[_f] = _clamp_min_th
for _f in (torch.clamp_max, torch.Tensor.clamp_max, torch.Tensor.clamp_max_, torch.clamp_max_):
    _CPA[_f] = _clamp_max_th

# Smooth activations: not CPA. Their pre-activation signs are recorded only on request.
_NON_CPA = {
    f: name
    for name, fs in {
        "sigmoid": (torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid_),
        "tanh": (torch.tanh, torch.Tensor.tanh, F.tanh, torch.tanh_, torch.Tensor.tanh_),
        "gelu": (F.gelu,),
        "silu": (F.silu,),
        "mish": (F.mish,),
        "softplus": (F.softplus,),
        "elu": (F.elu, F.elu_),
        "selu": (F.selu, torch.selu),
        "celu": (F.celu,),
        "hardswish": (F.hardswish,),
        "logsigmoid": (F.logsigmoid,),
        "softsign": (F.softsign,),
        "tanhshrink": (F.tanhshrink,),
    }.items()
    for f in fs
}

# Operations that are piecewise affine but have data-dependent or multi-input kinks this
# tracer cannot express as per-unit hyperplanes, or that are not affine at all.
_UNSUPPORTED = {
    f: name
    for name, fs in {
        "max-pooling": (F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d),
        "elementwise max/min": (torch.maximum, torch.minimum, torch.max, torch.min, torch.Tensor.max, torch.Tensor.min),
        "abs": (torch.abs, torch.Tensor.abs),
        "where": (torch.where,),
        "rrelu (random slopes)": (F.rrelu, F.rrelu_),
        "threshold (discontinuous)": (F.threshold, F.threshold_),
        "layer/group normalisation (not affine)": (F.layer_norm, F.group_norm),
        "softmax": (F.softmax, F.log_softmax, torch.softmax, torch.Tensor.softmax),
    }.items()
    for f in fs
}

# Modules that are affine (in eval mode) or pure containers / activations handled above.
_AFFINE_MODULES = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.Identity, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d,
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
)
_CPA_MODULES = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.Hardtanh, nn.Hardsigmoid)
_NON_CPA_MODULES = (
    nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.ELU, nn.SELU, nn.CELU,
    nn.Hardswish, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink,
)


def check_module(model: nn.Module, allow_non_cpa: bool = False) -> None:
    """Raise :class:`EncodingError` naming the first module vqgeom cannot read.

    torch's own modules must be affine, containers or CPA activations; user-defined
    modules are allowed, and the activations their ``forward`` calls are traced.
    """
    for name, mod in model.named_modules():
        where = name or type(model).__name__
        if isinstance(mod, _CPA_MODULES) or isinstance(mod, _AFFINE_MODULES):
            continue
        if isinstance(mod, _NON_CPA_MODULES):
            if allow_non_cpa:
                continue
            raise EncodingError(
                f"model: module {where!r} ({type(mod).__name__}) is not a continuous piecewise-affine activation, "
                f"so it has no activation hyperplanes; pass allow_non_cpa=True to record the signs of its "
                f"pre-activations instead"
            )
        if type(mod).__module__.startswith("torch.nn"):
            raise EncodingError(
                f"model: module {where!r} ({type(mod).__name__}) is not supported: expected affine layers "
                f"(Linear, Conv, BatchNorm in eval mode, AvgPool, Flatten, Dropout, Identity) and CPA activations "
                f"(ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh, Hardsigmoid)"
            )


class _Recorder(TorchFunctionMode):
    """Records the sign bits of every activation's input during one forward pass."""

    def __init__(self, allow_non_cpa: bool, stack: list[str], rows: int):
        super().__init__()
        self.allow_non_cpa = allow_non_cpa
        self.stack = stack
        self.rows = rows
        self.bits: list[torch.Tensor] = []
        self.names: list[str] = []

    def _where(self) -> str:
        return self.stack[-1] if self.stack else "<top level>"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CPA:
            ths = _CPA[func](args, kwargs)
            if ths:
                self._record(args[0], ths, getattr(func, "__name__", str(func)))
        elif func in _NON_CPA:
            if not self.allow_non_cpa:
                raise EncodingError(
                    f"model: {_NON_CPA[func]} called in {self._where()!r} is not a continuous piecewise-affine "
                    f"activation; pass allow_non_cpa=True to record the signs of its pre-activations instead"
                )
            self._record(args[0], [0.0], _NON_CPA[func])
        elif func in _UNSUPPORTED:
            raise EncodingError(
                f"model: {_UNSUPPORTED[func]} ({getattr(func, '__name__', func)}) called in {self._where()!r} is not "
                f"supported: its kinks are not hyperplanes of single units"
            )
        return func(*args, **kwargs)

    def _record(self, pre: torch.Tensor, ths: list[float], fname: str) -> None:
        if pre.ndim == 0 or pre.shape[0] != self.rows:
            # e.g. a parameter clamped inside forward: no bits per input (and torch.cat would fail).
            raise EncodingError(
                f"model: {fname} called in {self._where()!r} on a tensor of shape {tuple(pre.shape)}, expected "
                f"one with the batch's {self.rows} rows first; activations of parameters or constants have "
                "no hyperplanes per input"
            )
        flat = pre.detach().reshape(pre.shape[0], -1)
        # Threshold-major: every unit's bit at the first kink, then at the second.
        self.bits.append(torch.cat([flat >= t for t in ths], dim=1) if len(ths) > 1 else flat >= ths[0])
        self.names.append(f"{self._where()}:{fname}")


def _module_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in list(model.parameters()) + list(model.buffers()):
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


class _EvalMode:
    """Evaluate in eval mode (BatchNorm running statistics, no dropout) and restore the flags."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, t in self.flags:
            m.training = t


def _as_module(model: Any) -> nn.Module:
    """A list of ``(A, b)`` pairs becomes Linear + ReLU layers in the pairs' dtype."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, (list, tuple)) and len(model) > 0 and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in model
    ):
        layers: list[nn.Module] = []
        prev = None
        for i, (A, b) in enumerate(model):
            A_t = A if isinstance(A, torch.Tensor) else torch.as_tensor(np.asarray(A))
            if A_t.ndim != 2:
                raise ValueError(f"model[{i}][0]: expected a 2-D weight matrix (out, in), got shape {tuple(A_t.shape)}")
            if not A_t.is_floating_point():
                A_t = A_t.to(torch.get_default_dtype())
            if prev is not None and A_t.shape[1] != prev:
                raise ValueError(f"model[{i}][0]: expected {prev} input columns to follow layer {i - 1}, got shape {tuple(A_t.shape)}")
            lin = nn.Linear(A_t.shape[1], A_t.shape[0], bias=b is not None, dtype=A_t.dtype, device=A_t.device)
            with torch.no_grad():
                lin.weight.copy_(A_t)
                if b is not None:
                    b_t = b if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b))
                    if tuple(b_t.shape) != (A_t.shape[0],):
                        raise ValueError(f"model[{i}][1]: expected a bias of shape ({A_t.shape[0]},), got {tuple(b_t.shape)}")
                    lin.bias.copy_(b_t.to(A_t.dtype))
            layers += [lin, nn.ReLU()]
            prev = A_t.shape[0]
        return nn.Sequential(*layers)
    raise TypeError(
        "model: expected a torch nn.Module, a list of (A, b) layer pairs, or vqgeom.Hyperplanes(normals, offsets), "
        f"got {type(model).__name__}"
    )


def _as_input(X: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    xp = array_module(X)
    if xp == "torch":
        if X.device != device:
            raise ValueError(f"X: expected a tensor on the model's device {device}, got {describe(X)}")
        return X.to(dtype)
    if xp == "cupy":
        X = X.get()
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"X: expected a real-valued array, got dtype {arr.dtype}")
    return torch.as_tensor(arr).to(device=device, dtype=dtype)


def _batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, size):
        yield s, min(n, s + size)


def _default_batch(row_elems: int) -> int:
    # ~64 MB of input per batch: large enough to amortise Python overhead, small enough
    # that activations of a few wide layers stay within a few hundred MB.
    return int(max(1, min(65536, (64 << 20) // max(1, 8 * row_elems))))


def encode(
    model: Any,
    X: Any,
    *,
    batch_size: int | None = None,
    allow_non_cpa: bool = False,
    backend: str = "auto",
    progress: bool | None = None,
) -> Codes:
    """Activation codes of ``X`` under ``model``.

    Parameters
    ----------
    model : torch.nn.Module, list of (A, b) pairs, or Hyperplanes
        A network of affine layers and CPA activations (residual additions in custom
        modules are fine); ``[(A1, b1), ..., (AL, bL)]`` with ``A`` of shape (out, in),
        read as ``z -> relu(A z + b)`` for every layer; or a plain hyperplane set.
    X : array (N, ...) numpy, torch or cupy
        Inputs; numpy input is converted to the model's dtype and device, torch input
        must already be on the model's device.
    batch_size : int, optional
        Rows per forward pass (memory is bounded by it). Default: about 64 MB of input.
    allow_non_cpa : bool
        Record signs of the pre-activations of smooth activations (sigmoid, GELU, ...)
        instead of raising.
    backend : str
        ``"auto"``, ``"cpu"``, ``"numpy"`` or ``"triton"`` (fused GPU encoder for plain
        Linear + ReLU/LeakyReLU MLPs); see :mod:`vqgeom._backend`.
    progress : bool, optional
        Show a progress bar over batches (default: only when there are more than 8).

    Returns
    -------
    Codes
        ``N`` rows; one layer per activation call in execution order, a bit per
        activation hyperplane, set iff the pre-activation is ``>= 0``. Words are of
        ``X``'s array type and device.
    """
    from ._backend import resolve_backend

    if array_module(X) == "numpy":
        X = np.asarray(X)  # nested lists: everything below needs .shape and slicing
    name = resolve_backend(backend, X)
    fused_layers = _triton_mlp(name, model, X)
    if fused_layers is None:  # the fused Triton encoder checks finiteness inside its kernel
        check_finite_nonempty(X, "X")
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    if isinstance(model, Hyperplanes):
        return _encode_hyperplanes(model, X, batch_size)
    if name == "numpy":
        return _encode_reference(model, X)
    net = _as_module(model)
    if fused_layers is not None:
        from .kernels.triton import encode as tenc

        return Codes(tenc.encode_mlp(fused_layers, X, check_finite=True), *tenc.layer_info(fused_layers))
    return _encode_module(net, X, batch_size, allow_non_cpa, progress)


def _triton_mlp(name: str, model: Any, X: Any) -> Any:
    """The layers for the fused Triton encoder when it takes this call (torch input with
    rows, a plain MLP), else None."""
    if name != "triton" or isinstance(model, Hyperplanes) or array_module(X) != "torch":
        return None
    if X.ndim == 0 or X.shape[0] == 0 or not X.is_floating_point() or X.device.type == "meta":
        return None
    from .kernels.triton import encode as tenc

    return tenc.mlp_layers(_as_module(model))


def _encode_module(net: nn.Module, X: Any, batch_size: int | None, allow_non_cpa: bool, progress: bool | None) -> Codes:
    check_module(net, allow_non_cpa)
    dtype, device = _module_dtype_device(net)
    n = int(X.shape[0])
    row_elems = int(np.prod(X.shape[1:])) if len(X.shape) > 1 else 1
    bs = batch_size or _default_batch(row_elems)
    if progress is None:
        progress = n > 8 * bs
    stack: list[str] = []
    handles = []
    for mname, mod in net.named_modules():
        label = mname or type(net).__name__
        # Hooks must return None: a forward hook's return value would replace the output.
        handles.append(mod.register_forward_pre_hook(lambda m, a, label=label: stack.append(label) and None))
        handles.append(mod.register_forward_hook(lambda m, a, o: stack.pop() and None))
    words_parts: list[np.ndarray] = []
    sizes: list[int] | None = None
    names: list[str] = []
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="encode", unit="row", disable=not progress, leave=False)
        with _EvalMode(net), torch.no_grad():
            for s, e in _batches(n, bs):
                xb = _as_input(X[s:e], dtype, device)
                rec = _Recorder(allow_non_cpa, stack, e - s)
                stack.clear()
                try:
                    with rec:
                        net(xb)
                except EncodingError:
                    raise
                except (RuntimeError, ValueError) as err:
                    raise ValueError(
                        f"X: the model could not be evaluated on inputs of shape {tuple(xb.shape[1:])} per row "
                        f"({describe(X)}); {_expected_input(net)}. torch said: {err}"
                    ) from err
                bsizes = [int(b.shape[1]) for b in rec.bits]
                if sizes is None:
                    sizes, names = bsizes, rec.names
                elif bsizes != sizes:
                    raise ValueError(
                        f"model: the activation layers differ between batches ({sizes} then {bsizes}); "
                        "data-dependent control flow cannot be encoded"
                    )
                bits = torch.cat(rec.bits, dim=1) if rec.bits else torch.zeros((e - s, 0), dtype=torch.bool)
                words_parts.append(pack_bits(bits.cpu().numpy(), sizes))
                bar.update(e - s)
        bar.close()
    finally:
        for h in handles:
            h.remove()
    if not sizes:
        raise EncodingError("model: no activation was called during the forward pass, so there are no codes")
    return Codes(_words_like(np.concatenate(words_parts, axis=0), X), tuple(sizes), tuple(names))


def _expected_input(net: nn.Module) -> str:
    for m in net.modules():
        if isinstance(m, nn.Linear):
            return f"its first Linear layer expects {m.in_features} features"
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return f"its first convolution expects {m.in_channels} input channels"
    return "check the input shape the model expects"


def _words_like(words: np.ndarray, X: Any) -> Any:
    from .codes import _like

    return _like(words, X)


def _encode_hyperplanes(hp: Hyperplanes, X: Any, batch_size: int | None) -> Codes:
    normals = to_numpy(hp.normals).astype(np.float64)
    offsets = to_numpy(hp.offsets).astype(np.float64)
    Xn = to_numpy(X)
    if Xn.ndim != 2 or Xn.shape[1] != normals.shape[1]:
        raise ValueError(f"X: expected shape (N, {normals.shape[1]}) to match the hyperplanes' dimension, got {Xn.shape}")
    bs = batch_size or _default_batch(normals.shape[0] + Xn.shape[1])
    parts = [
        pack_bits(Xn[s:e].astype(np.float64) @ normals.T + offsets >= 0, [normals.shape[0]])
        for s, e in _batches(Xn.shape[0], bs)
    ]
    return Codes(_words_like(np.concatenate(parts), X), (normals.shape[0],), ("hyperplanes",))


def _encode_reference(model: Any, X: Any) -> Codes:
    """``backend="numpy"``: float64 explicit forward pass of a Linear/activation stack."""
    from .kernels import reference

    layers = reference_layers(_as_module(model))
    bits, sizes = reference.mlp_bits(layers, to_numpy(X).reshape(int(X.shape[0]), -1))
    return Codes(_words_like(pack_bits(bits, sizes), X), tuple(sizes))


def reference_layers(net: nn.Module) -> list[tuple]:
    """``[(A, b, act), ...]`` for :func:`vqgeom.kernels.reference.mlp_bits` from a plain MLP.

    Accepts an ``nn.Sequential`` (nesting allowed) of ``Linear``, ``Flatten``, ``Identity``,
    ``Dropout`` and ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh activations.
    """
    from ._netspec import as_netspec

    try:
        return as_netspec(net).layers
    except (TypeError, ValueError) as err:
        raise EncodingError(f"model: the numpy reference reads plain MLPs only; {err}") from err
