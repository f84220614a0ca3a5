"""Lean imports: vqgeom and its kernels import without shapely, triton or cupy loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> None:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_import_vqgeom_and_kernels_loads_no_optional_package():
    _run(
        """
        import sys
        import vqgeom, vqgeom.kernels, vqgeom.kernels.reference, vqgeom.kernels.cuda.loader
        for name in ("shapely", "triton", "cupy"):
            assert name not in sys.modules, name
        """
    )


def test_kernels_import_with_shapely_blocked():
    # a machine without shapely (the GPU image): block it and import everything GPU-side
    _run(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "shapely" or name.startswith("shapely."):
                    raise ImportError("shapely blocked for this test")
        sys.meta_path.insert(0, Block())
        import os
        os.environ["TRITON_INTERPRET"] = "1"
        import vqgeom
        import vqgeom.kernels.triton.hamming, vqgeom.kernels.triton.encode, vqgeom.kernels.triton.reductions
        import vqgeom.kernels.cuda.loader
        assert "shapely" not in sys.modules
        """
    )
