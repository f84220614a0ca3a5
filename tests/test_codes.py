"""The Codes layout: packing, unpacking, slicing, concatenation, persistence (issue 2 item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vqgeom.codes import Codes, layer_word_offsets, pack_bits, unpack_words

FAST = settings(max_examples=30, deadline=None)

# Layer sizes that sit on, just below and just above 32-bit word boundaries (and 0 units).
layer_sizes_st = st.lists(st.sampled_from([0, 1, 2, 31, 32, 33, 63, 64, 65, 100, 130]), min_size=1, max_size=5)


def explicit_words(bits: np.ndarray, layer_sizes) -> np.ndarray:
    """The documented layout written bit by bit: unit u of layer l is bit u % 32 of word offs[l] + u // 32."""
    n = bits.shape[0]
    offs = [0]
    for b in layer_sizes:
        offs.append(offs[-1] + (b + 31) // 32)
    out = np.zeros((n, offs[-1]), dtype=np.uint64)
    start = 0
    for l, b in enumerate(layer_sizes):
        for u in range(b):
            out[:, offs[l] + u // 32] |= bits[:, start + u].astype(np.uint64) << np.uint64(u % 32)
        start += b
    return out.astype(np.uint32)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 6), sizes=layer_sizes_st)
def test_pack_bits_matches_documented_layout(make_bits, seed, n, sizes):
    bits = make_bits(seed, n, sizes)
    words = pack_bits(bits, sizes)
    assert words.dtype == np.uint32
    assert words.shape == (n, layer_word_offsets(sizes)[-1])
    np.testing.assert_array_equal(words, explicit_words(bits, sizes))
    np.testing.assert_array_equal(unpack_words(words, sizes), bits)
    codes = Codes.from_bits(bits, sizes)
    np.testing.assert_array_equal(codes.unpack(), bits)
    assert codes.n == n and codes.n_units == sum(sizes) and codes.n_layers == len(sizes)


def test_padding_bits_are_zero():
    # All units set: every word is full except the last of each layer, which holds B_l % 32 low bits.
    sizes = [1, 33, 64, 70]
    words = pack_bits(np.ones((2, sum(sizes)), dtype=bool), sizes)
    full = np.uint32(0xFFFFFFFF)
    expected = [0x1, full, 0x1, full, full, full, full, 0x3F]
    np.testing.assert_array_equal(words, np.tile(np.asarray(expected, dtype=np.uint32), (2, 1)))


def test_layer_word_offsets():
    # Each layer starts on a fresh word; empty layers take no words.
    assert layer_word_offsets([1, 32, 33, 0, 64]) == (0, 1, 2, 4, 4, 6)
    assert layer_word_offsets([]) == (0,)


def test_torch_codes_have_int32_words_with_the_same_bits(make_bits):
    sizes = [33, 5]
    bits = make_bits(1, 7, sizes)
    codes_t = Codes.from_bits(torch.from_numpy(bits), sizes)
    assert isinstance(codes_t.words, torch.Tensor) and codes_t.words.dtype == torch.int32
    np.testing.assert_array_equal(codes_t.words.numpy().view(np.uint32), pack_bits(bits, sizes))
    np.testing.assert_array_equal(codes_t.unpack(), bits)
    back = codes_t.to("numpy")
    assert isinstance(back.words, np.ndarray) and back.words.dtype == np.uint32
    again = back.to(torch.zeros(1))
    assert again.words.dtype == torch.int32
    np.testing.assert_array_equal(again.unpack(), bits)


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_row_slicing(make_bits, array):
    sizes = [40, 3, 32]
    bits = make_bits(2, 9, sizes)
    codes = Codes.from_bits(bits if array == "numpy" else torch.from_numpy(bits), sizes, ["a", "b", "c"])
    mask = np.arange(9) % 3 == 1
    cases = [(0, [0]), (-1, [8]), (-2, [7]), (slice(2, 7, 2), [2, 4, 6]), (np.array([5, 0, 5]), [5, 0, 5])]
    cases.append((mask if array == "numpy" else torch.from_numpy(mask), np.flatnonzero(mask)))
    for rows, expect in cases:
        sub = codes[rows]
        assert sub.words.ndim == 2 and sub.layer_sizes == codes.layer_sizes and sub.layer_names == ("a", "b", "c")
        np.testing.assert_array_equal(sub.unpack(), bits[np.asarray(expect)])


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_layer_selection(make_bits, array):
    sizes = [40, 3, 0, 32, 65]
    bits = make_bits(3, 5, sizes)
    names = ["l0", "l1", "l2", "l3", "l4"]
    codes = Codes.from_bits(bits if array == "numpy" else torch.from_numpy(bits), sizes, names)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    cols = [bits[:, starts[l] : starts[l + 1]] for l in range(len(sizes))]
    for sel, ls in [(1, [1]), (-1, [4]), (slice(1, 4), [1, 2, 3]), ([4, 0], [4, 0]), ([3, 3], [3, 3])]:
        sub = codes.layers(sel)
        assert sub.layer_sizes == tuple(sizes[l] for l in ls)
        assert sub.layer_names == tuple(names[l] for l in ls)
        assert sub.array_type == array
        np.testing.assert_array_equal(sub.unpack(), np.concatenate([cols[l] for l in ls], axis=1))


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_concatenate(make_bits, array):
    sizes = [31, 33]
    parts_bits = [make_bits(s, n, sizes) for s, n in [(4, 3), (5, 1), (6, 0), (7, 4)]]
    wrap = (lambda b: b) if array == "numpy" else torch.from_numpy
    cat = Codes.concatenate([Codes.from_bits(wrap(b), sizes) for b in parts_bits])
    assert cat.array_type == array
    np.testing.assert_array_equal(cat.unpack(), np.concatenate(parts_bits))


def test_concatenate_rejects_mismatches(make_bits):
    a = Codes.from_bits(make_bits(0, 2, [3]), [3])
    with pytest.raises(ValueError, match="parts"):
        Codes.concatenate([])
    with pytest.raises(ValueError, match=r"parts\[1\]"):
        Codes.concatenate([a, Codes.from_bits(make_bits(0, 2, [4]), [4])])
    with pytest.raises(TypeError, match=r"parts\[1\]"):
        Codes.concatenate([a, a.words])
    with pytest.raises(TypeError, match="parts"):
        Codes.concatenate([a, a.to(torch.zeros(1))])


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_save_load_round_trip(tmp_path, make_bits, array):
    sizes = [0, 1, 64, 65]
    bits = make_bits(8, 6, sizes)
    codes = Codes.from_bits(bits if array == "numpy" else torch.from_numpy(bits), sizes, ["w", "x", "y", "z"])
    path = tmp_path / "codes.npz"
    codes.save(str(path))
    loaded = Codes.load(str(path))
    assert loaded.layer_sizes == tuple(sizes) and loaded.layer_names == ("w", "x", "y", "z")
    assert loaded.words.dtype == np.uint32
    np.testing.assert_array_equal(loaded.words, pack_bits(bits, sizes))
    np.testing.assert_array_equal(loaded.unpack(), bits)


def test_load_rejects_foreign_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(ValueError, match="path"):
        Codes.load(str(path))


def test_bad_construction():
    with pytest.raises(ValueError, match="words"):
        Codes(np.zeros((2, 3), dtype=np.uint32), (33,))  # 33 units need 2 words
    with pytest.raises(ValueError, match="words"):
        Codes(np.zeros(4, dtype=np.uint32), (32,))
    with pytest.raises(TypeError, match="words"):
        Codes(np.zeros((2, 1), dtype=np.int64), (3,))
    with pytest.raises(TypeError, match="words"):
        Codes(torch.zeros((2, 1), dtype=torch.int64), (3,))
    with pytest.raises(ValueError, match="layer_sizes"):
        Codes(np.zeros((2, 0), dtype=np.uint32), (-1,))
    with pytest.raises(ValueError, match="layer_names"):
        Codes(np.zeros((2, 1), dtype=np.uint32), (3,), ("a", "b"))
    with pytest.raises(ValueError, match="bits"):
        pack_bits(np.zeros(5, dtype=bool), [5])
    with pytest.raises(ValueError, match="layer_sizes"):
        pack_bits(np.zeros((2, 5), dtype=bool), [3, 3])
