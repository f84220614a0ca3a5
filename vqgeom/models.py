"""ReLU-family MLPs, their training (Adam, a stated stopping rule) and checkpoints.

The networks are plain ``torch.nn.Sequential`` stacks of ``Linear`` layers and CPA
activations, so :func:`vqgeom.encode` reads their codes directly. A network with
``depth`` hidden layers has ``depth`` activation layers, i.e. ``depth`` VQ layers; the
paper's "L layers of width w" is read as ``depth=L, width=w`` (plus a linear output layer
that adds no hyperplanes).

Stopping rule of :func:`train` ("until convergence" in the paper), checked after every epoch
on the mean training loss of that epoch:

1. **converged**: training accuracy is 100% and the loss is below ``loss_tol``; or
2. **plateau**: the best loss has not improved by more than ``rel_tol`` (relative) for
   ``patience`` consecutive epochs; or
3. **budget**: ``max_epochs`` epochs have run.

The reason is recorded in :attr:`TrainResult.stop_reason`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import check_int
from .activations import torch_modules

__all__ = ["MLP", "Maxout", "mlp", "train", "TrainResult", "predict", "accuracy", "save_checkpoint", "load_checkpoint"]

# The activations mlp() builds, by their registry names (vqgeom.activations.torch_modules).
_ACTIVATIONS = {name: cls for cls, name in torch_modules().items() if name in ("relu", "leaky_relu", "relu6", "hardtanh")}


class Maxout(nn.Module):
    """Maxout: the max over consecutive groups of ``k`` features, ``(..., m k) -> (..., m)``.

    ``k`` equal to the layer's width is a max over all of its units. :func:`vqgeom.encode`
    codes each group by its argmax (first maximal feature), one-hot when ``k >= 3`` (see
    :mod:`vqgeom.activations`); its network spec is ``("maxout", k)``.
    """

    def __init__(self, k: int):
        super().__init__()
        self.k = check_int(k, "k")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.k)).amax(-1)

    def extra_repr(self) -> str:
        return f"k={self.k}"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class MLP(nn.Sequential):
    """A ``Sequential`` of ``Linear`` + activation blocks and a linear output layer.

    Attributes
    ----------
    config : dict
        The arguments of :func:`mlp` that rebuild this architecture (used by
        :func:`save_checkpoint` / :func:`load_checkpoint`).
    """

    config: dict[str, Any]


def mlp(
    in_dim: int,
    width: int,
    depth: int,
    out_dim: int,
    activation: str = "relu",
    dtype: torch.dtype | str = torch.float32,
    seed: int | None = 0,
) -> MLP:
    """Build ``depth`` hidden layers of ``width`` units with a CPA activation, then a linear output.

    Parameters
    ----------
    in_dim, width, out_dim : int
        Input dimension, hidden width and output dimension (>= 1).
    depth : int
        Number of hidden (activation) layers, >= 1: the number of VQ layers.
    activation : {"relu", "leaky_relu", "relu6", "hardtanh"}
        The activation after every hidden layer (PyTorch defaults for their parameters).
    dtype : torch.float32 or torch.float64 (or their names)
        Parameter dtype.
    seed : int or None
        Seed of the initialisation (PyTorch's default uniform init). The global torch RNG
        is left as it was. ``None``: draw from the global RNG.

    Returns
    -------
    MLP
        ``Sequential(Linear, act, ..., Linear, act, Linear)`` with ``.config`` set.
    """
    in_dim = check_int(in_dim, "in_dim", 1)
    width = check_int(width, "width", 1)
    depth = check_int(depth, "depth", 1)
    out_dim = check_int(out_dim, "out_dim", 1)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
        dtype = _DTYPES[dtype]
    if dtype not in _DTYPES.values():
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")

    def build() -> MLP:
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width, dtype=dtype), _ACTIVATIONS[activation]()]
            d = width
        layers.append(nn.Linear(d, out_dim, dtype=dtype))
        return MLP(*layers)

    if seed is None:
        model = build()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = build()
    model.config = dict(
        in_dim=in_dim, width=width, depth=depth, out_dim=out_dim, activation=activation, dtype=str(dtype).split(".")[-1]
    )
    return model


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    epochs : int
        Epochs run.
    loss : float
        Mean training loss of the last epoch.
    accuracy : float
        Training accuracy after the last epoch, in [0, 1].
    stop_reason : str
        ``"converged"``, ``"plateau"`` or ``"max_epochs"`` (see the module docstring).
    seconds : float
        Wall time of the training loop.
    history : list of float
        Mean training loss per epoch.
    """

    epochs: int
    loss: float
    accuracy: float
    stop_reason: str
    seconds: float
    history: list[float] = field(default_factory=list)


def _as_tensor(X: Any, dtype: torch.dtype) -> torch.Tensor:
    t = X.detach().cpu() if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(X)))
    t = t.to(dtype)
    if not bool(torch.isfinite(t).all()):
        raise ValueError("X: expected finite values, got NaN or inf")
    return t


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    raise ValueError("model: expected a module with parameters, got one without any")


@torch.no_grad()
def predict(model: nn.Module, X: Any, batch_size: int = 8192) -> np.ndarray:
    """Predicted labels: ``logit >= 0`` for one output (binary), else the arg-max class.

    Parameters
    ----------
    model : torch.nn.Module
    X : array_like, shape (N, in_dim)
    batch_size : int

    Returns
    -------
    ndarray, shape (N,), int64
    """
    dtype = _model_dtype(model)
    Xt = _as_tensor(X, dtype)
    Xt = Xt.flatten(1) if Xt.ndim > 2 else Xt
    was = model.training
    model.eval()
    outs = [model(Xt[i : i + batch_size]) for i in range(0, Xt.shape[0], batch_size)]
    model.train(was)
    out = torch.cat(outs) if outs else torch.zeros((0, 1), dtype=dtype)
    if out.shape[1] == 1:
        return (out[:, 0] >= 0).to(torch.int64).numpy()
    return out.argmax(1).numpy()


def accuracy(model: nn.Module, X: Any, y: Any) -> float:
    """Fraction of ``X``'s rows whose :func:`predict` label equals ``y`` (float in [0, 1])."""
    y = np.asarray(y).astype(np.int64).ravel()
    return float(np.mean(predict(model, X) == y)) if y.size else float("nan")


def train(
    model: nn.Module,
    X: Any,
    y: Any,
    loss: str = "bce",
    *,
    lr: float = 1e-3,
    batch_size: int | None = None,
    max_epochs: int = 2000,
    loss_tol: float = 1e-3,
    rel_tol: float = 1e-4,
    patience: int = 100,
    weight_decay: float = 0.0,
    seed: int | None = 0,
    threads: int | None = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` in place with Adam until the stopping rule of the module docstring fires.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(batch, in_dim)`` to ``(batch, 1)`` logits (``loss="bce"``) or
        ``(batch, classes)`` logits (``loss="ce"``). Inputs of more than 2 dimensions
        (e.g. images ``(N, 28, 28)``) are flattened.
    X : array_like or tensor, shape (N, ...)
        Training inputs, converted to the model's dtype (uint8 images are NOT rescaled:
        scale them first).
    y : array_like, shape (N,)
        Labels: ``{0, 1}`` for ``"bce"``, ``0..classes-1`` for ``"ce"``.
    loss : {"bce", "ce"}
        Binary cross-entropy on one logit, or multi-class cross-entropy.
    lr : float
        Adam learning rate.
    batch_size : int or None
        Mini-batch size; ``None`` for full-batch training.
    max_epochs : int
        Hard budget of epochs.
    loss_tol : float
        Loss below which, with 100% training accuracy, training has converged.
    rel_tol, patience : float, int
        Plateau rule: stop when the best epoch loss has not dropped by more than a
        fraction ``rel_tol`` for ``patience`` epochs.
    weight_decay : float
        Adam's L2 penalty.
    seed : int or None
        Seed of the mini-batch shuffling (the initialisation is :func:`mlp`'s seed).
    threads : int or None
        torch intra-op threads while training (restored afterwards); ``None`` keeps torch's
        setting. ``1`` is fastest for small MLPs: their matrix products are too small to
        split, and under CPU contention the extra threads stall (measured here: two moons,
        3 x 96, 700 epochs in 0.7 s with one thread, 8 s with two on a busy 2-core machine).
    progress : bool
        Show a tqdm progress bar (epochs, with the current loss and accuracy).
    desc : str
        Label of the progress bar.

    Returns
    -------
    TrainResult
    """
    if loss not in ("bce", "ce"):
        raise ValueError(f"loss: expected 'bce' or 'ce', got {loss!r}")
    max_epochs = check_int(max_epochs, "max_epochs", 1)
    patience = check_int(patience, "patience", 1)
    dtype = _model_dtype(model)
    Xt = _as_tensor(X, dtype)
    Xt = Xt.flatten(1) if Xt.ndim > 2 else Xt
    yt = torch.from_numpy(np.asarray(y).astype(np.int64).ravel()) if not isinstance(y, torch.Tensor) else y.long()
    if yt.shape[0] != Xt.shape[0]:
        raise ValueError(f"y: expected {Xt.shape[0]} labels (one per row of X), got {yt.shape[0]}")
    if Xt.shape[0] == 0:
        raise ValueError("X: expected at least one training example, got 0 rows")
    n = Xt.shape[0]
    bs = n if batch_size is None else check_int(batch_size, "batch_size", 1)
    if loss == "bce":
        if not bool(((yt == 0) | (yt == 1)).all()):
            raise ValueError("y: expected labels in {0, 1} for loss='bce'")
        criterion: nn.Module = nn.BCEWithLogitsLoss()
        target = yt.to(dtype).unsqueeze(1)
    else:
        criterion = nn.CrossEntropyLoss()
        target = yt
    if threads is not None:
        threads = check_int(threads, "threads", 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    model.train()
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _loop(model, Xt, yt, target, criterion, opt, gen, loss, bs, max_epochs, loss_tol, rel_tol, patience,
                     progress, desc)
    finally:
        torch.set_num_threads(saved_threads)


def _loop(model, Xt, yt, target, criterion, opt, gen, loss, bs, max_epochs, loss_tol, rel_tol, patience, progress, desc):
    """The epoch loop of :func:`train` (arguments already checked)."""
    n = Xt.shape[0]
    history: list[float] = []
    best, since_best, reason = float("inf"), 0, "max_epochs"
    acc = 0.0
    t0 = time.perf_counter()
    # Updated by hand: iterating a tqdm closes it on break, before the stop can be shown.
    bar = tqdm(total=max_epochs, desc=desc, disable=not progress, leave=False, mininterval=0.5)
    for _ in range(max_epochs):
        order = torch.randperm(n, generator=gen) if bs < n else torch.arange(n)
        total, correct = 0.0, 0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            out = model(Xt[idx])
            value = criterion(out, target[idx])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            total += float(value.detach()) * idx.numel()
            # accuracy on the fly (pre-step logits): exact for full batch, a running estimate otherwise
            pred = (out[:, 0] >= 0).long() if loss == "bce" else out.argmax(1)
            correct += int((pred == yt[idx]).sum())
        epoch_loss = total / n
        acc = correct / n
        history.append(epoch_loss)
        bar.set_postfix(loss=f"{epoch_loss:.4g}", acc=f"{acc:.3f}", refresh=False)
        bar.update(1)
        if acc == 1.0 and epoch_loss < loss_tol:
            reason = "converged"
            break
        if epoch_loss < best * (1 - rel_tol):
            best, since_best = epoch_loss, 0
        else:
            since_best += 1
            if since_best >= patience:
                reason = "plateau"
                break
    if len(history) < max_epochs:
        # Stopped early: max_epochs was only a budget, so the bar ends full at the epochs that ran,
        # with the reason, instead of stalling at e.g. 43/2000.
        bar.total = len(history)
        bar.set_description_str(f"{desc} ({reason})" if desc else reason, refresh=False)
        bar.refresh()
    bar.close()
    model.eval()
    seconds = time.perf_counter() - t0
    return TrainResult(
        epochs=len(history),
        loss=history[-1],
        accuracy=accuracy(model, Xt, yt.numpy()),
        stop_reason=reason,
        seconds=seconds,
        history=history,
    )


def save_checkpoint(model: MLP, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
    """Save an :func:`mlp` network (architecture, weights) and JSON-like ``meta`` to ``path``.

    Parameters
    ----------
    model : MLP
        A network built by :func:`mlp` (it carries ``.config``).
    path : path-like
        Destination file (``torch.save`` format).
    meta : dict or None
        Extra plain data to keep with it (str, int, float, lists, dicts).
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"model: expected a network built by vqgeom.models.mlp (with .config), got {type(model).__name__}")
    torch.save({"config": dict(config), "state_dict": model.state_dict(), "meta": dict(meta or {})}, os.fspath(path))


def load_checkpoint(path: str | os.PathLike) -> tuple[MLP, dict[str, Any]]:
    """Load a network saved by :func:`save_checkpoint`.

    Returns
    -------
    model : MLP
        Rebuilt with the saved architecture and weights, in eval mode.
    meta : dict
        The ``meta`` passed to :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Naming ``path`` and what is wrong: not a torch file (empty, truncated, garbage),
        not a vqgeom checkpoint, an architecture :func:`mlp` refuses, or weights that do
        not fit it. Only plain tensors and containers are unpickled (``weights_only``).
    """
    what = f"path: {os.fspath(path)!r}"
    if not os.path.isfile(os.fspath(path)):
        raise FileNotFoundError(f"{what}: no checkpoint file there")
    try:
        blob = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        raise ValueError(f"{what} is not a readable vqgeom checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict) or not {"config", "state_dict"} <= set(blob):
        raise ValueError(f"{what} is not a vqgeom checkpoint (expected keys 'config' and 'state_dict')")
    if not isinstance(blob["config"], dict) or not isinstance(blob["state_dict"], dict):
        raise ValueError(f"{what}: expected 'config' and 'state_dict' to be dicts")
    meta = blob.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"{what}: expected 'meta' to be a dict, got {type(meta).__name__}")
    try:
        model = mlp(**blob["config"], seed=0)  # seed: leave the global RNG alone; weights are overwritten
        model.load_state_dict(blob["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(f"{what} holds an invalid checkpoint: {type(exc).__name__}: {exc}") from None
    model.eval()
    return model, dict(meta)
