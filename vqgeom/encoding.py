"""Activation codes of CPA networks: :func:`encode`.

A network's bits are read off during an ordinary forward pass. The allow-list tracer
(:mod:`vqgeom._trace`, a torch function mode) follows every tensor computed from X, lets
affine operations through, records the units of every registered CPA operation
(:mod:`vqgeom.activations`: ReLU-family kinks, clamps, abs, elementwise max/min,
max-pooling, maxout) as one code layer per call, and raises :class:`EncodingError`
naming the operation and its module for anything else. Nothing is skipped silently.

Sign convention: a bit is set iff the pre-activation is ``>= 0`` (for an activation
bending at ``t``: iff ``pre >= t``). Exact zeros therefore give set bits. A max over
``k >= 3`` candidates is a one-hot group at its argmax (first maximal candidate); see
:class:`vqgeom.Codes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from ._arrays import array_module, describe, to_numpy
from ._trace import EncodingError, Tracer
from ._validate import check_finite_nonempty, check_int, reject_codes
from .codes import Codes, pack_bits

__all__ = ["encode", "Hyperplanes", "EncodingError"]


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
        zero = np.flatnonzero(~n.astype(np.float64).any(axis=1))  # not the norm: it underflows for 1e-300
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


def check_module(model: nn.Module, allow_non_cpa: bool = False) -> None:
    """Raise :class:`EncodingError` for torch's non-CPA activation modules (sigmoid, GELU, ...)
    before any work, unless ``allow_non_cpa``. Everything else is judged by the tracer
    (:mod:`vqgeom._trace`), operation by operation."""
    if allow_non_cpa:
        return
    for name, mod in model.named_modules():
        if isinstance(mod, _NON_CPA_MODULES):
            where = name or type(model).__name__
            raise EncodingError(
                f"model: module {where!r} ({type(mod).__name__}) is not a continuous piecewise-affine activation, "
                f"so it has no activation hyperplanes; pass allow_non_cpa=True to record the signs of its "
                f"pre-activations instead"
            )


_NON_CPA_MODULES = (
    nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.ELU, nn.SELU, nn.CELU,
    nn.Hardswish, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink,
)


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


def _check_finite(X: Any, lazy: bool = False) -> None:
    """``check_finite_nonempty`` at the cost of one sum: NaN and inf propagate into it, and
    only a non-finite sum (or one that overflowed) pays for the full scan and its message.

    ``lazy``: only the shape checks now. The tracer's pre-activation check catches non-finite
    inputs as they reach the first unit, and the encoder then names X (see
    ``_encode_module``), so the happy path never reads X twice.
    """
    shape = tuple(X.shape)
    xp = array_module(X)
    if len(shape) == 0 or shape[0] == 0 or xp == "cupy" or (xp == "torch" and X.device.type == "meta"):
        check_finite_nonempty(X, "X")
        return
    if lazy:
        return
    if xp == "torch":
        if X.is_floating_point() and not bool(torch.isfinite(X.sum())):
            check_finite_nonempty(X, "X")
    elif X.dtype.kind == "f" and not np.isfinite(X.sum()):
        check_finite_nonempty(X, "X")


def _check_real(X: Any) -> None:
    """Complex inputs have no sign: raise (for torch as for numpy) instead of dropping the imaginary part."""
    dt = X.dtype
    if array_module(X) == "torch":
        if dt.is_complex or not (dt.is_floating_point or dt in _INT_DTYPES):
            raise TypeError(f"X: expected a real-valued tensor (float, int or bool), got dtype {dt}")
    elif np.dtype(dt).kind not in "biuf":
        raise TypeError(f"X: expected a real-valued array, got dtype {dt}")


_INT_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


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
    X : array (N, ...) numpy, torch, cupy or dask
        Inputs; numpy input is converted to the model's dtype and device, torch input
        must already be on the model's device. A dask array is encoded block by block on
        the workers (the model is one key of the graph, sent to each worker once) and gives
        dask-backed codes, lazy; errors in a block surface when it is computed.
    batch_size : int, optional
        Rows per forward pass (memory is bounded by it). Default: about 64 MB of input.
    allow_non_cpa : bool
        Record signs of the pre-activations of smooth activations (sigmoid, GELU, ...)
        instead of raising.
    backend : str
        ``"auto"``, ``"cpu"``, ``"numpy"`` (float64 oracle forward of plain MLPs, maxout
        included) or ``"triton"`` (fused GPU encoder for plain Linear + ReLU / LeakyReLU /
        PReLU MLPs; other networks take the tracer); see :mod:`vqgeom._backend`. Cupy
        ``X`` with a module on its device takes the Triton route on a zero-copy DLPack view
        (cupy words back, no copy) when Triton is importable and ``"cupy"`` is not named;
        otherwise it is copied to the model's device.
    progress : bool, optional
        Show a progress bar over batches (default: only when there are more than 8).

    Returns
    -------
    Codes
        ``N`` rows; one layer per activation call in execution order, a bit per
        activation hyperplane, set iff the pre-activation is ``>= 0``; max-type units
        over ``k >= 3`` candidates as one-hot groups (``Codes.groups``). Words are of
        ``X``'s array type and device; CUDA networks pack on the device.

    Raises
    ------
    EncodingError
        An operation on an X-dependent tensor that is neither affine nor a supported
        CPA operation (named, with the module it was called from).
    ValueError
        Non-finite X or pre-activations (naming the layer and the count), 1-D X, a
        shape the model does not take.
    TypeError
        Complex X, a model of another type.
    """
    from ._backend import caller_array, kernel_backend

    reject_codes(X, "X")
    if array_module(X) == "dask":  # one task per row block on the workers (vqgeom._dask)
        from . import _dask

        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size")
        return _dask.encode(model, X, batch_size=batch_size, allow_non_cpa=allow_non_cpa, backend=backend)
    if array_module(X) == "numpy":
        X = np.asarray(X)  # nested lists: everything below needs .shape and slicing
    _check_real(X)
    _check_finite(X, lazy=True)  # shapes now; values below, where the path needs them
    if len(X.shape) == 1:
        raise ValueError(
            f"X: expected a batch of inputs with a leading batch dimension (N, ...), got a 1-D array of shape "
            f"{tuple(X.shape)}; pass X[None] for one input or X[:, None] for N scalar inputs"
        )
    name = kernel_backend(backend, X)  # cupy X: Triton through DLPack unless cupy is named
    if name == "triton" and array_module(X) == "cupy":
        via = _cupy_on_model_device(model, X)
        if via is not None:  # zero-copy both ways: torch view in, cupy words out
            codes = encode(model, via, batch_size=batch_size, allow_non_cpa=allow_non_cpa, backend="triton",
                           progress=progress)
            return dataclasses.replace(codes, words=caller_array(codes.words, X, np.uint32))
        name = "cupy"  # a model elsewhere: the host path below (X copied to the model's device)
    fused_layers = _triton_mlp(name, model, X)
    if fused_layers is None and not (isinstance(model, nn.Module) and name == "cpu"):
        # The tracer path finds non-finite inputs at their first unit instead, and the
        # fused Triton encoder counts them inside its kernel: neither reads X twice.
        _check_finite(X)
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


def _cupy_on_model_device(model: Any, X: Any) -> Any:
    """A zero-copy torch view (DLPack) of cupy ``X`` when ``model`` is a module on the
    array's device (so the Triton route can read it in place), else None."""
    from ._backend import torch_view

    if isinstance(model, Hyperplanes) or not isinstance(model, nn.Module):
        return None
    view = torch_view(X)
    return view if _module_dtype_device(model)[1] == view.device else None


def _triton_mlp(name: str, model: Any, X: Any) -> Any:
    """The layers for the fused Triton encoder when it takes this call (torch input with
    rows, a plain MLP), else None."""
    if name != "triton" or isinstance(model, Hyperplanes) or array_module(X) != "torch":
        return None
    if X.ndim < 2 or X.shape[0] == 0 or not X.is_floating_point() or X.device.type == "meta":
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
    classes: dict[str, str] = {}
    labels: dict[int, str] = {}
    for mname, mod in net.named_modules():
        label = mname or type(net).__name__
        labels[id(mod)] = label
        classes[label] = type(mod).__name__
    pushed: list[bool] = []

    # One pair of global module hooks (two handles per encode, not two per module); they
    # track this network's modules only. Hooks must return None: a forward hook's return
    # value would replace the output.
    def pre_hook(m, a):
        label = labels.get(id(m))
        if label is not None:
            stack.append(label)
        pushed.append(label is not None)

    def post_hook(m, a, o):
        if pushed and pushed.pop() and stack:
            stack.pop()

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    handles = [register_module_forward_pre_hook(pre_hook), register_module_forward_hook(post_hook)]
    words_parts: list[Any] = []
    layout: tuple | None = None
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="encode", unit="row", disable=not progress, leave=False)
        with _EvalMode(net), torch.no_grad():
            for s, e in _batches(n, bs):
                xb = _as_input(X[s:e], dtype, device)
                rec = Tracer(xb, allow_non_cpa, stack, classes=classes)
                stack.clear()
                pushed.clear()
                try:
                    with rec:
                        net(xb)
                except Exception as err:
                    if rec.failure is not None:
                        raise rec.failure from None
                    if isinstance(err, EncodingError) or not isinstance(err, (RuntimeError, ValueError)):
                        raise
                    raise ValueError(
                        f"X: the model could not be evaluated on inputs of shape {tuple(xb.shape[1:])} per row "
                        f"({describe(X)}); {_expected_input(net)}. torch said: {err}"
                    ) from err
                if rec.failure is not None:  # raised inside the forward pass and swallowed there
                    raise rec.failure
                try:
                    rec.check_finite()
                except ValueError:
                    check_finite_nonempty(X[s:e], "X")  # the inputs themselves, if they are the cause
                    raise
                blayout = (tuple(rec.sizes), tuple(rec.groups))
                if layout is None:
                    layout, names = blayout, tuple(rec.names)
                elif blayout != layout:
                    raise ValueError(
                        f"model: the activation layers differ between batches ({layout[0]} then {blayout[0]}); "
                        "data-dependent control flow cannot be encoded"
                    )
                if rec.words and rec.on_device:
                    words_parts.append(torch.cat(rec.words, dim=1))
                elif rec.words:
                    words_parts.append(np.concatenate(rec.words, axis=1))
                bar.update(e - s)
        bar.close()
    finally:
        for h in handles:
            h.remove()
    if not layout or not layout[0]:
        raise EncodingError("model: no activation was called during the forward pass, so there are no codes")
    if isinstance(words_parts[0], torch.Tensor):
        words = torch.cat(words_parts, dim=0) if len(words_parts) > 1 else words_parts[0]
        xp = array_module(X)
        if not (xp == "torch" and X.device == words.device):
            words = _words_like(words.cpu().numpy().view(np.uint32), X)
    else:
        words = _words_like(np.concatenate(words_parts, axis=0) if len(words_parts) > 1 else words_parts[0], X)
    return Codes(words, layout[0], names, layout[1])


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

    from ._netspec import as_netspec, layer_groups

    net = _as_module(model)
    layers = reference_layers(net)
    bits, sizes = reference.mlp_bits(layers, to_numpy(X).reshape(int(X.shape[0]), -1))
    spec = as_netspec(net)
    return Codes(_words_like(pack_bits(bits, sizes), X), tuple(sizes), spec.names, layer_groups(spec))


def reference_layers(net: nn.Module) -> list[tuple]:
    """``[(A, b, act), ...]`` for :func:`vqgeom.kernels.reference.mlp_bits` from a plain MLP.

    Accepts an ``nn.Sequential`` (nesting allowed) of ``Linear``, ``Flatten``, ``Identity``,
    ``Dropout`` and the elementwise CPA modules of :func:`vqgeom.activations.module_spec`
    (ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh, ..., ``vqgeom.Maxout``).
    """
    from ._netspec import as_netspec

    try:
        return as_netspec(net).layers
    except (TypeError, ValueError) as err:
        raise EncodingError(f"model: the numpy reference reads plain MLPs only; {err}") from err
