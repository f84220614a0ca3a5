"""The CuPy backend: the CUDA source compiles, the loader fails clearly without a GPU,
and on a GPU the kernel matches the numpy reference."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import numpy as np
import pytest

from vqgeom.codes import pack_bits
from vqgeom.kernels import reference as R
from vqgeom.kernels.cuda import loader


def _gpu_cupy() -> bool:
    try:
        loader._cupy()
    except RuntimeError:
        return False
    return True


HAVE = _gpu_cupy()
NO_GPU = "needs cupy and a CUDA GPU (none here); the source is compile-checked by nvcc instead"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_source_compiles_with_nvcc(tmp_path):
    out = tmp_path / "hamming.cubin"
    res = subprocess.run(
        ["nvcc", "--std=c++17", "-arch=sm_80", "-cubin", "-Werror", "all-warnings", "-o", str(out),
         str(loader.SOURCE_PATH)],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    symbols = out.read_bytes()
    for name in loader.OUT_DTYPES:  # every extern "C" entry point the loader looks up is there
        assert f"vq_hamming_{name}".encode() in symbols


@pytest.mark.skipif(HAVE, reason="a GPU is present: the no-GPU error cannot be observed")
def test_loader_error_without_gpu():
    with pytest.raises(RuntimeError, match="cupy backend needs"):
        loader.get_module()
    with pytest.raises(RuntimeError, match="cupy backend needs"):
        loader.pairwise_hamming(np.zeros((2, 1), np.uint32), None, (3,))


def test_loader_is_lazy():
    # importing the loader must not import cupy (checked in a fresh interpreter)
    code = "import sys, vqgeom.kernels.cuda.loader; assert 'cupy' not in sys.modules"
    subprocess.run([__import__("sys").executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE, reason=NO_GPU)
@pytest.mark.parametrize("sym", [False, True])
def test_cupy_matches_reference(sym):
    import cupy

    rng = np.random.default_rng(7)
    for sizes in [(1,), (33, 5, 64), (288,)]:
        for n, m in [(1, 1), (70, 45), (1000 + 3, 517)]:
            m = n if sym else m
            bx = rng.random((n, sum(sizes))) < 0.5
            by = bx if sym else rng.random((m, sum(sizes))) < 0.5
            wx = cupy.asarray(pack_bits(bx, sizes))
            wy = None if sym else cupy.asarray(pack_bits(by, sizes))
            for dt in ("int16", "int32", "float32"):
                np.testing.assert_array_equal(loader.pairwise_hamming(wx, wy, sizes, None, dt).get(),
                                              R.hamming(bx, by, sizes))
            w_int = np.arange(1, len(sizes) + 1, dtype=np.float64)
            np.testing.assert_array_equal(loader.pairwise_hamming(wx, wy, sizes, w_int, "int32").get(),
                                          R.hamming(bx, by, sizes, w_int))
            w = np.linspace(0.3, 1.7, len(sizes))
            # float64 accumulation, one rounding to float32 at the end
            np.testing.assert_allclose(loader.pairwise_hamming(wx, wy, sizes, w, "float32").get(),
                                       R.hamming(bx, by, sizes, w), rtol=2.0**-23)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE, reason=NO_GPU)
def test_cupy_bad_input_and_memo():
    import cupy

    assert loader.get_module() is loader.get_module()
    wx = cupy.zeros((3, 2), dtype=cupy.uint32)
    with pytest.raises(ValueError, match="wx"):
        loader.pairwise_hamming(wx, None, (10,))
    with pytest.raises(TypeError, match="out_dtype"):
        loader.pairwise_hamming(wx, None, (64,), None, "complex64")
    with pytest.raises(ValueError, match="out_dtype"):
        loader.pairwise_hamming(cupy.zeros((3, 9), dtype=cupy.uint32), None, (288,), None, "uint8")
    with pytest.raises(TypeError, match="wx"):
        loader.pairwise_hamming(np.zeros((3, 2), np.uint32), None, (64,))
