"""knn against reference.knn on the dense reference distances, ties included (issue 2 item 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vqgeom
from vqgeom.codes import Codes
from vqgeom.kernels import reference

FAST = settings(max_examples=30, deadline=None)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    n=st.integers(2, 40),
    m=st.integers(1, 40),
    few_bits=st.booleans(),
    real_weights=st.booleans(),
    block_rows=st.integers(1, 50),
    data=st.data(),
)
def test_knn_matches_reference(make_bits, seed, sizes, n, m, few_bits, real_weights, block_rows, data):
    if few_bits:  # 2-3 units in all: most distances tie, which exercises the tie rule
        sizes = [2] if len(sizes) == 1 else [1, 2]
    bx, by = make_bits(seed, n, sizes), make_bits(seed + 1, m, sizes)
    w = np.random.default_rng(seed).uniform(0.5, 2.0, len(sizes)) if real_weights else None
    cx, cy = Codes.from_bits(bx, sizes), Codes.from_bits(by, sizes)

    # Cross: every reference row is a candidate.
    k = data.draw(st.integers(1, m), label="k_cross")
    d, i = vqgeom.knn(cx, cy, k, weights=w, block_rows=block_rows)
    ref_d, ref_i = reference.knn(reference.hamming(bx, by, sizes, w), k)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(d, ref_d)  # the same float64 sums in the same order, or integers

    # Symmetric: each query is left out of its own neighbours.
    k = data.draw(st.integers(1, n - 1), label="k_self")
    d, i = vqgeom.knn(cx, k=k, weights=w, block_rows=block_rows)
    D = reference.hamming(bx, bx, sizes, w).astype(np.float64)  # exact: small integers or the same float sums
    np.fill_diagonal(D, np.inf)
    ref_d, ref_i = reference.knn(D, k)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(d, ref_d)
    assert not (i == np.arange(n)[:, None]).any()


def test_ties_go_to_the_smaller_index():
    # Rows 1, 2 and 4 are all at distance 1 from row 0; rows 3 and 5 equal row 0.
    bits = np.array([[0, 0], [1, 0], [0, 1], [0, 0], [1, 0], [0, 0]], dtype=bool)
    codes = Codes.from_bits(bits, [2])
    d, i = vqgeom.knn(codes[:1], codes, 4, block_rows=1)
    np.testing.assert_array_equal(i, [[0, 3, 5, 1]])
    np.testing.assert_array_equal(d, [[0, 0, 0, 1]])
    d, i = vqgeom.knn(codes, k=3)
    np.testing.assert_array_equal(i[0], [3, 5, 1])


def test_torch_codes_give_torch_results(make_bits):
    bits = make_bits(0, 9, [33])
    d, i = vqgeom.knn(Codes.from_bits(torch.from_numpy(bits), [33]), k=2)
    assert isinstance(d, torch.Tensor) and isinstance(i, torch.Tensor) and i.dtype == torch.int64
    ref_d, ref_i = vqgeom.knn(Codes.from_bits(bits, [33]), k=2)
    np.testing.assert_array_equal(i.numpy(), ref_i)
    np.testing.assert_array_equal(d.numpy(), ref_d)


def test_knn_errors(make_bits):
    codes = Codes.from_bits(make_bits(0, 5, [4]), [4])
    with pytest.raises(TypeError, match="codes_x"):
        vqgeom.knn(codes.words, k=1)
    with pytest.raises(ValueError, match="k"):
        vqgeom.knn(codes, k=0)
    with pytest.raises(ValueError, match="k"):
        vqgeom.knn(codes, k=5)  # 4 candidates once the query itself is left out
    with pytest.raises(ValueError, match="k"):
        vqgeom.knn(codes, codes[:2], k=3)
    with pytest.raises(ValueError, match="exclude_self"):
        vqgeom.knn(codes, codes[:3], k=1, exclude_self=True)
    with pytest.raises(ValueError, match="block_rows"):
        vqgeom.knn(codes, k=1, block_rows=0)
    with pytest.raises(ValueError, match="weights"):
        vqgeom.knn(codes, k=1, weights=[0])


@pytest.mark.parametrize("budget", [1, 700, 5000])
def test_streamed_blocks_match_reference(make_bits, monkeypatch, budget):
    """Tiny block budgets force one-row blocks and column chunks of k + 2: the running top-k
    merge across chunks (ties to the smaller index) must equal the dense reference."""
    from vqgeom import neighbors

    monkeypatch.setattr(neighbors, "_BLOCK_BYTES", budget)
    for sizes, w in (([2], None), ([3, 1], [2, 5]), ([33, 7], [0.5, 1.5])):
        bx, by = make_bits(budget, 23, sizes), make_bits(budget + 1, 31, sizes)
        cx, cy = Codes.from_bits(bx, sizes), Codes.from_bits(by, sizes)
        for k in (1, 4, 31):
            d, i = vqgeom.knn(cx, cy, k, weights=w)
            rd, ri = reference.knn(reference.hamming(bx, by, sizes, w), k)
            np.testing.assert_array_equal(i, ri)
            np.testing.assert_array_equal(d, rd)
        D = reference.hamming(bx, bx, sizes, w).astype(np.float64)
        np.fill_diagonal(D, np.inf)
        for k in (1, 5, 22):
            d, i = vqgeom.knn(cx, k=k, weights=w)
            rd, ri = reference.knn(D, k)
            np.testing.assert_array_equal(i, ri)
            np.testing.assert_array_equal(d, rd)


def test_smallest_ties_go_to_the_smaller_position():
    from vqgeom.neighbors import smallest

    D = np.array([[3, 1, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(smallest(D, 3), [[1, 2, 3], [0, 1, 2]])
    np.testing.assert_array_equal(smallest(D, 6), np.broadcast_to(np.arange(6), (2, 6)))
