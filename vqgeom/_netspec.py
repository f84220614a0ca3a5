"""Networks and hyperplane sets as one float64 layer list (the reference oracle's form).

Used by the exact partitions (:mod:`vqgeom.geometry`) and by ``encode(..., backend="numpy")``.

The common form is the reference oracle's: ``[(A, b, act), ...]`` with ``A`` of shape
(out, in) in float64 and ``act`` a spec of the activation registry
(:mod:`vqgeom.activations`: ``"relu"``, ``("leaky", s)``, ``("prelu", slopes)``,
``("hardtanh", lo, hi)``, ..., ``("maxout", k)``) or ``None`` (an output layer, no bits).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import activations as _act

__all__ = ["NetSpec", "as_netspec"]


@dataclass(frozen=True)
class NetSpec:
    """A CPA network as float64 layers.

    Attributes
    ----------
    layers : list of (A, b, act)
        ``A`` float64 (out, in), ``b`` float64 (out,), ``act`` an activation spec.
    names : tuple of str
        One name per *coding* layer (those with an activation).
    in_dim : int
        Input dimension ``D``.
    """

    layers: list
    names: tuple
    in_dim: int

    @property
    def coding_layers(self) -> list:
        """The layers that add bits (``act is not None``)."""
        return [lyr for lyr in self.layers if lyr[2] is not None]


def layer_sizes(spec: NetSpec) -> tuple[int, ...]:
    """Bits per coding layer (kink layers: units times kinks, threshold-major; max-type
    layers: see :func:`vqgeom.activations.n_bits`)."""
    return tuple(_act.n_bits(act, A.shape[0]) for A, _, act in spec.coding_layers)


def layer_groups(spec: NetSpec) -> tuple[int, ...]:
    """``Codes.groups`` of the coding layers: 1 for plain bits, ``k >= 3`` for one-hot maxout groups."""
    return tuple(_act.group_width(act) for _, _, act in spec.coding_layers)


def _check_matrix(A: Any, b: Any, where: str, in_dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D weight matrix (out, in), got shape {A.shape}")
    if in_dim is not None and A.shape[1] != in_dim:
        raise ValueError(f"{where}: expected weights with {in_dim} input columns, got shape {A.shape}")
    b = np.zeros(A.shape[0]) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if b.shape != (A.shape[0],):
        raise ValueError(f"{where}: expected a bias of shape ({A.shape[0]},), got {b.shape}")
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError(f"{where}: weights and biases must be finite")
    return A, b


def _from_torch(model: Any) -> NetSpec:
    import torch.nn as nn

    if not isinstance(model, (nn.Sequential, nn.Linear)):
        # Only a Sequential states its forward order; anything else could reorder or branch.
        raise TypeError(f"net: expected an nn.Sequential of Linear and CPA activations, got {type(model).__name__}")
    named = _flatten(model, "")
    layers: list = []
    names: list[str] = []
    pending: tuple[np.ndarray, np.ndarray] | None = None  # an affine map awaiting its activation
    in_dim: int | None = None
    for i, (path, m) in enumerate(named):
        if isinstance(m, nn.Linear):
            W = _float64_copy(m.weight)
            b = None if m.bias is None else _float64_copy(m.bias)
            W, b = _check_matrix(W, b, f"net[{i}] (Linear)", None)
            if in_dim is None:
                in_dim = W.shape[1]
            if pending is not None:  # two affine maps in a row compose into one
                W0, b0 = pending
                if W.shape[1] != W0.shape[0]:
                    raise ValueError(f"net[{i}]: expected in_features={W0.shape[0]}, got {W.shape[1]}")
                W, b = W @ W0, W @ b0 + b
            pending = (W, b)
        elif isinstance(m, (nn.Identity, nn.Flatten, nn.Dropout)):
            continue
        else:
            act, fname = _torch_act(m, i)
            if pending is None:
                raise ValueError(f"net[{i}]: expected an activation after a Linear layer, got {type(m).__name__} first")
            W, b = pending
            if isinstance(act, tuple) and act[0] == "prelu" and len(act[1]) not in (1, W.shape[0]):
                raise ValueError(f"net[{i}] (PReLU): expected 1 or {W.shape[0]} slopes, got {len(act[1])}")
            if isinstance(act, tuple) and act[0] == "prelu" and len(act[1]) == 1:
                act = ("leaky", float(act[1][0]))
            if _act.is_max_type(act) and W.shape[0] % act[1]:
                raise ValueError(f"net[{i}] ({type(m).__name__}): expected a width divisible by {act[1]}, got {W.shape[0]}")
            layers.append((W, b, act))
            # The same layer names as vqgeom.encode: module path and activation function.
            names.append(f"{path}:{fname}")
            pending = None
    if pending is not None:
        layers.append((pending[0], pending[1], None))
    if in_dim is None:
        raise ValueError("net: expected a torch model with at least one nn.Linear, found none")
    return NetSpec(layers, tuple(names), in_dim)


def _float64_copy(t: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor (never a view: the spec must not change when the
    network is trained on)."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype.is_floating_point and t.dtype.itemsize >= 4:  # numpy has float32/float64
        return np.array(t.numpy(), dtype=np.float64)
    return t.double().numpy().copy()


def _flatten(module: Any, path: str) -> list:
    """``(path, module)`` leaves of nested Sequentials, paths as in ``named_modules``."""
    import torch.nn as nn

    if isinstance(module, (nn.Sequential, nn.ModuleList)):
        return [
            leaf
            for name, child in module.named_children()
            for leaf in _flatten(child, f"{path}.{name}" if path else name)
        ]
    return [(path or "0", module)]


def _torch_act(m: Any, i: int) -> tuple[Any, str]:
    """The activation spec of module ``m`` and its function name (as ``vqgeom.encode`` names it),
    read from the activation registry."""
    got = _act.module_spec(m)
    if got is None:
        raise TypeError(
            f"net[{i}]: expected nn.Linear or an elementwise CPA activation (ReLU, LeakyReLU, PReLU, ReLU6, "
            f"Hardtanh, Hardsigmoid, Softshrink, RReLU in eval mode, Threshold(t, t), vqgeom.Maxout), "
            f"got {type(m).__name__}"
        )
    return got


def as_netspec(net: Any) -> NetSpec:
    """Normalise a network or hyperplane set to a :class:`NetSpec`.

    Parameters
    ----------
    net : torch.nn.Module, list of (A, b), (normals, offsets), or an object with ``normals``/``offsets``
        * a torch MLP: ``nn.Sequential`` of ``nn.Linear`` and elementwise CPA activations of the
          registry (ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh, Hardsigmoid, Softshrink, ...) or
          ``vqgeom.Maxout(k)`` (a trailing ``nn.Linear`` is an output layer and adds no bits);
        * a list of ``(A, b)`` pairs, ``A`` of shape (out, in): every pair is a ReLU layer;
        * a hyperplane set ``(normals, offsets)``, normals (H, D), offsets (H,): one layer,
          bit ``<n_h, x> + o_h >= 0`` (as ``vqgeom.kernels.reference.hyperplane_bits``);
        * an object with ``normals`` and ``offsets`` attributes (``vqgeom.Hyperplanes``).
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(net, torch.nn.Module):
        return _from_torch(net)
    if hasattr(net, "normals") and hasattr(net, "offsets"):
        return _hyperplanes(net.normals, net.offsets)
    if isinstance(net, tuple) and len(net) == 2 and not isinstance(net[0], (tuple, list)):
        return _hyperplanes(*net)
    if isinstance(net, (list, tuple)):
        if not net:
            raise ValueError("net: expected at least one (A, b) layer, got an empty list")
        layers: list = []
        for i, pair in enumerate(net):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"net[{i}]: expected an (A, b) pair, got {type(pair).__name__}")
            A, b = _check_matrix(pair[0], pair[1], f"net[{i}]", layers[-1][0].shape[0] if layers else None)
            layers.append((A, b, "relu"))
        return NetSpec(layers, tuple(f"{2 * i + 1}:relu" for i in range(len(layers))), layers[0][0].shape[1])
    raise TypeError(
        "net_or_hyperplanes: expected a torch nn.Module, a list of (A, b) pairs, a (normals, offsets) pair "
        f"or vqgeom.Hyperplanes, got {type(net).__name__}"
    )


def _hyperplanes(normals: Any, offsets: Any) -> NetSpec:
    if sys.modules.get("torch") is not None:
        from ._arrays import to_numpy

        normals, offsets = to_numpy(normals), to_numpy(offsets)
    normals = np.asarray(normals, dtype=np.float64)
    if normals.ndim != 2:
        raise ValueError(f"normals: expected a 2-D (H, D) array, got shape {normals.shape}")
    # Each array answers for its own values (the shared check below names one argument).
    for name, arr in (("normals", normals), ("offsets", np.asarray(offsets, dtype=np.float64))):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{name}: expected finite values, got {arr[bad][0]} at index "
                             f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    A, b = _check_matrix(normals, offsets, "offsets", None)
    zero = np.flatnonzero(~A.any(axis=1))
    if zero.size:
        # As vqgeom.Hyperplanes: the paper excludes a_H = 0 (no hyperplane at all).
        raise ValueError(f"normals: expected nonzero normal vectors, got zero rows at {zero.tolist()[:10]}")
    return NetSpec([(A, b, "relu")], ("hyperplanes",), A.shape[1])
