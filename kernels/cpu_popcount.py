"""Exact CPU distances by XOR-popcount over the packed 32-bit words, compiled by numba.

Imported lazily by :mod:`vqgeom.kernels.cpu` (``import vqgeom`` does not load numba).

The micro-kernel (:func:`_micro`) is written in LLVM IR with explicit vector types, so the
register tiling does not depend on the loop vectoriser: it holds an ``R x V`` tile of
running counts in vector registers, ``R`` rows of ``x`` against ``V`` vectors of ``LANES``
columns of ``y``, and for each 32-bit word ``k`` loads the ``V`` vectors of ``y`` once,
broadcasts each row's word and does ``XOR``, ``popcount``, ``add`` per accumulator. Each
loaded ``y`` vector is used ``R`` times and each broadcast ``V`` times. LLVM lowers the
vector popcount to ``VPOPCNTD`` where the CPU has AVX512_VPOPCNTDQ and to a nibble-table
(``PSHUFB``) sequence on AVX2; the tile shape is chosen from the target's features:
``LANES = 16, R = 4, V = 4`` (16 zmm accumulators of 32) with AVX-512, ``LANES = 8, R = 4,
V = 2`` (8 ymm accumulators of 16) otherwise. At the end of its words the micro-kernel
writes the tile straight into the result in the result's dtype (narrowed or widened in
registers).

``y`` is packed into panels of ``PW = LANES * V`` codes, ``yp[p, k, c]`` = word ``k`` of
code ``p * PW + c``: the words one tile reads are contiguous (a transposed ``y`` read at a
stride of ``4 M`` bytes puts a tile's rows in the same few L1 sets). Each tile of ``R``
rows runs along all panels (``yp`` is read from L2), so the result is written ``R`` rows
at a time, each row left to right: writing many rows at once (2-D blocks of the result)
was up to 3x slower at N = 4096 (the lines of many rows in flight), and so were result
rows not aligned to 64 bytes (the caller allocates aligned results).

Per-layer weights: layers start on fresh words (see :mod:`vqgeom.codes`), so layer ``l``
is the word range ``offs[l]:offs[l+1]``. Its counts ``h_l`` (uint32, from the micro-kernel
into a scratch tile) are combined as ``sum_l w_l h_l`` in uint64 for integer weights
(exact while the sum is below 2**64, checked by the caller; an optional exact final
divisor) or in float64 for real weights, added in layer order like the reference.
Unweighted distances make one pass over all words (padding bits are zero on both sides).

Symmetric inputs (``y is x``) with at least :data:`SYM_MIN_WORDS` words: a block of
``IB`` rows computes only its columns from its diagonal on, then copies each ``IB x IB``
tile right of its diagonal block, transposed in registers (:func:`_transpose`, whole
64-byte rows in and out), into the lower triangle; those stores are non-temporal where the
result's rows are 64-byte aligned and the result is large. With fewer words the copy
costs about what the popcounts it saves cost, and the full matrix is computed.

Threads: blocks of rows are dealt to Python threads (the kernels release the GIL), so no
numba threading layer is involved and concurrent callers are safe; with the symmetric
saving the blocks are dealt round-robin (their work shrinks along the diagonal).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["pairwise", "tile_shape", "MODE_TOTAL", "MODE_PER_LAYER", "MODE_INT_WEIGHTS", "MODE_REAL_WEIGHTS"]

MODE_TOTAL, MODE_PER_LAYER, MODE_INT_WEIGHTS, MODE_REAL_WEIGHTS = 0, 1, 2, 3


def _wide_vectors() -> bool:
    """True where numba compiles for a CPU with 512-bit integer vectors (AVX-512 F and BW).

    Decided from numba's own target (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` or the
    host), which is also what numba keys its on-disk cache on, so a cached kernel always
    matches this choice. A named target other than the host is taken as without AVX-512
    unless its features say otherwise."""
    from numba.core import config

    feats = config.CPU_FEATURES
    if feats is None and config.CPU_NAME in (None, "host"):
        import llvmlite.binding as llvm

        host = llvm.get_host_cpu_features()
        return bool(host.get("avx512f") and host.get("avx512bw"))
    feats = feats or ""
    return "+avx512f" in feats and "+avx512bw" in feats


_WIDE = _wide_vectors()
LANES = 16 if _WIDE else 8  # 32-bit lanes per vector register
R = 4  # rows of x per tile
V = 4 if _WIDE else 2  # vectors of y per tile
PW = LANES * V  # codes per panel of y (columns per tile)
IB = 64  # rows per block: a multiple of R and of PW; the symmetric case mirrors IB x IB tiles
# The symmetric saving from this many words on. Measured here (one code set against itself
# vs. against a copy, N = 1024 and 4096): 1.06x faster at 9 words alone but slower between
# faiss calls (cold caches: the mirror's reads and writes miss), 1.12-1.22x at 12 words,
# 1.4x at 20-24 words; below 9 words the mirrored copy costs what the popcounts it saves cost.
SYM_MIN_WORDS = 12
# At most one thread per MIN_WORK_PER_THREAD pairs of words (see pairwise).
MIN_WORK_PER_THREAD = 1 << 22
# Non-temporal stores for results of at least NT_MIN_BYTES (an L2 cache here: smaller
# results, e.g. the blocks a streaming caller reduces right away, are better left in the
# cache) with 64-byte aligned rows: they save reading each line of the result before it is
# overwritten. Between faiss calls (the result not in cache when the call starts) they took
# N = 1024 from 0.95 to 0.71 ms at B = 1024 and from 0.18 to 0.11 ms at B = 64, and N = 4096,
# B = 64 from 1.8 to 1.45 ms. Used for the mirrored tiles and, without the symmetric saving,
# for the kernel's own tiles; not for the kernel's tiles in the symmetric case, whose
# upper-triangle tiles are read back for the mirror right after.
NT_MIN_BYTES = 1 << 20
NT_DIRECT = True
NT_MIRROR = True


def tile_shape() -> dict:
    """The micro-kernel's shape on this target: ``lanes``, ``rows`` (R), ``vectors`` (V),
    ``panel`` (PW), ``block`` (IB), ``sym_min_words``."""
    return {"lanes": LANES, "rows": R, "vectors": V, "panel": PW, "block": IB, "sym_min_words": SYM_MIN_WORDS}


def _store_convert(builder, vec, elty):
    """``vec`` (<LANES x i32>) converted to a vector of the numba scalar type ``elty``."""
    n = vec.type.count
    if isinstance(elty, types.Integer):
        bits = elty.bitwidth
        it = ir.VectorType(ir.IntType(bits), n)
        if bits < 32:
            return builder.trunc(vec, it)
        if bits > 32:
            return builder.zext(vec, it)
        return vec
    if elty == types.float64:
        return builder.uitofp(vec, ir.VectorType(ir.DoubleType(), n))
    if elty == types.float32:
        return builder.uitofp(vec, ir.VectorType(ir.FloatType(), n))
    raise TypeError(f"unsupported result dtype {elty}")


def _stores(builder, vals, ptrs, nt):
    """Store ``vals`` at ``ptrs``: non-temporal (aligned to the vector's size) where the
    runtime flag ``nt`` is set, plain unaligned stores otherwise."""
    with builder.if_else(nt) as (then, otherwise):
        with then:
            md = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
            for val, ptr in zip(vals, ptrs):
                size = val.type.count * (val.type.element.width // 8 if isinstance(val.type.element, ir.IntType)
                                         else (8 if isinstance(val.type.element, ir.DoubleType) else 4))
                st = builder.store(val, ptr, align=min(size, 64))
                st.set_metadata("nontemporal", md)
        with otherwise:
            for val, ptr in zip(vals, ptrs):
                builder.store(val, ptr, align=1)


@intrinsic
def _micro(typingctx, x, r0, yp, p, k0, k1, d, drow, dcol, nt):
    """``d[drow + r, dcol + c] = sum_{k0 <= k < k1} popcount(x[r0 + r, k] ^ yp[p, k, c])`` for
    ``r < R``, ``c < PW`` (rows ``r0 .. r0 + R - 1`` of ``x`` and the panel's columns must
    exist, and so must the destination rectangle). ``nt``: non-temporal stores (the caller
    guarantees that ``d[drow + r, dcol]`` is 64-byte aligned)."""
    if not (
        isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" and x.dtype == types.uint32
        and isinstance(yp, types.Array) and yp.ndim == 3 and yp.layout == "C" and yp.dtype == types.uint32
        and isinstance(d, types.Array) and d.ndim == 2 and d.layout == "C"
    ):
        return None
    elty = d.dtype
    sig = types.void(x, types.intp, yp, types.intp, types.intp, types.intp, d, types.intp, types.intp, types.boolean)

    def codegen(context, builder, signature, args):
        xa, r0v, ypa, pv, k0v, k1v, da, drowv, dcolv, ntv = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vt = ir.VectorType(i32, LANES)
        X = context.make_array(x)(context, builder, xa)
        Y = context.make_array(yp)(context, builder, ypa)
        D = context.make_array(d)(context, builder, da)
        w = cgutils.unpack_tuple(builder, X.shape, 2)[1]
        dm = cgutils.unpack_tuple(builder, D.shape, 2)[1]
        mod = builder.module
        name = f"llvm.ctpop.v{LANES}i32"
        ctpop = cgutils.get_or_insert_function(mod, ir.FunctionType(vt, [vt]), name)
        zero = ir.Constant(vt, [ir.Constant(i32, 0)] * LANES)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(V)] for _ in range(R)]
        mask = ir.Constant(ir.VectorType(i32, LANES), [ir.Constant(i32, 0)] * LANES)
        undef = ir.Constant(vt, ir.Undefined)
        pw = ir.Constant(i64, PW)
        ybase0 = builder.mul(builder.mul(pv, w), pw)
        xrows = [builder.mul(builder.add(r0v, ir.Constant(i64, r)), w) for r in range(R)]
        def step(k, first):
            """Word ``k``: the tile's counts set (``first``) or incremented."""
            ybase = builder.add(ybase0, builder.mul(k, pw))
            ys = []
            for v in range(V):
                ptr = builder.gep(Y.data, [builder.add(ybase, ir.Constant(i64, v * LANES))])
                ys.append(builder.load(builder.bitcast(ptr, vt.as_pointer()), align=4))
            for r in range(R):
                xe = builder.load(builder.gep(X.data, [builder.add(xrows[r], k)]))
                xb = builder.shuffle_vector(builder.insert_element(undef, xe, ir.Constant(i32, 0)), undef, mask)
                for v in range(V):
                    c = builder.call(ctpop, [builder.xor(xb, ys[v])])
                    builder.store(c if first else builder.add(builder.load(accs[r][v]), c), accs[r][v])

        # The first word sets the counts (no add of zeros), the others add to them.
        with builder.if_then(builder.icmp_signed("<", k0v, k1v)):
            step(k0v, True)
            with cgutils.for_range_slice(builder, builder.add(k0v, ir.Constant(i64, 1)), k1v, ir.Constant(i64, 1)) as (k, _):
                step(k, False)
        vals = [[_store_convert(builder, builder.load(accs[r][v]), elty) for v in range(V)] for r in range(R)]
        ptrs = []
        for r in range(R):
            rowbase = builder.add(builder.mul(builder.add(drowv, ir.Constant(i64, r)), dm), dcolv)
            for v in range(V):
                ptr = builder.gep(D.data, [builder.add(rowbase, ir.Constant(i64, v * LANES))])
                ptrs.append(builder.bitcast(ptr, vals[r][v].type.as_pointer()))
        _stores(builder, [val for row in vals for val in row], ptrs, ntv)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _transpose(typingctx, src, si, sj, dst, di, dj, nt):
    """``dst[di + c, dj + r] = src[si + r, sj + c]`` for ``r, c < T``, ``T = 64 // itemsize``:
    one 64-byte row segment per row, transposed in registers by ``log2 T`` stages of
    two-source shuffles (stage ``h`` swaps the off-diagonal ``h x h`` blocks of every
    ``2h x 2h`` block), so every store writes a whole 64-byte segment. ``nt``: non-temporal
    stores (the caller guarantees 64-byte aligned destination rows)."""
    if not (
        isinstance(src, types.Array) and src.ndim == 2 and src.layout == "C"
        and isinstance(dst, types.Array) and dst.ndim == 2 and dst.layout == "C" and dst.dtype == src.dtype
    ):
        return None
    bits = src.dtype.bitwidth
    sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp, types.boolean)

    def codegen(context, builder, signature, args):
        sa, siv, sjv, da, div_, djv, ntv = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        t = 512 // bits
        et = ir.IntType(bits)
        vt = ir.VectorType(et, t)
        S = context.make_array(src)(context, builder, sa)
        D = context.make_array(dst)(context, builder, da)
        sm = cgutils.unpack_tuple(builder, S.shape, 2)[1]
        dm = cgutils.unpack_tuple(builder, D.shape, 2)[1]
        sdata = builder.bitcast(S.data, et.as_pointer())
        ddata = builder.bitcast(D.data, et.as_pointer())
        rows = []
        for r in range(t):
            idx = builder.add(builder.mul(builder.add(siv, ir.Constant(i64, r)), sm), sjv)
            rows.append(builder.load(builder.bitcast(builder.gep(sdata, [idx]), vt.as_pointer()), align=1))
        h = t // 2
        while h >= 1:
            m_lo = ir.Constant(ir.VectorType(i32, t), [ir.Constant(i32, c if not c & h else t + c - h) for c in range(t)])
            m_hi = ir.Constant(ir.VectorType(i32, t), [ir.Constant(i32, c + h if not c & h else t + c) for c in range(t)])
            for r in range(t):
                if r & h:
                    continue
                a, b = rows[r], rows[r + h]
                rows[r] = builder.shuffle_vector(a, b, m_lo)
                rows[r + h] = builder.shuffle_vector(a, b, m_hi)
            h //= 2
        ptrs = []
        for c in range(t):
            idx = builder.add(builder.mul(builder.add(div_, ir.Constant(i64, c)), dm), djv)
            ptrs.append(builder.bitcast(builder.gep(ddata, [idx]), vt.as_pointer()))
        _stores(builder, rows, ptrs, ntv)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, boundscheck=False)
def _pass(x, yp, n, m, d, k0, k1, i0, i1, p0, p1, scratch, nt):
    """``d[i0:i1, p0 * PW : p1 * PW]`` (clipped to ``n x m``) over the words ``k0:k1``:
    each row tile along all its panels (the result written ``R`` rows at a time). Tiles that
    stick out of the result go through ``scratch`` (R, PW). ``nt``: non-temporal stores for
    the whole tiles (the caller checked that ``d``'s rows are 64-byte aligned). One call a
    block of rows: calls with array arguments cost reference-count updates on arrays that
    all threads share."""
    for i in range(i0, i1, R):
        rows_in = i + R <= n
        for p in range(p0, p1):
            j0 = p * PW
            if rows_in and j0 + PW <= m:
                _micro(x, i, yp, p, k0, k1, d, i, j0, nt)
            else:
                _micro(x, i, yp, p, k0, k1, scratch, 0, 0, False)
                for r in range(min(R, n - i)):
                    for c in range(min(PW, m - j0)):
                        d[i + r, j0 + c] = scratch[r, c]


@njit(cache=True, nogil=True, boundscheck=False)
def _mirror(d, i0, i1, j0, j1, nt):
    """``d[j0:j1, i0:i1] = d[i0:i1, j0:j1].T`` for a square ``IB x IB`` tile right of the
    diagonal block (still in cache): ``T x T`` register transposes where the tile is
    whole, element by element at the matrix's edge."""
    t = 64 // d.itemsize
    if i1 - i0 == IB and j1 - j0 == IB:
        for a in range(0, IB, t):
            for b in range(0, IB, t):
                _transpose(d, i0 + a, j0 + b, d, j0 + b, i0 + a, nt)
    else:
        for j in range(j0, j1):
            for i in range(i0, i1):
                d[j, i] = d[i, j]


@njit(cache=True, nogil=True, boundscheck=False)
def _weighted_tile(x, yp, n, m, o, offs, mode, wint, divisor, wflt, i, p, s32, wi, wf):
    """``o[i:i+R, p*PW:(p+1)*PW]`` (clipped) = ``sum_l w_l h_l``: per-layer counts from the
    micro-kernel into ``s32``, combined in uint64 (``// divisor``) or float64."""
    n_layers = offs.shape[0] - 1
    j0 = p * PW
    for l in range(n_layers):
        _micro(x, i, yp, p, offs[l], offs[l + 1], s32, 0, 0, False)
        if mode == MODE_INT_WEIGHTS:
            w = wint[l]
            for r in range(R):
                for c in range(PW):
                    if l == 0:
                        wi[r, c] = w * np.uint64(s32[r, c])
                    else:
                        wi[r, c] += w * np.uint64(s32[r, c])
        else:
            v = wflt[l]
            for r in range(R):
                for c in range(PW):
                    if l == 0:  # the reference starts from 0.0: 0.0 + v * h == v * h (v * h >= 0)
                        wf[r, c] = v * np.float64(s32[r, c])
                    else:
                        wf[r, c] += v * np.float64(s32[r, c])
    for r in range(min(R, n - i)):
        for c in range(min(PW, m - j0)):
            if mode == MODE_INT_WEIGHTS:
                o[i + r, j0 + c] = wi[r, c] // divisor
            else:
                o[i + r, j0 + c] = wf[r, c]


@njit(cache=True, nogil=True, boundscheck=False)
def _blocks(x, yp, n, m, out, offs, mode, wint, divisor, wflt, sym, ntd, ntm, blocks, sdt, s32):
    """Fill the ``IB``-row blocks ``blocks`` (their indices) of ``out`` (P, n, m).

    Each row tile runs along all its panels (the result is written row band by row band).
    ``sym``: ``yp`` packs ``x`` itself; a block's row tiles start at the panel of its
    diagonal, then each ``IB x IB`` tile right of the diagonal block is mirrored.
    ``sdt``: an (R, PW) scratch tile of ``out``'s dtype; ``s32``: (R, PW) uint32 scratch;
    ``ntd`` / ``ntm``: non-temporal stores for the tiles / the mirrored tiles.
    """
    n_layers = offs.shape[0] - 1
    n_panels = yp.shape[0]
    wi = np.zeros((R, PW), np.uint64)
    wf = np.zeros((R, PW), np.float64)
    for bi in range(blocks.shape[0]):
        i0 = blocks[bi] * IB
        i1 = min(i0 + IB, n)
        p0 = (i0 // PW) if sym else 0
        if mode == MODE_TOTAL or mode == MODE_PER_LAYER:
            n_out = n_layers if mode == MODE_PER_LAYER else 1
            for l in range(n_out):
                d = out[l]
                k0 = offs[l] if mode == MODE_PER_LAYER else offs[0]
                k1 = offs[l + 1] if mode == MODE_PER_LAYER else offs[n_layers]
                _pass(x, yp, n, m, d, k0, k1, i0, i1, p0, n_panels, sdt, ntd)
        else:
            o = out[0]
            for i in range(i0, i1, R):
                for p in range(p0, n_panels):
                    _weighted_tile(x, yp, n, m, o, offs, mode, wint, divisor, wflt, i, p, s32, wi, wf)
        if sym:
            for l in range(out.shape[0]):
                d = out[l]
                for j0 in range(i0 + IB, m, IB):
                    _mirror(d, i0, i1, j0, min(j0 + IB, m), ntm)


_POOL: list = []


def _pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool of worker threads (created once; grown if more are asked for)."""
    if not _POOL or _POOL[0]._max_workers < threads:
        if _POOL:
            _POOL.pop().shutdown(wait=False)
        _POOL.append(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vqgeom-popcount"))
    return _POOL[0]


def _deal(n_blocks: int, threads: int, round_robin: bool) -> list[np.ndarray]:
    idx = np.arange(n_blocks, dtype=np.int64)
    if round_robin:
        parts = [idx[t::threads] for t in range(threads)]
    else:
        parts = np.array_split(idx, threads)
    return [c for c in parts if c.size]


def pack_panels(wy: np.ndarray) -> np.ndarray:
    """``yp[p, k, c]`` = ``wy[p * PW + c, k]`` (zeros past the last code): (ceil(M / PW), W, PW) uint32."""
    m, w = wy.shape
    n_panels = (m + PW - 1) // PW
    yp = np.zeros((n_panels * PW, w), np.uint32)
    yp[:m] = wy
    return np.ascontiguousarray(yp.reshape(n_panels, PW, w).transpose(0, 2, 1))


def pairwise(
    wx: np.ndarray,
    wy: np.ndarray | None,
    offs: Sequence[int],
    mode: int,
    out: np.ndarray,
    *,
    wint: np.ndarray | None = None,
    divisor: int = 1,
    wflt: np.ndarray | None = None,
    threads: int = 1,
    symmetric: bool | None = None,
    nontemporal: bool = True,
) -> np.ndarray:
    """Fill ``out`` (P, N, M) with XOR-popcount distances of packed uint32 words.

    Parameters
    ----------
    wx : ndarray uint32 (N, W)
    wy : ndarray uint32 (M, W) or None (``wy = wx``)
    offs : L + 1 word offsets of the layers (the last is W)
    mode : MODE_TOTAL (P = 1, unweighted), MODE_PER_LAYER (P = L), MODE_INT_WEIGHTS
        (P = 1, ``sum_l wint[l] h_l // divisor``, uint64 arithmetic: the caller checks
        ``sum_l wint[l] B_l < 2**64``) or MODE_REAL_WEIGHTS (P = 1, float64 ``sum_l wflt[l] h_l``)
    out : ndarray (P, N, M), C-contiguous, any integer dtype holding the result, or float64
    threads : int
        Python threads over row blocks (the kernels release the GIL); at most one per
        :data:`MIN_WORK_PER_THREAD` pairs of words.
    symmetric : bool or None
        With ``wy`` None: compute the upper triangle and mirror it. None: where the codes
        have at least :data:`SYM_MIN_WORDS` words.
    nontemporal : bool
        Allow non-temporal stores (results of at least :data:`NT_MIN_BYTES` with 64-byte
        aligned rows); False keeps the result in the caches (a caller about to read it).

    Memory: ``out``, the codes of ``y`` packed into panels (M x W words) and, where N is not
    a multiple of R, a padded copy of ``x``.
    """
    wx = np.ascontiguousarray(wx).view(np.uint32)
    n, w = wx.shape
    m = n if wy is None else wy.shape[0]
    if n == 0 or m == 0:
        return out
    yp = pack_panels(wx if wy is None else np.ascontiguousarray(wy).view(np.uint32))
    if n % R or not wx.flags.writeable:  # R rows always readable; one array type for numba
        xp = np.zeros(((n + R - 1) // R * R, w), np.uint32)
        xp[:n] = wx
        wx = xp
    offs_a = np.asarray(offs, dtype=np.int64)
    n_layers = max(1, len(offs_a) - 1)
    wint_a = np.ones(n_layers, np.uint64) if wint is None else np.asarray(wint, dtype=np.uint64)
    wflt_a = np.ones(n_layers, np.float64) if wflt is None else np.asarray(wflt, dtype=np.float64)
    sym = wy is None and (w >= SYM_MIN_WORDS if symmetric is None else bool(symmetric))
    n_blocks = (n + IB - 1) // IB
    # a thread per MIN_WORK_PER_THREAD word pairs at most (handing a block to a worker thread
    # costs tens of microseconds, as much as 1024 x 1024 distances of 64 bits)
    threads = max(1, min(int(threads), n_blocks, (n * m * max(w, 1)) // MIN_WORK_PER_THREAD))
    div = np.uint64(divisor)
    # Non-temporal stores where every row of the result starts on a 64-byte boundary and
    # the result is larger than the caches would keep (NT_MIN_BYTES): they skip reading
    # each line before overwriting it.
    nt = bool(
        nontemporal and out.ctypes.data % 64 == 0 and (m * out.itemsize) % 64 == 0 and out.nbytes >= NT_MIN_BYTES
        and mode in (MODE_TOTAL, MODE_PER_LAYER)
    )

    def job(blocks):
        sdt = np.empty((R, PW), out.dtype)
        s32 = np.empty((R, PW), np.uint32)
        _blocks(wx, yp, n, m, out, offs_a, mode, wint_a, div, wflt_a, sym, nt and NT_DIRECT and not sym, nt and NT_MIRROR, blocks, sdt, s32)

    parts = _deal(n_blocks, threads, sym)
    if len(parts) == 1:
        job(parts[0])
    else:
        ex = _pool(len(parts))
        for f in [ex.submit(job, b) for b in parts]:
            f.result()
    return out
