"""The CuPy backend: the CUDA source compiles, the loader fails clearly without a GPU,
and on a GPU the kernel matches the numpy reference."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import zlib
from pathlib import Path

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


def _cuobjdump() -> str | None:
    """cuobjdump from the CUDA toolkit, else the copy Triton ships."""
    found = shutil.which("cuobjdump")
    if found:
        return found
    try:
        import triton.backends.nvidia as nv
    except ImportError:
        return None
    path = Path(nv.__file__).parent / "bin" / "cuobjdump"
    return str(path) if path.exists() else None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_source_compiles_with_nvcc(tmp_path, arch):
    out = tmp_path / "hamming.cubin"
    res = subprocess.run(
        ["nvcc", "--std=c++17", f"-arch={arch}", "-cubin", "-Werror", "all-warnings", "-o", str(out),
         str(loader.SOURCE_PATH)],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    symbols = out.read_bytes()
    for name in loader.OUT_DTYPES:  # every extern "C" entry point the loader looks up is there
        assert f"vq_hamming_{name}".encode() in symbols
        assert f"vq_bmma_{name}".encode() in symbols
    assert b"vq_bmma_rowpop" in symbols
    tool = _cuobjdump()
    if tool is None:
        pytest.skip("no cuobjdump (CUDA toolkit or triton) to read the machine code")
    sass = subprocess.run([tool, "-sass", str(out)], capture_output=True, text=True, check=True).stdout
    # the binary tensor-core instruction is really there (AND + popcount, 8 x 8 x 128)
    assert "BMMA.88128.AND.POPC" in sass
    usage = subprocess.run([tool, "-res-usage", str(out)], capture_output=True, text=True, check=True).stdout
    regs = [int(r) for r in re.findall(r"Function vq_bmma_\w+:\s+REG:(\d+)", usage)]
    assert len(regs) == len(loader.OUT_DTYPES) + 1 and max(regs) * 128 <= 65536  # + rowpop; 128 threads a block


@pytest.mark.parametrize("sizes,n,m", [((300, 40, 7), 70, 45), ((129,), 66, 3), ((1,), 1, 1), ((64, 64), 5, 130)])
def test_bmma_emulation_matches_reference(sizes, n, m):
    """The numpy twin of the bmma kernel (same tiles, fragments, K slices, combination and
    mirror stores) against the oracle: the kernel's index and bit logic, checked on the CPU."""
    rng = np.random.default_rng(zlib.crc32(repr((sizes, n, m)).encode()))
    bx = rng.random((n, sum(sizes))) < 0.5
    by = rng.random((m, sum(sizes))) < 0.5
    wx, wy = pack_bits(bx, sizes), pack_bits(by, sizes)
    np.testing.assert_array_equal(loader.bmma_emulate(wx, wy, sizes), R.hamming(bx, by, sizes))
    # symmetric with one grid row: the folded row loop and the mirror stores
    np.testing.assert_array_equal(loader.bmma_emulate(wx, None, sizes, grid_y=1), R.hamming(bx, bx, sizes))
    w = np.linspace(0.5, 2.0, len(sizes))
    # float64 accumulation of one product per layer: L roundings of 2**-53
    np.testing.assert_allclose(loader.bmma_emulate(wx, wy, sizes, w, np.float64), R.hamming(bx, by, sizes, w),
                               rtol=len(sizes) * 2.0**-52, atol=0)
    wi = np.arange(1.0, len(sizes) + 1)
    np.testing.assert_array_equal(loader.bmma_emulate(wx, None, sizes, wi, np.int32), R.hamming(bx, bx, sizes, wi))


def test_bmma_fragment_semantics():
    """One emulated m8n8k128 AND-popc step against a direct 8 x 8 x 128-bit product."""
    rng = np.random.default_rng(1209)
    A = rng.integers(0, 2**32, (8, 4), dtype=np.uint64).astype(np.uint32)  # 8 rows x 128 bits
    B = rng.integers(0, 2**32, (8, 4), dtype=np.uint64).astype(np.uint32)  # 8 columns x 128 bits
    acc = np.zeros((32, 2), dtype=np.int64)
    loader._mma_and_popc(acc, A.reshape(32), B.reshape(32))  # lane 4 g + t holds word t of row g
    want = np.array([[sum(bin(int(a) & int(b)).count("1") for a, b in zip(A[r], B[c])) for c in range(8)]
                     for r in range(8)])
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        assert list(acc[lane]) == [want[g, 2 * t], want[g, 2 * t + 1]]


def test_loader_method_is_checked():
    with pytest.raises(ValueError, match="method"):
        loader.pairwise_hamming(np.zeros((2, 1), np.uint32), None, (3,), method="xor")


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
