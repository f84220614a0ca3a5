"""Import hygiene (issue 2 items 1 and 2): vqgeom loads neither triton, cupy nor shapely until used,
vqgeom.kernels is the installed kernels/ directory, and the package exports resolve."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vqgeom

HEAVY = ("triton", "cupy", "shapely", "dask", "distributed", "zarr")


def run_isolated(code: str, tmp_path: Path) -> None:
    # A fresh interpreter, started outside the repository so the checkout's own directories
    # are not on sys.path.
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_import_loads_no_optional_backend(tmp_path):
    run_isolated(
        f"""
        import sys
        import vqgeom, vqgeom.kernels, vqgeom.kernels.reference, vqgeom.kernels.cpu
        # numba is a core dependency but loads only at the first CPU distance call
        loaded = [m for m in {HEAVY + ("numba", "llvmlite")!r} if m in sys.modules]
        assert not loaded, loaded
        """,
        tmp_path,
    )


def test_cpu_pipeline_loads_no_optional_backend(tmp_path):
    run_isolated(
        f"""
        import sys
        import numpy as np, torch, vqgeom
        net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
        codes = vqgeom.encode(net, X)
        K = vqgeom.pairwise_distances(codes)
        vqgeom.heat_kernel(K, 2.0); vqgeom.mds(codes, 2); vqgeom.knn(codes, k=2)
        vqgeom.compare([net, net], X, [1.0])
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
        """,
        tmp_path,
    )


def test_kernels_installed_under_vqgeom_only(tmp_path):
    # kernels/ is installed as vqgeom.kernels; no top-level module named kernels is ours.
    run_isolated(
        """
        import importlib.util
        import vqgeom.kernels.reference
        spec = importlib.util.find_spec("kernels")
        assert spec is None or spec.origin != vqgeom.kernels.__file__, spec
        """,
        tmp_path,
    )


@pytest.mark.parametrize(
    "first",
    [
        "vqgeom.vq_kernel(net, X)",  # imports the vqgeom.encoding submodule internally
        "vqgeom.MDSResult, vqgeom.Hyperplanes",  # lazy exports that load the submodules
        "import vqgeom.encoding, vqgeom.embedding, vqgeom.neighbors",
        "from vqgeom.neighbors import knn; from vqgeom.embedding import MDSResult; from vqgeom.encoding import EncodingError",
        "vqgeom.encode, vqgeom.mds, vqgeom.knn",  # the functions first
    ],
)
def test_exported_functions_stay_callable_whatever_is_imported_first(tmp_path, first):
    # Importing a submodule binds it as a package attribute; a submodule named like an exported
    # function once made vqgeom.encode/mds/knn uncallable depending on import order.
    run_isolated(
        f"""
        import torch, vqgeom
        net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
        X = torch.randn(6, 2)
        {first}
        codes = vqgeom.encode(net, X)
        assert (vqgeom.pairwise_distances(codes) == vqgeom.vq_kernel(net, X)).all()
        d, i = vqgeom.knn(codes, k=1)
        vqgeom.mds(vqgeom.Codes.from_bits(torch.eye(4, dtype=torch.bool), [4]), 2)
        from vqgeom.encoding import reference_layers
        import vqgeom.encoding as enc
        assert enc.reference_layers is reference_layers
        assert callable(vqgeom.encode) and callable(vqgeom.mds) and callable(vqgeom.knn)
        """,
        tmp_path,
    )


def test_public_names_resolve():
    for name in vqgeom.__all__:
        assert getattr(vqgeom, name) is not None, name
    assert set(vqgeom.__all__) <= set(dir(vqgeom))
