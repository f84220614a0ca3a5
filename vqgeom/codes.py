"""The one data convention: bit-packed activation codes.

Layout (every backend reads and writes exactly this):

* ``words`` is an ``(N, W)`` array of 32-bit words: ``numpy.uint32`` for numpy and
  cupy, ``torch.int32`` for torch (same bits; torch has no arithmetic on uint32).
* Units are in layer-major order. **Each layer starts on a fresh word**: layer ``l``
  occupies words ``[word_offsets[l], word_offsets[l] + ceil(B_l / 32))``, so a
  per-layer Hamming distance is a popcount over a contiguous word range and no
  kernel needs bit masks or guesses layer boundaries.
* Inside a layer, unit ``u`` is bit ``u % 32`` (little-endian: ``(word >> k) & 1``)
  of word ``word_offsets[l] + u // 32``. Padding bits are zero.
* A bit is set iff the unit's pre-activation is ``>= 0`` (the paper's convention).
* ``groups[l]`` says how layer ``l``'s bits are read. ``1``: plain bits, one per
  activation hyperplane (kink units, and max-type units over two candidates: bit set iff
  the first candidate ``a >= b``). ``g >= 3``: one-hot groups of ``g`` consecutive bits,
  one group per max-type unit (max-pooling window, maxout group), the set bit at the
  unit's argmax (first maximal candidate in the window's row-major order). Such a layer
  is *halved*: its unweighted distance is ``popcount(xor) / 2`` (exact: two different
  argmaxes differ in exactly two bits), so every unit adds at most 1.

:func:`pack_bits` is the only function that packs on the host; GPU encoders write
the same layout and are tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Any, Iterator, Sequence

import numpy as np

from ._arrays import array_module, to_numpy

__all__ = ["Codes", "pack_bits", "pack_layer_torch", "unpack_words", "layer_word_offsets", "words_per_layer"]


def words_per_layer(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    """Number of 32-bit words each layer occupies, ``ceil(B_l / 32)``."""
    return tuple((int(b) + 31) // 32 for b in layer_sizes)


def layer_word_offsets(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    """First word of each layer, plus the total word count as the last entry (length L + 1)."""
    offs = [0]
    for w in words_per_layer(layer_sizes):
        offs.append(offs[-1] + w)
    return tuple(offs)


def pack_bits(bits: np.ndarray, layer_sizes: Sequence[int]) -> np.ndarray:
    """Pack a boolean code matrix into the library's word layout.

    Parameters
    ----------
    bits : ndarray of bool, shape (N, sum(layer_sizes))
        Units in layer-major order.
    layer_sizes : sequence of int
        Units per layer, ``B_l >= 0``.

    Returns
    -------
    ndarray of uint32, shape (N, W)
        ``W = sum(ceil(B_l / 32))``; padding bits are zero.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"bits: expected a 2-D (N, B) array, got shape {bits.shape}")
    sizes = [int(b) for b in layer_sizes]
    if sum(sizes) != bits.shape[1]:
        raise ValueError(
            f"layer_sizes: expected units summing to bits.shape[1]={bits.shape[1]}, got {sizes} (sum {sum(sizes)})"
        )
    n = bits.shape[0]
    offs = layer_word_offsets(sizes)
    # Little-endian words: their bytes, in order, are the packed bytes below.
    out = np.zeros((n, offs[-1]), dtype="<u4")
    out_bytes = out.view(np.uint8)  # (n, 4 W)
    start = 0
    for l, b in enumerate(sizes):
        if b == 0:
            continue
        # bitorder='little' puts unit k at bit k % 8 of byte k // 8 (the last byte padded
        # with zeros); four consecutive little-endian bytes then form the uint32 word with
        # unit k at bit k % 32. Only the packed bytes are padded to whole words.
        part = bits[:, start : start + b]
        if b < 256:
            # Short rows: packbits along axis 1 pays per row; one flat call over rows padded
            # to whole bytes is several times faster.
            if b % 8 or not part.flags.c_contiguous:
                padded = np.zeros((n, -(-b // 8) * 8), dtype=bool)
                padded[:, :b] = part
                part = padded
            as_bytes = np.packbits(part.reshape(-1), bitorder="little").reshape(n, part.shape[1] // 8)
        else:
            as_bytes = np.packbits(part, axis=1, bitorder="little")
        nb = as_bytes.shape[1]
        if nb % 4 == 0 or nb in (1, 2):
            # Whole words, or one narrow word: assign as integers (faster than strided bytes).
            as_bytes = np.ascontiguousarray(as_bytes)
            width = {1: "<u1", 2: "<u2"}.get(nb, "<u4")
            nwords = -(-nb // 4)
            out[:, offs[l] : offs[l] + nwords] = as_bytes.view(width).reshape(n, nwords)
        else:  # the word's remaining bytes stay zero (padding)
            out_bytes[:, 4 * offs[l] : 4 * offs[l] + nb] = as_bytes
        start += b
    return out.astype(np.uint32, copy=False)


def pack_layer_torch(bits: Any) -> Any:
    """Pack one layer's boolean torch tensor ``(N, B)`` into ``(N, ceil(B / 32))`` int32 words
    on its own device (the layout of :func:`pack_bits`, which this is tested against).

    Used by the encoder so that codes of CUDA inputs never cross to the host bit by bit;
    temporary memory is one byte per bit of this layer.
    """
    import torch

    n, b = int(bits.shape[0]), int(bits.shape[1])
    nw = (b + 31) // 32
    by = bits.to(torch.uint8)
    if nw * 32 != b:
        by = torch.cat([by, torch.zeros((n, nw * 32 - b), dtype=torch.uint8, device=by.device)], dim=1)
    # Unit k goes to bit k % 8 of byte k // 8; four little-endian bytes make the word.
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=by.device)
    packed = (by.reshape(n, nw * 4, 8) * weights).sum(-1, dtype=torch.uint8)
    return packed.view(torch.int32).reshape(n, nw)


def unpack_words(words: np.ndarray, layer_sizes: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``(N, W)`` uint32 words -> ``(N, sum B_l)`` bool."""
    words = np.ascontiguousarray(words).view(np.uint32)
    sizes = [int(b) for b in layer_sizes]
    offs = layer_word_offsets(sizes)
    n = words.shape[0]
    # Explicit width: reshape(n, -1) is ambiguous (and raises) for n == 0 rows.
    as_bytes = words.astype("<u4", copy=False).view(np.uint8).reshape(n, 4 * words.shape[1])
    allbits = np.unpackbits(as_bytes, axis=1, bitorder="little").astype(bool)
    parts = [allbits[:, offs[l] * 32 : offs[l] * 32 + b] for l, b in enumerate(sizes)]
    if not parts:
        return np.zeros((n, 0), dtype=bool)
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True, eq=False)
class Codes:
    """Bit-packed VQ codes of N inputs.

    Attributes
    ----------
    words : array, shape (N, W)
        Packed words (see the module docstring for the layout). numpy ``uint32``,
        torch ``int32`` (any device) or cupy ``uint32``.
    layer_sizes : tuple of int
        Units (activation hyperplanes) per layer, ``B_l``.
    layer_names : tuple of str
        Where each layer's bits came from (module path and activation), for reports.
    groups : tuple of int
        Per layer: ``1`` for plain bits (default), ``g >= 3`` for one-hot groups of ``g``
        bits, one per max-type unit (``layer_sizes[l]`` is then a multiple of ``g``; see
        the module docstring). Such layers are halved in every distance: layer ``l``
        contributes ``w_l * popcount_l / 2``.
    """

    words: Any
    layer_sizes: tuple[int, ...]
    layer_names: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        sizes = _int_tuple(self.layer_sizes, "layer_sizes")
        object.__setattr__(self, "layer_sizes", sizes)
        if any(b < 0 for b in sizes):
            raise ValueError(f"layer_sizes: expected non-negative unit counts, got {sizes}")
        names = tuple(self.layer_names) or tuple(f"layer{l}" for l in range(len(sizes)))
        if len(names) != len(sizes):
            raise ValueError(f"layer_names: expected {len(sizes)} names, got {len(names)}")
        object.__setattr__(self, "layer_names", names)
        groups = _int_tuple(self.groups, "groups") or (1,) * len(sizes)
        if len(groups) != len(sizes):
            raise ValueError(f"groups: expected {len(sizes)} group widths (one per layer), got {len(groups)}")
        for l, (g, b) in enumerate(zip(groups, sizes)):
            if not (g == 1 or g >= 3) or b % g:
                raise ValueError(
                    f"groups: expected 1 (plain bits) or a one-hot width g >= 3 dividing the layer's size, got "
                    f"groups[{l}]={g} for layer_sizes[{l}]={b}"
                )
        object.__setattr__(self, "groups", groups)
        if not hasattr(self.words, "shape") or not hasattr(self.words, "dtype"):
            raise TypeError(
                f"words: expected a 2-D array of 32-bit words (numpy uint32, torch int32, cupy uint32), got "
                f"{type(self.words).__name__}; build codes from booleans with Codes.from_bits"
            )
        shape = tuple(self.words.shape)
        if len(shape) != 2 or shape[1] != layer_word_offsets(sizes)[-1]:
            raise ValueError(
                f"words: expected shape (N, {layer_word_offsets(sizes)[-1]}) for layer_sizes {sizes}, got {shape}"
            )
        xp = array_module(self.words)
        want = "int32" if xp == "torch" else "uint32"
        if str(self.words.dtype).replace("torch.", "") != want:
            raise TypeError(f"words: expected {want} words for a {xp} array, got dtype {self.words.dtype}")
        if xp == "dask":
            from ._dask import normalize_words

            object.__setattr__(self, "words", normalize_words(self.words))
        else:
            _check_padding(self.words, sizes)  # dask blocks are checked where they are computed

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_bits(
        cls, bits: Any, layer_sizes: Sequence[int], layer_names: Sequence[str] = (), groups: Sequence[int] = ()
    ) -> "Codes":
        """Pack an ``(N, sum B_l)`` boolean array (numpy or torch) into :class:`Codes`.

        The result's words have the input's array type and device.
        """
        words = pack_bits(to_numpy(bits).astype(bool, copy=False), layer_sizes)
        return cls(_like(words, bits), tuple(layer_sizes), tuple(layer_names), tuple(groups))

    @classmethod
    def _trusted(
        cls, words: np.ndarray, layer_sizes: tuple, layer_names: tuple, groups: tuple
    ) -> "Codes":
        """Codes from words the library packed itself, without the public constructor's checks.

        Internal: ``words`` must be a C-contiguous numpy uint32 (N, W) array in the layout of
        ``layer_sizes`` with zero padding, ``layer_sizes``/``groups`` tuples of int (one entry
        per layer) and ``layer_names`` a tuple of str of that length.
        """
        self = object.__new__(cls)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "layer_sizes", layer_sizes)
        object.__setattr__(self, "layer_names", layer_names)
        object.__setattr__(self, "groups", groups)
        return self

    # -- shape ------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of coded inputs (rows)."""
        return int(self.words.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def n_units(self) -> int:
        """Total number of units ``B = sum B_l``."""
        return sum(self.layer_sizes)

    @property
    def halved(self) -> tuple[bool, ...]:
        """Per layer, whether its distance is ``popcount / 2`` (one-hot groups, ``groups[l] >= 3``)."""
        return tuple(g >= 3 for g in self.groups)

    @property
    def n_units_per_layer(self) -> tuple[int, ...]:
        """Units per layer: bits, or groups for one-hot layers (``layer_sizes[l] // groups[l]``)."""
        return tuple(b // g for b, g in zip(self.layer_sizes, self.groups))

    @property
    def n_words(self) -> int:
        return int(self.words.shape[1])

    @property
    def word_offsets(self) -> tuple[int, ...]:
        """First word of each layer and, last, the total word count (length L + 1)."""
        return layer_word_offsets(self.layer_sizes)

    @property
    def array_type(self) -> str:
        """``'numpy'``, ``'torch'``, ``'cupy'`` or ``'dask'``: the type distances are returned in."""
        return array_module(self.words)

    def __repr__(self) -> str:
        dev = ""
        if self.array_type == "torch":
            dev = f", device={self.words.device}"
        grp = f", groups={self.groups}" if any(g != 1 for g in self.groups) else ""
        return f"Codes(n={self.n}, layer_sizes={self.layer_sizes}{grp}, array={self.array_type}{dev})"

    # -- conversion -------------------------------------------------------------------
    def words_numpy(self) -> np.ndarray:
        """The words as a host ``uint32`` numpy array (a view where possible)."""
        return to_numpy(self.words).view(np.uint32)

    def unpack(self) -> np.ndarray:
        """The codes as a host boolean array ``(N, B)``, bits in layer-major order.

        Plain layers (``groups[l] == 1``) give one bit per hyperplane. A one-hot layer
        (``groups[l] = g >= 3``) gives ``g`` bits per max-type unit, exactly one of them set:
        bit ``u * g + j`` of the layer is set iff unit ``u``'s argmax is candidate ``j`` (the
        first maximal one in its window's row-major order). :meth:`unit_indices` gives
        those indices directly.
        """
        return unpack_words(self.words_numpy(), self.layer_sizes)

    def unit_indices(self, layer: int) -> np.ndarray:
        """One layer's codes per unit as an int64 host array ``(N, units)``: the bit (0/1)
        of a plain layer, the argmax candidate index of a one-hot layer."""
        sub = self.layers(layer)
        bits = sub.unpack()
        g = sub.groups[0]
        if g == 1:
            return bits.astype(np.int64)
        return np.argmax(bits.reshape(bits.shape[0], -1, g), axis=2).astype(np.int64)

    def to(self, like: Any) -> "Codes":
        """The same codes with words of ``like``'s array type and device (``'numpy'`` for host)."""
        if isinstance(like, str) and like != "numpy":
            raise ValueError(f"like: expected 'numpy' or an array of the target type and device, got {like!r}")
        if isinstance(like, str) and like == "numpy":
            return Codes(self.words_numpy(), self.layer_sizes, self.layer_names, self.groups)
        return Codes(_like(self.words_numpy(), like), self.layer_sizes, self.layer_names, self.groups)

    # -- slicing ----------------------------------------------------------------------
    def __getitem__(self, rows: Any) -> "Codes":
        """Rows by integer, slice, index array or boolean mask; always keeps 2-D words.

        ``codes[i]`` is the one-row Codes of row ``i`` (negative ``i`` counts from the end);
        an integer out of range raises ``IndexError``, which also ends iteration.
        """
        if isinstance(rows, tuple):
            raise IndexError(
                f"rows: Codes are indexed by rows only (an int, slice, index array or mask), got a tuple {rows!r}; "
                "select layers with codes.layers(...)"
            )
        if isinstance(rows, (bool, np.bool_, float, np.floating, str, bytes)):
            raise TypeError(f"rows: expected a row index, slice, index array or mask, got {type(rows).__name__} {rows!r}")
        if isinstance(rows, (int, np.integer)):
            i, n = int(rows), self.n
            if not -n <= i < n:
                raise IndexError(f"rows: index {i} is out of range for Codes of {n} rows")
            i %= n
            rows = slice(i, i + 1)
        try:
            words = self.words[rows]
        except IndexError as exc:
            raise IndexError(f"rows: {exc} (Codes of {self.n} rows)") from exc
        if len(getattr(words, "shape", ())) != 2:
            raise IndexError(f"rows: expected an index that keeps the rows 2-D, got {rows!r}")
        return Codes(words, self.layer_sizes, self.layer_names, self.groups)

    def __iter__(self) -> Iterator["Codes"]:
        """The rows one at a time, each a one-row Codes."""
        for i in range(self.n):
            yield self[i]

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            "Codes is not an array: pass Codes to vqgeom's functions that take codes, codes.words for the packed "
            "words or codes.unpack() for the bits"
        )

    def layers(self, which: int | slice | Sequence[int]) -> "Codes":
        """A sub-code made of the selected layers (in the given order)."""
        idx = list(range(self.n_layers))

        def one(i: Any) -> int:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"which: expected layer indices (int), got {type(i).__name__} {i!r}")
            if not -self.n_layers <= int(i) < self.n_layers:
                raise IndexError(f"which: layer {int(i)} is out of range for Codes of {self.n_layers} layers")
            return idx[int(i)]

        if isinstance(which, slice):
            sel = idx[which]
        elif isinstance(which, (int, np.integer, bool, np.bool_)):
            sel = [one(which)]
        else:
            try:
                sel = [one(i) for i in which]
            except TypeError as exc:
                if "which:" in str(exc):
                    raise
                raise TypeError(f"which: expected a layer index, slice or sequence of them, got {which!r}") from None
        offs = self.word_offsets
        cols = [c for l in sel for c in range(offs[l], offs[l + 1])]
        xp = self.array_type
        if xp == "torch":
            import torch

            words = self.words[:, torch.as_tensor(cols, dtype=torch.long, device=self.words.device)]
        else:
            words = self.words[:, np.asarray(cols, dtype=np.intp)]
        return Codes(
            words,
            tuple(self.layer_sizes[l] for l in sel),
            tuple(self.layer_names[l] for l in sel),
            tuple(self.groups[l] for l in sel),
        )

    @staticmethod
    def concatenate(parts: Sequence["Codes"]) -> "Codes":
        """Stack codes of the same layer structure by rows."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts: expected at least one Codes, got an empty sequence")
        first = parts[0]
        for i, p in enumerate(parts):
            if not isinstance(p, Codes):
                raise TypeError(f"parts[{i}]: expected Codes, got {type(p).__name__}")
            if p.layer_sizes != first.layer_sizes:
                raise ValueError(
                    f"parts[{i}]: expected layer_sizes {first.layer_sizes}, got {p.layer_sizes}"
                )
            if p.groups != first.groups:
                raise ValueError(f"parts[{i}]: expected groups {first.groups}, got {p.groups}")
        xp = first.array_type
        if any(p.array_type != xp for p in parts):
            raise TypeError(f"parts: expected one array type, got {[p.array_type for p in parts]}")
        if xp == "torch":
            import torch

            words = torch.cat([p.words for p in parts], dim=0)
        elif xp == "cupy":
            import cupy

            words = cupy.concatenate([p.words for p in parts], axis=0)
        elif xp == "dask":
            import dask.array as da

            words = da.concatenate([p.words for p in parts], axis=0)
        else:
            words = np.concatenate([p.words for p in parts], axis=0)
        return Codes(words, first.layer_sizes, first.layer_names, first.groups)

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Save to ``.npz`` (words as uint32, layer sizes, names and groups)."""
        np.savez_compressed(
            path,
            words=self.words_numpy(),
            layer_sizes=np.asarray(self.layer_sizes, dtype=np.int64),
            layer_names=np.asarray(self.layer_names, dtype=str),
            groups=np.asarray(self.groups, dtype=np.int64),
            format_version=np.asarray(2),
        )

    @classmethod
    def load(cls, path: str) -> "Codes":
        """Load codes written by :meth:`save` (as numpy words; use :meth:`to` to move them).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            Naming ``path`` and what is wrong, for anything but a Codes file: not an
            ``.npz`` archive (empty, truncated, garbage, a ``.npy`` array), missing entries,
            words that are not integers in ``[0, 2**32)``, layer sizes or groups that are
            not non-negative integers, or a layout the words do not match. Nothing is cast
            silently and pickled objects are never loaded.
        """
        import zipfile

        what = f"path: {os.fspath(path)!r}"
        try:
            f = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            raise ValueError(f"{what} is not a vqgeom Codes file (.npz from Codes.save): {type(exc).__name__}: {exc}") from None
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"{what} is not a vqgeom Codes file: it holds a single .npy array, not an .npz archive from Codes.save")
        with f:
            try:
                missing = {"words", "layer_sizes"} - set(f.files)
                if missing:
                    raise ValueError(f"{what} is not a vqgeom Codes file (missing {sorted(missing)})")
                words = f["words"]
                sizes = f["layer_sizes"]
                names = f["layer_names"] if "layer_names" in f.files else None
                # Files of format 1 have no groups: every layer is plain bits.
                groups = f["groups"] if "groups" in f.files else None
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                if str(exc).startswith(what):
                    raise
                raise ValueError(f"{what} is a damaged Codes file: {type(exc).__name__}: {exc}") from None
        if words.ndim != 2 or words.dtype.kind not in "iu":
            raise ValueError(f"{what}: expected words as a 2-D integer array, got dtype {words.dtype} shape {words.shape}")
        if words.size and (int(words.min()) < 0 or int(words.max()) > 2**32 - 1):
            raise ValueError(f"{what}: expected 32-bit words in [0, 2**32), got values in [{words.min()}, {words.max()}]")
        for key, arr in (("layer_sizes", sizes), ("groups", groups)):
            if arr is not None and (arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu")):
                raise ValueError(f"{what}: expected {key} as a 1-D integer array, got dtype {arr.dtype} shape {arr.shape}")
        if names is not None and (names.ndim != 1 or names.dtype.kind not in "U"):
            raise ValueError(f"{what}: expected layer_names as a 1-D string array, got dtype {names.dtype}")
        try:
            return cls(
                words.astype(np.uint32),
                tuple(int(b) for b in sizes),
                () if names is None else tuple(str(s) for s in names),
                () if groups is None else tuple(int(g) for g in groups),
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what} holds an invalid Codes layout: {exc}") from None


    def to_zarr(self, store: Any, *, chunk_rows: int | None = None, overwrite: bool = False) -> None:
        """Write the codes to a Zarr group, for codes that do not fit in memory.

        Parameters
        ----------
        store : str, path or zarr store
            Where the group goes (a directory path gives a local Zarr v3 store).
        chunk_rows : int, optional
            Rows per Zarr chunk (default: the dask chunk, or about 16 MB of words). Every chunk
            holds whole rows (all words of a row), so readers get row blocks.
        overwrite : bool
            Replace an existing group instead of raising.

        The group holds one ``uint32`` array ``words`` of shape ``(N, W)`` and, as attributes,
        ``layer_sizes``, ``layer_names`` (and any other per-layer field of :class:`Codes`) plus
        ``vqgeom_codes_format``. Dask words are written block by block on the workers. Needs the
        ``[distributed]`` extra (zarr).
        """
        from ._dask import to_zarr

        to_zarr(self, store, chunk_rows=chunk_rows, overwrite=overwrite)

    @classmethod
    def from_zarr(cls, store: Any, *, chunks: int | None = None) -> "Codes":
        """Dask-backed codes over a group written by :meth:`to_zarr`; nothing is read until computed.

        ``chunks`` sets the rows per dask block (default: the Zarr chunk). Use
        ``.to("numpy")`` to load them into memory. Needs the ``[distributed]`` extra.
        """
        from ._dask import from_zarr

        return from_zarr(store, chunks=chunks)


def _int_tuple(values: Any, name: str) -> tuple[int, ...]:
    """Integers (Python or numpy, not bool) as a tuple, or raise naming ``name``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of integers, got {type(values).__name__} {values!r}")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected integers, got {type(v).__name__} {v!r} in {tuple(values)!r}")
        out.append(int(v))
    return tuple(out)


def _check_padding(words: Any, sizes: Sequence[int]) -> None:
    """Raise unless every padding bit (above the last unit of each layer's last word) is zero."""
    xp = array_module(words)
    if xp not in ("numpy", "torch", "cupy") or (xp == "numpy" and not isinstance(words, np.ndarray)):
        return  # not materialised here (a lazy array): nothing to read without computing it
    if xp == "torch" and words.device.type == "meta":
        return
    offs = layer_word_offsets(sizes)
    cols, masks = [], []
    for l, b in enumerate(sizes):
        if b % 32:
            cols.append(offs[l + 1] - 1)
            masks.append((0xFFFFFFFF << (b % 32)) & 0xFFFFFFFF)
    if not cols or words.shape[0] == 0:
        return
    if xp == "torch":
        import torch

        m = torch.tensor(np.asarray(masks, dtype=np.uint32).view(np.int32), device=words.device)
        bad = (words[:, cols] & m) != 0
        if not bool(bad.any()):
            return
        row, c = (int(v) for v in torch.nonzero(bad)[0])
    else:
        mod = np
        if xp == "cupy":
            import cupy as mod
        bad = (words[:, cols] & mod.asarray(masks, dtype=np.uint32)) != 0
        if not bool(bad.any()):
            return
        row, c = (int(v) for v in mod.argwhere(bad)[0])
    layer = [l for l, b in enumerate(sizes) if b % 32][c]
    raise ValueError(
        f"words: padding bits must be zero (the Codes layout), got bits set above unit {sizes[layer]} of layer "
        f"{layer} in row {row}; build codes with Codes.from_bits or vqgeom.codes.pack_bits"
    )


def _like(words: np.ndarray, like: Any) -> Any:
    """Host uint32 words converted to ``like``'s array type and device."""
    xp = array_module(like)
    if xp == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(words).view(np.int32)).to(like.device)
    if xp == "cupy":
        import cupy

        with cupy.cuda.Device(like.device.id):
            return cupy.asarray(words)
    return np.ascontiguousarray(words)
