"""Data sets of the paper (Appendix A), generated in numpy or read from standard files.

- :func:`two_moons`: the two-moons point cloud of Appendix A.1 (n = 150, scaled into [-1, 1]^2).
- :func:`rotate`: rigid rotation of one coordinate plane (pi/6 in the paper).
- :func:`high_dim_moons`: the "high-dimensional two moons" of Appendix A.3, unit vectors in R^100.
- :func:`disc_grid`: the 96 x 96 grid on [-1, 1]^2 restricted to the unit disc (Fig. 1).
- :func:`load_mnist` / :func:`read_idx` / :func:`split`: MNIST from IDX(.gz) files, checksummed.

Nothing here needs scikit-learn or torchvision. :func:`load_mnist` downloads missing MNIST files
(checksummed) where the network allows, and otherwise fails saying how to get them; ``download=False``
keeps it offline.
"""

from __future__ import annotations

import gzip
import math
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .._validate import check_int

__all__ = [
    "two_moons",
    "rotate",
    "high_dim_moons",
    "disc_grid",
    "read_idx",
    "load_mnist",
    "split",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_ENV",
]


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an int, a numpy Generator or None, got {type(seed).__name__}")
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# Two moons (Appendix A.1)
# --------------------------------------------------------------------------------------------
def two_moons(n: int = 150, noise: float = 0.1, seed: int | np.random.Generator | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """The two-moons binary classification set, scaled into ``[-1, 1]^2``.

    The construction is the usual one (as in scikit-learn's ``make_moons``): ``n // 2``
    points on the upper half circle ``(cos t, sin t)`` (label 0) and the rest on the
    shifted lower half circle ``(1 - cos t, 1/2 - sin t)`` (label 1), with ``t`` evenly
    spaced in ``[0, pi]``, plus isotropic Gaussian noise of standard deviation ``noise``
    (in the units of the unit-radius moons), then shuffled. The cloud is then centred on
    its bounding box and scaled by ONE factor so that the longer side spans exactly
    ``[-1, 1]``: the shape of the moons is kept (no per-axis stretch), so that a
    rotation of the data is a rotation of the same shape.

    Parameters
    ----------
    n : int
        Number of points (>= 2). The paper uses 150.
    noise : float
        Standard deviation of the Gaussian noise before scaling (>= 0). The paper does not
        state it; 0.1 is the customary value.
    seed : int, numpy Generator or None
        Randomness of the noise and of the shuffle.

    Returns
    -------
    X : ndarray, shape (n, 2), float64
        Points, every coordinate in ``[-1, 1]``.
    y : ndarray, shape (n,), int64
        Labels in ``{0, 1}``.
    """
    n = check_int(n, "n", 2)
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise: expected a finite float >= 0, got {noise}")
    rng = _rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    X = np.concatenate(
        [np.stack([np.cos(t_out), np.sin(t_out)], 1), np.stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)]
    )
    y = np.concatenate([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    X = X + noise * rng.standard_normal(X.shape)
    order = rng.permutation(n)
    X, y = X[order], y[order]
    lo, hi = X.min(0), X.max(0)
    X = (X - (lo + hi) / 2) / ((hi - lo).max() / 2)
    # the extreme coordinate lands on +-1 up to one rounding; clip it so the documented bound is exact
    return np.clip(X, -1.0, 1.0), y


def rotate(X: np.ndarray, angle: float = np.pi / 6, plane: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Rotate the points counter-clockwise by ``angle`` radians in one coordinate plane.

    Parameters
    ----------
    X : array_like, shape (N, D), D >= 2
        Points (rows).
    angle : float
        Rotation angle in radians (the paper uses pi/6).
    plane : pair of int
        The two coordinates spanning the rotated plane, ``(i, j)``: ``e_i`` turns towards
        ``e_j``. The other coordinates are unchanged, so norms are preserved. For the
        high-dimensional moons of :func:`high_dim_moons` the signal plane is ``(0, 1)``.

    Returns
    -------
    ndarray, shape (N, D), float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"X: expected a 2-D array of shape (N, D) with D >= 2, got shape {X.shape}")
    i, j = (int(p) for p in plane)
    if i == j or not (0 <= i < X.shape[1] and 0 <= j < X.shape[1]):
        raise ValueError(f"plane: expected two distinct coordinates in [0, {X.shape[1]}), got {plane}")
    c, s = np.cos(angle), np.sin(angle)
    out = X.copy()
    out[:, i] = c * X[:, i] - s * X[:, j]
    out[:, j] = s * X[:, i] + c * X[:, j]
    return out


def high_dim_moons(
    n: int = 150,
    noise: float = 0.1,
    seed: int | np.random.Generator | None = 0,
    *,
    dim: int = 100,
    scale: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """The high-dimensional two moons of Appendix A.3: unit vectors in ``R^dim``.

    Each point is ``[scale * u_j, z_j]`` with ``u_j`` a point of :func:`two_moons` (in
    ``[-1, 1]^2``) and ``z_j`` uniform on the sphere of radius
    ``sqrt(1 - ||scale * u_j||^2)`` in ``R^(dim - 2)``, so every point has unit norm and
    the class information lies in the first two coordinates (the "signal plane"). The
    rotated variant of the paper is ``rotate(X, np.pi / 6)``, which turns the signal
    plane and keeps the same ``z_j``.

    Parameters
    ----------
    n, noise : see :func:`two_moons`
    seed : int, numpy Generator or None
        Randomness of the moons and of the ``z_j`` (one stream: the moons first).
    dim : int
        Ambient dimension (>= 3); the paper uses 100.
    scale : float
        Factor on the signal coordinates, in ``(0, 1/sqrt(2)]`` so that
        ``||scale * u|| <= 1``; the paper uses 0.1.

    Returns
    -------
    X : ndarray, shape (n, dim), float64
        Unit-norm points.
    y : ndarray, shape (n,), int64
        Labels in ``{0, 1}``.
    """
    dim = check_int(dim, "dim", 3)
    scale = float(scale)
    if not 0 < scale <= 2**-0.5:
        raise ValueError(f"scale: expected a float in (0, 1/sqrt(2)] so that ||scale * u|| <= 1, got {scale}")
    rng = _rng(seed)
    U, y = two_moons(n, noise, rng)
    signal = scale * U
    z = rng.standard_normal((U.shape[0], dim - 2))  # isotropic Gaussian / its norm = uniform on the sphere
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    z *= np.sqrt(1.0 - np.sum(signal**2, axis=1, keepdims=True))
    return np.concatenate([signal, z], axis=1), y


def disc_grid(n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """The ``n x n`` grid on ``[-1, 1]^2`` restricted to the closed unit disc (Fig. 1).

    Grid node ``(i, j)`` is the point ``(xs[j], ys[i])`` with ``xs = ys = linspace(-1, 1, n)``
    (row ``i`` is the y coordinate, as ``imshow(..., origin="lower", extent=(-1, 1, -1, 1))``
    draws it).

    Parameters
    ----------
    n : int
        Nodes per side (>= 1); the paper uses 96.

    Returns
    -------
    points : ndarray, shape (mask.sum(), 2), float64
        The nodes inside the disc, in row-major order of the grid, so that
        ``image[mask] = values`` puts per-point values back on the grid.
    mask : ndarray, shape (n, n), bool
        ``mask[i, j]`` is True iff ``xs[j]**2 + ys[i]**2 <= 1``.
    """
    n = check_int(n, "n", 1)
    ticks = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    gx, gy = np.meshgrid(ticks, ticks, indexing="xy")
    mask = gx**2 + gy**2 <= 1.0
    return np.stack([gx[mask], gy[mask]], axis=1), mask


# --------------------------------------------------------------------------------------------
# MNIST (Appendix A.2)
# --------------------------------------------------------------------------------------------
MNIST_ENV = "VQGEOM_MNIST"
"""Environment variable naming the folder that holds the MNIST IDX files."""

MNIST_FILES = {
    "train": (
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ),
    "test": (
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
}
"""Canonical file names and md5 checksums of the gzipped IDX files, per split."""

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""Mirrors tried in order by :func:`load_mnist` for missing files (unless ``download=False``)."""

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` compressed or not) into a numpy array.

    IDX: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a byte with the number of dimensions, one big-endian
    uint32 per dimension, then the data, big-endian, row-major.

    Parameters
    ----------
    path : path-like
        The file; compression is recognised by the gzip magic bytes, not the name.

    Returns
    -------
    ndarray
        Shape from the header; dtype from the type byte, in native byte order.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not a valid IDX file: a damaged gzip stream, a bad magic number,
        or fewer or more data bytes than the header announces (a truncated file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no IDX file at {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # bad header/CRC, cut-off stream, bad deflate data
            raise ValueError(
                f"path: {path} is a damaged or truncated gzip file ({type(exc).__name__}: {exc}); delete it and fetch it again"
            ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"path: {path} is not an IDX file: expected the magic bytes 00 00 <type in "
            f"{sorted(_IDX_DTYPES)}> <ndim>, got {raw[:4].hex(' ') or 'an empty file'}"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"path: {path} is truncated: expected a {header}-byte header for {ndim} dimensions, got {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize  # Python integers: absurd headers cannot overflow
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "too long"
        raise ValueError(
            f"path: {path} is {what}: the header announces shape {shape} ({expected} data bytes), found {found} data bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _download(name: str, md5: str, folder: Path, timeout: float) -> None:
    """Fetch ``name`` from the first mirror that answers, verify it, then move it into ``folder``.

    The file is written under a temporary name and renamed only once its checksum matches, so an
    interrupted or corrupted download never leaves a file with the canonical name behind.
    """
    errors = []
    for mirror in MNIST_MIRRORS:
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out)
            got = _md5(Path(tmp))
            if got != md5:
                errors.append(f"{mirror}{name}: md5 {got}, expected {md5}")
                continue
            os.replace(tmp, folder / name)
            tmp = None
            return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{mirror}{name}: {exc}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError("; ".join(errors))


def _instructions(folder: Path | None, names: list[str]) -> str:
    return (
        f"Put the standard MNIST IDX files {', '.join(names)} (from any MNIST mirror, e.g. "
        f"{MNIST_MIRRORS[0]}) into a folder and pass it as folder=... (CLI: --mnist DIR) or set "
        f"the environment variable {MNIST_ENV}=DIR"
        + (f" (looked in {folder})" if folder is not None else "")
        + "; where the network allows, load_mnist(..., download=True) fetches them (checksummed)."
    )


def load_mnist(
    folder: str | os.PathLike | None = None,
    split: str = "test",
    *,
    download: bool = True,
    verify: bool = True,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST images and labels from standard IDX files.

    The folder is ``folder`` if given, else the environment variable ``VQGEOM_MNIST``, else
    (only when downloading) ``~/.cache/vqgeom/mnist``. It holds the canonical file names of
    :data:`MNIST_FILES` (gzipped) or the same names without ``.gz``.

    Parameters
    ----------
    folder : path-like or None
        Folder with the IDX files.
    split : {"test", "train"}
        ``"test"``: the 10,000 ``t10k`` images (the paper splits those 8,000 / 2,000, see
        :func:`split`); ``"train"``: the 60,000 training images.
    download : bool
        Fetch missing gzipped files from :data:`MNIST_MIRRORS` into the folder; a file is
        kept only once its md5 checksum matches. Where the network does not allow it, the
        error says how to provide the files. ``False``: never touch the network.
    verify : bool
        Check the md5 of gzipped files against the canonical checksums. Switch it off only
        for files that are not the canonical ones (e.g. a test's own small files).
    timeout : float
        Seconds per network request when downloading (each mirror is tried once).

    Returns
    -------
    images : ndarray, shape (N, 28, 28), uint8
    labels : ndarray, shape (N,), int64

    Raises
    ------
    FileNotFoundError
        No folder named (with ``download=False``), or files missing and not downloadable (the
        message says how to get them).
    ValueError
        A checksum mismatch, a corrupted or truncated file, or images and labels that disagree.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected one of {sorted(MNIST_FILES)}, got {split!r}")
    if folder is None:
        env = os.environ.get(MNIST_ENV)
        folder = Path(env) if env else None
    else:
        folder = Path(folder)
    names = [name for name, _ in MNIST_FILES[split]]
    if folder is None:
        if not download:
            raise FileNotFoundError(f"folder: no MNIST folder given and {MNIST_ENV} is not set. " + _instructions(None, names))
        folder = Path.home() / ".cache" / "vqgeom" / "mnist"
    arrays = []
    for name, md5 in MNIST_FILES[split]:
        path = folder / name
        if not path.is_file() and (folder / name[:-3]).is_file():
            arrays.append(read_idx(folder / name[:-3]))  # uncompressed copy: no canonical checksum to check
            continue
        if not path.is_file():
            if not download:
                raise FileNotFoundError(f"folder: {path} not found. " + _instructions(folder, names))
            try:
                _download(name, md5, folder, timeout)
            except OSError as exc:
                raise FileNotFoundError(
                    f"folder: could not download {name} into {folder} ({exc}). " + _instructions(folder, names)
                ) from exc
        if verify:
            got = _md5(path)
            if got != md5:
                raise ValueError(
                    f"folder: {path} has md5 {got}, expected {md5} (corrupted or not the canonical MNIST file); "
                    "delete it and fetch it again"
                )
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"folder: images of shape {images.shape} and labels of shape {labels.shape} do not match "
            "(expected (N, rows, cols) and (N,))"
        )
    paths = [folder / name for name, _ in MNIST_FILES[split]]
    for arr, p, lo, hi in ((images, paths[0], 0, 255), (labels, paths[1], 0, 9)):
        if arr.dtype.kind not in "iu":
            raise ValueError(f"folder: {p} holds {arr.dtype} values; MNIST images and labels are integers")
        if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
            raise ValueError(
                f"folder: {p} holds values in [{arr.min()}, {arr.max()}], expected [{lo}, {hi}] "
                f"(not an MNIST file; nothing is cast silently)"
            )
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


def split(
    X: np.ndarray, y: np.ndarray, n_train: int = 8000, n_test: int = 2000, seed: int | np.random.Generator | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random split into disjoint train and test parts (the paper: 8,000 / 2,000).

    Parameters
    ----------
    X : ndarray, shape (N, ...)
    y : ndarray, shape (N,)
    n_train, n_test : int
        Sizes; ``n_train + n_test <= N``.
    seed : int, numpy Generator or None

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarrays with ``n_train`` and ``n_test`` rows
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[:1] != y.shape[:1]:
        raise ValueError(f"y: expected {X.shape[0]} labels to match X's rows, got shape {y.shape}")
    n_train = check_int(n_train, "n_train", 0)
    n_test = check_int(n_test, "n_test", 0)
    if n_train + n_test > X.shape[0]:
        raise ValueError(f"n_train + n_test: expected at most {X.shape[0]} (the rows of X), got {n_train + n_test}")
    order = _rng(seed).permutation(X.shape[0])
    tr, te = order[:n_train], order[n_train : n_train + n_test]
    return X[tr], y[tr], X[te], y[te]
