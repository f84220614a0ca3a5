"""Max-type CPA units (max-pooling, maxout, elementwise max/min, abs) and the activation
registry, against the numpy oracle (issue 9).

Networks are float64. The affine parts of the explicit forward passes run through the same
torch modules (float64, so the values are the model's own); every kink, argmax and bit comes
from :mod:`vqgeom.kernels.reference`, which shares no code with the registry or the tracer.
ReLU outputs are full of exact zeros, so max-pooling windows after a ReLU exercise the tie
rule (first maximal candidate in row-major window order) on every run.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import vqgeom
from vqgeom import activations as act
from vqgeom._trace import AFFINE, EncodingError
from vqgeom.encoding import reference_layers
from vqgeom.codes import Codes, pack_bits
from vqgeom.kernels import reference

FAST = settings(max_examples=20, deadline=None)


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def assert_codes(codes, bits, sizes, groups=None):
    assert codes.layer_sizes == tuple(sizes)
    if groups is not None:
        assert codes.groups == tuple(groups)
    np.testing.assert_array_equal(codes.words_numpy(), pack_bits(bits, sizes))


# -- the registry's numpy side against the oracle ------------------------------------------------

SPECS = ["relu", ("leaky", 0.1), ("prelu", np.linspace(-0.5, 0.5, 12)), ("hardtanh", -0.5, 1.0),
         ("clamp_min", 0.25), ("clamp_max", -0.25), ("hardsigmoid",), ("softshrink", 0.5), ("abs",),
         ("maxout", 2), ("maxout", 3), ("maxout", 4), ("minout", 3), ("maxout", 12), ("maxout", 1)]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_registry_matches_oracle(spec):
    rng = np.random.default_rng(seed_of(str(spec)))
    # Quarter-integers: exact kinks (0, +-0.25, +-0.5, 1, +-3) and exact ties between candidates.
    pre = rng.integers(-16, 17, size=(40, 12)) / 4.0
    ref_bits, ref_sizes = reference.mlp_bits([(np.eye(12), np.zeros(12), spec)], pre)
    np.testing.assert_array_equal(act.bits(spec, pre), ref_bits)
    assert act.n_bits(spec, 12) == (ref_sizes[0] if ref_sizes else 0)
    np.testing.assert_array_equal(act.evaluate(spec, pre), reference.activate(pre, spec))
    assert act.kinks(spec) == reference.thresholds(spec)
    if not act.is_max_type(spec):
        # The affine piece chosen by the bits reproduces the activation exactly.
        slope, icpt = act.affine_piece(spec, act.bits(spec, pre).T)
        # Exact except hardsigmoid's slope 1/6: (1/6) * x + 1/2 against x / 6 + 1/2, outputs in
        # [0, 1], differ by a few roundings of at most 2**-53 each.
        np.testing.assert_allclose(slope * pre.T + icpt, reference.activate(pre, spec).T, rtol=0, atol=4 * 2.0**-53)


def test_registry_rejects_unknown_specs():
    with pytest.raises(ValueError, match="act"):
        act.kinks(("swish",))
    with pytest.raises(ValueError, match="act"):
        act.n_bits(("maxout", 0), 4)
    with pytest.raises(ValueError, match="multiple"):
        act.bits(("maxout", 3), np.zeros((2, 4)))


# -- max-pooling networks against the oracle ------------------------------------------------------


def pool_case(nd, draw):
    rng = np.random.default_rng(draw)
    k = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    dil = tuple(int(v) for v in rng.integers(1, 3, size=nd))
    pad = tuple(int(rng.integers(0, v // 2 + 1)) for v in k)
    stride = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    ceil = bool(rng.integers(2))
    size = tuple(int(v) for v in rng.integers(max(max(k) * max(dil), 3), 8, size=nd))
    return dict(kernel_size=k, stride=stride, padding=pad, dilation=dil, ceil_mode=ceil), size


def _g(g):
    return g if g >= 3 else 1


@FAST
@given(draw=st.integers(0, 2**32 - 1), nd=st.sampled_from([1, 2, 3]), n=st.integers(1, 5), relu=st.booleans())
def test_max_pool_matches_oracle(draw, nd, n, relu):
    kw, size = pool_case(nd, draw)
    torch.manual_seed(draw % 2**31)
    conv = getattr(nn, f"Conv{nd}d")(2, 3, 1, dtype=torch.float64)
    pool = getattr(nn, f"MaxPool{nd}d")(**kw)
    net = nn.Sequential(conv, nn.ReLU(), pool) if relu else nn.Sequential(conv, pool)
    X = np.random.default_rng(draw).normal(size=(n, 2) + size)
    pre = conv(torch.from_numpy(X)).detach().numpy()
    z = reference.activate(pre, "relu") if relu else pre
    _, idx, g = reference.max_pool_index(z, kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"], kw["ceil_mode"])
    pbits = reference.max_bits(idx.reshape(n, -1), g)
    cols, sizes, groups = ([pre.reshape(n, -1) >= 0], [pre[0].size], [1]) if relu else ([], [], [])
    if g >= 2:
        cols.append(pbits)
        sizes.append(pbits.shape[1])
        groups.append(_g(g))
    if not sizes:
        with pytest.raises(EncodingError):
            vqgeom.encode(net, X)
        return
    codes = vqgeom.encode(net, X)
    assert_codes(codes, np.concatenate(cols, axis=1), sizes, groups)
    # The functional spelling with return_indices gives the same codes and passes indices through.
    class Fn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            y = self.conv(x)
            y = F.relu(y) if relu else y
            v, i = getattr(F, f"max_pool{nd}d")(y, return_indices=True, **kw)
            return v
    assert_codes(vqgeom.encode(Fn(), X), np.concatenate(cols, axis=1), sizes, groups)


@FAST
@given(draw=st.integers(0, 2**32 - 1), nd=st.sampled_from([1, 2, 3]), n=st.integers(1, 4))
def test_adaptive_max_pool_matches_oracle(draw, nd, n):
    rng = np.random.default_rng(draw)
    size = tuple(int(v) for v in rng.integers(2, 8, size=nd))
    out = tuple(int(rng.integers(1, s + 1)) for s in size)
    net = nn.Sequential(getattr(nn, f"AdaptiveMaxPool{nd}d")(out))
    X = rng.integers(-3, 4, size=(n, 2) + size).astype(np.float64)  # small integers: many ties
    _, idx, g = reference.adaptive_max_pool_index(X, out)
    if g == 1:
        with pytest.raises(EncodingError, match="no activation"):
            vqgeom.encode(net, X)
        return
    bits = reference.max_bits(idx.reshape(n, -1), g)
    assert_codes(vqgeom.encode(net, X), bits, [bits.shape[1]], [_g(g)])


class MaxoutNet(nn.Module):
    """Maxout spelled four ways, an elementwise max/min of two branches, abs and softshrink."""

    def __init__(self, d, k):
        super().__init__()
        self.k = k
        self.l = nn.ModuleList([nn.Linear(d if i == 0 else w, o, dtype=torch.float64)
                                for i, (w, o) in enumerate([(d, 4 * k), (4, 4 * k), (4, 4 * k), (4, 8), (8, 8), (8, 8)])])

    def forward(self, x):
        k, l = self.k, self.l
        z = l[0](x).unflatten(1, (4, k)).amax(-1)
        z = torch.max(l[1](z).reshape(-1, 4, k), dim=2).values
        z = l[2](z).view(-1, 4, k).min(2)[0]
        a, b = l[3](z), torch.flip(l[3](z), [1])
        z = torch.maximum(a, b) - torch.fmin(a, 0.5 * b)
        z = torch.abs(l[4](z))
        return F.softshrink(l[5](z), 0.25)


def maxout_bits(net, X):
    k = net.k
    cols, sizes, groups = [], [], []

    def lin(i, z):
        return net.l[i](torch.from_numpy(z)).detach().numpy()

    def grouped(pre, minimum):
        v, idx, kk = reference.reduce_max_index(pre.reshape(len(pre), 4, k), [2], minimum)
        b = reference.max_bits(idx, kk)
        if kk >= 2:
            cols.append(b), sizes.append(b.shape[1]), groups.append(_g(kk))
        return v

    z = grouped(lin(0, X), False)
    z = grouped(lin(1, z), False)
    z = grouped(lin(2, z), True)
    a = lin(3, z)
    b = a[:, ::-1].copy()
    cols += [a >= b, a >= 0.5 * b]
    sizes += [8, 8]
    groups += [1, 1]
    z = np.where(a >= b, a, b) - np.where(a >= 0.5 * b, 0.5 * b, a)
    p = lin(4, z)
    cols.append(p >= 0), sizes.append(8), groups.append(1)
    p = lin(5, reference.activate(p, ("abs",)))
    cols.append(np.concatenate([p >= -0.25, p >= 0.25], axis=1)), sizes.append(16), groups.append(1)
    return np.concatenate(cols, axis=1), sizes, groups


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_maxout_and_elementwise_units_match_oracle(k):
    torch.manual_seed(k)
    net = MaxoutNet(3, k)
    X = np.random.default_rng(k).normal(size=(17, 3))
    bits, sizes, groups = maxout_bits(net, X)
    codes = vqgeom.encode(net, X, batch_size=6)
    assert_codes(codes, bits, sizes, groups)
    assert codes.halved == tuple(g >= 3 for g in groups)


def test_maxout_module_through_every_reader():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 12, dtype=torch.float64), vqgeom.Maxout(3), nn.Linear(4, 6, dtype=torch.float64),
                        nn.ReLU(), nn.Linear(6, 6, dtype=torch.float64), vqgeom.Maxout(6))
    X = np.random.default_rng(0).normal(size=(30, 2))
    spec = reference_layers(net)
    assert [a for _, _, a in spec] == [("maxout", 3), "relu", ("maxout", 6)]
    bits, sizes = reference.mlp_bits(spec, X)
    for backend in ("auto", "numpy"):
        codes = vqgeom.encode(net, X, backend=backend)
        assert_codes(codes, bits, sizes, [3, 1, 6])
    assert vqgeom.encode(net, X).layer_names == vqgeom.encode(net, X, backend="numpy").layer_names


def test_elementwise_conventions_at_ties():
    # maximum(a, b) and minimum(a, b): bit a >= b (set at a tie); abs: bit x >= 0.
    class Net(nn.Module):
        def forward(self, x):
            a, b = x[:, :1], x[:, 1:]
            return torch.maximum(a, b) + torch.minimum(a, b) + torch.abs(a) + torch.max(a, b)

    X = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 1.0], [0.0, -0.0], [-0.0, 5.0]])
    got = vqgeom.encode(Net(), X).unpack()
    a, b = X[:, :1], X[:, 1:]
    np.testing.assert_array_equal(got, np.concatenate([a >= b, a >= b, a >= 0, a >= b], axis=1))


# -- Codes metadata --------------------------------------------------------------------------------


def test_codes_groups_survive_slicing_saving_and_concatenation(tmp_path):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 4, size=(6, 5))
    bits = np.concatenate([rng.random((6, 7)) < 0.5, reference.max_bits(idx, 4)], axis=1)
    c = Codes.from_bits(bits, [7, 20], ["a", "b"], [1, 4])
    assert c.groups == (1, 4) and c.halved == (False, True) and c.n_units_per_layer == (7, 5)
    np.testing.assert_array_equal(c.unit_indices(1), idx)
    assert c[2:4].groups == (1, 4) and c.layers([1]).groups == (4,) and c.layers(0).groups == (1,)
    assert Codes.concatenate([c[:2], c[2:]]).groups == (1, 4)
    c.save(tmp_path / "c.npz")
    back = Codes.load(tmp_path / "c.npz")
    assert back.groups == (1, 4)
    np.testing.assert_array_equal(back.unpack(), bits)
    assert c.to(torch.zeros(1)).groups == (1, 4)
    with pytest.raises(ValueError, match="groups"):
        Codes(c.words, c.layer_sizes, (), (1, 3))
    with pytest.raises(ValueError, match="groups"):
        Codes(c.words, c.layer_sizes, (), (2, 4))
    with pytest.raises(ValueError, match="groups"):
        Codes.concatenate([c, Codes(c.words, c.layer_sizes, (), (1, 5))])


def test_torch_packer_matches_pack_bits():
    from vqgeom.codes import pack_layer_torch

    rng = np.random.default_rng(2)
    for n, b in [(1, 1), (3, 31), (4, 32), (5, 33), (2, 100), (0, 7)]:
        bits = rng.random((n, b)) < 0.5
        got = pack_layer_torch(torch.from_numpy(bits)).numpy().view(np.uint32)
        np.testing.assert_array_equal(got, pack_bits(bits, [b]))


# -- loud failures ---------------------------------------------------------------------------------


def test_nonfinite_preactivations_raise_naming_the_layer():
    lin = nn.Linear(2, 3)
    with torch.no_grad():
        lin.weight[1, 0] = float("nan")
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), lin, nn.ReLU())
    with pytest.raises(ValueError, match=r"3:relu") as err:
        vqgeom.encode(net, np.ones((4, 2), dtype=np.float32))
    assert "4 NaN" in str(err.value)
    # Finite float64 inputs that overflow float32 give infinite pre-activations.
    net32 = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    with pytest.raises(ValueError, match="infinite"):
        vqgeom.encode(net32, np.array([[1e300], [1.0]]))
    with pytest.raises(ValueError, match="pool"):
        vqgeom.encode(nn.Sequential(nn.Linear(1, 4), Unflat(), nn.MaxPool1d(2)), np.array([[3e38], [1.0]], dtype=np.float32))


class Unflat(nn.Module):
    def forward(self, x):
        return (x * 1e10).unflatten(1, (1, -1))


def test_complex_and_one_dimensional_inputs_raise_naming_X():
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    with pytest.raises(TypeError, match="X"):
        vqgeom.encode(net, torch.ones(2, 8, dtype=torch.complex64))
    with pytest.raises(TypeError, match="X"):
        vqgeom.encode(net, np.ones((2, 8), dtype=np.complex128))
    for X in (torch.rand(8), np.ones(8), torch.rand(5)):
        with pytest.raises(ValueError, match="X") as err:
            vqgeom.encode(net, X)
        assert "batch" in str(err.value)


# -- the allow-list is what decides ---------------------------------------------------------------


@pytest.mark.parametrize("func", [F.linear, F.conv2d, torch.Tensor.flatten, F.avg_pool2d, F.batch_norm])
def test_removing_an_operation_from_the_allow_list_makes_encoding_raise(func, monkeypatch):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(8, 3), nn.ReLU())
    X = np.random.default_rng(0).normal(size=(3, 1, 4, 4)).astype(np.float32)
    assert vqgeom.encode(net, X).layer_sizes == (32, 3)
    monkeypatch.delitem(AFFINE, func)
    with pytest.raises(EncodingError, match=func.__name__):
        vqgeom.encode(net, X)


@pytest.mark.parametrize("g", [4, 8, 16, 32])
@pytest.mark.parametrize("m", [1, 3, 8, 9, 33])
def test_one_hot_words_match_the_oracles_bits(g, m):
    from vqgeom._trace import _one_hot_words

    idx = np.random.default_rng(g * 100 + m).integers(0, g, size=(5, m))
    got = _one_hot_words(torch.from_numpy(idx), g).numpy().view(np.uint32)
    np.testing.assert_array_equal(got, pack_bits(reference.max_bits(idx, g), [m * g]))


# -- distances of max-type codes on every backend ------------------------------------------------


class PoolMaxoutNet(nn.Module):
    """A random max-type network: conv, ReLU, 2x2 max-pooling (one-hot groups of 4), a 3x1
    pooling with padding (groups of 3), a maxout of 5 and an elementwise maximum (plain bits)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, dtype=torch.float64)
        self.lin = nn.Linear(2 * 2 * 3, 10, dtype=torch.float64)
        self.out = nn.Linear(2, 4, dtype=torch.float64)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv(x)), 2)
        h = F.max_pool2d(h, (3, 1), stride=(1, 1), padding=(1, 0))
        z = self.lin(h.flatten(1)).view(-1, 2, 5).amax(2)
        a = self.out(z)
        return torch.maximum(a, a.roll(1, 1))


def pool_maxout_bits(net, X):
    with torch.no_grad():
        pre = net.conv(torch.from_numpy(X)).numpy()
    cols, sizes, groups = [pre.reshape(len(X), -1) >= 0], [pre[0].size], [1]
    v, idx, g = reference.max_pool_index(reference.activate(pre, "relu"), (2, 2))
    cols.append(reference.max_bits(idx.reshape(len(X), -1), g)), groups.append(4)
    v, idx, g = reference.max_pool_index(v, (3, 1), (1, 1), (1, 0))
    cols.append(reference.max_bits(idx.reshape(len(X), -1), g)), groups.append(3)
    with torch.no_grad():
        z = net.lin(torch.from_numpy(v.reshape(len(X), -1))).numpy()
    m, idx, k = reference.reduce_max_index(z.reshape(-1, 2, 5), [2])
    cols.append(reference.max_bits(idx, k)), groups.append(5)
    with torch.no_grad():
        a = net.out(torch.from_numpy(m)).numpy()
    cols.append(a >= np.roll(a, 1, axis=1)), groups.append(1)
    sizes += [c.shape[1] for c in cols[1:]]
    return np.concatenate(cols, axis=1), sizes, groups


@pytest.mark.parametrize("weights", [None, [1, 2, 3, 4, 5], [0.5, 1.25, 2.0, 0.75, 3.0]])
def test_distances_of_encoded_max_type_networks(backend, weights):
    from conftest import as_numpy, backend_codes

    torch.manual_seed(seed_of(f"pool-maxout-{weights}") % 2**31)
    net = PoolMaxoutNet()
    X = np.random.default_rng(seed_of(str(weights))).normal(size=(21, 1, 4, 6))
    bits, sizes, groups = pool_maxout_bits(net, X)
    codes = vqgeom.encode(net, X)
    assert_codes(codes, bits, sizes, groups)
    c = backend_codes(codes, backend)
    want = reference.hamming(bits, bits, sizes, weights, groups)
    got = as_numpy(vqgeom.pairwise_distances(c, weights=weights, backend=backend))
    if weights is None or isinstance(weights[0], int):
        np.testing.assert_array_equal(got, want)
    else:  # five float64 terms, each rounded once (see conftest's tolerances)
        np.testing.assert_allclose(got, want, rtol=5 * 2.0**-53)
    per = as_numpy(vqgeom.pairwise_distances(c, per_layer=True, backend=backend))
    np.testing.assert_array_equal(per, reference.layer_hamming(bits, bits, sizes, groups))
    # Every one-hot layer's distance counts units whose argmax differs: at most its unit count.
    assert all(per[l].max() <= sizes[l] // max(groups[l], 1) for l in range(len(sizes)))


@pytest.mark.parametrize("minimum", [False, True])
@pytest.mark.parametrize("dims, keepdim", [((2,), False), ((1, 3), True), ((-1, -2), False)])
def test_amax_amin_over_several_dims(minimum, dims, keepdim):
    class Net(nn.Module):
        def forward(self, x):
            f = torch.amin if minimum else torch.amax
            return f(x, dim=dims, keepdim=keepdim)

    X = np.random.default_rng(len(dims)).integers(-2, 3, size=(7, 3, 4, 2)).astype(np.float64)  # ties
    _, idx, k = reference.reduce_max_index(X, [d % 4 for d in dims], minimum)
    bits = reference.max_bits(idx.reshape(7, -1), k)
    assert_codes(vqgeom.encode(Net(), X), bits, [bits.shape[1]], [k if k >= 3 else 1])


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_device_route_gives_the_same_codes(array, monkeypatch):
    # CUDA networks pack with torch on the device and count non-finite values there; the
    # same route runs here on CPU tensors (no GPU in CI) and must give the host route's words.
    from vqgeom._trace import Tracer

    torch.manual_seed(3)
    net = PoolMaxoutNet()
    X = np.random.default_rng(3).normal(size=(13, 1, 4, 6))
    Xa = torch.from_numpy(X) if array == "torch" else X
    host = vqgeom.encode(net, Xa, batch_size=5)
    monkeypatch.setattr(Tracer, "device_route", True)
    dev = vqgeom.encode(net, Xa, batch_size=5)
    assert dev.array_type == array and dev.groups == host.groups and dev.layer_sizes == host.layer_sizes
    np.testing.assert_array_equal(dev.words_numpy(), host.words_numpy())
    bits, sizes, groups = pool_maxout_bits(net, X)
    assert_codes(dev, bits, sizes, groups)
    bad = nn.Sequential(nn.Linear(2, 3, dtype=torch.float64), nn.ReLU())
    with torch.no_grad():
        bad[0].bias[1] = float("inf")
    with pytest.raises(ValueError, match="5 NaN or infinite"):
        vqgeom.encode(bad, np.ones((5, 2)))


class Everyday(nn.Module):
    """Operations real forward methods use, all affine or CPA in X: they must trace, not raise."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect", dtype=torch.float64)
        self.bn = nn.BatchNorm2d(4, dtype=torch.float64)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.lin = nn.Linear(8, 6, dtype=torch.float64)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 6, dtype=torch.float64))

    def forward(self, x):
        h = self.bn(self.conv(F.pad(x, (1, 1, 1, 1))))
        a, b = h.chunk(2, dim=1)
        h = torch.cat([a - b, 2 * a + b / 4], 1).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        p1 = h.clone()
        h = F.relu(h, inplace=True)
        h = F.avg_pool2d(self.up(h), 2) + h.unfold(3, 1, 1).squeeze(-1) * 0.5
        v = torch.einsum("bchw->bc", h) / h[0].numel() + h.mean(dim=(2, 3)) + h.flatten(2).sum(-1).neg() * 0.1
        z = torch.stack([v, v.flip(1)], dim=-1).reshape(v.shape[0], -1)
        p2 = self.lin(z) * self.scale.clamp(min=0.75) - 1
        return torch.clamp(p2, min=torch.zeros(6, dtype=torch.float64)), p1, p2


def test_everyday_operations_trace_exactly():
    torch.manual_seed(7)
    net = Everyday().eval()
    with torch.no_grad():
        net.bn.running_mean.normal_()
    X = torch.randn(9, 2, 4, 4, dtype=torch.float64)
    with torch.no_grad():  # the pre-activations, outside any tracer
        _, p1, p2 = net(X.clone())
    codes = vqgeom.encode(net, X, batch_size=4)
    bits = np.concatenate([p1.reshape(9, -1).numpy() >= 0, p2.numpy() >= 0], axis=1)
    assert_codes(codes, bits, [p1[0].numel(), 6], [1, 1])


def test_encode_max_type_networks_on_every_backend(backend):
    # Each backend reads the same max-type networks: the fused Triton encoder takes plain
    # ReLU MLPs only, so these go through the tracer there too; numpy reads the maxout MLP.
    from conftest import backend_codes

    torch.manual_seed(11)
    mlp = nn.Sequential(nn.Linear(2, 12, dtype=torch.float64), vqgeom.Maxout(3), nn.Linear(4, 6, dtype=torch.float64),
                        nn.ReLU(), nn.Linear(6, 6, dtype=torch.float64), vqgeom.Maxout(6))
    X = np.random.default_rng(11).normal(size=(19, 2))
    bits, sizes = reference.mlp_bits(reference_layers(mlp), X)
    Xb = torch.from_numpy(X) if backend == "triton" else X
    assert_codes(vqgeom.encode(mlp, Xb, backend=backend), bits, sizes, [3, 1, 6])
    if backend == "numpy":
        return  # the oracle forward reads plain MLPs only
    net = PoolMaxoutNet()
    Xp = np.random.default_rng(12).normal(size=(7, 1, 4, 6))
    bits, sizes, groups = pool_maxout_bits(net, Xp)
    codes = vqgeom.encode(net, torch.from_numpy(Xp) if backend == "triton" else Xp, backend=backend)
    assert_codes(codes, bits, sizes, groups)
    assert backend_codes(codes, backend).groups == tuple(groups)
