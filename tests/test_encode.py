"""vqgeom.encode against the numpy reference (issue 2 items 2 and 7).

Networks are float64 so the forward pass is reproducible against the float64 reference; a
pre-activation can only disagree if it lies within a few ulps of a kink, which random weights
never produce (and the exactly-zero cases are built with dyadic numbers, exact in float64).
Networks the reference's MLP form cannot express (convolutions, residual blocks) get an explicit
float64 numpy forward here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import vqgeom
from vqgeom.codes import pack_bits
from vqgeom.encoding import EncodingError, reference_layers
from vqgeom.kernels import reference

FAST = settings(max_examples=25, deadline=None)


def assert_codes(codes, bits, sizes):
    assert codes.layer_sizes == tuple(sizes)
    np.testing.assert_array_equal(codes.words_numpy(), pack_bits(bits, sizes))


# -- plain MLPs ----------------------------------------------------------------------------------


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    widths=st.lists(st.integers(1, 130), min_size=2, max_size=7),  # input + 1..6 hidden layers
    n=st.integers(1, 24),
    bias=st.booleans(),
    head=st.sampled_from([None, 1, 3]),
)
def test_mlp_matches_reference(make_mlp, seed, widths, n, bias, head):
    net, spec = make_mlp(seed, widths, bias=bias, head=head)
    X = np.random.default_rng(seed + 1).normal(size=(n, widths[0]))
    bits, sizes = reference.mlp_bits(spec, X)
    assert_codes(vqgeom.encode(net, X), bits, sizes)
    # Batches that do not divide N give the same codes.
    assert_codes(vqgeom.encode(net, X, batch_size=max(1, n // 3 + 1)), bits, sizes)
    # The reference backend reads the same network.
    assert_codes(vqgeom.encode(net, X, backend="numpy"), bits, sizes)
    # torch input: torch int32 words, same bits.
    ct = vqgeom.encode(net, torch.from_numpy(X))
    assert isinstance(ct.words, torch.Tensor) and ct.words.dtype == torch.int32
    assert_codes(ct, bits, sizes)


def test_reference_layers_reads_the_network(make_mlp):
    net, spec = make_mlp(5, [3, 7, 40], kinds=("prelu", "hardtanh"), head=2)
    got = reference_layers(net)
    assert len(got) == len(spec)
    for (A, b, act), (A2, b2, act2) in zip(got, spec):
        np.testing.assert_array_equal(A, A2)
        np.testing.assert_array_equal(b, b2)
        if isinstance(act2, tuple) and act2[0] == "prelu":
            assert act[0] == "prelu"
            np.testing.assert_array_equal(act[1], act2[1])
        else:
            assert act == act2


def test_two_threshold_layers_are_threshold_major():
    # ReLU6: first the pre >= 0 bit of every unit, then the pre >= 6 bit of every unit.
    rng = np.random.default_rng(0)
    lin = _fixed_linear(rng.normal(size=(3, 2)), rng.normal(size=3))
    net = nn.Sequential(lin, nn.ReLU6())
    X = rng.normal(scale=6.0, size=(50, 2))
    pre = lin(torch.from_numpy(X)).detach().numpy()
    codes = vqgeom.encode(net, X)
    assert codes.layer_sizes == (6,)
    np.testing.assert_array_equal(codes.unpack(), np.concatenate([pre >= 0, pre >= 6], axis=1))
    # Both kinks are actually exercised by this sample.
    assert 0 < (pre >= 6).sum() < pre.size and 0 < (pre >= 0).sum() < pre.size


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_list_of_layer_pairs(array):
    rng = np.random.default_rng(3)
    pairs = [(rng.normal(size=(33, 4)), rng.normal(size=33)), (rng.normal(size=(5, 33)), None), (rng.normal(size=(1, 5)), rng.normal(size=1))]
    X = rng.normal(size=(11, 4))
    bits, sizes = reference.mlp_bits([(A, b, "relu") for A, b in pairs], X)
    if array == "torch":
        pairs = [(torch.from_numpy(A), None if b is None else torch.from_numpy(b)) for A, b in pairs]
    assert_codes(vqgeom.encode(pairs, X), bits, sizes)


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 130), d=st.integers(1, 5), n=st.integers(1, 20))
def test_hyperplanes_match_reference(seed, h, d, n):
    rng = np.random.default_rng(seed)
    normals, offsets, X = rng.normal(size=(h, d)), rng.normal(size=h), rng.normal(size=(n, d))
    codes = vqgeom.encode(vqgeom.Hyperplanes(normals, offsets), X)
    assert_codes(codes, reference.hyperplane_bits(normals, offsets, X), [h])
    ct = vqgeom.encode(vqgeom.Hyperplanes(torch.from_numpy(normals), torch.from_numpy(offsets)), torch.from_numpy(X))
    assert ct.array_type == "torch"
    assert_codes(ct, reference.hyperplane_bits(normals, offsets, X), [h])


# -- the sign convention at exactly-zero pre-activations -----------------------------------------


def _fixed_linear(A, b=None):
    A = np.asarray(A, dtype=np.float64)
    lin = nn.Linear(A.shape[1], A.shape[0], bias=b is not None, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(A))
        if b is not None:
            lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return lin


# Row 0 gives exactly 0.0 (and -0.0 through the 0 * negative product), row 1 is just above, row 2 below.
ZERO_X = np.array([[2.0, 2.0], [2.0, 1.75], [1.75, 2.0]])
ZERO_A = [[1.0, -1.0], [-0.5, 0.5]]


@pytest.mark.parametrize(
    "act, spec",
    [(nn.ReLU(), "relu"), (nn.LeakyReLU(0.25), ("leaky", 0.25)), (nn.PReLU(1, 0.5).double(), ("leaky", 0.5))],
)
def test_exactly_zero_preactivation_sets_the_bit(act, spec):
    net = nn.Sequential(_fixed_linear(ZERO_A), act)
    expected = np.array([[True, True], [True, False], [False, True]])
    ref_bits, _ = reference.mlp_bits([(np.asarray(ZERO_A), None, spec)], ZERO_X)
    np.testing.assert_array_equal(ref_bits, expected)
    np.testing.assert_array_equal(vqgeom.encode(net, ZERO_X).unpack(), expected)
    np.testing.assert_array_equal(vqgeom.encode(net, ZERO_X, backend="numpy").unpack(), expected)


def test_negative_zero_preactivation_sets_the_bit():
    # -1 * 0.0 = -0.0: its sign bit is set but -0.0 >= 0, so the unit's bit must be set.
    net = nn.Sequential(_fixed_linear([[-1.0]]), nn.ReLU())
    X = np.array([[0.0], [-0.0], [1e-300], [-1e-300]])
    np.testing.assert_array_equal(vqgeom.encode(net, X).unpack()[:, 0], [True, True, False, True])


def test_exact_kinks_of_two_threshold_activations():
    # pre = x exactly; the kinks of Hardtanh(-1, 1.5) and ReLU6 are hit exactly.
    X = np.array([[-1.0], [1.5], [0.0], [6.0], [-1.0 - 2**-40], [6.0 - 2**-40]])
    for act, ths in [(nn.Hardtanh(-1.0, 1.5), [-1.0, 1.5]), (nn.ReLU6(), [0.0, 6.0])]:
        net = nn.Sequential(_fixed_linear([[1.0]]), act)
        expected = np.concatenate([X >= t for t in ths], axis=1)
        np.testing.assert_array_equal(vqgeom.encode(net, X).unpack(), expected)


def test_exact_zero_in_functional_activations_and_hyperplanes():
    class Fn(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = _fixed_linear(ZERO_A)

        def forward(self, x):
            return torch.clamp(F.relu(self.lin(x)) - 0.0, min=0.0)

    expected = np.array([[True, True], [True, False], [False, True]])
    codes = vqgeom.encode(Fn(), ZERO_X)
    assert codes.layer_sizes == (2, 2)
    np.testing.assert_array_equal(codes.unpack()[:, :2], expected)
    hp = vqgeom.Hyperplanes(np.asarray(ZERO_A), np.zeros(2))
    np.testing.assert_array_equal(vqgeom.encode(hp, ZERO_X).unpack(), expected)
    np.testing.assert_array_equal(reference.hyperplane_bits(np.asarray(ZERO_A), np.zeros(2), ZERO_X), expected)


# -- convolutional and residual networks: explicit float64 forward passes -------------------------


def dense_affine(mods, in_shape):
    """``(A, b)`` of the affine map ``mods`` on flattened (C-order) inputs of ``in_shape``, in float64.

    Obtained by pushing the zero input and every basis vector through the modules.
    """
    d = int(np.prod(in_shape))
    with torch.no_grad():
        basis = torch.cat([torch.zeros(1, d), torch.eye(d)]).double().reshape(d + 1, *in_shape)
        out = basis
        for m in mods:
            out = m(out)
        out_shape = tuple(out.shape[1:])
        out = out.reshape(d + 1, -1).numpy()
    b = out[0]
    return (out[1:] - b).T, b, out_shape


def _randomise_batchnorm(bn, rng):
    with torch.no_grad():
        c = bn.num_features
        bn.running_mean.copy_(torch.from_numpy(rng.normal(size=c)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, size=c)))
        bn.weight.copy_(torch.from_numpy(rng.normal(size=c)))
        bn.bias.copy_(torch.from_numpy(rng.normal(size=c)))


def conv_net(kind, rng):
    torch.manual_seed(int(rng.integers(2**31)))
    if kind == "2d":
        segs = [
            ([nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)], nn.ReLU(), "relu"),
            ([nn.AvgPool2d(2), nn.Conv2d(3, 4, 2)], nn.LeakyReLU(0.1), ("leaky", 0.1)),
            ([nn.Flatten(), nn.Linear(16, 5)], nn.ReLU6(), ("hardtanh", 0.0, 6.0)),
            ([nn.Dropout(0.5), nn.Linear(5, 2)], None, None),
        ]
        in_shape = (2, 6, 6)
    else:
        segs = [
            ([nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4)], nn.Hardtanh(-0.5, 0.5), ("hardtanh", -0.5, 0.5)),
            ([nn.AvgPool1d(2), nn.Conv1d(4, 2, 2, bias=False)], nn.ReLU(), "relu"),
            ([nn.Flatten(), nn.Identity(), nn.Linear(6, 3)], None, None),
        ]
        in_shape = (1, 10)
    mods = []
    for affine, act, _ in segs:
        mods += affine + ([act] if act is not None else [])
    net = nn.Sequential(*mods).double()
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _randomise_batchnorm(m, rng)
    net.eval()
    spec, shape = [], in_shape
    for affine, _, act_spec in segs:
        A, b, shape = dense_affine(affine, shape)
        spec.append((A, b, act_spec))
    return net, spec, in_shape


@pytest.mark.parametrize("kind", ["2d", "1d"])
@pytest.mark.parametrize("seed", [0, 1])
def test_conv_nets_match_explicit_forward(kind, seed):
    rng = np.random.default_rng(seed)
    net, spec, in_shape = conv_net(kind, rng)
    X = rng.normal(size=(13,) + in_shape) * 2
    bits, sizes = reference.mlp_bits(spec, X.reshape(13, -1))
    # In training mode: encode must evaluate with BatchNorm's running statistics and no dropout,
    # and give the training flags back.
    net.train()
    codes = vqgeom.encode(net, X, batch_size=5)
    assert net.training and all(m.training for m in net.modules())
    assert_codes(codes, bits, sizes)
    # Every layer has both set and unset bits, so the check is not vacuous.
    for l, part in enumerate(np.split(bits, np.cumsum(sizes)[:-1], axis=1)):
        assert 0 < part.sum() < part.size, l


class Block(nn.Module):
    """A residual block that applies its activations as functions and methods inside forward."""

    def __init__(self, d, lo, hi):
        super().__init__()
        self.lin1 = nn.Linear(d, d, dtype=torch.float64)
        self.lin2 = nn.Linear(d, d, dtype=torch.float64)
        self.lo, self.hi = lo, hi

    def forward(self, x):
        h = F.relu(self.lin1(x))
        h = self.lin2(h).relu()
        return torch.clamp(x + h, self.lo, self.hi)


class ResNet(nn.Module):
    def __init__(self, d_in, d, n_blocks):
        super().__init__()
        self.inp = nn.Linear(d_in, d, dtype=torch.float64)
        self.blocks = nn.ModuleList([Block(d, -1.0 - 0.1 * i, 1.0 + 0.2 * i) for i in range(n_blocks)])
        self.out = nn.Linear(d, 1, dtype=torch.float64)

    def forward(self, x):
        z = torch.clamp(self.inp(x), min=0.0)
        for blk in self.blocks:
            z = blk(z)
        return self.out(z)


def _np_linear(lin, z):
    A = lin.weight.detach().numpy()
    b = lin.bias.detach().numpy()
    out = np.empty((z.shape[0], A.shape[0]))
    for i in range(z.shape[0]):
        out[i] = A @ z[i] + b
    return out


def resnet_bits(net, X):
    """Explicit float64 forward pass of :class:`ResNet`, recording bits threshold by threshold."""
    cols, sizes = [], []
    pre = _np_linear(net.inp, X)
    cols.append(pre >= 0)
    sizes.append(pre.shape[1])
    z = np.maximum(pre, 0.0)
    for blk in net.blocks:
        p1 = _np_linear(blk.lin1, z)
        p2 = _np_linear(blk.lin2, np.maximum(p1, 0.0))
        y = z + np.maximum(p2, 0.0)
        cols += [p1 >= 0, p2 >= 0, y >= blk.lo, y >= blk.hi]
        sizes += [p1.shape[1], p2.shape[1], 2 * y.shape[1]]
        z = np.clip(y, blk.lo, blk.hi)
    return np.concatenate(cols, axis=1), sizes


@FAST
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 40), n_blocks=st.integers(0, 3), n=st.integers(1, 15))
def test_residual_net_matches_explicit_forward(seed, d, n_blocks, n):
    torch.manual_seed(seed)
    net = ResNet(3, d, n_blocks)
    X = np.random.default_rng(seed).normal(scale=2.0, size=(n, 3))
    bits, sizes = resnet_bits(net, X)
    codes = vqgeom.encode(net, X)
    assert_codes(codes, bits, sizes)
    assert len(codes.layer_names) == len(sizes)


def test_non_cpa_signs_on_request():
    torch.manual_seed(0)
    l1, l2, l3 = (nn.Linear(3, 4, dtype=torch.float64), nn.Linear(4, 5, dtype=torch.float64), nn.Linear(5, 1, dtype=torch.float64))
    net = nn.Sequential(l1, nn.Sigmoid(), l2, nn.GELU(), l3)
    X = np.random.default_rng(0).normal(size=(9, 3))
    p1 = _np_linear(l1, X)
    p2 = _np_linear(l2, 1.0 / (1.0 + np.exp(-p1)))
    codes = vqgeom.encode(net, X, allow_non_cpa=True)
    assert codes.layer_sizes == (4, 5)
    np.testing.assert_array_equal(codes.unpack(), np.concatenate([p1 >= 0, p2 >= 0], axis=1))


# -- errors ---------------------------------------------------------------------------------------


class Custom(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.lin(x))


@pytest.mark.parametrize(
    "net, needle",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Sigmoid()), "Sigmoid"),
        (nn.Sequential(nn.Linear(3, 4), nn.GELU()), "GELU"),
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.ReLU()), "Tanh"),
        (nn.Sequential(nn.Linear(3, 4), Custom(F.gelu)), "gelu"),
        (nn.Sequential(nn.Linear(3, 4), Custom(torch.sigmoid)), "sigmoid"),
        (nn.Sequential(nn.Linear(3, 4), Custom(lambda x: x.tanh())), "tanh"),
    ],
)
def test_non_cpa_activations_raise_unless_allowed(net, needle):
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(EncodingError, match="model") as err:
        vqgeom.encode(net, X)
    assert needle in str(err.value) and "allow_non_cpa" in str(err.value)
    assert isinstance(err.value, TypeError)
    assert vqgeom.encode(net, X, allow_non_cpa=True).n == 4


class Prod(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return torch.relu(self.a(x)) * torch.relu(self.b(x))


# Each formerly silent (or never thought of) operation on an X-dependent tensor raises, naming it.
@pytest.mark.parametrize(
    "net, X, needle",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU()), np.ones((2, 3)), "layer_norm"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: F.softmax(x, 1))), np.ones((2, 3)), "softmax"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(torch.exp)), np.ones((2, 3)), "exp"),
        (nn.Sequential(nn.Linear(4, 4), Prod()), np.ones((2, 4)), "product"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: F.hardshrink(x))), np.ones((2, 3)), "hardshrink"),
        (nn.Sequential(nn.Linear(3, 4), Custom(lambda x: x.where(x > 0, 0.0))), np.ones((2, 3)), "ge" if False else "gt"),
        (nn.Sequential(nn.Linear(3, 4), Custom(lambda x: torch.where(x > 0, x, 0.0))), np.ones((2, 3)), "gt"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x.sort(1).values)), np.ones((2, 3)), "sort"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x / x.sum(1, keepdim=True))), np.ones((2, 3)), "divides"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x - x.mean())), np.ones((2, 3)), "batch"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x - x.mean(0))), np.ones((2, 3)), "batch"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x.amax())), np.ones((2, 3)), "batch"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: F.threshold(x, 0.5, 0.0))), np.ones((2, 3)), "threshold"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: F.dropout(x, 0.5))), np.ones((2, 3)), "dropout"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: F.rrelu(x, training=True))), np.ones((2, 3)), "rrelu"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x.long().float())), np.ones((2, 3)), "long"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x[:, x.argmax(1)])), np.ones((2, 3)), "argmax"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x.norm(dim=1))), np.ones((2, 3)), "norm"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Custom(lambda x: x + float(x[0, 0]))), np.ones((2, 3)), "__float__"),
    ],
)
def test_operations_outside_the_allow_list_raise(net, X, needle):
    with pytest.raises(EncodingError, match="model") as err:
        vqgeom.encode(net, X.astype(np.float32))
    assert needle in str(err.value), str(err.value)


def test_network_without_activation_raises():
    with pytest.raises(TypeError, match="model"):
        vqgeom.encode(nn.Linear(3, 2), np.ones((2, 3), dtype=np.float32))


def test_bad_model_type():
    with pytest.raises(TypeError, match="model"):
        vqgeom.encode("not a network", np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"model\[1\]"):
        vqgeom.encode([(np.ones((4, 3)), None), (np.ones((2, 5)), None)], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"model\[0\]\[1\]"):
        vqgeom.encode([(np.ones((4, 3)), np.ones(3))], np.ones((2, 3)))


NET = nn.Sequential(nn.Linear(3, 4), nn.ReLU())


@pytest.mark.parametrize(
    "X, needle",
    [
        (np.array([[0.0, np.nan, 1.0]]), "finite"),
        (np.array([[0.0, np.inf, 1.0]]), "finite"),
        (torch.tensor([[0.0, -np.inf, 1.0]]), "finite"),
        (torch.tensor([[0.0, np.nan, 1.0]], dtype=torch.float64), "finite"),
        (np.zeros((0, 3)), "at least one"),
        (torch.zeros((0, 3)), "at least one"),
        (np.ones((2, 4)), "shape"),
        (np.ones((2, 3, 2)), "shape"),
        (np.float64(1.0), "scalar"),
    ],
)
def test_bad_inputs_raise_naming_X(X, needle):
    with pytest.raises(ValueError, match="X") as err:
        vqgeom.encode(NET, X)
    assert needle in str(err.value)


def test_bad_hyperplane_inputs():
    with pytest.raises(ValueError, match="normals") as err:
        vqgeom.Hyperplanes(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]), np.zeros(3))
    assert "[1]" in str(err.value)
    with pytest.raises(ValueError, match="offsets"):
        vqgeom.Hyperplanes(np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match="normals"):
        vqgeom.Hyperplanes(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        vqgeom.Hyperplanes(np.array([[1.0, np.nan]]), np.zeros(1))
    with pytest.raises(ValueError, match="X"):
        vqgeom.encode(vqgeom.Hyperplanes(np.eye(2), np.zeros(2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="X"):
        vqgeom.encode(vqgeom.Hyperplanes(np.eye(2), np.zeros(2)), np.array([[1.0, np.nan]]))


def test_tensors_on_different_devices():
    # No second real device here: a model on 'meta' and inputs on the CPU are on different devices.
    net = nn.Sequential(nn.Linear(3, 4, device="meta"), nn.ReLU())
    with pytest.raises(ValueError, match="X") as err:
        vqgeom.encode(net, torch.ones(2, 3))
    assert "meta" in str(err.value) and "cpu" in str(err.value)
    with pytest.raises(ValueError, match="X"):
        vqgeom.encode(NET, torch.ones(2, 3, device="meta"))


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        vqgeom.encode(NET, np.ones((2, 3)), batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        vqgeom.encode(NET, np.ones((2, 3)), batch_size=2.5)


def test_list_input_is_accepted():
    X = [[0.5, -1.0, 2.0], [1.0, 1.0, -3.0]]
    np.testing.assert_array_equal(
        vqgeom.encode(NET, X).unpack(), vqgeom.encode(NET, np.asarray(X, dtype=np.float32)).unpack()
    )


def test_progress_bar_can_be_shown(make_mlp):
    net, spec = make_mlp(0, [2, 5])
    X = np.random.default_rng(0).normal(size=(10, 2))
    bits, sizes = reference.mlp_bits(spec, X)
    assert_codes(vqgeom.encode(net, X, batch_size=3, progress=True), bits, sizes)


class Functional(nn.Module):
    """Every CPA spelling the tracer knows, called inside forward, with in-place variants."""

    def __init__(self, d):
        super().__init__()
        self.lins = nn.ModuleList([nn.Linear(d, d, dtype=torch.float64) for _ in range(8)])
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        l = self.lins
        x = F.relu6(l[0](x))
        x = F.leaky_relu(l[1](x), 0.2)
        x = F.hardtanh(l[2](x), min_val=-0.5, max_val=0.75)
        x = torch.clamp(l[3](x), max=0.25)
        x = l[4](x).clamp_min(-0.125)
        x = F.hardsigmoid(l[5](x))
        x = self.act(l[6](x))
        return l[7](x).relu_()


def functional_bits(net, X):
    """Explicit float64 forward of :class:`Functional`: (bits, sizes) with its kinks."""
    steps = [
        ([0.0, 6.0], lambda p: np.clip(p, 0.0, 6.0)),
        ([0.0], lambda p: np.where(p >= 0, p, 0.2 * p)),
        ([-0.5, 0.75], lambda p: np.clip(p, -0.5, 0.75)),
        ([0.25], lambda p: np.minimum(p, 0.25)),
        ([-0.125], lambda p: np.maximum(p, -0.125)),
        ([-3.0, 3.0], lambda p: np.clip(p + 3.0, 0.0, 6.0) / 6.0),
        ([0.0], lambda p: np.maximum(p, 0.0)),
        ([0.0], lambda p: np.maximum(p, 0.0)),
    ]
    cols, sizes, z = [], [], X
    for lin, (ths, f) in zip(net.lins, steps):
        pre = _np_linear(lin, z)
        cols += [pre >= t for t in ths]
        sizes.append(len(ths) * pre.shape[1])
        z = f(pre)
    return np.concatenate(cols, axis=1), sizes


def test_functional_activations_are_traced():
    torch.manual_seed(0)
    net = Functional(6)
    with torch.no_grad():
        for lin in net.lins:
            lin.weight.mul_(4.0)  # spread pre-activations over the kinks at +-3 and 6
    X = np.random.default_rng(0).normal(scale=3.0, size=(40, 6))
    bits, sizes = functional_bits(net, X)
    codes = vqgeom.encode(net, X, batch_size=16)
    assert_codes(codes, bits, sizes)
    assert len(codes.layer_names) == 8 and all(":" in n for n in codes.layer_names)


def test_forward_runs_in_the_model_dtype():
    # 1 - 2**-30 is below 1 in float64 but rounds to 1.0 in float32, where the pre-activation
    # x - 1 is then exactly 0 (bit set); in float64 it is negative (bit unset).
    X = np.array([[1.0 - 2**-30]])
    net64 = nn.Sequential(_fixed_linear([[1.0]], [-1.0]), nn.ReLU())
    net32 = nn.Sequential(_fixed_linear([[1.0]], [-1.0]).float(), nn.ReLU())
    assert not vqgeom.encode(net64, X).unpack()[0, 0]
    assert vqgeom.encode(net32, X).unpack()[0, 0]
    assert vqgeom.encode(net32, torch.from_numpy(X)).unpack()[0, 0]


class ClampedParameter(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.ones(p))

    def forward(self, x):
        return torch.relu(self.lin(x)) * self.scale.clamp(min=0.1).sum()


@pytest.mark.parametrize("p", [5, 1])
def test_activation_of_a_parameter_is_a_constant(p):
    # A kink applied to a tensor that does not depend on X is a constant of the network:
    # no units, and the product with it is a scaling by a constant (affine).
    net = ClampedParameter(p)
    X = np.random.default_rng(p).normal(size=(7, 3)).astype(np.float32)
    pre = net.lin(torch.from_numpy(X)).detach().numpy()
    codes = vqgeom.encode(net, X)
    assert codes.layer_sizes == (4,)
    np.testing.assert_array_equal(codes.unpack(), pre >= 0)
