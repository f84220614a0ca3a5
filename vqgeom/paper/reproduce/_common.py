"""Helpers shared by the figure scripts: output files, timing, and the measures of the paper's claims.

The measures (all deterministic, numpy/scipy only):

- :func:`offdiag_corr`: Pearson correlation of two kernels over the off-diagonal pairs (how well
  two kernels agree on corresponding points), streamed by row blocks.
- :func:`procrustes`: Procrustes disparity of two embeddings after the best translation, scaling
  and orthogonal map (0 = identical shape, 1 = unrelated); scipy's definition.
- :func:`spectrum`: the MDS spectrum, normalised by the leading eigenvalue, and two summaries of
  its decay (effective rank, components for 90% of the mass).
- :func:`loo_knn_accuracy`: leave-one-out k-NN accuracy from a distance matrix.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = [
    "Context",
    "offdiag_corr",
    "procrustes",
    "spectrum",
    "loo_knn_accuracy",
    "euclidean_sq",
    "save_json",
    "save_csv",
    "savefig",
    "pyplot",
    "order_by_label",
    "class_scatter",
    "kernel_panel",
]


class Context:
    """What every figure script receives: where to write, how big, and whether to talk.

    Parameters
    ----------
    out : Path
        The figure's output folder (created).
    small : bool
        Reduced sizes for smoke tests (not the paper's settings).
    progress : bool
        tqdm progress bars during training and long loops.
    mnist : path or None
        Folder with the MNIST IDX files (else ``$VQGEOM_MNIST``).
    name : str
        The figure's name, used in log lines.
    """

    def __init__(self, out: Path, *, small: bool = False, progress: bool = True, mnist: str | None = None, name: str = ""):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.small = small
        self.progress = progress
        self.mnist = mnist
        self.name = name
        self.t0 = time.perf_counter()
        self.steps: dict[str, float] = {}

    def log(self, msg: str) -> None:
        """Print one progress line with the seconds since the figure started."""
        print(f"[{self.name} {time.perf_counter() - self.t0:7.1f}s] {msg}", flush=True)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a named step; the seconds are kept in ``steps`` and logged."""
        self.log(f"{label} ...")
        t = time.perf_counter()
        yield
        self.steps[label] = time.perf_counter() - t
        self.log(f"{label}: {self.steps[label]:.1f}s")

    def machine(self) -> dict[str, Any]:
        """Where the numbers were measured."""
        import torch

        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        }


def offdiag_corr(A: Any, B: Any, block_rows: int = 1024) -> float:
    """Pearson correlation of ``A[i, j]`` and ``B[i, j]`` over all ``i != j``.

    For symmetric kernels this is the correlation over the pairs of the upper triangle.
    Streamed by row blocks in float64, so two ``(N, N)`` integer kernels need no float copy.

    Parameters
    ----------
    A, B : ndarray, shape (N, N)

    Returns
    -------
    float
    """
    A, B = np.asarray(A), np.asarray(B)
    if A.shape != B.shape or A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"B: expected the square shape of A {A.shape}, got {B.shape}")
    n = A.shape[0]
    s = np.zeros(5)  # sum a, sum b, sum aa, sum bb, sum ab
    for r in range(0, n, block_rows):
        a = A[r : r + block_rows].astype(np.float64)
        b = B[r : r + block_rows].astype(np.float64)
        rows = np.arange(a.shape[0])
        a[rows, r + rows] = 0.0
        b[rows, r + rows] = 0.0
        s += [a.sum(), b.sum(), np.einsum("ij,ij->", a, a), np.einsum("ij,ij->", b, b), np.einsum("ij,ij->", a, b)]
    m = n * n - n
    ma, mb = s[0] / m, s[1] / m
    cov = s[4] / m - ma * mb
    va, vb = s[2] / m - ma * ma, s[3] / m - mb * mb
    return float(cov / np.sqrt(va * vb))


def procrustes(E1: np.ndarray, E2: np.ndarray) -> float:
    """Procrustes disparity (scipy.spatial.procrustes) of two ``(N, k)`` embeddings, in [0, 1]."""
    from scipy.spatial import procrustes as _procrustes

    return float(_procrustes(np.asarray(E1, dtype=np.float64), np.asarray(E2, dtype=np.float64))[2])


def spectrum(K_or_codes: Any, k: int | None = None) -> dict[str, Any]:
    """The MDS spectrum (``vqgeom.mds``), normalised by the leading eigenvalue, and its decay.

    Parameters
    ----------
    K_or_codes : Codes or ndarray (N, N)
        As for :func:`vqgeom.mds`.
    k : int, optional
        Number of eigenvalues (default: all there can be, ``min(N, B)`` for codes, ``N`` for a matrix).

    Returns
    -------
    dict
        ``eigenvalues`` (list, normalised, largest first), ``effective_rank``
        ``(sum l)^2 / sum l^2`` of the magnitudes, and ``k90``, the number of leading
        eigenvalues holding 90% of the total magnitude.
    """
    import vqgeom
    from vqgeom.codes import Codes

    if k is None:
        k = min(K_or_codes.n, K_or_codes.n_units) if isinstance(K_or_codes, Codes) else np.asarray(K_or_codes).shape[0]
    lam = np.abs(np.asarray(vqgeom.mds(K_or_codes, k).eigenvalues, dtype=np.float64))
    frac = np.cumsum(lam) / lam.sum()
    return {
        "eigenvalues": lam.tolist(),
        "effective_rank": float(lam.sum() ** 2 / np.sum(lam**2)),
        "k90": int(np.searchsorted(frac, 0.9) + 1),
    }


def loo_knn_accuracy(D: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy from a distance matrix (majority vote; ties -> smaller label).

    Neighbours are ordered by distance, ties by the smaller index (stable sort), and each
    point is left out of its own neighbours.

    Parameters
    ----------
    D : ndarray, shape (N, N)
    y : ndarray, shape (N,), non-negative ints
    k : int

    Returns
    -------
    float in [0, 1]
    """
    D = np.asarray(D, dtype=np.float64).copy()
    y = np.asarray(y, dtype=np.int64)
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(y), y.max() + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[idx].ravel()), 1)
    return float(np.mean(votes.argmax(1) == y))


def euclidean_sq(X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances ``(N, M)`` in float64, clipped at 0 (no negative round-off)."""
    X = np.asarray(X, dtype=np.float64)
    Y = X if Y is None else np.asarray(Y, dtype=np.float64)
    D = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2 * X @ Y.T
    return np.maximum(D, 0.0)


def order_by_label(y: np.ndarray) -> np.ndarray:
    """Indices sorting ``y`` (stable: within a class, the original order)."""
    return np.argsort(np.asarray(y), kind="stable")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def save_json(obj: Any, path: Path) -> Path:
    """Write ``obj`` (numpy values converted) as indented JSON."""
    Path(path).write_text(json.dumps(_plain(obj), indent=2) + "\n")
    return Path(path)


def save_csv(path: Path, header: Sequence[str], rows: Any) -> Path:
    """Write rows under a header as CSV (floats with 8 significant digits)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow([f"{v:.8g}" if isinstance(v, (float, np.floating)) else v for v in row])
    return Path(path)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def savefig(fig: Any, out: Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name.png`` (150 dpi) and ``name.pdf`` in ``out`` and close it."""
    plt = pyplot()
    paths = [Path(out) / f"{name}.png", Path(out) / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


# Two classes drawn on top of a diverging field: black and white markers of different shapes
# contrast with every colour of RdBu and of viridis (a red/blue class map would vanish in the field).
CLASS_STYLE = (
    dict(marker="o", facecolors="k", edgecolors="w", linewidths=0.5, label="class 0"),
    dict(marker="^", facecolors="w", edgecolors="k", linewidths=0.6, label="class 1"),
)


def class_scatter(ax: Any, X: np.ndarray, y: np.ndarray, s: float = 14, legend: bool = False) -> None:
    """Scatter 2-D points by class (black circles / white triangles), never clipped at the frame."""
    for lab, style in enumerate(CLASS_STYLE):
        m = np.asarray(y) == lab
        ax.scatter(X[m, 0], X[m, 1], s=s, clip_on=False, zorder=3, **style)
    if legend:
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8, handletextpad=0.2, borderpad=0.3)


def kernel_panel(fig: Any, ax: Any, M: np.ndarray, y_sorted: np.ndarray, title: str, label: str, cmap: str = "viridis") -> Any:
    """A distance matrix ordered by label: axis labels, a colour bar and the class boundary."""
    im = ax.imshow(M, cmap=cmap, interpolation="nearest")
    n0 = int((np.asarray(y_sorted) == 0).sum())
    for f in (ax.axhline, ax.axvline):
        f(n0 - 0.5, color="w", lw=0.8, ls="--")
    ax.set_xlabel("point (sorted by class)")
    ax.set_ylabel("point (sorted by class)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return im
