"""vqgeom.data: invariants of the generated sets and the MNIST/IDX loader (good, damaged and missing files)."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from vqgeom.paper import data

# the MNIST test set lives beside the project (never in it): ../shared/data/mnist, or $VQGEOM_MNIST
MNIST_DIR = Path(os.environ.get("VQGEOM_MNIST") or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST test files not found in {MNIST_DIR} (set VQGEOM_MNIST)")

# float tolerance for norms and rotations: a handful of float64 roundings on values of size ~1
TOL = 1e-12


# ------------------------------------------------------------------------------ two moons
@pytest.mark.parametrize("n", [2, 3, 150, 151])
def test_two_moons_sizes_labels_and_box(n):
    X, y = data.two_moons(n, seed=1)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y, minlength=2), [n // 2, n - n // 2])
    assert X.min() >= -1.0 and X.max() <= 1.0
    # one scale factor: the longer side of the bounding box spans [-1, 1] exactly
    side = X.max(0) - X.min(0)
    assert abs(side.max() - 2.0) < TOL


def test_two_moons_noise_free_points_lie_on_the_two_half_circles():
    X, y = data.two_moons(150, noise=0.0, seed=0)
    # noise-free moons span x in [-1, 2], y in [-1/2, 1]: centre (1/2, 1/4), half of the longer side 3/2
    U = X * 1.5 + np.array([0.5, 0.25])
    r_out = np.linalg.norm(U[y == 0], axis=1)
    r_in = np.linalg.norm(U[y == 1] - np.array([1.0, 0.5]), axis=1)
    np.testing.assert_allclose(r_out, 1.0, atol=TOL)
    np.testing.assert_allclose(r_in, 1.0, atol=TOL)
    assert (U[y == 0, 1] >= -TOL).all() and (U[y == 1, 1] <= 0.5 + TOL).all()


def test_two_moons_seeded():
    a, ya = data.two_moons(seed=3)
    b, yb = data.two_moons(seed=3)
    c, _ = data.two_moons(seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs, err, word",
    [
        (dict(n=1), ValueError, "n"),
        (dict(n=2.5), TypeError, "n"),
        (dict(noise=-0.1), ValueError, "noise"),
        (dict(noise=float("nan")), ValueError, "noise"),
        (dict(seed="x"), TypeError, "seed"),
    ],
)
def test_two_moons_bad_input(kwargs, err, word):
    with pytest.raises(err, match=word):
        data.two_moons(**kwargs)


# ------------------------------------------------------------------------------ rotation
def test_rotate_turns_every_point_by_the_angle_and_keeps_norms():
    X, _ = data.two_moons(seed=0)
    R = data.rotate(X)
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), np.linalg.norm(X, axis=1), atol=TOL)
    turned = np.arctan2(X[:, 0] * R[:, 1] - X[:, 1] * R[:, 0], (X * R).sum(1))
    np.testing.assert_allclose(turned, np.pi / 6, atol=1e-9)  # atan2 near a norm-0 point loses a few digits
    np.testing.assert_allclose(data.rotate(R, -np.pi / 6), X, atol=TOL)


def test_rotate_in_a_plane_of_a_high_dimensional_set_changes_only_that_plane():
    X, _ = data.high_dim_moons(20, seed=0)
    R = data.rotate(X, 0.3, plane=(0, 1))
    np.testing.assert_array_equal(R[:, 2:], X[:, 2:])
    np.testing.assert_allclose(R[:, :2], data.rotate(X[:, :2], 0.3), atol=0)


@pytest.mark.parametrize(
    "X, plane", [(np.zeros((3, 1)), (0, 1)), (np.zeros(3), (0, 1)), (np.zeros((3, 2)), (0, 0)), (np.zeros((3, 2)), (0, 2))]
)
def test_rotate_bad_input(X, plane):
    with pytest.raises(ValueError, match="X|plane"):
        data.rotate(X, plane=plane)


# ------------------------------------------------------------------------------ high-dimensional moons
def test_high_dim_moons_unit_norm_signal_and_sizes():
    X, y = data.high_dim_moons(150, seed=5)
    assert X.shape == (150, 100) and y.shape == (150,)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=TOL)
    # the signal plane holds 0.1 u with u the moons drawn first from the same seed
    U, yu = data.two_moons(150, seed=5)
    np.testing.assert_allclose(X[:, :2], 0.1 * U, atol=0)
    np.testing.assert_array_equal(y, yu)
    np.testing.assert_allclose(np.linalg.norm(X[:, 2:], axis=1), np.sqrt(1 - np.sum((0.1 * U) ** 2, 1)), atol=TOL)


def test_high_dim_moons_noise_directions_are_isotropic():
    # uniform on the sphere in R^98: the mean direction of 4000 draws is ~ N(0, 1/(98*4000)) per coordinate
    X, _ = data.high_dim_moons(4000, seed=0)
    dirs = X[:, 2:] / np.linalg.norm(X[:, 2:], axis=1, keepdims=True)
    assert np.abs(dirs.mean(0)).max() < 6 / np.sqrt(98 * 4000)
    # and E[z z^T] = I/98 for unit directions: diagonal within 6 standard errors (~sqrt(2/4000)/98)
    assert np.abs(np.diag(dirs.T @ dirs) / 4000 - 1 / 98).max() < 6 * np.sqrt(2 / 4000) / 98


def test_high_dim_moons_rotated_variant_keeps_unit_norm_and_noise():
    X, _ = data.high_dim_moons(50, seed=0)
    R = data.rotate(X, np.pi / 6)
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), 1.0, atol=TOL)
    np.testing.assert_array_equal(R[:, 2:], X[:, 2:])


@pytest.mark.parametrize("kwargs", [dict(dim=2), dict(scale=0.0), dict(scale=0.8)])
def test_high_dim_moons_bad_input(kwargs):
    with pytest.raises(ValueError, match="dim|scale"):
        data.high_dim_moons(10, **kwargs)


# ------------------------------------------------------------------------------ disc grid
@pytest.mark.parametrize("n", [1, 2, 7, 96])
def test_disc_grid_mask_matches_brute_force(n):
    P, mask = data.disc_grid(n)
    assert mask.shape == (n, n) and mask.dtype == bool
    ticks = np.linspace(-1, 1, n) if n > 1 else np.zeros(1)
    expect = np.array([[ticks[j] ** 2 + ticks[i] ** 2 <= 1 for j in range(n)] for i in range(n)])
    np.testing.assert_array_equal(mask, expect)
    assert P.shape == (int(expect.sum()), 2)
    assert (np.linalg.norm(P, axis=1) <= 1 + TOL).all()
    # row-major order: image[mask] = values puts point k back at its node
    xs = np.full((n, n), np.nan)
    xs[mask] = P[:, 0]
    ys = np.full((n, n), np.nan)
    ys[mask] = P[:, 1]
    rows, cols = np.nonzero(mask)
    np.testing.assert_array_equal(xs[rows, cols], ticks[cols])
    np.testing.assert_array_equal(ys[rows, cols], ticks[rows])


def test_disc_grid_96_covers_about_pi_over_4_of_the_square():
    P, mask = data.disc_grid(96)
    assert abs(mask.mean() - np.pi / 4) < 0.02  # lattice count of a disc: error O(1/n)
    step = 2 / 95
    # the disc reaches within one grid step of the square's sides (96 is even: no node on the axes)
    assert 1 - step - TOL <= P[:, 0].max() < 1 and -1 < P[:, 0].min() <= -1 + step + TOL


def test_disc_grid_bad_input():
    with pytest.raises(ValueError, match="n"):
        data.disc_grid(0)


# ------------------------------------------------------------------------------ IDX and MNIST
def write_idx(path: Path, arr: np.ndarray, compress: bool) -> Path:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
            np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}[arr.dtype]
    raw = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    "arr",
    [
        np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5),
        np.array([-3, 0, 7], dtype=np.int8),
        np.array([[1, -2], [300, -400]], dtype=">i2"),
        np.array([2**31 - 1, -(2**31)], dtype=">i4"),
        np.array([[0.5, -1.25]], dtype=">f4"),
        np.array([np.pi], dtype=">f8"),
        np.zeros((0, 28, 28), dtype=np.uint8),
    ],
)
def test_read_idx_round_trip(tmp_path, arr, compress):
    out = data.read_idx(write_idx(tmp_path / "a.idx", arr, compress))
    assert out.shape == arr.shape
    assert out.dtype == arr.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, arr)


def test_read_idx_truncated_and_overlong_and_not_idx(tmp_path):
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    raw = write_idx(tmp_path / "a", arr, False).read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-7])
    with pytest.raises(ValueError, match=r"truncated.*\(3, 4, 5\).*60 data bytes.*53"):
        data.read_idx(tmp_path / "cut")
    (tmp_path / "long").write_bytes(raw + b"\0")
    with pytest.raises(ValueError, match="too long"):
        data.read_idx(tmp_path / "long")
    (tmp_path / "hdr").write_bytes(raw[:9])
    with pytest.raises(ValueError, match="header"):
        data.read_idx(tmp_path / "hdr")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "junk")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        data.read_idx(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="path"):
        data.read_idx(tmp_path / "missing")


def test_read_idx_damaged_gzip(tmp_path):
    arr = np.arange(4000, dtype=np.int32).astype(">i4")
    gz = write_idx(tmp_path / "a.gz", arr, True).read_bytes()
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        data.read_idx(tmp_path / "cut.gz")
    flipped = bytearray(gz)
    flipped[len(gz) // 2] ^= 0xFF
    (tmp_path / "flip.gz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        data.read_idx(tmp_path / "flip.gz")


def synthetic_mnist(folder: Path, n: int = 5, compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_synthetic_folder(tmp_path, compress):
    images, labels = synthetic_mnist(tmp_path, compress=compress)
    X, y = data.load_mnist(tmp_path, verify=False)
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert X.dtype == np.uint8 and y.dtype == np.int64


def test_load_mnist_checksum_mismatch_names_the_file(tmp_path):
    synthetic_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz has md5 [0-9a-f]{32}, expected 9fb629c4"):
        data.load_mnist(tmp_path)


def test_load_mnist_images_and_labels_must_agree(tmp_path):
    synthetic_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8), True)
    with pytest.raises(ValueError, match="do not match"):
        data.load_mnist(tmp_path, verify=False)


def test_load_mnist_missing_files_give_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="VQGEOM_MNIST"):
        data.load_mnist(download=False)
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.gz not found.*VQGEOM_MNIST.*download=True"):
        data.load_mnist(tmp_path, download=False)
    with pytest.raises(ValueError, match="split"):
        data.load_mnist(tmp_path, split="validation")


def test_load_mnist_without_network_fails_with_instructions(tmp_path, monkeypatch):
    # no reachable mirror (a file:// URL that does not exist stands for a machine without network)
    monkeypatch.setattr(data, "MNIST_MIRRORS", ("file:///nonexistent-mirror/",))
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default download folder is ~/.cache/vqgeom/mnist
    with pytest.raises(FileNotFoundError, match=r"could not download t10k-images.*\.cache/vqgeom/mnist.*VQGEOM_MNIST"):
        data.load_mnist()
    with pytest.raises(FileNotFoundError, match=r"could not download t10k-images.*Put the standard MNIST IDX files"):
        data.load_mnist(tmp_path / "elsewhere")
    assert not list((tmp_path / "elsewhere").iterdir())  # nothing half-downloaded left behind


def test_load_mnist_reads_the_environment_variable(tmp_path, monkeypatch):
    images, _ = synthetic_mnist(tmp_path)
    monkeypatch.setenv(data.MNIST_ENV, str(tmp_path))
    X, _ = data.load_mnist(verify=False)
    np.testing.assert_array_equal(X, images)


def test_load_mnist_download_verifies_checksums(tmp_path, monkeypatch):
    # a local "mirror" (file:// URL) serving synthetic files; the checksum table is pointed at them
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images, labels = synthetic_mnist(mirror)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(data, "MNIST_MIRRORS", ("file:///nonexistent/", mirror.as_uri() + "/"))
    monkeypatch.setattr(data, "MNIST_FILES", {"test": tuple((name, sums[name]) for name, _ in data.MNIST_FILES["test"])})
    dest = tmp_path / "dest"
    X, y = data.load_mnist(dest, download=True)
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert sorted(p.name for p in dest.iterdir()) == sorted(sums)  # no temporary files left behind
    # a mirror serving a file whose checksum is wrong: nothing is kept, and the error says why
    monkeypatch.setattr(data, "MNIST_FILES", {"test": tuple((name, "0" * 32) for name, _ in data.MNIST_FILES["test"])})
    dest2 = tmp_path / "dest2"
    with pytest.raises(FileNotFoundError, match="md5"):
        data.load_mnist(dest2, download=True)
    assert list(dest2.iterdir()) == []


@needs_mnist
def test_load_mnist_shared_test_set():
    X, y = data.load_mnist(MNIST_DIR)
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    # published facts about MNIST's t10k set: first labels and per-class counts
    np.testing.assert_array_equal(y[:5], [7, 2, 1, 0, 4])
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert X.max() == 255 and X.min() == 0


@needs_mnist
def test_load_mnist_corrupted_and_truncated_copies(tmp_path):
    good = (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz has md5"):
        data.load_mnist(tmp_path)
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        data.load_mnist(tmp_path, verify=False)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(good[:-100])
    with pytest.raises(ValueError, match="md5"):
        data.load_mnist(tmp_path)
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        data.load_mnist(tmp_path, verify=False)


def test_split_is_disjoint_and_seeded():
    X = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    a = data.split(X, y, 30, 20, seed=1)
    b = data.split(X, y, 30, 20, seed=1)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    Xtr, ytr, Xte, yte = a
    assert len(ytr) == 30 and len(yte) == 20
    assert set(ytr).isdisjoint(yte) and set(ytr) | set(yte) == set(range(50))
    np.testing.assert_array_equal(Xtr[:, 0], 2 * ytr)
    with pytest.raises(ValueError, match="n_train"):
        data.split(X, y, 40, 20)
    with pytest.raises(ValueError, match="y"):
        data.split(X, y[:-1])
