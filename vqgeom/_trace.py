"""The allow-list tracer behind :func:`vqgeom.encode` for torch networks.

A torch function mode watches one forward pass. It knows which tensors depend on X (X
itself and everything computed from it) and lets a torch function touch such a tensor
only if the function is

* **affine** in its X-dependent arguments (:data:`AFFINE`: linear maps and convolutions
  with constant weights, sums of X-dependent tensors, scaling by constants, average
  pooling, BatchNorm in eval mode, reshapes, indexing with constant indices, ...), or
* a registered **CPA operation** (:func:`vqgeom.activations.torch_ops`), whose units are
  recorded as one code layer per call, or
* shape/metadata access that reads no values.

Anything else raises :class:`EncodingError` naming the function and the module it was
called from: there is no deny-list, so an operation nobody thought of raises by default.
A product of two X-dependent tensors is not affine; neither is a division by one.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from . import activations as _act
from .codes import pack_bits, pack_layer_torch

__all__ = ["EncodingError", "Tracer", "AFFINE", "NON_CPA"]


class EncodingError(TypeError):
    """A network contains an operation whose activation hyperplanes vqgeom cannot read."""


# -- rules ----------------------------------------------------------------------------------
# A rule is called as rule(tracer, func, args, kwargs, deps) before the function runs and
# raises EncodingError when the call is not affine in X; it returns "dep" (outputs depend
# on X), "const" (outputs do not, e.g. zeros_like) or "meta" (non-tensor metadata).


def _linear(*const: tuple[int, str]):
    """Affine in any number of X-dependent arguments, except the listed ones (index
    tensors, masks, repeat counts), which must not depend on X."""

    def rule(tr, func, args, kwargs, deps):
        for pos, key in const:
            v = kwargs.get(key, args[pos] if len(args) > pos else None)
            if tr.any_dep(v):
                raise tr.error(func, f"its {key!r} argument depends on X (a data-dependent selection is not affine)")
        return "dep"

    return rule


def _one_dep(*slots: tuple[int, str]):
    """Bilinear in the listed arguments: affine iff at most one of them depends on X
    (with no slots listed: at most one of all tensor arguments)."""

    def rule(tr, func, args, kwargs, deps):
        if slots:
            vals = [kwargs.get(key, args[pos] if len(args) > pos else None) for pos, key in slots]
            n = sum(tr.any_dep(v) for v in vals)
        else:
            n = len(deps)
        if n > 1:
            raise tr.error(func, "a product of two X-dependent tensors is not affine")
        return "dep"

    return rule


def _const_only(*slots: tuple[int, str], why: str):
    """The listed arguments must not depend on X (e.g. a divisor, a convolution's weight)."""

    def rule(tr, func, args, kwargs, deps):
        for pos, key in slots:
            v = kwargs.get(key, args[pos] if len(args) > pos else None)
            if tr.any_dep(v):
                raise tr.error(func, why)
        return "dep"

    return rule


def _flag_false(pos: int, key: str, default: bool, why: str, p_pos: int | None = None):
    """Affine only when a flag (``training``) is off, or the probability ``p`` is 0."""

    def rule(tr, func, args, kwargs, deps):
        on = kwargs.get(key, args[pos] if len(args) > pos else default)
        if p_pos is not None:
            p = kwargs.get("p", args[p_pos] if len(args) > p_pos else 0.5)
            if float(p) == 0.0:
                return "dep"
        if on:
            raise tr.error(func, why)
        return "dep"

    return rule


def _reduce(dim_pos: int):
    """A sum/mean-type reduction: affine, but not over the batch (rows would mix)."""

    def rule(tr, func, args, kwargs, deps):
        x = args[0]
        dim = kwargs.get("dim", args[dim_pos] if len(args) > dim_pos and not isinstance(args[dim_pos], torch.dtype) else None)
        if isinstance(x, torch.Tensor) and tr.is_dep(x):
            if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
                raise tr.error(func, "it reduces over every dimension, the batch included, so inputs would mix")
            dims = [dim] if isinstance(dim, int) else list(dim)
            if x.ndim and any(d % x.ndim == 0 for d in dims if isinstance(d, int)) and x.shape[0] == tr.rows:
                raise tr.error(func, "it reduces over the batch dimension, so inputs would mix")
        return "dep"

    return rule


def _dep(tr, func, args, kwargs, deps):
    return "dep"


def _const(tr, func, args, kwargs, deps):
    return "const"


def _meta(tr, func, args, kwargs, deps):
    return "meta"


def _names(owner: Any, names: str) -> list:
    return [getattr(owner, n) for n in names.split() if hasattr(owner, n)]


def _build_affine() -> dict[Callable, Callable]:
    T = torch.Tensor
    rules: dict[Callable, Callable] = {}

    def put(fs, rule):
        for f in fs:
            rules[f] = rule

    # Shape, layout and copies: affine in every X-dependent argument.
    shape_ops = (
        "reshape view view_as reshape_as flatten unflatten squeeze squeeze_ unsqueeze unsqueeze_ permute "
        "transpose transpose_ t t_ swapaxes swapdims movedim moveaxis expand expand_as repeat tile contiguous "
        "clone detach detach_ narrow select split split_with_sizes tensor_split chunk unbind roll flip fliplr "
        "flipud rot90 diagonal diag_embed tril triu cpu cuda float double half bfloat16 to type_as positive "
        "atleast_1d atleast_2d atleast_3d broadcast_to ravel align_as unfold as_strided requires_grad_ narrow_copy "
        "squeeze_copy unsqueeze_copy permute_copy view_copy"
    )
    put(_names(T, shape_ops) + _names(torch, shape_ops), _linear())
    put(_names(torch, "cat concat concatenate stack hstack vstack dstack column_stack broadcast_tensors "
                       "block_diag pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle "
                       "constant_pad_nd"), _linear())
    put(_names(F, "pad pixel_shuffle pixel_unshuffle unfold fold interpolate upsample upsample_nearest "
                  "upsample_bilinear avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d "
                  "adaptive_avg_pool3d channel_shuffle"), _linear())
    put(_names(torch, "avg_pool1d adaptive_avg_pool1d"), _linear())
    # Sums and differences.
    add_ops = "add add_ sub sub_ subtract subtract_ neg neg_ negative negative_ __add__ __radd__ __iadd__ " \
              "__sub__ __rsub__ __isub__ __neg__ __pos__ rsub"
    put(_names(T, add_ops) + _names(torch, add_ops), _linear())
    put(_names(T, "sum mean nansum cumsum cumsum_") + _names(torch, "sum mean nansum cumsum"), _reduce(1))
    put(_names(T, "diff") + _names(torch, "diff trace"), _linear())
    # Indexing and selection with constant indices / masks.
    put([T.__getitem__], _linear((1, "indices")))
    put([T.__setitem__], _linear((1, "indices")))
    put(_names(T, "index_select gather take_along_dim") + _names(torch, "index_select gather take_along_dim"),
        _linear((2, "index")))
    put(_names(T, "take") + _names(torch, "take"), _linear((1, "index")))
    put(_names(T, "masked_fill masked_fill_ masked_select") + _names(torch, "masked_fill masked_select"),
        _linear((1, "mask")))
    put(_names(T, "scatter scatter_ scatter_add scatter_add_ index_add index_add_ index_copy index_copy_ "
                  "index_fill index_fill_")
        + _names(torch, "scatter scatter_add index_add index_copy index_fill"), _linear((2, "index")))
    put(_names(T, "repeat_interleave") + _names(torch, "repeat_interleave"), _linear((1, "repeats")))
    put(_names(torch, "where") + _names(T, "where"), _where_rule)
    put(_names(T, "copy_ zero_ fill_"), _linear())
    # Products: affine iff at most one factor depends on X.
    prod = "mul mul_ multiply multiply_ __mul__ __rmul__ __imul__ matmul __matmul__ __rmatmul__ mm bmm mv dot " \
           "inner outer ger kron einsum tensordot vdot"
    put(_names(T, prod) + _names(torch, prod), _one_dep())
    put(_names(T, "addmm addmm_ baddbmm baddbmm_ addmv addmv_ addbmm addbmm_")
        + _names(torch, "addmm baddbmm addmv addbmm"), _one_dep((1, "mat1"), (2, "mat2")))
    put(_names(T, "addcmul addcmul_") + _names(torch, "addcmul"), _one_dep((1, "tensor1"), (2, "tensor2")))
    put(_names(T, "lerp lerp_") + _names(torch, "lerp"), _const_only((2, "weight"), why="its weight depends on X"))
    put([F.bilinear], _one_dep((0, "input1"), (1, "input2")))
    why_w = "its weight depends on X (a product of two X-dependent tensors is not affine)"
    put(_names(F, "linear conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d")
        + _names(torch, "conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d"),
        _const_only((1, "weight"), why=why_w))
    # Divisions: affine only by a constant.
    why_div = "it divides by an X-dependent tensor (not affine)"
    put(_names(T, "div div_ divide divide_ true_divide true_divide_ __truediv__ __itruediv__ __div__")
        + _names(torch, "div divide true_divide"), _const_only((1, "other"), why=why_div))
    put(_names(T, "__rtruediv__ __rdiv__"), _const_only((0, "self"), why=why_div))
    # Eval-mode layers.
    put([F.batch_norm], _flag_false(5, "training", False, "training=True normalises by the batch's statistics "
                                                            "(inputs would mix); run it in eval mode"))
    put(_names(F, "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout"),
        _flag_false(2, "training", True, "dropout with training=True is random; pass training=self.training",
                    p_pos=1))
    put(_names(torch, "dropout alpha_dropout feature_dropout feature_alpha_dropout"),
        _flag_false(2, "train", True, "dropout with train=True is random", p_pos=1))
    put(_names(T, "real") + _names(torch, "real"), _linear())
    # Values that do not depend on X's values.
    put(_names(torch, "zeros_like ones_like empty_like full_like")
        + _names(T, "new_zeros new_ones new_empty new_full"), _const)
    meta = "size dim ndimension numel nelement stride storage_offset is_contiguous is_floating_point is_complex " \
           "element_size get_device data_ptr __len__ __format__ __repr__ __str__ has_names is_signed " \
           "is_set_to untyped_storage"
    put(_names(T, meta) + _names(torch, "numel is_floating_point is_complex is_tensor"), _meta)
    return rules


def _where_rule(tr, func, args, kwargs, deps):
    if len(args) < 3 and "input" not in kwargs and func is torch.where:
        raise tr.error(func, "the one-argument form returns X-dependent indices")
    cond = kwargs.get("condition", args[0] if func is torch.where else (args[1] if len(args) > 1 else None))
    if tr.any_dep(cond):
        raise tr.error(func, "its condition depends on X (a hand-written kink vqgeom cannot read; use torch.relu, "
                             "torch.maximum, torch.clamp, ...)")
    return "dep"


# Property getters (x.shape, x.T, ...) arrive as the descriptor's __get__.
_PROPERTY_META = {"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad", "layout", "is_leaf", "grad_fn",
                  "grad", "names", "is_sparse", "is_quantized", "is_meta", "itemsize", "nbytes", "is_mps",
                  "is_nested", "is_cpu", "output_nr", "_version", "_base"}
_PROPERTY_LINEAR = {"T", "mT", "H", "mH", "data", "real"}

#: ``{torch function: rule}`` of the affine operations (the allow-list; see the module docstring).
AFFINE: dict[Callable, Callable] = _build_affine()

# Smooth activations: not CPA. Their pre-activation signs are recorded only on request.
NON_CPA: dict[Callable, str] = {
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


def _tensors(v: Any) -> list:
    """The tensors in an argument structure (tuples, lists, dicts, namedtuples), in order."""
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (tuple, list)):
        out = []
        for a in v:
            if isinstance(a, torch.Tensor):
                out.append(a)
            elif isinstance(a, (tuple, list, dict)):
                out += _tensors(a)
        return out
    if isinstance(v, dict):
        return _tensors(list(v.values()))
    return []


def _fname(func: Any) -> str:
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__" and hasattr(func, "__self__"):
        return f"Tensor.{getattr(func.__self__, '__name__', '?')}"
    return name


def _one_hot_words(idx: torch.Tensor, g: int) -> torch.Tensor:
    """Packed words (int32, the Codes layout) of one-hot groups of ``g`` bits (``g`` divides 32)
    straight from the candidate indices ``(N, M)``: unit ``u`` sets bit ``u g + idx`` of the
    layer, so word ``w`` holds units ``[w 32/g, (w + 1) 32/g)``. Works on M indices instead
    of M g bits."""
    n, m = idx.shape
    per = 32 // g
    nw = (m * g + 31) // 32
    # int32 throughout: distinct bits never carry, so the wrapping int32 sum is their OR
    # (bit 31 included, as the sign bit).
    bit = torch.bitwise_left_shift(torch.ones((), dtype=torch.int32, device=idx.device), idx.to(torch.int32))
    if nw * per != m:  # units past the end set nothing
        bit = torch.cat([bit, torch.zeros((n, nw * per - m), dtype=torch.int32, device=idx.device)], dim=1)
    lanes = torch.bitwise_left_shift(torch.ones((), dtype=torch.int32, device=idx.device),
                                     g * torch.arange(per, device=idx.device, dtype=torch.int32))
    return (bit.reshape(n, nw, per) * lanes).sum(-1, dtype=torch.int32)


class Tracer(TorchFunctionMode):
    """Records the code layers of one batch's forward pass (see the module docstring).

    After the pass: :attr:`words` (per layer: packed words, numpy on the host for a CPU
    network, int32 torch on the network's device otherwise), :attr:`sizes`,
    :attr:`groups`, :attr:`names`; :meth:`check_finite` raises on non-finite values.
    """

    #: Take the device route (torch packing, counts kept as tensors, one sync per batch)
    #: for CPU tensors too: the tests run that route here, where no GPU is.
    device_route = False

    def __init__(self, x: torch.Tensor, allow_non_cpa: bool, stack: list[str], affine: dict | None = None,
                 classes: dict | None = None):
        super().__init__()
        self.classes = classes or {}
        self.allow_non_cpa = allow_non_cpa
        self.stack = stack
        self.rows = int(x.shape[0])
        self.on_device = x.device.type != "cpu" or self.device_route
        # X-dependent tensors carry this tracer's token as an attribute (a dict lookup per
        # argument); tensors that take no attributes go to a weak-id dictionary instead.
        self.token = object()
        self.dep = WeakIdKeyDictionary()
        self._mark(x)
        self.affine = AFFINE if affine is None else affine
        self.ops = _act.torch_ops()
        self.words: list[Any] = []
        self.sizes: list[int] = []
        self.groups: list[int] = []
        self.names: list[str] = []
        self.nonfinite: list[tuple[str, Any]] = []
        self.failure: EncodingError | None = None

    # -- dependency bookkeeping -------------------------------------------------------------
    def is_dep(self, t: Any) -> bool:
        if not isinstance(t, torch.Tensor):
            return False
        return getattr(t, "_vqgeom_dep", None) is self.token or (len(self.dep) > 0 and t in self.dep)

    def any_dep(self, v: Any) -> bool:
        if isinstance(v, torch.Tensor):
            return self.is_dep(v)
        if isinstance(v, (list, tuple, dict)):
            return any(self.is_dep(t) for t in _tensors(v))
        return False

    def _mark1(self, t: torch.Tensor) -> None:
        try:
            t._vqgeom_dep = self.token
        except (AttributeError, TypeError):
            self.dep[t] = True

    def _mark(self, out: Any) -> None:
        for t in _tensors(out):
            self._mark1(t)

    def where(self) -> str:
        """The module path the current call comes from (as in layer names)."""
        return self.stack[-1] if self.stack else "<top level>"

    def _where_cls(self) -> str:
        w = self.where()
        return f"{w!r} ({self.classes[w]})" if w in self.classes else repr(w)

    def error(self, func: Any, why: str) -> EncodingError:
        return self.fail(EncodingError(f"model: {_fname(func)} called in {self._where_cls()} on an X-dependent tensor: {why}"))

    def fail(self, err: EncodingError) -> EncodingError:
        # torch turns a TypeError raised inside an operator (x * y, x > 0) into NotImplemented
        # and Python then reports "unsupported operand": the first failure is kept here and
        # re-raised by the encoder whatever the forward pass made of it.
        if self.failure is None:
            self.failure = err
        return err

    # -- the mode ---------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        deps = [t for t in _tensors(args) if self.is_dep(t)]
        if kwargs:
            deps += [t for t in _tensors(kwargs) if self.is_dep(t)]
        if not deps:
            return func(*args, **kwargs)
        op = self.ops.get(func)
        if op is not None:
            out = self._cpa(op, func, args, kwargs)
            kind = "dep"
        elif func in NON_CPA:
            if not self.allow_non_cpa:
                raise self.fail(EncodingError(
                    f"model: {NON_CPA[func]} called in {self._where_cls()} is not a continuous piecewise-affine "
                    f"activation; pass allow_non_cpa=True to record the signs of its pre-activations instead"
                ))
            self._kink(args[0], [0.0], NON_CPA[func])
            out = func(*args, **kwargs)
            kind = "dep"
        else:
            rule = self.affine.get(func)
            if rule is None and _fname(func).startswith("Tensor."):
                prop = _fname(func)[7:]
                rule = _meta if prop in _PROPERTY_META else (_linear() if prop in _PROPERTY_LINEAR else None)
            if rule is None:
                raise self.error(
                    func, "it is neither affine nor a supported CPA operation (see the README's list of supported "
                          "operations)"
                )
            kind = rule(self, func, args, kwargs, deps)
            if kind == "dep" and any(not (t.is_floating_point()) for t in deps):
                bad = next(t for t in deps if not t.is_floating_point())
                raise self.error(func, f"the X-dependent argument has dtype {bad.dtype} (argmax indices, comparisons "
                                       "or integer casts of X are not affine)")
            out = func(*args, **kwargs)
            if kind == "dep":
                for t in _tensors(out):
                    if not (t.is_floating_point() or t.is_complex()):
                        raise self.error(func, f"it turns X into dtype {t.dtype} (not affine)")
        if kind == "dep":
            self._mark(out)
            name = _fname(func)
            inplace = (name.endswith("_") and not name.endswith("__")) or name in (
                "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__") or "out" in kwargs
            if inplace:
                target = kwargs.get("out", args[0] if args else None)
                self._mark(target)
                base = getattr(target, "_base", None) if isinstance(target, torch.Tensor) else None
                if base is not None:
                    self._mark1(base)
        return out

    # -- CPA operations ---------------------------------------------------------------------
    def _cpa(self, op: _act.TorchOp, func, args, kwargs):
        if op.check is not None:
            why = op.check(args, kwargs)
            if why:
                raise self.error(func, why)
        if op.kind == "kink":
            # Kinks may be tensors, X-dependent ones included: clamp(x, min=t) is max(x, t),
            # one bit x >= t per element either way.
            ks = op.kinks(args, kwargs)
            if op.name == "prelu" and self.is_dep(kwargs.get("weight", args[1] if len(args) > 1 else None)):
                raise self.error(func, "its slopes depend on X (a product of two X-dependent tensors is not affine)")
            self._kink(args[0], ks, op.name)
            return func(*args, **kwargs)
        if op.kind == "pair" or (op.name in ("max", "min") and len(args) > 1 and isinstance(args[1], torch.Tensor)):
            a = args[0]
            b = kwargs.get("other", args[1] if len(args) > 1 else None)
            self._pair(a, b, op.name)
            return func(*args, **kwargs)
        values, idx, g, dims = op.argmax(func, args, kwargs)
        x = args[0]
        if idx is None or (dims is not None and 0 in dims):
            raise self.error(func, "it reduces over the batch dimension, so inputs would mix (give dim=...)")
        self._max(x, idx, g, op.name)
        return values

    def _rows(self, t: torch.Tensor, fname: str) -> None:
        if t.ndim == 0 or t.shape[0] != self.rows:
            raise self.fail(EncodingError(
                f"model: {fname} called in {self._where_cls()} on a tensor of shape {tuple(t.shape)}, expected "
                f"one with the batch's {self.rows} rows first; activations of tensors without the batch "
                "dimension have no hyperplanes per input"
            ))

    def _count_nonfinite(self, t: torch.Tensor, name: str) -> None:
        if not t.is_floating_point():
            return
        if self.on_device:
            self.nonfinite.append((name, (~torch.isfinite(t)).sum()))
            return
        # The host path: one vectorised sum in the tensor's dtype (NaN and inf propagate);
        # the exact count only when it is not finite (a sum can also overflow on finite
        # values: the count then says 0 and nothing is raised).
        if not bool(torch.isfinite(t.sum())):
            n = int((~torch.isfinite(t)).sum())
            if n:
                self.nonfinite.append((name, n))

    def _kink(self, pre: Any, ks: list, fname: str) -> None:
        name = f"{self.where()}:{fname}"
        if not ks:
            return
        if not isinstance(pre, torch.Tensor):
            pre = torch.as_tensor(pre)
        kt = [k for k in ks if isinstance(k, torch.Tensor)]
        if kt:
            shape = torch.broadcast_shapes(pre.shape, *[k.shape for k in kt])
            pre = pre.expand(shape)
        self._rows(pre, fname)
        flat = pre.detach().reshape(self.rows, -1)
        self._count_nonfinite(flat, name)
        cols = []
        for k in ks:
            if isinstance(k, torch.Tensor):
                k = k.detach().expand(pre.shape).reshape(self.rows, -1)
                self._count_nonfinite(k, name)
            cols.append(flat >= k)
        # Threshold-major: every unit's bit at the first kink, then at the second.
        self._add(torch.cat(cols, dim=1) if len(cols) > 1 else cols[0], 1, name)

    def _pair(self, a: Any, b: Any, fname: str) -> None:
        name = f"{self.where()}:{fname}"
        a, b = torch.broadcast_tensors(torch.as_tensor(a), torch.as_tensor(b))
        self._rows(a, fname)
        fa, fb = a.detach().reshape(self.rows, -1), b.detach().reshape(self.rows, -1)
        self._count_nonfinite(fa, name)
        self._count_nonfinite(fb, name)
        self._add(fa >= fb, 1, name)

    def _max(self, x: torch.Tensor, idx: torch.Tensor, g: int, fname: str) -> None:
        name = f"{self.where()}:{fname}"
        self._rows(x, fname)
        self._count_nonfinite(x.detach(), name)
        if g <= 1:
            return  # a max over one candidate is the identity: no kink
        idx = idx.reshape(self.rows, -1)
        if g == 2:
            self._add(idx == 0, 1, name)
        elif 32 % g == 0:
            self._add_words(_one_hot_words(idx, g), idx.shape[1] * g, g, name)
        else:
            hot = idx[:, :, None] == torch.arange(g, device=idx.device)
            self._add(hot.reshape(self.rows, -1), g, name)

    def _add(self, bits: torch.Tensor, g: int, name: str) -> None:
        b = int(bits.shape[1])
        if self.on_device:
            self.words.append(pack_layer_torch(bits))
        else:
            self.words.append(pack_bits(bits.numpy(), [b]))
        self.sizes.append(b)
        self.groups.append(g if g >= 3 else 1)
        self.names.append(name)

    def _add_words(self, words: torch.Tensor, b: int, g: int, name: str) -> None:
        self.words.append(words if self.on_device else words.numpy().view(np.uint32))
        self.sizes.append(b)
        self.groups.append(g)
        self.names.append(name)

    def check_finite(self) -> None:
        """Raise ValueError naming the first layer with NaN or infinite inputs (one sync)."""
        if not self.nonfinite:
            return
        counts = [int(c) for c in (torch.stack([c for _, c in self.nonfinite]).cpu().tolist()
                                   if self.on_device else [c for _, c in self.nonfinite])]
        for (name, _), c in zip(self.nonfinite, counts):
            if c:
                raise ValueError(
                    f"model: {c} NaN or infinite pre-activation value(s) at layer {name!r}: their bits would be "
                    "meaningless (check the weights, and inputs that overflow the model's dtype)"
                )
