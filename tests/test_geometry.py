"""Exact partitions: invariants on random cases, robustness cases, adjacency, d_Omega, input checks.

Everything is checked against independent computations: the reference oracle's codes
(``vqgeom.kernels.reference``), ``vqgeom.encode``, shapely geometry and networkx paths.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import shapely
import torch
import torch.nn as nn

import vqgeom
from vqgeom.geometry import Partition, partition, plane_through
from vqgeom._netspec import as_netspec
from vqgeom.kernels.reference import activate, hyperplane_bits, mlp_bits, thresholds

BOX = (-1.0, 1.0, -1.0, 1.0)
# Float tolerances used below, with their reasons:
# - areas sum to the box area to relative 1e-9 (the bar; rounding of a few
#   thousand shoelace terms is ~1e-13);
# - a shared boundary lies on its hyperplane to 1e-7 in pre-activation units (vertices are
#   intersections of lines computed through up to 4 layers of 96-wide float64 maps).
AREA_RTOL = 1e-9


def random_mlp(seed: int, widths, in_dim: int = 2, acts=None, out: int | None = None) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    mods, d = [], in_dim
    for i, w in enumerate(widths):
        lin = nn.Linear(d, w, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, d, generator=g, dtype=torch.float64) / np.sqrt(d))
            lin.bias.copy_(torch.randn(w, generator=g, dtype=torch.float64) * 0.5)
        mods += [lin, (acts[i] if acts else nn.ReLU())]
        d = w
    if out:
        mods.append(nn.Linear(d, out, dtype=torch.float64))
    return nn.Sequential(*mods)


def pre_activations(spec, X):
    """Every coding layer's (pre - threshold) values at X, threshold-major per layer: list of (N, B_l)."""
    z = np.asarray(X, dtype=np.float64)
    out = []
    for A, b, act in spec.layers:
        pre = z @ A.T + b
        if act is not None:
            out.append(np.concatenate([pre - t for t in thresholds(act)], axis=1))
        z = pre if act is None else activate(pre, act)
    return out


def check_invariants(part: Partition, net, *, general_position: bool = True, n_samples: int = 400, seed: int = 0):
    """The issue's invariants, each against an independent computation."""
    x0, x1, y0, y1 = part.bounds
    # 1. areas sum to the domain's area; every polygon is convex, counter-clockwise, nondegenerate.
    box = (x1 - x0) * (y1 - y0)
    assert abs(part.areas.sum() - box) <= AREA_RTOL * box
    polys = part.regions
    np.testing.assert_allclose(shapely.area(np.array(polys)), part.areas, rtol=1e-9, atol=1e-15 * box)
    assert np.all(part.areas > 0)
    for P in polys:
        assert P.is_valid
        # convex: the hull adds no area (relative 1e-9, the same rounding budget as the areas)
        assert P.convex_hull.area - P.area <= 1e-9 * max(P.area, 1e-300) + 1e-15
    # 2. no overlaps: random points fall in exactly one region, whose code is the point's code.
    rng = np.random.default_rng(seed)
    pts = np.stack([rng.uniform(x0, x1, n_samples), rng.uniform(y0, y1, n_samples)], axis=1)
    inside = np.stack([shapely.contains_xy(P, pts[:, 0], pts[:, 1]) for P in polys])  # (R, n)
    np.testing.assert_array_equal(inside.sum(0), np.ones(n_samples, dtype=int))
    owner = inside.argmax(0)
    spec = as_netspec(net)
    M0, c0 = part.plane_map
    pts_in = c0 + pts @ M0.T
    ref_pts, sizes = mlp_bits(spec.layers, pts_in)
    codes = part.codes.unpack()
    np.testing.assert_array_equal(codes[owner], ref_pts)
    # 3. each region's code equals the reference and vqgeom.encode at its representative point.
    ref, sizes = mlp_bits(spec.layers, part.inputs)
    assert tuple(sizes) == part.codes.layer_sizes
    np.testing.assert_array_equal(codes, ref)
    enc = vqgeom.encode(net, torch.from_numpy(part.inputs)) if isinstance(net, nn.Module) else vqgeom.encode(
        net if not isinstance(net, tuple) else vqgeom.Hyperplanes(*net), part.inputs
    )
    assert enc.layer_sizes == part.codes.layer_sizes
    assert enc.layer_names == part.codes.layer_names
    np.testing.assert_array_equal(enc.unpack(), codes)
    np.testing.assert_array_equal(enc.words_numpy(), part.codes.words_numpy())
    # 4. connected graph; distinct codes in general position.
    assert nx.is_connected(part.graph)
    if general_position:
        assert len(np.unique(codes, axis=0)) == part.n_regions
    return polys


def shapely_adjacency(polys, min_len=1e-7, halo=1e-10):
    """Pairs whose boundaries share a piece longer than ``min_len`` (independent of the partition code).

    Shared vertices are rounded differently on the two sides, so one boundary is compared
    with the other region grown by ``halo``; a corner contact then yields a piece of length
    ~ halo / sin(angle / 2), far below ``min_len`` except for needle-like corners.
    """
    tree = shapely.STRtree(polys)
    grown = [P.buffer(halo) for P in polys]
    out = set()
    for i, P in enumerate(polys):
        for j in tree.query(P.buffer(halo)):
            if j > i and P.boundary.intersection(grown[j]).length > min_len:
                out.add((i, int(j)))
    return out


# ----------------------------------------------------------------------------------------
# random cases
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,widths", [(0, [7]), (1, [5, 6]), (2, [8, 8, 8]), (3, [4, 3, 5, 6]), (4, [33, 9])])
def test_random_relu_nets(seed, widths):
    net = random_mlp(seed, widths, out=1)
    part = partition(net, BOX)
    polys = check_invariants(part, net, seed=seed)
    # adjacency equals shapely's, and each shared boundary lies on the recorded hyperplane
    adj = shapely_adjacency(polys)
    assert set(map(tuple, part.edge_index.tolist())) == adj
    spec = as_netspec(net)
    mids = part.edge_segments.mean(axis=1)
    pre = pre_activations(spec, mids)
    vals = np.array([pre[l][k, u] for k, (l, u) in enumerate(zip(part.edge_layer, part.edge_unit))])
    assert np.abs(vals).max() < 1e-7
    # generic: the two sides of an edge differ in exactly that one bit
    codes = part.codes.unpack()
    base = np.concatenate([[0], np.cumsum(part.layer_sizes)])
    diff = codes[part.edge_index[:, 0]] != codes[part.edge_index[:, 1]]
    np.testing.assert_array_equal(diff.sum(1), np.ones(len(diff), dtype=int))
    np.testing.assert_array_equal(np.argmax(diff, 1), base[part.edge_layer] + part.edge_unit)


def test_all_activations_on_a_plane_slice():
    acts = [nn.ReLU(), nn.LeakyReLU(0.1), nn.Hardtanh(-0.5, 0.7), nn.ReLU6(), nn.PReLU(1, init=0.2, dtype=torch.float64)]
    net = random_mlp(11, [9, 8, 7, 6, 5], in_dim=5, acts=acts, out=2)
    X = np.random.default_rng(1).normal(size=(3, 5))
    part = partition(net, (-0.5, 1.5, -0.5, 1.5), plane=plane_through(*X))
    assert part.codes.layer_sizes == (9, 8, 14, 12, 5)
    check_invariants(part, net)
    # the three inputs sit at plane coordinates (0,0), (1,0), (0,1)
    M0, c0 = part.plane_map
    np.testing.assert_allclose(c0 + np.array([[0, 0], [1, 0], [0, 1]]) @ M0.T, X, rtol=0, atol=1e-12)


def test_prelu_per_unit_and_origin_dirs_plane():
    lin = nn.Linear(3, 6, dtype=torch.float64)
    net = nn.Sequential(lin, nn.PReLU(6, dtype=torch.float64), nn.Linear(6, 4, dtype=torch.float64), nn.ReLU())
    torch.manual_seed(3)
    with torch.no_grad():
        net[1].weight.uniform_(-0.5, 0.5)
    plane = (np.array([0.1, -0.2, 0.3]), np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, -0.5]))
    part = partition(net, BOX, plane=plane)
    check_invariants(part, net)


def test_list_of_pairs_and_hyperplanes_inputs():
    rng = np.random.default_rng(5)
    layers = [(rng.normal(size=(6, 2)), rng.normal(size=6) * 0.3), (rng.normal(size=(5, 6)), rng.normal(size=5) * 0.3)]
    part = partition(layers, BOX)
    check_invariants(part, layers)
    N, o = rng.normal(size=(9, 2)), rng.uniform(-0.8, 0.8, 9)
    p1 = partition((N, o), BOX)
    p2 = partition(vqgeom.Hyperplanes(N, o), BOX)
    check_invariants(p1, (N, o))
    np.testing.assert_array_equal(p1.codes.unpack(), hyperplane_bits(N, o, p1.inputs))
    np.testing.assert_array_equal(p1.vertices, p2.vertices)
    # an arrangement of H lines in general position: 1 + H + (crossings inside) regions
    crossings = 0
    for i, j in itertools.combinations(range(9), 2):
        x = np.linalg.solve(N[[i, j]], -o[[i, j]])
        crossings += bool(np.all(np.abs(x) < 1))
    hits = sum(1 for h in range(9) if len(np.unique(hyperplane_bits(N[h : h + 1], o[h : h + 1], part_box_grid()))) == 2)
    assert p1.n_regions == 1 + hits + crossings


def part_box_grid(n=201):
    g = np.linspace(-1, 1, n)
    return np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)


# ----------------------------------------------------------------------------------------
# robustness cases from the issue
# ----------------------------------------------------------------------------------------
def lines_deg(*specs):
    """Lines a x + b y + c = 0 from (a, b, c) triples."""
    A = np.array([s[:2] for s in specs], dtype=np.float64)
    return A, np.array([s[2] for s in specs], dtype=np.float64)


def test_corner_touching_is_not_adjacent():
    part = partition(lines_deg((1, 0, 0), (0, 1, 0)), BOX)
    assert part.n_regions == 4
    assert part.graph.number_of_edges() == 4  # the diagonal quadrants only touch at the origin
    D = part.distances()
    assert sorted(np.unique(D[np.triu_indices(4, 1)]).tolist()) == [1.0, 2.0]


@pytest.mark.parametrize("k", [3, 8, 17])
def test_concurrent_lines(k):
    ang = np.pi * np.arange(k) / k
    N = np.stack([np.cos(ang), np.sin(ang)], 1)
    part = partition((N, np.zeros(k)), BOX)
    assert part.n_regions == 2 * k
    degrees = np.array([d for _, d in part.graph.degree()])
    np.testing.assert_array_equal(degrees, np.full(2 * k, 2))  # a cycle: fans only touch at the centre
    check_invariants(part, (N, np.zeros(k)))


def test_lines_through_vertices_and_corners():
    # both diagonals go through the box corners; x = 0.5 and y = 0.5 meet on the diagonal y = x
    net = lines_deg((1, -1, 0), (1, 1, 0), (1, 0, -0.5), (0, 1, -0.5), (1, 0, 0), (0, 1, 0))
    part = partition(net, BOX)
    # counted by hand: the axes and diagonals make 8 triangles; x = .5 (through the vertices
    # (.5, +-.5)) cuts the 4 on the right; y = .5 (through (.5, .5)) cuts the 2 top-left
    # triangles and one piece on each side of x = .5 in the first quadrant: 8 + 4 + 4 = 16
    assert part.n_regions == 16
    check_invariants(part, net)
    assert set(map(tuple, part.edge_index.tolist())) == shapely_adjacency(part.regions)


def test_parallel_coincident_antiparallel_missing_zero():
    # parallel strips
    p = partition(lines_deg((1, 0, 0.5), (1, 0, 0), (1, 0, -0.5)), BOX)
    assert p.n_regions == 4 and nx.is_isomorphic(p.graph, nx.path_graph(4))
    # coincident (duplicate) and antiparallel copies add no region; their edge records the first unit
    for dup in [(1, 0, 0), (-1, 0, 0), (2, 0, 0)]:
        net = lines_deg((1, 0, 0), (0, 1, 0.3), dup)
        p = partition(net, BOX)
        assert p.n_regions == 4
        check_invariants(p, net, general_position=True)
        units = sorted(set(p.edge_unit.tolist()))
        assert units == [0, 1]
    # a line that misses the domain and zero-weight units add nothing and give constant bits
    N = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    o = np.array([0.0, 5.0, 1.0, -1.0])
    p = partition([(N, o)], BOX)
    assert p.n_regions == 2
    bits = p.codes.unpack()
    np.testing.assert_array_equal(bits[:, 1:], np.tile([True, True, False], (2, 1)))
    check_invariants(p, [(N, o)], general_position=True)
    # a hyperplane *set* with a zero normal is refused, as vqgeom.Hyperplanes refuses it
    with pytest.raises(ValueError, match="normals"):
        partition((N, o), BOX)


def test_dead_and_zero_weight_units_in_a_deep_net():
    net = random_mlp(7, [6, 5, 4], out=1)
    with torch.no_grad():
        net[2].bias[0] = -1e3  # dead unit of layer 2
        net[2].weight[1] = 0.0  # zero-weight units: constant sign from the bias
        net[2].bias[1] = 0.25
        net[4].weight[2] = 0.0
        net[4].bias[2] = -0.1
    part = partition(net, BOX)
    check_invariants(part, net)
    bits = part.codes.unpack()
    np.testing.assert_array_equal(bits[:, 6], np.zeros(part.n_regions, dtype=bool))
    np.testing.assert_array_equal(bits[:, 7], np.ones(part.n_regions, dtype=bool))
    np.testing.assert_array_equal(bits[:, 11 + 2], np.zeros(part.n_regions, dtype=bool))
    assert not np.any((part.edge_layer == 1) & np.isin(part.edge_unit, [0, 1]))


@pytest.mark.parametrize("eps,expected", [(1e-14, 6), (1e-3, 7)])
def test_sliver_tolerance(eps, expected):
    # x = 0, y = 0 and x + y = eps: within tol * diam of the origin the third line goes through
    # the vertex (6 regions); farther away it cuts off a small triangle (7 regions)
    net = lines_deg((1, 0, 0), (0, 1, 0), (1, 1, -eps))
    part = partition(net, BOX)
    assert part.n_regions == expected
    assert abs(part.areas.sum() - 4.0) <= AREA_RTOL * 4
    assert nx.is_connected(part.graph)


def test_near_parallel_lines_and_tiny_regions():
    # two lines crossing at a very small angle near the boundary
    net = lines_deg((1, 1e-7, 0.2), (1, -1e-7, 0.2), (0, 1, 0.0))
    part = partition(net, BOX)
    check_invariants(part, net, n_samples=200)


# ----------------------------------------------------------------------------------------
# 1-D
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_1d_random_deep(seed):
    net = random_mlp(seed, [6, 5, 7], in_dim=1, out=1)
    part = partition(net, (-2.0, 3.0))
    iv = part.intervals
    assert iv[0, 0] == -2.0 and iv[-1, 1] == 3.0
    np.testing.assert_array_equal(iv[1:, 0], iv[:-1, 1])
    spec = as_netspec(net)
    ref, _ = mlp_bits(spec.layers, part.inputs)
    np.testing.assert_array_equal(part.codes.unpack(), ref)
    # random points in each interval carry its code; neighbours differ (no spurious breakpoint)
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.001, 0.999, (part.n_regions, 5))
    pts = iv[:, :1] + t * (iv[:, 1:] - iv[:, :1])
    bits, _ = mlp_bits(spec.layers, pts.reshape(-1, 1))
    np.testing.assert_array_equal(bits.reshape(part.n_regions, 5, -1), np.repeat(ref[:, None], 5, 1))
    assert np.all((ref[1:] != ref[:-1]).any(1))
    assert nx.is_isomorphic(part.graph, nx.path_graph(part.n_regions))
    enc = vqgeom.encode(net, torch.from_numpy(part.inputs))
    np.testing.assert_array_equal(enc.unpack(), ref)


def test_1d_line_slice_of_2d_net():
    net = random_mlp(4, [8, 8], in_dim=2)
    origin, direction = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    p1 = partition(net, (0.0, 2.0), plane=(origin, direction))
    # the same line through the 2-D partition: breakpoints where the segment crosses region edges
    p2 = partition(net, BOX)
    line = shapely.LineString([(-1, -1), (1, 1)])
    pieces = [P.intersection(line).length for P in p2.regions]
    assert p1.n_regions == sum(1 for L in pieces if L > 1e-9)


# ----------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------
def test_distances_match_networkx():
    net = random_mlp(2, [5, 5], out=1)
    part = partition(net, BOX)
    D = part.distances()
    G = part.graph
    ref = dict(nx.all_pairs_shortest_path_length(G))
    R = part.n_regions
    np.testing.assert_array_equal(D, np.array([[ref[i][j] for j in range(R)] for i in range(R)], dtype=float))
    w = [0.5, 2.0]
    Dw = part.distances(w)
    for (i, j, a) in G.edges(data=True):
        a["w"] = w[a["layer"]]
    refw = dict(nx.all_pairs_dijkstra_path_length(G, weight="w"))
    # sums of a few binary fractions: exact in float64, but compare with 1e-12 to allow path-order rounding
    np.testing.assert_allclose(Dw, np.array([[refw[i][j] for j in range(R)] for i in range(R)]), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(part.distances(sources=[3, 0]), D[[3, 0]])
    # the VQ distance of the regions' codes, against the reference Hamming
    from vqgeom.kernels.reference import hamming, layer_hamming

    bits = part.codes.unpack()
    np.testing.assert_array_equal(part.code_distances(per_layer=True), layer_hamming(bits, bits, part.layer_sizes))
    np.testing.assert_allclose(part.code_distances(w), hamming(bits, bits, part.layer_sizes, w), rtol=1e-15, atol=0)


def test_nested_sequential_composed_linears_and_progress():
    g = torch.Generator().manual_seed(4)
    lin = [nn.Linear(2, 6, dtype=torch.float64), nn.Linear(6, 5, dtype=torch.float64), nn.Linear(5, 4, dtype=torch.float64)]
    for m in lin:
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
    net = nn.Sequential(nn.Sequential(lin[0], nn.ReLU()), lin[1], nn.Identity(), lin[2], nn.ReLU())
    part = partition(net, BOX, progress=True)
    check_invariants(part, net)  # codes and layer names equal vqgeom.encode's
    assert part.codes.layer_names == ("0.1:relu", "4:relu")
    # two affine maps in a row are one: the same partition as the composed layer
    W = (lin[2].weight @ lin[1].weight).detach().numpy()
    b = (lin[2].weight @ lin[1].bias + lin[2].bias).detach().numpy()
    A0, b0 = lin[0].weight.detach().numpy(), lin[0].bias.detach().numpy()
    same = partition([(A0, b0), (W, b)], BOX)
    assert same.n_regions == part.n_regions
    np.testing.assert_array_equal(same.codes.unpack(), part.codes.unpack())
    np.testing.assert_array_equal(part.distances(progress=True), part.distances(progress=False))


def test_one_region_and_one_unit():
    part = partition(lines_deg((1, 0, 5)), BOX)  # misses the box
    assert part.n_regions == 1 and part.graph.number_of_edges() == 0
    np.testing.assert_array_equal(part.distances(), np.zeros((1, 1)))
    part = partition(lines_deg((1, 0, 0.25)), BOX)
    assert part.n_regions == 2 and list(part.graph.edges(data=True)) == [(0, 1, {"layer": 0, "unit": 0})]
    seg = part.edge_segments[0]
    np.testing.assert_allclose(np.sort(seg[:, 1]), [-1.0, 1.0], rtol=0, atol=1e-15)


def test_40_units_codes_cross_a_word():
    net = random_mlp(9, [40], out=1)
    part = partition(net, BOX)
    assert part.codes.n_words == 2
    check_invariants(part, net, n_samples=200)


# ----------------------------------------------------------------------------------------
# regioncam, when installed
# ----------------------------------------------------------------------------------------
def test_region_counts_match_regioncam():
    regioncam = pytest.importorskip("regioncam")
    for seed, w in [(0, 16), (1, 24)]:
        net = random_mlp(seed, [w, w, w])
        rc = regioncam.Regioncam(size=1.0)
        for m in net:
            if isinstance(m, nn.Linear):
                rc.linear(m.weight.detach().float().numpy().T.copy(), m.bias.detach().float().numpy())
            else:
                rc.relu()
        assert partition(net, BOX).n_regions == rc.num_faces


# ----------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------
def test_bad_input_messages():
    net = random_mlp(0, [3], out=1)
    with pytest.raises(ValueError, match="bounds"):
        partition(net, (1, -1, 0, 1))
    with pytest.raises(ValueError, match="bounds"):
        partition(net, (0, 1, 2))
    with pytest.raises(ValueError, match="plane"):
        partition(random_mlp(0, [3], in_dim=4), BOX)
    with pytest.raises(ValueError, match="plane\\[1\\]"):
        partition(random_mlp(0, [3], in_dim=4), BOX, plane=(np.zeros(4), np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="independent"):
        partition(random_mlp(0, [3], in_dim=4), BOX, plane=(np.zeros(4), np.ones(4), 2 * np.ones(4)))
    with pytest.raises(ValueError, match="collinear"):
        plane_through(np.zeros(3), np.ones(3), 2 * np.ones(3))
    with pytest.raises(TypeError, match="Sigmoid"):
        partition(nn.Sequential(nn.Linear(2, 3), nn.Sigmoid()), BOX)
    with pytest.raises(TypeError, match="net_or_hyperplanes"):
        partition("relu", BOX)
    with pytest.raises(ValueError, match="net\\[1\\]"):
        partition([(np.ones((3, 2)), np.zeros(3)), (np.ones((2, 4)), np.zeros(2))], BOX)
    with pytest.raises(ValueError, match="tol"):
        partition(net, BOX, tol=-1.0)
    with pytest.raises(ValueError, match="weights"):
        partition(net, BOX).distances([1.0, 2.0])


# ----------------------------------------------------------------------------------------
# the compiled search behind Partition.distances()
# ----------------------------------------------------------------------------------------
def _random_weighted_graph(rng, n_path, n_rand, n_edges, wmax, path_w):
    """A path (levels far beyond the bucket ring), a random graph with parallel routes of
    different weights, and an isolated node: three components."""
    from scipy.sparse import csr_matrix

    i = np.concatenate([np.arange(n_path - 1), n_path + rng.integers(0, n_rand, n_edges)])
    j = np.concatenate([np.arange(1, n_path), n_path + rng.integers(0, n_rand, n_edges)])
    w = np.concatenate([np.full(n_path - 1, path_w), rng.integers(1, wmax + 1, n_edges)])
    keep = i != j
    i, j, w = i[keep], j[keep], w[keep]
    R = n_path + n_rand + 1
    A = csr_matrix((np.concatenate([w, w]).astype(float), (np.concatenate([i, j]), np.concatenate([j, i]))),
                   shape=(R, R))
    A.sum_duplicates()  # duplicates would add up in both: keep the graph simple
    A.data[:] = np.minimum(np.rint(A.data), wmax)
    return A


@pytest.mark.parametrize("threads", [1, 2])
def test_dial_distances_against_scipy(threads):
    """d_Omega's compiled search against scipy's Dijkstra: unweighted and weighted, levels
    below and above the uint16 rows' range (a path of weight-64 edges), several components
    (a block never straddles one), repeated sources, a partial last block, node orders."""
    from scipy.sparse.csgraph import shortest_path

    from vqgeom.geometry._dial import dial_distances, integer_weights

    rng = np.random.default_rng(10 + threads)
    for wmax, path_w in ((1, 1), (5, 3), (64, 64)):
        A = _random_weighted_graph(rng, 1100, 150, 400, wmax, path_w)
        R = A.shape[0]
        sources = np.concatenate([rng.integers(0, R, 170), [0, 0, R - 1, 1099]])
        for unit, order in ((1.0, None), (0.25, rng.permutation(R))):
            D = dial_distances(A.indptr, A.indices, A.data.astype(np.int64), sources, order, unit=unit,
                               threads=threads)
            ref = shortest_path(A * unit, method="D", directed=False, indices=sources)
            # integer levels times a power-of-two unit: exact
            np.testing.assert_array_equal(D, ref)
        assert np.isinf(D).any() and np.isfinite(D).any()
        if path_w == 64:
            assert D[np.isfinite(D)].max() >= 65535 * 0.25  # the int32 rows were used
    assert integer_weights(np.array([0.5, 1.0, 1.5])) == (pytest.approx([1, 2, 3]), 0.5)
    assert integer_weights(np.array([1.0, np.sqrt(2.0)])) is None
    with pytest.raises(ValueError, match="edge_weight"):
        dial_distances(A.indptr, A.indices, np.zeros(A.nnz, dtype=np.int64), [0])


def test_distances_on_a_partition_against_scipy():
    """Partition.distances on a partition with thousands of regions (many blocks), hops and
    layer weights (1, 2, 3), against scipy's Dijkstra on the same adjacency."""
    from scipy.sparse.csgraph import shortest_path

    net = random_mlp(7, [24, 24, 24], out=1)
    part = partition(net, BOX)
    assert part.n_regions > 600
    src = np.random.default_rng(7).choice(part.n_regions, 200, replace=False)
    for w in (None, (1.0, 2.0, 3.0)[: len(part.layer_sizes)]):
        D = part.distances(w, sources=src, threads=2)
        ref = shortest_path(part.adjacency(w), method="D", directed=False, indices=src)
        np.testing.assert_array_equal(D, ref)
        buf = np.full((src.size, part.n_regions), -1.0)
        assert part.distances(w, sources=src, out=buf) is buf
        np.testing.assert_array_equal(buf, ref)
    with pytest.raises(ValueError, match="out"):
        part.distances(sources=src, out=np.empty((src.size, part.n_regions), dtype=np.float32))
    with pytest.raises(ValueError, match="threads"):
        part.distances(sources=src, threads=0)
    with pytest.raises(TypeError, match="threads"):
        part.distances(sources=src, threads="2")


def test_weighted_distances_route_and_fallback():
    """Commensurable weights take the bit-parallel route, others scipy's; both match networkx."""
    net = random_mlp(5, [6, 6], out=1)
    part = partition(net, BOX)
    G = part.graph
    for w in ([1.0, 3.0], [0.3, 0.7], [1.0, np.sqrt(2.0)]):
        for (i, j, a) in G.edges(data=True):
            a["w"] = w[a["layer"]]
        ref = dict(nx.all_pairs_dijkstra_path_length(G, weight="w"))
        R = part.n_regions
        # non-dyadic units (0.1): levels times the unit differ from networkx's sums by rounding
        np.testing.assert_allclose(part.distances(w), [[ref[a][b] for b in range(R)] for a in range(R)],
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", range(8))
def test_degenerate_integer_nets(seed):
    """Small integer weights: parallel, coincident and concurrent hyperplanes, lines through
    vertices, units whose pre-activation vanishes on whole regions. The geometry must hold
    (codes are not compared: where a pre-activation is identically zero on a region, its
    bit is decided by float rounding, differently along different summation orders)."""
    rng = np.random.default_rng(100 + seed)
    layers, d = [], 2
    for _ in range(int(rng.integers(1, 4))):
        w = int(rng.choice([3, 5, 8]))
        layers.append((rng.integers(-2, 3, (w, d)).astype(float), rng.integers(-2, 3, w) * 0.5))
        d = w
    part = partition(layers, BOX)
    assert abs(part.areas.sum() - 4.0) <= AREA_RTOL * 4.0
    assert np.all(part.areas > 0)
    assert nx.is_connected(part.graph)
    assert set(map(tuple, part.edge_index.tolist())) == shapely_adjacency(part.regions)
    polys = part.regions
    pts = np.random.default_rng(seed).uniform(-1, 1, (300, 2))
    inside = np.stack([shapely.contains_xy(P, pts[:, 0], pts[:, 1]) for P in polys])
    np.testing.assert_array_equal(inside.sum(0), np.ones(300, dtype=int))


# ----------------------------------------------------------------------------------------
# scale: huge and tiny weights, slivers at tol=0, arguments named in errors
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e300, 1e308, 1e-300, 2.0**-1060])
def test_arrangement_at_extreme_scales(scale):
    """Scaling a hyperplane arrangement by a positive number changes nothing: the same 4
    regions and adjacency as at scale 1, codes equal to vqgeom.encode's (and the oracle's).
    The entries have short binary mantissas, so even the subnormal scale holds them exactly."""
    N = np.array([[1.0, 0.375], [0.25, -1.0]])
    o = np.array([0.125, -0.25])
    ref = partition((N, o), BOX)
    part = partition((N * scale, o * scale), BOX)
    assert part.n_regions == ref.n_regions == 4
    np.testing.assert_allclose(part.areas, ref.areas, rtol=1e-12)
    np.testing.assert_array_equal(part.edge_index, ref.edge_index)
    np.testing.assert_array_equal(part.codes.unpack(), hyperplane_bits(N * scale, o * scale, part.inputs))
    if scale >= 1e-300:  # vqgeom.Hyperplanes refuses normals whose squared norm underflows
        enc = vqgeom.encode(vqgeom.Hyperplanes(N * scale, o * scale), part.inputs)
        np.testing.assert_array_equal(np.asarray(enc.unpack()), part.codes.unpack())


@pytest.mark.parametrize("s1,s2", [(1e300, 1e-300), (1e-300, 1e300), (1e150, 1e150)])
def test_deep_net_at_extreme_scales(s1, s2):
    """Layer 1 scaled by s1 and layer 2 by s2 (its bias by s1 * s2): the same partition."""
    A1 = np.array([[1.0, 0.3], [0.2, -1.0], [0.5, 0.5]])
    b1 = np.array([0.1, -0.2, 0.05])
    A2 = np.array([[1.0, -1.0, 0.5], [0.3, 0.2, -1.0]])
    b2 = np.array([0.0, 0.1])
    ref = partition([(A1, b1), (A2, b2)], BOX)
    part = partition([(A1 * s1, b1 * s1), (A2 * s2, b2 * (s1 * s2))], BOX)
    assert part.n_regions == ref.n_regions
    np.testing.assert_allclose(np.sort(part.areas), np.sort(ref.areas), rtol=1e-9)
    np.testing.assert_array_equal(part.codes.unpack(), ref.codes.unpack())


def _exact_line_count(N, o, box):
    """Regions of a line arrangement in the box, in exact rational arithmetic: 1 + lines
    crossing the open box + pairwise crossings inside it (lines in general position)."""
    from fractions import Fraction as Fr

    x0, x1, y0, y1 = (Fr(v) for v in box)
    lines = [(Fr(a), Fr(b), Fr(c)) for (a, b), c in zip(N.tolist(), o.tolist())]
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    n = 1 + sum(1 for a, b, c in lines if min(a * x + b * y + c for x, y in corners) < 0
                < max(a * x + b * y + c for x, y in corners))
    for (a, b, c), (d, e, f) in itertools.combinations(lines, 2):
        det = a * e - b * d
        if det != 0:
            x, y = (b * f - c * e) / det, (c * d - a * f) / det
            n += x0 < x < x1 and y0 < y < y1
    return n


@pytest.mark.parametrize("width", [1e-12, 1e-14])
def test_slivers_at_tol0_have_their_true_neighbours(width):
    """Thin strips between nearly coincident lines at tol=0: the region count is the exact
    one (rational arithmetic), every code distinct, and two regions are adjacent iff their
    codes differ in exactly one line (true for any line arrangement in a convex box)."""
    rng = np.random.default_rng(int(-np.log10(width)))
    ang = rng.uniform(0, np.pi, 3)
    N = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    o = rng.uniform(-0.3, 0.3, 3)
    # each line gets a parallel twin `width` away: three slivers, crossing each other
    N = np.concatenate([N, N])
    o = np.concatenate([o, o + width])
    part = partition((N, o), BOX, tol=0)
    assert part.n_regions == _exact_line_count(N, o, BOX)
    bits = part.codes.unpack().astype(np.int64)
    assert len({tuple(r) for r in bits}) == part.n_regions
    ham = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    expected = {(i, j) for i, j in zip(*np.nonzero(np.triu(ham == 1)))}
    assert {tuple(map(int, e)) for e in part.edge_index} == expected
    assert np.all(part.areas > 0)
    # each edge lies on the hyperplane where the two codes differ
    diff = np.argmax(bits[part.edge_index[:, 0]] != bits[part.edge_index[:, 1]], axis=1)
    np.testing.assert_array_equal(part.edge_unit, diff)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="^normals: expected finite"):
        partition((np.array([[np.nan, 1.0]]), np.array([0.0])), BOX)
    with pytest.raises(ValueError, match="^offsets: expected finite"):
        partition((np.array([[1.0, 1.0]]), np.array([np.inf])), BOX)
    for b in [(-1e300, 1e300, -1e300, 1e300), (-1e308, 1e308, -1.0, 1.0), (-1e-300, 1e-300, -1e-300, 1e-300),
              (-1e308, 1e308)]:
        with pytest.raises(ValueError, match="^bounds: "):
            partition((np.eye(len(b) // 2), np.zeros(len(b) // 2)), b)
    # an interval of length 2e300 is fine in 1-D
    np.testing.assert_array_equal(partition((np.eye(1), np.zeros(1)), (-1e300, 1e300)).areas, [1e300, 1e300])
    # a deep net whose pre-activations overflow float64: refused, not garbage
    A = np.array([[1e200, 1.0], [1.0, -1e200]])
    for bounds in (BOX, (-1.0, 1.0)):
        net = [(A[:, : len(bounds) // 2], np.zeros(2)), (A, np.zeros(2))]
        with pytest.raises(ValueError, match="^net_or_hyperplanes: .*coding layer 1 overflow"):
            partition(net, bounds)



@pytest.mark.parametrize("acts", [None, [nn.LeakyReLU(0.2), nn.PReLU(6, init=0.3), nn.ReLU()]])
def test_compiled_cut_equals_the_layer_by_layer_cut(acts):
    """ReLU / leaky / PReLU nets are cut in one compiled call; the layer-by-layer driver
    (taken with progress=True) must give the identical partition, bit for bit, and the
    same errors (its overflow check is the one tested above)."""
    from vqgeom.geometry._partition import _partition_2d

    net = random_mlp(21, [6, 6, 6], acts=acts)
    with torch.no_grad():
        net[2].weight[1] = net[2].weight[0]  # a duplicate hyperplane: shared edges, no sliver
        net[2].bias[1] = net[2].bias[0]
    spec = as_netspec(net)
    M0, c0 = np.eye(2), np.zeros(2)
    a = _partition_2d(spec, M0, c0, BOX, 1e-10, False)
    b = _partition_2d(spec, M0, c0, BOX, 1e-10, True)
    for x, y in ((a.V, b.V), (a.E, b.E), (a.off, b.off), (a.area, b.area), (a.centroid, b.centroid)):
        np.testing.assert_array_equal(x, y)
    assert a.off.size > 20
    base, grp = np.array([0, 6, 12, 18]), np.ones(3, dtype=np.int64)
    ea = a.he.adjacency(1e-9, base, grp)
    eb = b.he.adjacency(1e-9, base, grp)
    for x, y in zip(ea, eb):
        np.testing.assert_array_equal(x, y)


def test_lazy_codes_do_not_follow_later_training():
    """Codes and edges are computed on first read, from the weights copied at partition()
    time: training the (float64) net afterwards must not change them."""
    net = random_mlp(22, [6, 6])
    part = partition(net, BOX)
    ref, _ = mlp_bits(as_netspec(net).layers, part.inputs)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(-1.0)
    np.testing.assert_array_equal(part.codes.unpack(), ref)
    assert part.edge_index.shape[0] > 0 and part.edge_layer.shape == part.edge_unit.shape


def _bits_of_words(words, sizes):
    """Unpack the Codes layout by hand (layer l from word sum(ceil(B_k/32), k<l); unit j at
    bit j % 32 of word j // 32), and the padding bits, for a check independent of the packer."""
    cols, pad, off = [], [], 0
    for b in sizes:
        nw = (b + 31) // 32
        for j in range(nw * 32):
            bit = (words[:, off + j // 32].astype(np.uint64) >> np.uint64(j % 32)) & np.uint64(1)
            (cols if j < b else pad).append(bit.astype(bool))
        off += nw
    assert off == words.shape[1]
    none = np.zeros((words.shape[0], 0), dtype=bool)
    return (np.stack(cols, 1) if cols else none), (np.stack(pad, 1) if pad else none)


@pytest.mark.parametrize("case", ["relu", "leaky_prelu", "wide_duplicate", "output_layer"])
def test_codes_packed_by_the_compiled_cut_equal_the_oracle(case):
    """ReLU-type nets get their region codes from the compiled cut (signs read while cutting,
    packed there): every region's code must equal the oracle's bits at its centroid, padding
    zero, on nets with leaky/PReLU slopes, a layer wider than one word, a duplicate
    hyperplane and a trailing output layer."""
    if case == "relu":
        net = random_mlp(31, [16, 16, 16])
    elif case == "leaky_prelu":
        net = random_mlp(32, [12, 9, 7], acts=[nn.LeakyReLU(0.1), nn.PReLU(9, init=0.25), nn.LeakyReLU(-0.5)])
    elif case == "wide_duplicate":
        net = random_mlp(33, [40, 5, 33])
        with torch.no_grad():
            net[2].weight[3] = net[2].weight[1]  # a duplicate hyperplane in layer 1
            net[2].bias[3] = net[2].bias[1]
    else:
        net = random_mlp(34, [10, 10], out=3)
    part = partition(net, BOX)
    assert part._words is not None  # the compiled cut's words, not the forward pass
    codes = part.codes
    spec = as_netspec(net)
    ref, sizes = mlp_bits(spec.layers, part.inputs)
    assert tuple(sizes) == codes.layer_sizes == part.layer_sizes
    assert codes.words.dtype == np.uint32 and codes.words.flags.c_contiguous
    bits, pad = _bits_of_words(codes.words, sizes)
    assert part.n_regions > 30
    np.testing.assert_array_equal(bits, ref)
    assert not pad.any()
    # The same codes as the validating public constructor accepts, names and groups included.
    pub = vqgeom.Codes(codes.words.copy(), codes.layer_sizes, codes.layer_names, codes.groups)
    assert (pub.layer_sizes, pub.layer_names, pub.groups) == (codes.layer_sizes, codes.layer_names, codes.groups)
