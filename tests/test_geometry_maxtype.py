"""Exact partitions of networks with max-type units (argmax cells inside each region).

Checked against regioncam (``max_pool`` is a max over all units of a layer), the oracle's
codes at sampled points, vqgeom.encode, shapely's adjacency, and Lemma 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
import torch.nn as nn

from vqgeom._netspec import NetSpec, as_netspec
from vqgeom.geometry import partition, verify_lemma2
from vqgeom.kernels.reference import mlp_bits
from vqgeom.models import Maxout

from test_geometry import BOX, check_invariants, shapely_adjacency

regioncam = pytest.importorskip("regioncam")


def max_net(seed: int, hidden: int, cands: int, k: int | None = None) -> nn.Sequential:
    """2 -> hidden ReLU -> cands affine -> max over groups of k (default: all): float32
    weights (regioncam's type) held in float64, so both sides see the same network."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, cands), Maxout(k or cands)).double()


def regioncam_faces(net: nn.Sequential) -> int:
    rc = regioncam.Regioncam(size=1.0)  # the square [-1, 1]^2
    for m in net:
        if isinstance(m, nn.Linear):
            rc.linear(m.weight.detach().float().numpy().T.copy(), m.bias.detach().float().numpy())
        elif isinstance(m, nn.ReLU):
            rc.relu()
        else:
            rc.max_pool()
    return rc.num_faces


def check_edges_change_one_unit(part):
    """Across every edge exactly one unit changes: one plain bit, or the argmax of one
    one-hot group (two bits of it); ``edge_layer``/``edge_unit`` name that unit."""
    bits = part.codes.unpack()
    base = np.concatenate([[0], np.cumsum(part.layer_sizes)])
    for (i, j), l, u in zip(part.edge_index, part.edge_layer, part.edge_unit):
        diff = np.flatnonzero(bits[i] != bits[j])
        g = part.layer_groups[l]
        if g >= 3:
            assert diff.size == 2 and np.all((diff - base[l]) // g == u), (i, j, diff)
        else:
            np.testing.assert_array_equal(diff, [base[l] + u])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("hidden,cands", [(16, 12), (32, 32)])
def test_max_over_a_layer_matches_regioncam(seed, hidden, cands):
    net = max_net(seed, hidden, cands)
    part = partition(net, BOX)
    assert part.n_regions == regioncam_faces(net)
    assert part.codes.groups == (1, cands)
    polys = check_invariants(part, net, seed=seed)
    assert set(map(tuple, part.edge_index.tolist())) == shapely_adjacency(polys)
    check_edges_change_one_unit(part)
    rep = verify_lemma2(part)
    assert rep.holds, str(rep)


@pytest.mark.parametrize("seed", range(3))
def test_maxout_groups_deep(seed):
    """Maxout over groups of 3 (one-hot) and of 2 (one bit) between ReLU layers."""
    torch.manual_seed(10 + seed)
    net = nn.Sequential(nn.Linear(2, 12), Maxout(3), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 8), Maxout(2),
                        nn.Linear(4, 1)).double()
    part = partition(net, BOX)
    assert part.codes.groups == (3, 1, 1)
    polys = check_invariants(part, net, seed=seed)
    assert set(map(tuple, part.edge_index.tolist())) == shapely_adjacency(polys)
    check_edges_change_one_unit(part)
    assert verify_lemma2(part).holds
    # one hop = one unit, whatever its kind: d_Omega and the VQ distance agree on edges
    D = part.code_distances()
    np.testing.assert_array_equal(D[part.edge_index[:, 0], part.edge_index[:, 1]], 1.0)


def test_minout_and_one_candidate_groups():
    """A min over groups of 4 (argmin, first on ties) and a max over groups of 1 (no bits)."""
    rng = np.random.default_rng(3)
    A1, b1 = rng.normal(size=(8, 2)), rng.normal(size=8) * 0.5
    A2, b2 = rng.normal(size=(3, 2)), rng.normal(size=3) * 0.5
    A3, b3 = rng.normal(size=(6, 3)), rng.normal(size=6) * 0.5
    spec = NetSpec([(A1, b1, ("minout", 4)), (A2, b2, ("maxout", 1)), (A3, b3, "relu")], ("a", "b", "c"), 2)
    # (the middle layer takes the 2 min outputs: its 3 units pass through unchanged)
    part = partition(spec, BOX)
    assert part.layer_sizes == (8, 0, 6)
    x = np.random.default_rng(0).uniform(-1, 1, (500, 2))
    inside = np.stack([shapely.contains_xy(P, x[:, 0], x[:, 1]) for P in part.regions])
    np.testing.assert_array_equal(inside.sum(0), 1)
    ref, _ = mlp_bits(spec.layers, x)
    np.testing.assert_array_equal(part.codes.unpack()[inside.argmax(0)], ref)
    ref_rep, _ = mlp_bits(spec.layers, part.inputs)
    np.testing.assert_array_equal(part.codes.unpack(), ref_rep)
    assert abs(part.areas.sum() - 4.0) <= 1e-9 * 4.0
    check_edges_change_one_unit(part)


@pytest.mark.parametrize("seed", range(3))
def test_1d_max_slice_of_2d(seed):
    """The 1-D partition along a segment has one region per piece of the 2-D regions it
    crosses (two independent algorithms), and the oracle's codes at its midpoints."""
    net = max_net(seed, 16, 12, k=4)
    p2 = partition(net, BOX)
    p1 = partition(net, (0.0, 1.0), plane=(np.array([-1.0, -0.7]), np.array([2.0, 1.3])))
    line = shapely.LineString([(-1, -0.7), (1, 0.6)])
    pieces = [P.intersection(line).length for P in p2.regions]
    assert p1.n_regions == sum(1 for L in pieces if L > 1e-9)
    ref, _ = mlp_bits(as_netspec(net).layers, p1.inputs)
    np.testing.assert_array_equal(p1.codes.unpack(), ref)
    # neighbours differ in exactly one unit
    check_edges_change_one_unit(p1)


@pytest.mark.parametrize("act", [nn.Hardsigmoid(), nn.Softshrink(0.3), nn.Hardtanh(-0.5, 0.7), nn.LeakyReLU(0.2)])
def test_registry_kink_units(act):
    """Kink units with two kinks or a nonzero intercept, read from the registry."""
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(2, 7), act, nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    part = partition(net, BOX)
    polys = check_invariants(part, net, seed=1)
    assert set(map(tuple, part.edge_index.tolist())) == shapely_adjacency(polys)
