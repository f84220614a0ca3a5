"""VQ distances: :func:`pairwise_distances` from codes, :func:`vq_kernel` from a model.

``d(x, y) = sum_l w_l * Hamming(code_l(x), code_l(y))`` (Section 2 of the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import array_module, like_input
from ._backend import kernel_backend
from ._validate import Weights, check_layer_sizes_match, make_weights, result_dtype
from .codes import Codes

__all__ = ["pairwise_distances", "vq_kernel", "distance_dtype"]

def distance_dtype(max_value: float, integer: bool, array_type: str = "numpy") -> Any:
    """The result dtype: the smallest integer type holding ``max_value``, or float64.

    numpy and cupy get unsigned types (uint8/16/32/64); torch gets uint8, int16, int32 or
    int64, since torch has no arithmetic on uint16/uint32. Integer distances beyond uint64
    (numpy, cupy) or int64 (torch) raise ``ValueError``.
    """
    return result_dtype(max_value, integer, array_type)


def _check_codes(codes: Any, name: str) -> Codes:
    if not isinstance(codes, Codes):
        raise TypeError(f"{name}: expected vqgeom.Codes (from vqgeom.encode), got {type(codes).__name__}")
    return codes


def check_pair(codes_x: Any, codes_y: Any) -> tuple[Codes, Codes | None]:
    """``codes_x`` and the optional ``codes_y``: Codes of the same layers, array type and device."""
    codes_x = _check_codes(codes_x, "codes_x")
    if codes_y is not None:
        codes_y = _check_codes(codes_y, "codes_y")
        check_layer_sizes_match(codes_x.layer_sizes, codes_y.layer_sizes)
        if getattr(codes_x, "groups", None) != getattr(codes_y, "groups", None):
            raise ValueError(f"codes_y: expected codes of the same groups as codes_x {codes_x.groups}, got {codes_y.groups}")
        if codes_y.array_type != codes_x.array_type or _device(codes_x) != _device(codes_y):
            raise ValueError(
                f"codes_y: expected codes on the same array type and device as codes_x "
                f"({codes_x.array_type}, {_device(codes_x)}), got ({codes_y.array_type}, {_device(codes_y)})"
            )
    return codes_x, codes_y


def codes_weights(codes: Codes, weights: Any) -> Weights:
    """The validated :class:`~vqgeom._validate.Weights` of ``weights`` for ``codes`` (a
    :class:`Weights` already built for the same layers passes through)."""
    if isinstance(weights, Weights):
        if weights.layer_sizes != tuple(codes.layer_sizes):
            raise ValueError(f"weights: built for layer sizes {weights.layer_sizes}, got codes of {tuple(codes.layer_sizes)}")
        return weights
    halved = getattr(codes, "halved", None)
    return make_weights(weights, codes.layer_sizes, halved, codes.array_type)


def pairwise_distances(
    codes_x: Codes,
    codes_y: Codes | None = None,
    *,
    weights: Any = None,
    per_layer: bool = False,
    condensed: bool = False,
    backend: str = "auto",
) -> Any:
    """VQ distances between two sets of codes.

    Parameters
    ----------
    codes_x : Codes, N rows
    codes_y : Codes, M rows, optional
        Defaults to ``codes_x`` (the symmetric VQ-Kernel).
    weights : sequence of L positive numbers, optional
        Layer weights ``w_l`` (default 1). Integer values (of any dtype) keep an exact
        integer result; a ``ValueError`` when ``sum_l w_l B_l`` exceeds the result type
        (uint64 for numpy, int64 for torch). Real weights: float64, one rounding per
        layer term, summed in layer order.
    per_layer : bool
        Return the unweighted per-layer matrices ``(L, N, M)`` instead.
    condensed : bool
        Only with one code set: the ``N (N - 1) / 2`` distances of pairs ``i < j`` as a
        1-D array in scipy's ``pdist`` order (``scipy.spatial.distance.squareform`` gives
        the matrix back). Half the bytes of the full matrix; the Triton kernels write only
        the upper triangle, the CPU computes row blocks against the rows after them (half
        the work), the numpy reference and the CUDA C kernel cut the full matrix.
    backend : {"auto", "cpu", "numpy", "triton", "cupy"}
        With dask codes: the backend of each tile on its worker. With ``"auto"``, cupy
        codes go to the Triton kernels through DLPack (no copy) when Triton is
        importable, else to the CUDA C kernel (``"cupy"``, also when named).

    Returns
    -------
    array (N, M), (L, N, M) with ``per_layer``, or (N (N - 1) / 2,) with ``condensed``
        In ``codes_x``'s array type and device (dask codes: a lazy dask array of tiles chunked
        like the codes' rows, writable block by block with ``.to_zarr``). Integer weights (or none): the smallest
        integer dtype holding ``sum_l w_l B_l`` (see :func:`distance_dtype`); real
        weights: float64. Exact on every backend. Memory: the result (the CPU route adds
        a few MB of blocks; with large integer or real weights one (N, M) accumulator).
    """
    codes_x, codes_y = check_pair(codes_x, codes_y)
    if not isinstance(per_layer, (bool, np.bool_)):
        raise TypeError(f"per_layer: expected a bool, got {type(per_layer).__name__} {per_layer!r}")
    wt = codes_weights(codes_x, weights)
    if per_layer and weights is not None:
        raise ValueError("weights: per_layer=True returns the unweighted per-layer distances; pass weights=None")
    if not isinstance(condensed, (bool, np.bool_)):
        raise TypeError(f"condensed: expected a bool, got {type(condensed).__name__}")
    if condensed and codes_y is not None:
        raise ValueError("condensed: the condensed (pdist) layout is for one code set; got codes_y as well")
    if condensed and per_layer:
        raise ValueError("condensed: not available with per_layer=True; take pairwise_distances(codes.layers([l]), "
                         "condensed=True) per layer")
    if condensed and codes_x.array_type == "dask":
        raise ValueError("condensed: not available for dask codes (their result is chunked by rows)")
    if codes_x.array_type == "dask":  # task graph of tiles, each on a worker with `backend` (see vqgeom._dask)
        from . import _dask

        dt = result_dtype(max(codes_x.layer_sizes, default=0), True, "numpy") if per_layer else wt.dtype
        return _dask.pairwise_distances(codes_x, codes_y, weights=weights, per_layer=per_layer, backend=backend,
                                        out_dtype=dt)
    name = kernel_backend(backend, codes_x.words)  # cupy codes: Triton through DLPack unless cupy is named
    if per_layer:
        parts = [
            _distances(codes_x.layers([l]), None if codes_y is None else codes_y.layers([l]),
                       make_weights(None, [codes_x.layer_sizes[l]], [wt.halved[l]], codes_x.array_type), name)
            for l in range(codes_x.n_layers)
        ]
        dt = result_dtype(max(codes_x.layer_sizes, default=0), True, codes_x.array_type)
        return _stack([_cast(p, dt) for p in parts], codes_x, dt, codes_y)
    return _distances(codes_x, codes_y, wt, name, condensed=bool(condensed))


def _distances(codes_x: Codes, codes_y: Codes | None, wt: Weights, name: str, condensed: bool = False) -> Any:
    """Distances by backend ``name``: the kernels get ``wt.kernel`` and an output dtype that
    holds the kernel sums; a halved layout's sums are then divided exactly. ``condensed``
    (``codes_y`` None): the pdist layout."""
    if name == "triton":  # torch codes, or cupy's through zero-copy DLPack views both ways
        from ._backend import caller_array, torch_out_dtype, torch_view
        from .kernels.triton import hamming as th

        kdt = wt.kernel_dtype(codes_x.array_type)
        tdt = kdt if codes_x.array_type == "torch" else torch_out_dtype(kdt)
        out = th.pairwise_hamming(torch_view(codes_x.words), None if codes_y is None else torch_view(codes_y.words),
                                  codes_x.layer_sizes, wt.kernel, tdt, condensed=condensed)
        out = caller_array(out, codes_x.words, kdt)
    elif name == "cupy":
        from .kernels.cuda import loader

        out = loader.pairwise_hamming(codes_x.words, None if codes_y is None else codes_y.words,
                                      codes_x.layer_sizes, wt.kernel, wt.kernel_dtype("numpy"))
        if condensed:  # the CUDA C kernel writes the full matrix: cut it (no memory saved)
            import cupy

            out = out[cupy.triu_indices(out.shape[0], 1)]
    else:
        # numpy computes; a torch result comes back in torch's dtype of the same range.
        kdt = wt.kernel_dtype()
        kdt = np.dtype(str(kdt).replace("torch.", "")) if codes_x.array_type == "torch" else np.dtype(kdt)
        if name == "numpy":
            out = _reference(codes_x, codes_y, wt, kdt)
            if condensed:
                out = out[np.triu_indices(out.shape[0], 1)]
        elif condensed:
            out = _condensed_cpu(codes_x.words_numpy(), codes_x.layer_sizes, wt.kernel, kdt)
        else:
            from .kernels import cpu

            wx = codes_x.words_numpy()
            wy = None if codes_y is None else codes_y.words_numpy()
            out = cpu.pairwise_hamming(wx, wy, codes_x.layer_sizes, wt.kernel, kdt)
        out = like_input(out, codes_x.words)
    if wt.divisor != 1:
        out = out // wt.divisor
    return _cast(out, wt.dtype)


def _condensed_cpu(wx: np.ndarray, layer_sizes, w, out_dtype, block_elems: int = 1 << 22) -> np.ndarray:
    """Condensed distances on the CPU: row blocks ``[i0, i1)`` against rows ``i0..N-1``
    through the CPU backend, keeping the entries right of the diagonal. Row ``i``'s pairs
    ``(i, i+1 .. N-1)`` start at ``i N - i (i + 1) / 2`` and the blocks' kept entries, in
    row-major order, are consecutive there. Each block holds at most about
    ``block_elems`` distances."""
    from .kernels import cpu

    n = wx.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=out_dtype)
    i0 = 0
    while i0 < n - 1:
        rows = max(1, min(n - 1 - i0, block_elems // max(1, n - i0)))
        i1 = i0 + rows
        d = cpu.pairwise_hamming(wx[i0:i1], wx[i0:], layer_sizes, w, out_dtype)
        keep = np.arange(n - i0)[None, :] > np.arange(rows)[:, None]
        start = i0 * n - i0 * (i0 + 1) // 2
        part = d[keep]
        out[start : start + part.size] = part
        i0 = i1
    return out


def _cast(a: Any, dtype: Any) -> Any:
    if array_module(a) == "torch":
        return a if a.dtype == dtype else a.to(dtype)
    return a if a.dtype == dtype else a.astype(dtype)


def _stack(parts: list, codes_x: Codes, dtype: Any, codes_y: Codes | None) -> Any:
    xp = codes_x.array_type
    if xp == "torch":
        import torch

        if not parts:
            m = codes_x.n if codes_y is None else codes_y.n
            return torch.zeros((0, codes_x.n, m), dtype=dtype, device=codes_x.words.device)
        return torch.stack(parts)
    mod = np
    if xp == "cupy":
        import cupy as mod
    if not parts:
        m = codes_x.n if codes_y is None else codes_y.n
        return mod.zeros((0, codes_x.n, m), dtype=dtype)
    return mod.stack(parts)


def _device(codes: Codes) -> str:
    if codes.array_type == "torch":
        return str(codes.words.device)
    if codes.array_type == "cupy":
        return f"cuda:{codes.words.device.id}"
    return "cpu"


def _reference(codes_x: Codes, codes_y: Codes | None, wt: Weights, out_dtype) -> np.ndarray:
    from .kernels import reference

    bx = codes_x.unpack()
    by = bx if codes_y is None else codes_y.unpack()
    # The oracle gets the kernel weights (ordinary per-layer weights, like every backend).
    kern = None if wt.kernel is None else [int(v) if wt.integer else float(v) for v in wt.kernel]
    return np.asarray(reference.hamming(bx, by, codes_x.layer_sizes, kern)).astype(out_dtype)


def vq_kernel(
    model: Any,
    X: Any,
    Y: Any = None,
    *,
    weights: Any = None,
    per_layer: bool = False,
    backend: str = "auto",
    batch_size: int | None = None,
    allow_non_cpa: bool = False,
) -> Any:
    """The VQ-Kernel of ``model`` on ``X`` (Definition 1), or the cross kernel against ``Y``.

    Parameters
    ----------
    model : torch.nn.Module, list of (A, b) pairs, or Hyperplanes
        See :func:`vqgeom.encode`.
    X : array (N, ...)
    Y : array (M, ...), optional
    weights, per_layer, backend
        See :func:`pairwise_distances`.
    batch_size, allow_non_cpa
        See :func:`vqgeom.encode`.

    Returns
    -------
    array (N, N) or (N, M)
        In ``X``'s array type and device.

    Examples
    --------
    >>> import torch, vqgeom
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> K = vqgeom.vq_kernel(net, torch.randn(5, 2))
    >>> K.shape, bool((K == K.T).all()), int(K.diagonal().max())
    (torch.Size([5, 5]), True, 0)
    """
    from .encoding import encode

    cx = encode(model, X, batch_size=batch_size, allow_non_cpa=allow_non_cpa, backend=_enc_backend(backend))
    cy = None if Y is None else encode(model, Y, batch_size=batch_size, allow_non_cpa=allow_non_cpa, backend=_enc_backend(backend))
    return pairwise_distances(cx, cy, weights=weights, per_layer=per_layer, backend=backend)


def _enc_backend(backend: str) -> str:
    # encode has no cupy path: codes of cupy inputs are computed by torch and moved.
    return "auto" if backend == "cupy" else backend
