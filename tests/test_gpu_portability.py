"""GPU portability without a GPU (issue 12).

* Kernel configurations derived from device properties (``_device.TARGETS``): the plans
  fit each target, sm_75 takes float16 dots, and the sm_75 configuration computes the
  same distances in the interpreter.
* Grids within CUDA's limits at any N: the folded row loops and widened chunks, run in
  the interpreter with the y limit lowered so a handful of tiles exercise them.
* Device guard and the clear error below the oldest architecture.
* Condensed output (scipy ``pdist`` layout) on numpy, CPU and Triton (interpreter).
* The fused encoder's in-kernel finite check, through ``vqgeom.encode`` too.
* The ahead-of-time compile of every default launch for every target (subprocess).

The interpreter modules are those of ``test_triton_kernels`` (loaded once per session,
see its ``_load_kernels``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_distance = pytest.importorskip("scipy.spatial.distance")

import test_triton_kernels as ttk  # noqa: E402  (the interpreter-loaded kernel modules)

import vqgeom  # noqa: E402
from vqgeom.codes import Codes, pack_bits  # noqa: E402
from vqgeom.kernels import reference as R  # noqa: E402

hamming, int8, encode, reductions = ttk.hamming, ttk.int8, ttk.encode, ttk.reductions
_device = importlib.import_module("vqgeom.kernels.triton._device")
DEV = ttk.DEV


def _codes(rng, n, sizes):
    bits = rng.random((n, sum(sizes))) < 0.5
    return bits, torch.from_numpy(pack_bits(bits, sizes).view(np.int32)).to(DEV)


# ------------------------------------------------------------------- device-derived plans
@pytest.mark.parametrize("cc", sorted(_device.TARGETS))
def test_int8_plan_fits_each_target(cc):
    info = _device.TARGETS[cc]
    budget = info.smem_optin - int8.SMEM_SLACK
    for kt, seg, elem in [(288, 32, 2), (1024, 64, 4), (512, 64, 8), (0, 64, 8), (64, 32, 1)]:
        for sym in (True, False):
            plan = int8.int8_plan(info, 10**5, 10**5, kt, seg, elem, sym, dict(int8.INT8_CONFIG), {})
            assert plan.smem_model <= budget, (cc, kt, plan)
            assert plan.f16 == (cc < 80)
            assert plan.stages >= 1 and plan.bm == plan.bn


def test_plan_follows_the_device():
    cfg = dict(int8.INT8_CONFIG)
    big = int8.int8_plan(_device.TARGETS[90], 10**5, 10**5, 288, 32, 2, True, cfg, {})
    small = int8.int8_plan(_device.TARGETS[75], 10**5, 10**5, 288, 32, 2, True, cfg, {})
    assert (big.bm, big.stages) == (128, 3)  # the H200-measured default
    assert small.bm < big.bm  # 64 KB of shared memory: smaller tiles
    # chunks of column tiles stay within grid y's 65,535 at any M
    huge = int8.int8_plan(_device.TARGETS[90], 10, 10**9, 288, 32, 2, False, cfg, {})
    assert -(-(-(-10**9 // huge.bn)) // huge.chunk) <= _device.MAX_GRID_YZ
    # fewer multiprocessors: the chunk shrinks less
    a = int8.int8_plan(_device.TARGETS[90], 4096, 4096, 288, 32, 2, True, cfg, {})
    b = int8.int8_plan(_device.TARGETS[75], 4096, 4096, 288, 32, 2, True, cfg, {})
    assert a.chunk <= b.chunk


@pytest.fixture
def target75(monkeypatch):
    """The interpreter runs the sm_75 (T4) configuration: float16 dots, small tiles."""
    monkeypatch.setattr(_device, "INTERPRETER_TARGET", 75)
    yield _device.TARGETS[75]


def test_sm75_configuration_is_exact(target75):
    rng = np.random.default_rng(1201)
    for sizes in [(288,), (33, 5, 64)]:
        bx, wx = _codes(rng, 70, sizes)
        by, wy = _codes(rng, 45, sizes)
        for w in (None, np.arange(1, len(sizes) + 1)):
            got = int8.int8_hamming(wx, wy, sizes, w, torch.int32)
            np.testing.assert_array_equal(ttk._np(got), R.hamming(bx, by, sizes, w))
            got = int8.int8_hamming(wx, None, sizes, w, torch.int32)
            np.testing.assert_array_equal(ttk._np(got), R.hamming(bx, bx, sizes, w))
        dd, ii = reductions.knn(wx, sizes, 4, wy=wy)
        rd, ri = R.knn(R.hamming(bx, by, sizes), 4)
        np.testing.assert_array_equal(ttk._np(ii), ri)
        np.testing.assert_array_equal(ttk._np(dd), rd)
        V = rng.standard_normal(45)
        D = R.hamming(bx, by, sizes)
        got = ttk._np(reductions.heat_matmat(wx, sizes, torch.from_numpy(V), 30.0, wy=wy))
        want = R.heat_kernel(D, 30.0) @ V
        # float32 exp2 and accumulation over 45 terms: 1e-5 of the largest entry
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


# ------------------------------------------------------------------------ grid limits
@pytest.fixture
def tiny_grid_y(monkeypatch):
    """Grid y holds only 2 programs: row loops and chunk widening take over."""
    monkeypatch.setattr(_device, "MAX_GRID_YZ", 2)
    monkeypatch.setattr(int8, "MAX_GRID_YZ", 2)
    yield 2


def test_folded_grids_cover_every_tile(tiny_grid_y):
    rng = np.random.default_rng(1202)
    sizes = (40, 33)
    bx, wx = _codes(rng, 300, sizes)  # 5 row tiles of 64 on 2 grid rows
    by, wy = _codes(rng, 200, sizes)
    got = hamming.popcount_hamming(wx, wy, sizes, None, torch.int32)
    np.testing.assert_array_equal(ttk._np(got), R.hamming(bx, by, sizes))
    sizes = (288,)
    bx, wx = _codes(rng, 40, sizes)
    by, wy = _codes(rng, 300, sizes)  # 3+ column tiles: chunk widened to fit 2 grid rows
    got = int8.int8_hamming(wx, wy, sizes, None, torch.int32, block=(32, 32, 32), chunk=1)
    np.testing.assert_array_equal(ttk._np(got), R.hamming(bx, by, sizes))


def test_launch_refuses_grids_beyond_cuda_limits():
    with pytest.raises(RuntimeError, match="exceeds CUDA's limits"):
        _device.launch(None, (1, 70000))
    with pytest.raises(RuntimeError, match="exceeds CUDA's limits"):
        _device.launch(None, (2**31, 1))


# ---------------------------------------------------------------- device guard, arch
class _FakeCuda:
    is_cuda = True

    def __init__(self, index):
        self.device = torch.device("cuda", index)


def test_device_guard_enters_the_tensors_device(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def fake_device(dev):
        entered.append(dev)
        yield

    monkeypatch.setattr(torch.cuda, "device", fake_device)
    monkeypatch.setattr(_device, "device_info", lambda t=None: _device.TARGETS[90])
    with _device.device_guard(_FakeCuda(1)):
        pass
    assert entered == [torch.device("cuda", 1)]
    with _device.device_guard(torch.zeros(1)):  # CPU (interpreter): nothing entered
        pass
    assert len(entered) == 1


def test_old_gpu_gets_a_clear_error(monkeypatch):
    old = _device.DeviceInfo("Tesla V100 (sm_70)", 70, 96 * 1024, 80)
    monkeypatch.setattr(_device, "device_info", lambda t=None: old)
    with pytest.raises(RuntimeError, match=r"compute capability 7\.5 .*V100.* 7\.0.*backend='cpu'"):
        _device.device_guard(_FakeCuda(0))
    for cc in _device.TARGETS:
        assert _device.check_arch(_device.TARGETS[cc]).cc == cc


# ------------------------------------------------------------------------- condensed
def _squareform(D):
    return scipy_distance.squareform(D, checks=False)


@pytest.mark.parametrize("method", ["popcount", "int8"])
@pytest.mark.parametrize("sizes", [(5,), (33, 5, 64), (288,)])
def test_condensed_triton(method, sizes):
    rng = np.random.default_rng(1203)
    for n in (1, 2, 37, 130):
        bx, wx = _codes(rng, n, sizes)
        for w, dt in ((None, torch.int16), (np.arange(1, len(sizes) + 1), torch.int32),
                      (np.linspace(0.5, 1.5, len(sizes)), torch.float64)):
            got = ttk._np(hamming.pairwise_hamming(wx, None, sizes, w, dt, method=method, condensed=True))
            want = _squareform(R.hamming(bx, bx, sizes, w))
            assert got.shape == (n * (n - 1) // 2,)
            # float64 output: one float64 rounding per layer (L * 2**-52)
            np.testing.assert_allclose(got, want, rtol=len(sizes) * 2.0**-52, atol=0)


def test_condensed_triton_needs_one_set():
    rng = np.random.default_rng(1204)
    _, wx = _codes(rng, 5, (7,))
    for method in ("popcount", "int8"):
        with pytest.raises(ValueError, match="condensed"):
            hamming.pairwise_hamming(wx, wx, (7,), method=method, condensed=True)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_condensed_public(backend, array):
    rng = np.random.default_rng(1205)
    sizes = (40, 9, 70)
    for n in (1, 2, 3, 65, 301):
        bits = rng.random((n, sum(sizes))) < 0.5
        words = pack_bits(bits, sizes)
        codes = Codes(torch.from_numpy(words.view(np.int32)) if array == "torch" else words, sizes)
        for w in (None, [1, 2, 3], [0.5, 1.25, 2.0]):
            got = vqgeom.pairwise_distances(codes, weights=w, condensed=True, backend=backend)
            full = vqgeom.pairwise_distances(codes, weights=w, backend=backend)
            assert got.shape == (n * (n - 1) // 2,)
            assert got.dtype == full.dtype  # same dtype rule as the full matrix
            np.testing.assert_array_equal(np.asarray(got), _squareform(R.hamming(bits, bits, sizes, w)))


def test_condensed_cpu_blocks_meet_exactly():
    """Small row blocks: every block boundary lands where the next row's pairs begin."""
    from vqgeom.distances import _condensed_cpu

    rng = np.random.default_rng(1206)
    sizes = (33,)
    bits = rng.random((53, 33)) < 0.5
    words = pack_bits(bits, sizes)
    for block in (1, 7, 60, 500):
        got = _condensed_cpu(words, sizes, None, np.uint16, block_elems=block)
        np.testing.assert_array_equal(got, _squareform(R.hamming(bits, bits, sizes)))


def test_condensed_bad_arguments():
    codes = Codes(pack_bits(np.zeros((4, 5), bool), (5,)), (5,))
    with pytest.raises(ValueError, match="condensed.*one code set"):
        vqgeom.pairwise_distances(codes, codes, condensed=True)
    with pytest.raises(ValueError, match="condensed.*per_layer"):
        vqgeom.pairwise_distances(codes, condensed=True, per_layer=True)
    with pytest.raises(TypeError, match="condensed"):
        vqgeom.pairwise_distances(codes, condensed="yes")


# ---------------------------------------------------------------- finite check (encode)
def _mlp_layers(seed, widths, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(o, i, generator=g), torch.randn(o, generator=g), 0.1)
            for i, o in zip(widths[:-1], widths[1:])]


@pytest.mark.parametrize("fused", [True, False])
def test_encoder_counts_nonfinite_inputs(fused):
    layers = _mlp_layers(1207, (12, 16, 8))
    X = torch.randn(150, 12, generator=torch.Generator().manual_seed(1))
    ok = encode.encode_mlp(layers, X, fused=fused)  # finite: no error, same words as unchecked
    assert torch.equal(ok, encode.encode_mlp(layers, X, fused=fused, check_finite=False))
    X[3, 5] = float("nan")
    X[77, 0] = float("inf")
    X[77, 1] = float("-inf")
    X[140, 11] = float("-inf")
    # every unit of a bad row is non-finite in layer 0: 3 rows x 16 units
    with pytest.raises(ValueError, match=r"X: expected finite values, got NaN or inf in 3 of 150 rows.*48 "
                                         r"pre-activations of layer 0"):
        encode.encode_mlp(layers, X, fused=fused)
    encode.encode_mlp(layers, X, fused=fused, check_finite=False)  # unchecked: no error


def test_encoder_names_an_overflowing_layer():
    layers = _mlp_layers(1208, (6, 16, 8))
    layers[1] = (layers[1][0] * 1e38, layers[1][1], 0.0)  # finite X, layer 1 overflows float32
    X = torch.ones(20, 6) * 10
    with pytest.raises(ValueError, match=r"inputs are finite but layer 1 overflows float32"):
        encode.encode_mlp(layers, X)


def test_public_encode_checks_inside_the_kernel(monkeypatch):
    """``vqgeom.encode`` on the Triton route: no torch.isfinite pass, and the kernel's
    error names the module's layer."""
    from vqgeom import _backend

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    _backend._triton_ok.cache_clear()
    try:
        net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 7), torch.nn.ReLU())
        X = torch.randn(40, 5, generator=torch.Generator().manual_seed(2))

        def no_isfinite(*a, **k):
            raise AssertionError("torch.isfinite called on the Triton route")

        monkeypatch.setattr(torch, "isfinite", no_isfinite)
        codes = vqgeom.encode(net, X, backend="triton")
        assert codes.layer_sizes == (16, 7)
        want = vqgeom.encode(net, X.double().numpy(), backend="numpy")
        assert codes.n_layers == want.n_layers
        X[9, 2] = float("nan")
        with pytest.raises(ValueError, match=r"NaN or inf in 1 of 40 rows.*layer 0 \('1:relu'\)"):
            vqgeom.encode(net, X, backend="triton")
    finally:
        monkeypatch.undo()
        _backend._triton_ok.cache_clear()


# ------------------------------------------------------------------- DLPack routing
def test_dlpack_views_are_zero_copy():
    from vqgeom._backend import dlpack_result, dlpack_torch_words, torch_out_dtype

    words = (np.arange(12, dtype=np.uint32) | np.uint32(1 << 31)).reshape(6, 2)
    t = dlpack_torch_words(words)  # numpy stands in for cupy: both speak DLPack
    assert t.dtype == torch.int32 and t.data_ptr() == words.ctypes.data
    np.testing.assert_array_equal(t.numpy().view(np.uint32), words)
    res = torch.arange(5, dtype=torch_out_dtype(np.uint32))
    back = dlpack_result(res, words, np.uint32)
    assert type(back) is np.ndarray and back.dtype == np.uint32 and back.ctypes.data == res.data_ptr()
    with pytest.raises(TypeError, match="words"):
        dlpack_torch_words(np.zeros((2, 2), np.float32))


def test_cupy_codes_go_to_triton_unless_cupy_is_named(monkeypatch):
    import types

    from vqgeom import _backend

    fake = types.ModuleType("cupy")

    class ndarray:  # noqa: N801 (cupy's name)
        pass

    fake.ndarray = ndarray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    monkeypatch.setattr(_backend, "_triton_ok", lambda: True)
    monkeypatch.setattr(_backend, "_cupy_ok", lambda: True)
    assert _backend.resolve_backend("auto", ndarray()) == "cupy"
    assert _backend.cupy_via_triton("auto") and _backend.cupy_via_triton(None)
    assert not _backend.cupy_via_triton("cupy")  # named: the CUDA C kernel
    monkeypatch.setenv(_backend.ENV_VAR, "cupy")
    assert not _backend.cupy_via_triton("auto")
    monkeypatch.delenv(_backend.ENV_VAR)
    monkeypatch.setattr(_backend, "_triton_ok", lambda: False)
    assert not _backend.cupy_via_triton("auto")


# ------------------------------------------------------------- ahead-of-time compiles
OPTIN_CI_TARGETS = (75, 86, 90)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_every_default_launch_compiles_and_fits_every_target():
    """Compile each default launch with Triton's compiler for sm_75, 80, 86, 89, 90 (no
    GPU) and check shared memory and registers against the target (see ``aot``)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    # The opt-in kernels (not yet timed on a GPU) on a subset: sm_75 (float16 dots, 64 KB),
    # sm_86 (the tightest tensor-core budget, 99 KB) and sm_90 (the largest configurations);
    # `python -m vqgeom.kernels.triton.aot` compiles them for every target.
    res = subprocess.run([sys.executable, "-m", "vqgeom.kernels.triton.aot", "--json", "--jobs", "2",
                          "--optin-targets", ",".join(map(str, OPTIN_CI_TARGETS))],
                         capture_output=True, text=True, env=env, timeout=1200)
    assert res.stdout.strip(), res.stderr[-4000:]
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    bad = [r for r in rows if not r["ok"]]
    assert not bad, json.dumps(bad, indent=1)
    assert res.returncode == 0, res.stderr[-4000:]
    kernels = {"_popc_hamming_kernel", "_int8_hamming_kernel", "_pm1_kernel", "_heat_mm_kernel", "_knn_kernel",
               "_cosine_kernel", "_fused_encode_kernel", "_layer_kernel", "_query_kernel"}
    for cc in (75, 80, 86, 89, 90):
        mine = [r for r in rows if r["target"] == cc]
        optin = {"_heat_sym_kernel", "_knn_select_kernel"} if cc in OPTIN_CI_TARGETS else set()
        assert {r["kernel"] for r in mine} == kernels | optin, cc
        for r in mine:
            assert r["shared"] + r["static_shared"] <= _device.TARGETS[cc].smem_optin
            assert r["regs"] * 32 * r["num_warps"] <= 65536
