"""VQ distances: :func:`pairwise_distances` from codes, :func:`vq_kernel` from a model.

``d(x, y) = sum_l w_l * Hamming(code_l(x), code_l(y))`` (Section 2 of the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import like_input
from ._backend import resolve_backend
from ._validate import check_layer_sizes_match, check_weights
from .codes import Codes

__all__ = ["pairwise_distances", "vq_kernel", "distance_dtype"]

_NUMPY_UINTS = (np.uint8, np.uint16, np.uint32, np.uint64)
# torch has arithmetic on uint8 but not on uint16/32/64: use the signed types there.
_TORCH_INTS = ((255, "uint8"), (2**15 - 1, "int16"), (2**31 - 1, "int32"), (2**63 - 1, "int64"))


def distance_dtype(max_value: float, integer: bool, array_type: str = "numpy") -> Any:
    """The result dtype: the smallest integer type holding ``max_value``, or float64.

    numpy and cupy get unsigned types (uint8/16/32/64); torch gets uint8, int16, int32 or
    int64, since torch has no arithmetic on uint16/uint32.
    """
    if array_type == "torch":
        import torch

        if not integer:
            return torch.float64
        for limit, name in _TORCH_INTS:
            if max_value <= limit:
                return getattr(torch, name)
        return torch.float64
    if not integer:
        return np.dtype(np.float64)
    for t in _NUMPY_UINTS:
        if max_value <= np.iinfo(t).max:
            return np.dtype(t)
    return np.dtype(np.float64)


def _check_codes(codes: Any, name: str) -> Codes:
    if not isinstance(codes, Codes):
        raise TypeError(f"{name}: expected vqgeom.Codes (from vqgeom.encode), got {type(codes).__name__}")
    return codes


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
        Layer weights ``w_l`` (default 1). Integers keep an integer result.
    per_layer : bool
        Return the unweighted per-layer matrices ``(L, N, M)`` instead.
    condensed : bool
        Only with one code set: the ``N (N - 1) / 2`` distances of pairs ``i < j`` as a
        1-D array in scipy's ``pdist`` order (``scipy.spatial.distance.squareform`` gives
        the matrix back). Half the bytes of the full matrix; the Triton kernels write only
        the upper triangle, the CPU computes row blocks against the rows after them (half
        the work), the numpy reference cuts the full matrix.
    backend : {"auto", "cpu", "numpy", "triton", "cupy"}
        cupy arrays go to the Triton kernels through DLPack (no copy) when Triton is
        importable, else to the CUDA C kernel (``"cupy"``).

    Returns
    -------
    array (N, M), (L, N, M) with ``per_layer``, or (N (N - 1) / 2,) with ``condensed``
        In ``codes_x``'s array type and device. Integer weights (or none): the smallest
        integer dtype holding ``sum_l w_l B_l`` (see :func:`distance_dtype`); real
        weights: float64. Exact on every backend.
    """
    codes_x = _check_codes(codes_x, "codes_x")
    if codes_y is not None:
        codes_y = _check_codes(codes_y, "codes_y")
        check_layer_sizes_match(codes_x.layer_sizes, codes_y.layer_sizes)
        if codes_y.array_type != codes_x.array_type or _device(codes_x) != _device(codes_y):
            raise ValueError(
                f"codes_y: expected codes on the same array type and device as codes_x "
                f"({codes_x.array_type}, {_device(codes_x)}), got ({codes_y.array_type}, {_device(codes_y)})"
            )
    w, integer = check_weights(weights, codes_x.n_layers)
    if not isinstance(condensed, (bool, np.bool_)):
        raise TypeError(f"condensed: expected a bool, got {type(condensed).__name__}")
    if condensed and codes_y is not None:
        raise ValueError("condensed: the condensed (pdist) layout is for one code set; got codes_y as well")
    if condensed and per_layer:
        raise ValueError("condensed: not available with per_layer=True; take pairwise_distances(codes.layers(l), "
                         "condensed=True) per layer")
    if per_layer:
        w, integer = None, True
        max_value = max(codes_x.layer_sizes, default=0)
    else:
        max_value = float(np.dot(np.ones(codes_x.n_layers) if w is None else w, codes_x.layer_sizes))
    name = resolve_backend(backend, codes_x.words)
    xp = codes_x.array_type

    if name == "triton":
        from ._backend import dlpack_result, dlpack_torch_words, torch_out_dtype
        from .kernels.triton import hamming as th

        if xp == "torch":
            out_t, out_np, tw = distance_dtype(max_value, integer, "torch"), None, (lambda c: c.words)
        else:  # cupy (or another DLPack producer): zero-copy views both ways
            out_np = distance_dtype(max_value, integer, "numpy")
            out_t, tw = torch_out_dtype(out_np), (lambda c: dlpack_torch_words(c.words))
        if per_layer:
            import torch

            res = torch.stack([th.pairwise_hamming(tw(codes_x.layers(l)),
                                                   None if codes_y is None else tw(codes_y.layers(l)),
                                                   codes_x.layers(l).layer_sizes, None, out_t)
                               for l in range(codes_x.n_layers)])
        else:
            res = th.pairwise_hamming(tw(codes_x), None if codes_y is None else tw(codes_y), codes_x.layer_sizes,
                                      w, out_t, condensed=condensed)
        return res if out_np is None else dlpack_result(res, codes_x.words, out_np)
    if name == "cupy":
        from .kernels.cuda import loader

        out_c = distance_dtype(max_value, integer, "numpy")
        if per_layer:
            return _stack_layers(codes_x, codes_y, lambda cx, cy: loader.pairwise_hamming(cx.words, None if cy is None else cy.words, cx.layer_sizes, None, out_c))
        res = loader.pairwise_hamming(
            codes_x.words, None if codes_y is None else codes_y.words, codes_x.layer_sizes, w, out_c
        )
        if condensed:  # the CUDA C kernel writes the full matrix: cut it (no memory saved)
            import cupy

            iu = cupy.triu_indices(res.shape[0], 1)
            res = res[iu]
        return res

    out_dtype = distance_dtype(max_value, integer, "numpy")
    if xp == "torch":
        # numpy computes; the result is handed back in torch's dtype of the same range.
        out_dtype = np.dtype(str(distance_dtype(max_value, integer, "torch")).replace("torch.", ""))
    wx = codes_x.words_numpy()
    wy = None if codes_y is None else codes_y.words_numpy()
    if name == "numpy":
        result = _reference(codes_x, codes_y, w, per_layer, out_dtype)
        if condensed:
            result = result[np.triu_indices(result.shape[0], 1)]
    elif condensed:
        result = _condensed_cpu(wx, codes_x.layer_sizes, w, out_dtype)
    else:
        from .kernels import cpu

        result = cpu.pairwise_hamming(wx, wy, codes_x.layer_sizes, w, out_dtype, per_layer=per_layer)
    return like_input(result, codes_x.words)


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


def _device(codes: Codes) -> str:
    if codes.array_type == "torch":
        return str(codes.words.device)
    if codes.array_type == "cupy":
        return f"cuda:{codes.words.device.id}"
    return "cpu"


def _stack_layers(codes_x: Codes, codes_y: Codes | None, fn) -> Any:
    parts = [fn(codes_x.layers(l), None if codes_y is None else codes_y.layers(l)) for l in range(codes_x.n_layers)]
    if codes_x.array_type == "torch":
        import torch

        return torch.stack(parts)
    import cupy

    return cupy.stack(parts)


def _reference(codes_x: Codes, codes_y: Codes | None, w, per_layer: bool, out_dtype) -> np.ndarray:
    from .kernels import reference

    bx = codes_x.unpack()
    by = bx if codes_y is None else codes_y.unpack()
    if per_layer:
        return reference.layer_hamming(bx, by, codes_x.layer_sizes).astype(out_dtype)
    return reference.hamming(bx, by, codes_x.layer_sizes, w).astype(out_dtype)


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
