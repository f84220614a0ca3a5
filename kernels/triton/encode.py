"""Fused Triton encoder for MLPs (Linear + ReLU / LeakyReLU / PReLU, any depth).

For a block of rows, one launch runs every layer's matmul and bias, takes the sign bits
(bit set iff the pre-activation is >= 0), packs them into the Codes layout's 32-bit
words, applies the activation and goes on to the next layer with the activations kept
in registers; only the packed words are written. When a layer is wider than
``FUSED_MAX_WIDTH`` the stack falls back to one launch per layer (activations of that
layer go through device memory).

Also here: the one-pass query kernel (:func:`query_distances`), which for a block of
query rows encodes them and accumulates their packed Hamming distances against stored
reference codes in the same launch.

Precision. Pre-activations are computed in float32 (inputs are cast to float32).
``precision="tf32x3"`` (default: three tf32 tensor-core products that recover float32
accuracy) and ``"ieee"`` (plain float32 FMAs, 1.7x slower on an H200) agree with the
float64 reference except where ``|pre| <= K * 2**-23 * sum_k |a_k x_k|`` (the float32
dot-product bound); ``"tf32"`` is about 1e-3 relative (measured: 60 of 192,000 bits
flipped on random MNIST-sized inputs) and no faster once the kernel is bound by reading X. Tests compare only bits whose
pre-activations stay away from 0 by more than the float32 bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import triton
import triton.language as tl

from ._device import device_info, guarded, launch
from ._popcount import check_words, ensure_allocator, hw_popcount, layer_offsets, small_array, tma_ok
from .hamming import word_distance

__all__ = ["encode_mlp", "prepare_mlp", "MLPStack", "mlp_layer_sizes", "mlp_layers", "layer_info", "MLPLayers",
           "query_distances", "FUSED_MAX_WIDTH", "FUSED_QUERY_DEFAULT", "ENCODER_CONFIG"]

# Widest layer (padded to a power of two) kept on chip by the fused kernel.
FUSED_MAX_WIDTH = 128
# The first layer's weight rows are zero-padded to a multiple of this (the largest K
# block), so bulk tensor loads of X past its last column multiply zeros.
W0_ROWS = 128
# Whether query_distances fuses encode + distance by default: the faster as measured on an
# H200 (10,000 queries x 100,000 references, 784 -> 16 x 6). The one-pass kernel led while
# the encoder and the distance tiles were slower (2.54 vs 2.81 ms); with the encoder's
# tuned tiles and held row blocks in the int8 tiles, encode then distance takes 2.04-2.15 ms
# against 2.55-2.56 ms fused (benchmarks/results/gpu-h200-2026-11-26.md, two runs).
FUSED_QUERY_DEFAULT = False
PRECISIONS = ("ieee", "tf32", "tf32x3")
# The fused kernel's tuning (see encode_mlp's ``config``) for layers of at most 32 units,
# from benchmarks/gpu_check.py on an H200 (784 -> 16 x 6, N = 10^6, tf32x3): K block 32,
# five stages 0.96-0.97 ms = 76-77% of the read bandwidth (two runs); the same with bulk
# tensor loads 0.91-0.99 ms (three runs), within the spread, so plain loads stay the
# default; K block 64, three stages 1.17-1.25 ms (benchmarks/results/gpu-h200-2026-11-26.md).
ENCODER_CONFIG = dict(bm=64, bk=32, num_warps=4, num_stages=5, tma=False, programs=None)


@dataclass(frozen=True)
class MLPStack:
    """An MLP prepared for the kernels by :func:`prepare_mlp` (weights transposed, padded,
    float32, on the device); :func:`encode_mlp` and :func:`query_distances` take it in
    place of the layers, so repeated calls skip the preparation."""

    sizes: tuple[int, ...]
    d_in: int
    hp: int
    fused: bool
    w0t: torch.Tensor  # (D rounded up to W0_ROWS, HP) fused (zero rows past D), else unused
    wh: torch.Tensor  # (max(L-1, 1), HP, HP) as (in, out)
    bias: torch.Tensor  # (L, HP)
    slope: torch.Tensor  # (L, HP)
    sizes_t: torch.Tensor  # (L,) int32
    woff_t: torch.Tensor  # (L,) int32
    layers: tuple  # ((A^T (in, out) float32, b (out,), slope (out,)), ...) for the per-layer path


def _next_pow2(x: int) -> int:
    return 1 << max(0, (int(x) - 1).bit_length())


def mlp_layer_sizes(layers: Sequence[tuple]) -> tuple[int, ...]:
    """Units per layer of the codes :func:`encode_mlp` returns (one per activated layer)."""
    return tuple(int(A.shape[0]) for A, _, s in layers if s is not None)


class MLPLayers(list):
    """``[(W, b, negative_slope), ...]`` read off a module, with the layer names the
    CPU encoder gives the same network (``"<module name>:<activation function>"``)."""

    names: tuple[str, ...] = ()


def mlp_layers(net: Any) -> MLPLayers | None:
    """The layers of a plain float32 MLP for :func:`encode_mlp`, or None for anything else.

    Accepted: an ``nn.Sequential`` of ``Linear`` layers each followed by ``ReLU``,
    ``LeakyReLU`` or ``PReLU`` (``Dropout`` / ``Identity`` in between are no-ops in
    eval mode), optionally ending with a ``Linear`` without activation. Other modules,
    nesting, or parameters that are not float32 return None, and the caller takes the
    general encoder (which runs in the model's dtype).
    """
    import torch.nn as nn

    from vqgeom.activations import module_spec

    if not isinstance(net, nn.Sequential):
        return None
    params = list(net.parameters())
    if not params or any(p.dtype != torch.float32 for p in params):
        return None
    out = MLPLayers()
    names: list[str] = []
    pending = None  # (W, b) of a Linear waiting for its activation
    for name, mod in net.named_children():
        if isinstance(mod, (nn.Dropout, nn.Identity)):
            continue
        if isinstance(mod, nn.Linear):
            if pending is not None:
                return None  # two Linears in a row: not the Linear + activation pattern
            pending = (mod.weight.detach(), None if mod.bias is None else mod.bias.detach())
            continue
        if pending is None:
            return None
        # The activation registry says what the module is; the kernel takes one kink at 0
        # with a slope below it (ReLU, LeakyReLU, PReLU, RReLU in eval mode).
        got = module_spec(mod)
        if got is None:
            return None
        act, fname = got
        if act == "relu":
            slope = 0.0
        elif act[0] == "leaky":
            slope = float(act[1])
        elif act[0] == "prelu":
            w = mod.weight.detach()
            out_features = pending[0].shape[0]
            if w.numel() not in (1, out_features):
                return None
            slope = float(w.reshape(())) if w.numel() == 1 else w.reshape(-1)
        else:
            return None
        out.append((pending[0], pending[1], slope))
        names.append(f"{name}:{fname}")
        pending = None
    if pending is not None:
        out.append((pending[0], pending[1], None))  # output layer: no bits
    if not names:
        return None
    out.names = tuple(names)
    return out


def layer_info(layers: Sequence[tuple]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """``(layer_sizes, layer_names)`` of the codes :func:`encode_mlp` returns for ``layers``."""
    sizes = mlp_layer_sizes(layers)
    names = getattr(layers, "names", ()) or tuple(f"layer{l}" for l in range(len(sizes)))
    return sizes, tuple(names)


def prepare_mlp(layers: Sequence[tuple] | MLPStack, device: torch.device | str) -> MLPStack:
    """Check ``layers`` (see :func:`encode_mlp`) and lay them out for the kernels on ``device``."""
    device = torch.device(device)
    if isinstance(layers, MLPStack):
        if layers.bias.device != device:
            raise ValueError(f"layers: prepared on {layers.bias.device}, used with inputs on {device}")
        return layers
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise ValueError("layers: expected a non-empty list of (W, b, negative_slope) tuples")
    layers = list(layers)
    if layers[-1][2] is None:  # an output layer without activation adds no bits
        layers = layers[:-1]
    if not layers:
        raise ValueError("layers: expected at least one activated layer")
    prepped = []
    d_prev = None
    for i, item in enumerate(layers):
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise TypeError(f"layers[{i}]: expected a (W, b, negative_slope) tuple, got {type(item).__name__}")
        A, b, s = item
        A = torch.as_tensor(A).to(device=device, dtype=torch.float32)
        if A.ndim != 2:
            raise ValueError(f"layers[{i}]: expected W of shape (out, in), got shape {tuple(A.shape)}")
        out, d = A.shape
        if d_prev is not None and d != d_prev:
            raise ValueError(f"layers[{i}]: expected W with {d_prev} inputs (previous layer's width), got {d}")
        if s is None:
            raise ValueError(f"layers[{i}]: only the last layer may have no activation (negative_slope=None)")
        b = torch.zeros(out, device=device) if b is None else torch.as_tensor(b).to(device=device, dtype=torch.float32)
        if b.shape != (out,):
            raise ValueError(f"layers[{i}]: expected a bias of shape ({out},), got {tuple(b.shape)}")
        # A plain number becomes a device fill (no host-to-device copy to wait for).
        s = torch.full((), float(s), device=device) if isinstance(s, (int, float)) else \
            torch.as_tensor(s).to(device=device, dtype=torch.float32)
        if s.ndim == 0:
            s = s.expand(out)
        if s.shape != (out,):
            raise ValueError(f"layers[{i}]: expected a scalar or ({out},) negative_slope, got shape {tuple(s.shape)}")
        prepped.append((A.t().contiguous(), b.contiguous(), s.contiguous()))
        d_prev = out
    sizes = tuple(int(a.shape[1]) for a, _, _ in prepped)
    n_layers = len(sizes)
    hp = max(16, _next_pow2(max(sizes)))
    fused = hp <= FUSED_MAX_WIDTH
    d_in = int(prepped[0][0].shape[0])
    woff = layer_offsets(sizes)[:-1]
    bias = torch.zeros((n_layers, hp), device=device)
    slope = torch.zeros((n_layers, hp), device=device)
    wh = torch.zeros((max(n_layers - 1, 1), hp, hp), device=device) if fused else torch.zeros(1, device=device)
    w0t = torch.zeros((-(-d_in // W0_ROWS) * W0_ROWS, hp), device=device) if fused else torch.zeros(1, device=device)
    for l, (at, b, s) in enumerate(prepped):
        o = at.shape[1]
        bias[l, :o] = b
        slope[l, :o] = s
        if fused:
            if l == 0:
                w0t[:d_in, :o] = at
            else:
                wh[l - 1, : at.shape[0], :o] = at
    return MLPStack(
        sizes, d_in, hp, fused, w0t, wh, bias, slope,
        small_array(sizes, torch.int32, device),
        small_array(woff, torch.int32, device),
        tuple(prepped),
    )


@triton.jit
def _pack_store(pre, l, offs_m, mm, SIZES, WOFF, OUT, sout, BM: tl.constexpr, HP: tl.constexpr,
                UPW: tl.constexpr):
    """Sign bits of ``pre`` (BM, HP) -> packed words of layer ``l``, stored to OUT."""
    size = tl.load(SIZES + l)
    woff = tl.load(WOFF + l)
    unit = tl.arange(0, HP)
    bits = ((pre >= 0) & (unit[None, :] < size)).to(tl.int32)
    bits = tl.reshape(bits, (BM, HP // UPW, UPW))
    # Disjoint bits: the sum is their OR (no carries, also for bit 31).
    words = tl.sum(bits << tl.arange(0, UPW)[None, None, :], axis=2)
    wi = tl.arange(0, HP // UPW)
    nw = (size + 31) // 32
    ptr = OUT + offs_m.to(tl.int64)[:, None] * sout + woff + wi[None, :]
    tl.store(ptr, words, mask=mm[:, None] & (wi[None, :] < nw))


# float32's largest finite value: |x| above it is infinite.
_FLT_MAX = tl.constexpr(3.4028234663852886e38)


@triton.jit
def _flag_nonfinite(pre, l, mm, mu, FLAGS):
    """Add layer ``l``'s non-finite pre-activations (rows ``mm``, units ``mu``) and the rows
    holding any to ``FLAGS[2 l]`` and ``FLAGS[2 l + 1]`` (int64; atomics only when some)."""
    bad = ((pre != pre) | (tl.abs(pre) > _FLT_MAX)) & mm[:, None] & mu[None, :]
    per_row = tl.sum(bad.to(tl.int32), axis=1)
    count = tl.sum(per_row, axis=0)
    if count > 0:
        tl.atomic_add(FLAGS + 2 * l, count.to(tl.int64))
        tl.atomic_add(FLAGS + 2 * l + 1, tl.sum((per_row > 0).to(tl.int32), axis=0).to(tl.int64))


@triton.jit
def _encode_block(X, N, D, sxn, W0T, WH, BIAS, SLOPE, SIZES, WOFF, OUT, sout, L, pid,
                  BM: tl.constexpr, BK: tl.constexpr, HP: tl.constexpr, UPW: tl.constexpr,
                  PREC: tl.constexpr, TMA: tl.constexpr = False, STAGES: tl.constexpr = 3,
                  FLAGS=None, CHECK: tl.constexpr = False):
    """Encode rows ``[pid * BM, (pid + 1) * BM)``; ``X`` is a tensor descriptor when ``TMA``.

    ``CHECK``: count non-finite pre-activations per layer into ``FLAGS`` (see
    :func:`_flag_nonfinite`). A NaN or infinity in a row of X makes every layer-0
    pre-activation of that row non-finite (``0 * inf`` is NaN, and NaN and inf propagate
    through sums, in every precision mode), so layer 0's row count is the number of rows
    of X holding one (or overflowing float32 in the first product): X is checked without
    a second pass over it."""
    offs_m = pid * BM + tl.arange(0, BM)
    mm = offs_m < N
    hcol = tl.arange(0, HP)
    ak = tl.arange(0, BK)
    if not TMA:
        xrow = X + offs_m.to(tl.int64)[:, None] * sxn
    acc = tl.zeros((BM, HP), dtype=tl.float32)
    for k0 in tl.range(0, D, BK, num_stages=STAGES):
        kk = k0 + ak
        if TMA:
            # Bulk tensor load: rows past N and columns past D arrive as zeros, and W0T's
            # rows past D are zero.
            x = X.load([pid * BM, k0])
            w = tl.load(W0T + kk[:, None] * HP + hcol[None, :])
        else:
            mk = kk < D
            x = tl.load(xrow + kk[None, :], mask=mm[:, None] & mk[None, :], other=0.0)
            w = tl.load(W0T + kk[:, None] * HP + hcol[None, :], mask=mk[:, None], other=0.0)
        acc = tl.dot(x, w, acc, input_precision=PREC)
    pre = acc + tl.load(BIAS + hcol)[None, :]
    if CHECK:
        _flag_nonfinite(pre, 0, mm, hcol < tl.load(SIZES), FLAGS)
    _pack_store(pre, 0, offs_m, mm, SIZES, WOFF, OUT, sout, BM, HP, UPW)
    h = tl.where(pre >= 0, pre, pre * tl.load(SLOPE + hcol)[None, :])
    for l in range(1, L):
        w = tl.load(WH + (l - 1) * HP * HP + hcol[:, None] * HP + hcol[None, :])
        pre = tl.dot(h, w, input_precision=PREC) + tl.load(BIAS + l * HP + hcol)[None, :]
        if CHECK:
            _flag_nonfinite(pre, l, mm, hcol < tl.load(SIZES + l), FLAGS)
        _pack_store(pre, l, offs_m, mm, SIZES, WOFF, OUT, sout, BM, HP, UPW)
        h = tl.where(pre >= 0, pre, pre * tl.load(SLOPE + l * HP + hcol)[None, :])
    return offs_m, mm


@triton.jit
def _fused_encode_kernel(X, N, D, sxn, W0T, WH, BIAS, SLOPE, SIZES, WOFF, OUT, sout, L, FLAGS,
                         BM: tl.constexpr, BK: tl.constexpr, HP: tl.constexpr, UPW: tl.constexpr,
                         PREC: tl.constexpr, TMA: tl.constexpr, STAGES: tl.constexpr, CHECK: tl.constexpr):
    """Row blocks ``program_id(0), + num_programs(0), ...`` (one each unless the grid is persistent)."""
    if TMA:
        X = tl.make_tensor_descriptor(X, shape=[N, D], strides=[sxn, 1], block_shape=[BM, BK])
    for blk in range(tl.program_id(0), tl.cdiv(N, BM), tl.num_programs(0)):
        _encode_block(X, N, D, sxn, W0T, WH, BIAS, SLOPE, SIZES, WOFF, OUT, sout, L, blk,
                      BM, BK, HP, UPW, PREC, TMA, STAGES, FLAGS, CHECK)


@triton.jit
def _layer_kernel(X, WT, BIAS, SLOPE, OUT, HOUT, N, D, H, sxn, sout, shn, woff, FLAGS, layer,
                  WRITE_H: tl.constexpr, BM: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr,
                  PREC: tl.constexpr, CHECK: tl.constexpr):
    """One layer: (BM rows, BH units) tile of pre-activations -> words (+ activations)."""
    pid_m = tl.program_id(0)
    pid_h = tl.program_id(1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_h = pid_h * BH + tl.arange(0, BH)
    mm = offs_m < N
    mh = offs_h < H
    ak = tl.arange(0, BK)
    xrow = X + offs_m.to(tl.int64)[:, None] * sxn
    acc = tl.zeros((BM, BH), dtype=tl.float32)
    for k0 in range(0, D, BK):
        kk = k0 + ak
        mk = kk < D
        x = tl.load(xrow + kk[None, :], mask=mm[:, None] & mk[None, :], other=0.0)
        w = tl.load(WT + kk[:, None] * H + offs_h[None, :], mask=mk[:, None] & mh[None, :], other=0.0)
        acc = tl.dot(x, w, acc, input_precision=PREC)
    pre = acc + tl.load(BIAS + offs_h, mask=mh, other=0.0)[None, :]
    if CHECK:
        _flag_nonfinite(pre, layer, mm, mh, FLAGS)
    bits = ((pre >= 0) & mh[None, :]).to(tl.int32)
    bits = tl.reshape(bits, (BM, BH // 32, 32))
    words = tl.sum(bits << tl.arange(0, 32)[None, None, :], axis=2)
    wi = pid_h * (BH // 32) + tl.arange(0, BH // 32)
    om = offs_m.to(tl.int64)
    tl.store(OUT + om[:, None] * sout + woff + wi[None, :], words,
             mask=mm[:, None] & (wi[None, :] < (H + 31) // 32))
    if WRITE_H:
        h = tl.where(pre >= 0, pre, pre * tl.load(SLOPE + offs_h, mask=mh, other=0.0)[None, :])
        tl.store(HOUT + om[:, None] * shn + offs_h[None, :], h, mask=mm[:, None] & mh[None, :])


def _check_x(X: Any, d_in: int) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X: expected a torch.Tensor, got {type(X).__name__}")
    if X.ndim != 2 or X.shape[1] != d_in:
        raise ValueError(f"X: expected shape (N, {d_in}), got {tuple(X.shape)}")
    if not X.is_floating_point():
        raise TypeError(f"X: expected a floating-point tensor, got {X.dtype}")
    return X.to(torch.float32).contiguous()


def _fused_config(hp: int) -> dict:
    """Tiles of the fused kernel: fewer rows when the layers are wide (see ``encode_mlp``)."""
    if hp <= 32:
        return dict(ENCODER_CONFIG)
    bm, bk = (64, 32) if hp <= 64 else (32, 32)
    return dict(bm=bm, bk=bk, num_warps=4, num_stages=3, tma=False, programs=None)


@guarded("X")
def encode_mlp(layers: Sequence[tuple] | MLPStack, X: torch.Tensor, *, precision: str = "tf32x3",
               fused: bool | None = None, config: dict | None = None, check_finite: bool = True) -> torch.Tensor:
    """Packed VQ codes of an MLP, computed on the GPU (or in the Triton interpreter).

    Parameters
    ----------
    layers : list of (W, b, negative_slope), or an :class:`MLPStack`
        ``W`` tensor (out, in); ``b`` tensor (out,) or None; ``negative_slope`` 0.0 for
        ReLU, a float for LeakyReLU, a tensor (out,) for PReLU. The last entry may have
        ``negative_slope=None`` (an output layer without activation): it adds no bits.
        :func:`prepare_mlp` of them saves the preparation on repeated calls.
    X : torch.Tensor, float, shape (N, in)
        Inputs (cast to float32), on the device the kernels run on.
    precision : {"tf32x3", "ieee", "tf32"}
        float32 dot-product mode (see the module docstring for the tolerance).
    fused : bool, optional
        Force the one-launch kernel (True) or one launch per layer (False); default:
        fused while every layer is at most ``FUSED_MAX_WIDTH`` wide.
    config : dict, optional
        Tuning of the fused kernel, any of ``bm`` and ``bk`` (row and K block),
        ``num_warps``, ``num_stages`` (K-loop pipelining depth), ``tma`` (bulk tensor
        loads of X, where the GPU and X's row alignment allow) and ``programs`` (a
        persistent grid of that many programs; None: one per row block). Defaults by
        width (``ENCODER_CONFIG`` for layers of at most 32 units, measured on an H200).
    check_finite : bool
        Count non-finite pre-activations per layer inside the kernels (no separate pass
        over X) and raise a ``ValueError`` naming the first such layer and how many
        values and rows; costs one small device-to-host read after the launch.

    Returns
    -------
    torch.Tensor, int32, shape (N, W)
        Words in the Codes layout for ``layer_sizes = mlp_layer_sizes(layers)``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    dev = X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    st = prepare_mlp(layers, dev)
    X = _check_x(X, st.d_in)
    n = X.shape[0]
    n_words = layer_offsets(st.sizes)[-1]
    use_fused = st.fused if fused is None else bool(fused)
    if use_fused and not st.fused:
        raise ValueError(f"fused: a layer of width {max(st.sizes)} exceeds FUSED_MAX_WIDTH={FUSED_MAX_WIDTH}")
    # Every word of every row is written by the kernels (padding bits as zeros).
    out = torch.empty((n, n_words), dtype=torch.int32, device=dev)
    if n == 0:
        return out
    flags = torch.zeros((len(st.sizes), 2), dtype=torch.int64, device=dev) if check_finite else out
    if use_fused:
        cfg = _fused_config(st.hp)
        unknown = set(config or {}) - set(cfg)
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}; expected some of {sorted(cfg)}")
        cfg.update(config or {})
        bm, bk = int(cfg["bm"]), int(cfg["bk"])
        if bk > W0_ROWS:
            raise ValueError(f"config: bk must be at most {W0_ROWS}, got {bk}")
        tma = bool(cfg["tma"]) and tma_ok(X)
        if tma:
            ensure_allocator(X.device)
        blocks = triton.cdiv(n, bm)
        programs = blocks if cfg["programs"] is None else max(1, min(blocks, int(cfg["programs"])))
        launch(
            _fused_encode_kernel, (programs,),
            X, n, st.d_in, X.stride(0), st.w0t, st.wh, st.bias, st.slope, st.sizes_t, st.woff_t, out,
            out.stride(0), len(st.sizes), flags, BM=bm, BK=bk, HP=st.hp, UPW=min(32, st.hp), PREC=precision,
            TMA=tma, STAGES=int(cfg["num_stages"]), CHECK=bool(check_finite), num_warps=int(cfg["num_warps"]),
        )
        if check_finite:
            _raise_nonfinite(flags, layers, n)
        return out
    h = X
    woffs = layer_offsets(st.sizes)
    for l, (wt, b, s) in enumerate(st.layers):
        d, width = wt.shape
        last = l == len(st.layers) - 1
        hout = h if last else torch.empty((n, width), dtype=torch.float32, device=dev)
        bm, bh, bk = 64, 64, 32
        launch(
            _layer_kernel, (triton.cdiv(n, bm), triton.cdiv(width, bh)),
            h, wt, b, s, out, hout, n, d, width, h.stride(0), out.stride(0), hout.stride(0), woffs[l], flags, l,
            WRITE_H=not last, BM=bm, BH=bh, BK=bk, PREC=precision, CHECK=bool(check_finite), num_warps=4,
        )
        h = hout
    if check_finite:
        _raise_nonfinite(flags, layers, n)
    return out


def _raise_nonfinite(flags: torch.Tensor, layers: Any, n: int) -> None:
    """Raise a ``ValueError`` for the first layer with non-finite pre-activations."""
    counts = flags.cpu()
    bad = torch.nonzero(counts[:, 0]).flatten()
    if bad.numel() == 0:
        return
    l = int(bad[0])
    values, rows = int(counts[l, 0]), int(counts[l, 1])
    names = getattr(layers, "names", ()) or ()
    label = f"layer {l} ({names[l]!r})" if l < len(names) else f"layer {l}"
    if l == 0:
        raise ValueError(
            f"X: expected finite values, got NaN or inf in {rows} of {n} rows (or values that overflow float32): "
            f"{values} pre-activations of {label} are not finite"
        )
    raise ValueError(
        f"X: the inputs are finite but {label} overflows float32: {values} of its pre-activations are not "
        f"finite, in {rows} of {n} rows"
    )


@triton.jit
def _query_kernel(X, N, D, sxn, W0T, WH, BIAS, SLOPE, SIZES, WOFF, CODES, scn, L,
                  REF, M, srn, DOUT, son, LOFF, WGT, NL, chunk,
                  WEIGHTED: tl.constexpr, FLOAT_ACC: tl.constexpr, HW: tl.constexpr,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, HP: tl.constexpr,
                  UPW: tl.constexpr, PREC: tl.constexpr, NW: tl.constexpr, TMA: tl.constexpr):
    """Encode BM query rows, then their distances to reference rows [chunk * pid_s, ...)."""
    if TMA:
        X = tl.make_tensor_descriptor(X, shape=[N, D], strides=[sxn, 1], block_shape=[BM, BK])
    offs_m, mm = _encode_block(X, N, D, sxn, W0T, WH, BIAS, SLOPE, SIZES, WOFF, CODES, scn, L,
                               tl.program_id(0), BM, BK, HP, UPW, PREC, TMA)
    # The block's words were just written by other threads of this program; the
    # barrier makes them visible (they stay in L1/L2).
    tl.debug_barrier()
    qrow = CODES + offs_m.to(tl.int64) * scn
    c0 = tl.program_id(1) * chunk
    c1 = tl.minimum(c0 + chunk, M)
    for n0 in range(c0, c1, BN):
        offs_n = n0 + tl.arange(0, BN)
        mn = offs_n < c1
        rrow = REF + offs_n.to(tl.int64) * srn
        total = word_distance(qrow, rrow, mm, mn, LOFF, WGT, NL, WEIGHTED, FLOAT_ACC, HW, BM, BN, NW)
        ptr = DOUT + offs_m.to(tl.int64)[:, None] * son + offs_n[None, :]
        tl.store(ptr, total.to(DOUT.dtype.element_ty), mask=mm[:, None] & mn[None, :])


@guarded("Xq")
def query_distances(layers: Sequence[tuple], Xq: torch.Tensor, ref_words: torch.Tensor, weights: Any = None,
                    out_dtype: torch.dtype = torch.int32, *, fused: bool | None = None,
                    precision: str = "tf32x3", splits: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances from new inputs to stored reference codes: encode and compare in one pass.

    Parameters
    ----------
    layers, precision
        As in :func:`encode_mlp`.
    Xq : torch.Tensor, float, shape (Nq, in)
        Query inputs.
    ref_words : torch.Tensor, int32, shape (M, W)
        Reference codes of the same network (Codes layout).
    weights, out_dtype
        As in :func:`vqgeom.kernels.triton.hamming.pairwise_hamming`.
    fused : bool, optional
        One launch (encode + distance) or :func:`encode_mlp` then ``pairwise_hamming``;
        default ``FUSED_QUERY_DEFAULT`` (the faster one as measured on an H100/H200).
    splits : int, optional
        Reference-set chunks per query block in the fused kernel (default: enough
        programs to fill the GPU; each chunk re-encodes its query block).

    Returns
    -------
    distances : torch.Tensor, (Nq, M), ``out_dtype``
    query_words : torch.Tensor, int32, (Nq, W)
    """
    from .hamming import pairwise_hamming, prepare_weights, static_words, weight_dtype

    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    dev = Xq.device if isinstance(Xq, torch.Tensor) else torch.device("cpu")
    st = prepare_mlp(layers, dev)
    offs = layer_offsets(st.sizes)
    check_words("ref_words", ref_words, offs[-1])
    if ref_words.device != dev:
        raise ValueError(f"ref_words: expected a tensor on {dev} like Xq, got {ref_words.device}")
    use_fused = FUSED_QUERY_DEFAULT if fused is None else bool(fused)
    if not st.fused:
        use_fused = False
    if not use_fused:
        qw = encode_mlp(layers, Xq, precision=precision)
        return pairwise_hamming(qw, ref_words, st.sizes, weights, out_dtype), qw
    w, float_acc, _ = prepare_weights(st.sizes, weights, out_dtype)
    Xq = _check_x(Xq, st.d_in)
    ref_words = ref_words.contiguous()
    n, m = Xq.shape[0], ref_words.shape[0]
    qw = torch.zeros((n, offs[-1]), dtype=torch.int32, device=dev)
    dist = torch.empty((n, m), dtype=out_dtype, device=dev)
    if n == 0:
        return dist, qw
    if w is None:
        loff = small_array([0, offs[-1]], torch.int32, dev)
        wgt, nl = loff, 1
    else:
        loff = small_array(offs, torch.int32, dev)
        wgt = small_array(w, weight_dtype(float_acc), dev)
        nl = len(st.sizes)
    cfg = _fused_config(st.hp)
    bm, bk, nw = cfg["bm"], cfg["bk"], cfg["num_warps"]
    tma = bool(cfg["tma"]) and tma_ok(Xq)
    if tma:
        ensure_allocator(Xq.device)
    bn = 64
    blocks = triton.cdiv(n, bm)
    if splits is None:
        splits = max(1, min(triton.cdiv(m, bn), triton.cdiv(4 * device_info(Xq).sm_count, blocks)))
    chunk = triton.cdiv(triton.cdiv(max(m, 1), splits), bn) * bn
    # Reference chunks go along the grid's y axis: at most 65,535 of them.
    chunk = max(chunk, triton.cdiv(triton.cdiv(max(m, 1), 65535), bn) * bn)
    splits = max(1, triton.cdiv(m, chunk))
    launch(
        _query_kernel, (blocks, splits),
        Xq, n, st.d_in, Xq.stride(0), st.w0t, st.wh, st.bias, st.slope, st.sizes_t, st.woff_t, qw, qw.stride(0),
        len(st.sizes), ref_words, m, ref_words.stride(0), dist, dist.stride(0), loff, wgt, nl, chunk,
        WEIGHTED=w is not None, FLOAT_ACC=int(float_acc), HW=hw_popcount(Xq), BM=bm, BN=bn, BK=bk, HP=st.hp,
        UPW=min(32, st.hp), PREC=precision, NW=static_words(offs[-1], w is not None), TMA=tma, num_warps=nw,
    )
    return dist, qw
