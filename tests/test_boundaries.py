"""Issue 10 items 2-4: Codes as a sequence, loud file readers, every entry point naming its
arguments. Each case of the issue's "Why" list (and its neighbours in the same class) is a test;
nothing may hang, so every test that used to hang runs under a thread timeout.
"""

from __future__ import annotations

import gzip
import struct
import threading
import zipfile

import numpy as np
import pytest
import torch

import vqgeom
from vqgeom import data
from vqgeom.codes import Codes
from vqgeom.kernels import reference
from vqgeom.models import load_checkpoint, mlp, save_checkpoint

SIZES = [5, 40]
BITS = np.random.default_rng(7).random((20, 45)) < 0.5
CODES = Codes.from_bits(BITS, SIZES)
NET = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))


def finishes(fn, seconds=20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"did not finish within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- item 2: Codes as a sequence ------------------------------------------------------------------
def test_out_of_range_row_raises_index_error():
    with pytest.raises(IndexError, match="rows: index 100 is out of range for Codes of 20 rows"):
        CODES[100]
    with pytest.raises(IndexError, match="-21"):
        CODES[-21]
    np.testing.assert_array_equal(CODES[-1].unpack(), BITS[-1:])
    np.testing.assert_array_equal(CODES[np.int64(3)].unpack(), BITS[3:4])
    with pytest.raises(IndexError, match="rows"):
        CODES[np.array([0, 25])]
    with pytest.raises(IndexError, match="layers"):
        CODES[0, 1]
    with pytest.raises(TypeError, match="rows"):
        CODES[True]
    with pytest.raises(TypeError, match="rows"):
        CODES[1.5]


def test_construction_and_conversion_arguments():
    with pytest.raises(TypeError, match="words: expected a 2-D array"):
        Codes([[0]], [3])
    with pytest.raises(ValueError, match="like"):
        CODES.to("cuda")  # was: silently numpy
    with pytest.raises(ValueError, match="weights: per_layer"):
        vqgeom.pairwise_distances(CODES, per_layer=True, weights=[1, 2])  # was: weights silently ignored


def test_iteration_and_len():
    rows = finishes(lambda: list(CODES))
    assert len(rows) == len(CODES) == 20
    for i, r in enumerate(rows):
        assert isinstance(r, Codes) and r.n == 1
        np.testing.assert_array_equal(r.unpack(), BITS[i : i + 1])
    assert list(CODES[:0]) == []


def test_layers_out_of_range():
    with pytest.raises(IndexError, match="which: layer 5 is out of range for Codes of 2 layers"):
        CODES.layers([5])
    with pytest.raises(IndexError, match="which"):
        CODES.layers(-3)
    with pytest.raises(TypeError, match="which"):
        CODES.layers(["a"])
    with pytest.raises(TypeError, match="which"):
        CODES.layers(1.0)
    assert CODES.layers(-1).layer_sizes == (40,)


def test_nonzero_padding_bits_rejected():
    words = CODES.words.copy()
    words[3, 0] |= np.uint32(1 << 7)  # layer 0 has 5 units: bit 7 is padding
    with pytest.raises(ValueError, match="padding bits must be zero.*layer 0 in row 3"):
        Codes(words, SIZES)
    with pytest.raises(ValueError, match="padding"):
        Codes(torch.from_numpy(words.view(np.int32)), SIZES)
    words = CODES.words.copy()
    words[0, 2] |= np.uint32(1 << 31)  # layer 1 (40 units): bit 8 of its second word is its 41st unit
    with pytest.raises(ValueError, match="layer 1 in row 0"):
        Codes(words, SIZES)


@pytest.mark.parametrize(
    "sizes, exc",
    [((5.5, 40), TypeError), ((5, "40"), TypeError), ((True, 40), TypeError), ((-1, 40), ValueError), (5, TypeError)],
)
def test_layer_sizes_must_be_integers(sizes, exc):
    with pytest.raises(exc, match="layer_sizes"):
        Codes(CODES.words, sizes)


def test_codes_where_an_array_is_expected():
    # Were: encode(net, codes) and heat_kernel(codes, 1.0) hung (iteration never ended).
    with pytest.raises(TypeError, match="X: expected an array, got Codes"):
        finishes(lambda: vqgeom.encode(NET, CODES))
    with pytest.raises(TypeError, match="K: expected a distance matrix"):
        finishes(lambda: vqgeom.heat_kernel(CODES, 1.0))
    with pytest.raises(TypeError, match="K1"):
        finishes(lambda: vqgeom.kernel_cosine(CODES, np.ones((2, 2))))
    with pytest.raises(TypeError, match="Codes is not an array"):
        finishes(lambda: np.asarray(CODES))
    with pytest.raises(TypeError, match="X"):
        finishes(lambda: vqgeom.vq_kernel(NET, CODES))


def test_arrays_where_codes_are_expected():
    for call, name in [
        (lambda: vqgeom.pairwise_distances(CODES.words), "codes_x"),
        (lambda: vqgeom.pairwise_distances(CODES, CODES.words), "codes_y"),
        (lambda: vqgeom.knn(CODES.words, k=1), "codes_x"),
        (lambda: vqgeom.knn(CODES, CODES.words, k=1), "codes_y"),  # was an AttributeError
        (lambda: vqgeom.heat_embedding(CODES.words, 1.0), "codes"),
    ]:
        with pytest.raises(TypeError, match=name):
            call()


# -- item 3: files ---------------------------------------------------------------------------------
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_codes_load_malformed(tmp_path):
    good = tmp_path / "good.npz"
    CODES.save(good)
    raw = good.read_bytes()
    cases = {
        "empty.npz": b"",
        "truncated.npz": raw[: len(raw) // 2],
        "garbage.npz": b"\x93NUMPY garbage" * 10,
        "text.npz": b"hello, not codes\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            Codes.load(tmp_path / name)
    np.save(tmp_path / "array.npy", CODES.words)
    with pytest.raises(ValueError, match="array.npy.*single .npy array"):
        Codes.load(tmp_path / "array.npy")
    bad = {
        "float_words": dict(words=CODES.words.astype(np.float64), layer_sizes=np.array(SIZES)),
        "frac_sizes": dict(words=CODES.words, layer_sizes=np.array([5.5, 40.0])),
        "big_words": dict(words=CODES.words.astype(np.int64) + 2**32, layer_sizes=np.array(SIZES)),
        "neg_words": dict(words=CODES.words.astype(np.int64) - 2**33, layer_sizes=np.array(SIZES)),
        "shape": dict(words=CODES.words[:, :2], layer_sizes=np.array(SIZES)),
        "padding": dict(words=CODES.words | np.uint32(1 << 31), layer_sizes=np.array(SIZES)),
        "names": dict(words=CODES.words, layer_sizes=np.array(SIZES), layer_names=np.array([1, 2])),
        "groups": dict(words=CODES.words, layer_sizes=np.array(SIZES), groups=np.array([1.5, 1])),
        "missing": dict(layer_sizes=np.array(SIZES)),
        "objects": dict(words=np.array([object()], dtype=object), layer_sizes=np.array(SIZES)),
    }
    for name, arrays in bad.items():
        path = tmp_path / f"{name}.npz"
        try:
            np.savez(path, **arrays)
        except Exception:  # noqa: BLE001 - savez pickles objects; write what it can
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("words.npy", b"not an array")
        with pytest.raises(ValueError, match=f"{name}.npz") as err:
            Codes.load(path)
        assert "Traceback" not in str(err.value)
    with pytest.raises(FileNotFoundError):
        Codes.load(tmp_path / "nothing.npz")
    back = Codes.load(good)
    np.testing.assert_array_equal(back.words, CODES.words)


def _idx(arr, code):
    return struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def test_idx_absurd_header_dims(tmp_path):
    # Was: the int64 product of the dims overflowed into a confusing reshape error.
    raw = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\0" * 16
    (tmp_path / "absurd").write_bytes(raw)
    with pytest.raises(ValueError, match=r"absurd.*truncated.*\(4294967295, 4294967295, 4294967295\)"):
        data.read_idx(tmp_path / "absurd")
    for name, content in {"empty": b"", "garbage": b"garbage!" * 4}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            data.read_idx(tmp_path / name)


def test_mnist_int32_idx_above_255_is_not_wrapped(tmp_path):
    # Was: an uncompressed int32 IDX file of images with values above 255 wrapped to uint8.
    images = np.full((3, 28, 28), 300, dtype=">i4")
    labels = np.array([1, 2, 3], dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(images, 0x0C))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels, 0x08))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*\[300, 300\].*\[0, 255\]"):
        data.load_mnist(tmp_path, split="test", download=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((3, 28, 28), dtype=">f4"), 0x0D))
    with pytest.raises(ValueError, match="float32"):
        data.load_mnist(tmp_path, split="test", download=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.full((3, 28, 28), 255, dtype=">i4"), 0x0C))
    images, _ = data.load_mnist(tmp_path, split="test", download=False)
    assert images.dtype == np.uint8 and int(images.max()) == 255  # in range: converted exactly


def test_load_checkpoint_malformed(tmp_path):
    net = mlp(2, 8, 2, 1, seed=0)
    good = tmp_path / "good.pt"
    save_checkpoint(net, good, {"a": 1})
    raw = good.read_bytes()
    cases = {"truncated.pt": raw[: len(raw) // 2], "empty.pt": b"", "garbage.pt": b"garbage" * 30,
             "gz.pt": gzip.compress(raw)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            load_checkpoint(tmp_path / name)
    torch.save({"config": dict(net.config), "state_dict": {"x": torch.zeros(1)}}, tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="sd.pt"):
        load_checkpoint(tmp_path / "sd.pt")
    torch.save({"config": {"in_dim": 2.5}, "state_dict": {}}, tmp_path / "cfg.pt")
    with pytest.raises(ValueError, match="cfg.pt"):
        load_checkpoint(tmp_path / "cfg.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.pt")
    model, meta = load_checkpoint(good)
    assert meta == {"a": 1}


# -- item 4: entry points name their arguments -------------------------------------------------------
def test_heat_kernel_nan_and_complex():
    K = np.array([[0.0, np.nan], [np.nan, 0.0]])
    for k in (K, torch.from_numpy(K)):
        with pytest.raises(ValueError, match="K: expected finite"):
            vqgeom.heat_kernel(k, 1.0)
    with pytest.raises(TypeError, match="K: expected a real-valued"):
        vqgeom.heat_kernel(torch.ones(2, 2, dtype=torch.complex64), 1.0)  # was cast silently
    with pytest.raises(TypeError, match="K"):
        vqgeom.heat_kernel(np.ones((2, 2), dtype=complex), 1.0)
    with pytest.raises(TypeError, match="K"):
        vqgeom.heat_kernel([["a"]], 1.0)
    with pytest.raises(ValueError, match="sigma2"):
        vqgeom.heat_kernel(np.ones((2, 2)), float("nan"))


@pytest.mark.parametrize(
    "sigma2s, exc",
    [(["a"], TypeError), ([[1.0, 2.0, 3.0]], ValueError), ([[[1.0]]], ValueError), ([[1.0, "b"]], TypeError),
     ([], ValueError), ([1.0, -1.0], ValueError), ("1.0", (TypeError, ValueError)), ([1.0, float("nan")], ValueError),
     (None, TypeError), ([True], TypeError)],
)
def test_compare_sigma2s(sigma2s, exc):
    # Was: unrelated errors for strings and nested lists; sigma2s=[] computed everything for nothing.
    with pytest.raises(exc, match="sigma2s"):
        vqgeom.compare([NET, NET], np.zeros((3, 3)), sigma2s=sigma2s)


def test_knn_empty_and_arguments():
    d, i = vqgeom.knn(CODES[:0], CODES, k=3)  # was: None distances
    assert d.shape == (0, 3) and d.dtype == np.uint8 and i.shape == (0, 3) and i.dtype == np.int64
    dt, it = vqgeom.knn(CODES[:0].to(torch.zeros(1)), CODES.to(torch.zeros(1)), k=3)
    assert dt.shape == (0, 3) and dt.dtype == torch.uint8 and it.dtype == torch.int64
    d, _ = vqgeom.knn(CODES[:0], CODES, k=3, weights=[0.5, 1])
    assert d.dtype == np.float64
    for bad, exc in [(0, ValueError), (2.5, TypeError), ("3", TypeError), (True, TypeError), (21, ValueError)]:
        with pytest.raises(exc, match="k"):
            vqgeom.knn(CODES, CODES, k=bad)
    with pytest.raises(TypeError, match="exclude_self"):
        vqgeom.knn(CODES, k=1, exclude_self="yes")


def test_pairwise_empty_and_per_layer_argument():
    for w, dt in ((None, np.uint8), ([0.5, 2.0], np.float64), ([2**40, 1], np.uint64)):
        D = vqgeom.pairwise_distances(CODES[:0], CODES, weights=w)
        assert D.shape == (0, 20) and D.dtype == dt
    with pytest.raises(TypeError, match="per_layer"):
        vqgeom.pairwise_distances(CODES, per_layer="yes")


@pytest.mark.parametrize("n", [2, 3, 5])
def test_mds_zero_eigenvalues_give_zero_columns(n):
    # Was: mds of 2 or 5 codes returned duplicated eigenvectors for zero eigenvalues.
    bits = np.random.default_rng(n).random((n, 12)) < 0.5
    bits[0] = ~bits[1]  # at least two distinct codes
    codes = Codes.from_bits(bits, [12])
    k = min(n, 12)
    res = vqgeom.mds(codes, k)
    dense = vqgeom.mds(np.asarray(reference.hamming(bits, bits, [12]), dtype=np.float64), k)
    for r in (res, dense):
        vecs = np.asarray(r.eigenvectors)
        vals = np.asarray(r.raw_eigenvalues)
        zero = vals == 0
        assert zero[-1]  # centring leaves rank at most n - 1
        assert not np.abs(vecs[:, zero]).any()
        nz = vecs[:, ~zero]
        np.testing.assert_allclose(nz.T @ nz, np.eye(nz.shape[1]), atol=1e-12)  # orthonormal: no duplicates


def test_vqdistances_fitted_on_numpy_transforms_torch():
    pytest.importorskip("sklearn")
    from vqgeom.sklearn import VQDistances

    X = np.random.default_rng(1).normal(size=(12, 3))
    t = VQDistances(NET).fit(X)
    got = t.transform(torch.from_numpy(X[:4]))  # was: an error naming codes_x / codes_y
    np.testing.assert_array_equal(got, t.transform(X[:4]))
    t2 = VQDistances(NET).fit(torch.from_numpy(X))
    np.testing.assert_array_equal(t2.transform(X[:4]), got)


def test_heat_embedding_and_mds_arguments():
    for kw, exc, name in [
        (dict(sigma2=0.0), ValueError, "sigma2"),
        (dict(sigma2="1"), TypeError, "sigma2"),
        (dict(sigma2=1.0, n_components=0), ValueError, "n_components"),
        (dict(sigma2=1.0, n_components=20), ValueError, "n_components"),
        (dict(sigma2=1.0, squared="no"), TypeError, "squared"),
        (dict(sigma2=1.0, weights=[1]), ValueError, "weights"),
        (dict(sigma2=1.0, block_rows=0), ValueError, "block_rows"),
    ]:
        with pytest.raises(exc, match=name):
            vqgeom.heat_embedding(CODES, **kw)
    for args, exc, name in [((CODES, 0), ValueError, "n_components"), ((CODES, 2.0), TypeError, "n_components"),
                            ((np.full((3, 3), np.nan), 1), ValueError, "K_or_codes")]:
        with pytest.raises(exc, match=name):
            vqgeom.mds(*args)
