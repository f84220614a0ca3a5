"""Lemmas 1 and 2, the Appendix B.2 nets, Fig. 5, the ``vqgeom lemmas`` campaign and the plots."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import vqgeom
from vqgeom.geometry import (
    partition,
    plot_distance_scatter,
    plot_graph,
    plot_partition,
    printed_map_net,
    shallow_tent_net,
    tent_breakpoints,
    tent_map_net,
    verify_lemma1,
    verify_lemma2,
)
from vqgeom.paper import campaign
from vqgeom._netspec import as_netspec
from vqgeom.paper.figures import fig5
from vqgeom.kernels.reference import hamming, mlp_bits

BOX = (-1.0, 1.0, -1.0, 1.0)


def random_lines(seed, n):
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi, n)
    return np.stack([np.cos(ang), np.sin(ang)], 1), rng.uniform(-0.9, 0.9, n)


def random_layers(seed, widths):
    rng = np.random.default_rng(seed)
    out, d = [], 2
    for w in widths:
        out.append((rng.normal(size=(w, d)), rng.normal(size=w) * 0.5))
        d = w
    return out


# ----------------------------------------------------------------------------------------
# Lemma 1
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,n", [(0, 1), (1, 5), (2, 12)])
def test_lemma1_arrangements(seed, n):
    part = partition(random_lines(seed, n), BOX)
    rep = verify_lemma1(part)
    assert rep.holds and rep.violations == 0 and rep.pairs == part.n_regions * (part.n_regions - 1) // 2
    assert rep.equal == rep.pairs and rep.less == rep.greater == 0
    # the report's d is the reference Hamming distance of the region codes
    bits = part.codes.unpack()
    D = hamming(bits, bits, part.layer_sizes)
    np.testing.assert_array_equal(D, part.distances())


def test_lemma1_shallow_net_and_weights():
    net = random_layers(3, [10])
    rep = verify_lemma1(net, BOX, weights=[0.3])
    assert rep.holds and rep.equal == rep.pairs


@pytest.mark.parametrize("flip", [1.0, -1.0, 2.5])
def test_lemma1_fails_for_duplicate_and_antiparallel_units(flip):
    """Non-generic exception: a doubled hyperplane flips two bits in one hop (d > d_Omega)."""
    N, o = random_lines(4, 5)
    N2, o2 = np.concatenate([N, flip * N[:1]]), np.concatenate([o, flip * o[:1]])
    part = partition((N2, o2), BOX)
    assert part.n_regions == partition((N, o), BOX).n_regions  # the copy adds no region
    rep = verify_lemma1(part, max_examples=3)
    assert not rep.holds and rep.greater > 0 and rep.less == 0 and len(rep.examples) == 3
    ex = rep.examples[0]
    i, j = ex["regions"]
    bits = part.codes.unpack()
    assert ex["d"] == float((bits[i] != bits[j]).sum()) and ex["d"] > ex["d_omega"]
    # Lemma 2 is violated too: the network is not generic
    assert verify_lemma2(part).violations == rep.greater


def test_lemma1_needs_one_layer():
    with pytest.raises(ValueError, match="one layer"):
        verify_lemma1(random_layers(0, [3, 3]), BOX)
    with pytest.raises(ValueError, match="bounds"):
        verify_lemma1(random_layers(0, [3]))
    with pytest.raises(ValueError, match="bounds"):
        verify_lemma1(partition(random_layers(0, [3]), BOX), BOX)


# ----------------------------------------------------------------------------------------
# Lemma 2
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,widths", [(0, [6, 6]), (1, [5, 5, 5]), (2, [4, 4, 4, 4])])
def test_lemma2_deep_nets(seed, widths):
    part = partition(random_layers(seed, widths), BOX)
    rep = verify_lemma2(part)
    assert rep.holds and rep.greater == 0
    assert rep.equal + rep.less == rep.pairs
    w = [1.0, 0.5, 2.0, 0.25][: len(widths)]
    repw = verify_lemma2(part, weights=w)
    assert repw.holds
    # hand-count of the strict cases from the two matrices
    D, Dw = part.distances(), part.code_distances()
    iu = np.triu_indices(part.n_regions, 1)
    assert rep.less == int((Dw[iu] < D[iu]).sum())


def test_lemma2_strict_for_tent_map():
    rep = verify_lemma2(tent_map_net(4), (0.0, 1.0))
    assert rep.holds and rep.less > 0 and rep.n_regions == 16
    assert 0 < rep.strict_share < 1
    assert "Lemma 2" in str(rep)


# ----------------------------------------------------------------------------------------
# Appendix B.2 and Fig. 5
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("L", [1, 2, 3, 5, 7])
def test_b2_piece_counts(L):
    printed = partition(printed_map_net(L), (0.0, 1.0))
    tent = partition(tent_map_net(L), (0.0, 1.0))
    shallow = partition(shallow_tent_net(L), (0.0, 1.0))
    assert printed.n_regions == L + 1  # ERRATA note 1
    assert tent.n_regions == 2**L
    assert sum(shallow.layer_sizes) == 2**L - 1
    bp = tent_breakpoints(L)
    np.testing.assert_array_equal(tent.intervals[1:, 0], bp)  # k / 2**L, exact in float64
    np.testing.assert_array_equal(shallow.intervals, tent.intervals)
    # the nets compute what they claim: f^L by composition, and pieces are affine
    x = np.linspace(0, 1, 257)
    f = x.copy()
    for _ in range(L):
        f = 2 * f - 2 * np.maximum(2 * f - 1, 0)
    out = tent_map_net(L)(torch.from_numpy(x[:, None])).detach().numpy().ravel()
    np.testing.assert_allclose(out, f, rtol=0, atol=1e-12)  # powers of two: float64-exact up to rounding of 2**L x
    # deep VQ distance <= L; shallow VQ distance = d_Omega (Lemma 1)
    assert tent.code_distances().max() <= L
    np.testing.assert_array_equal(shallow.code_distances(), shallow.distances())
    enc = vqgeom.encode(tent_map_net(L), torch.from_numpy(tent.inputs))
    np.testing.assert_array_equal(enc.unpack(), tent.codes.unpack())


def test_b2_bad_depth():
    with pytest.raises(ValueError, match="L"):
        tent_map_net(0)
    with pytest.raises(ValueError, match="L"):
        printed_map_net(2.0)


def test_fig5(tmp_path):
    out = fig5(tmp_path, L=3)
    for f in out["files"]:
        assert os.path.getsize(f) > 0
    assert out["n_regions_deep"] == out["n_regions_shallow"] == 8 and out["shallow_units"] == 7
    assert out["identical_partition"] and out["d_omega_identical"] and out["max_breakpoint_error"] == 0.0
    assert out["max_d_omega"] == 7.0 and out["max_d_deep"] <= 3 and out["deep_le_L"]
    assert out["shallow_equals_d_omega"] and out["deep_le_d_omega"]
    # the CSV holds every pair, and its columns agree with independent computations
    rows = np.loadtxt(tmp_path / "fig5_pairs.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert rows.shape == (28, 5)
    np.testing.assert_array_equal(rows[:, 2], rows[:, 1] - rows[:, 0])  # d_Omega on a path
    np.testing.assert_array_equal(rows[:, 3], rows[:, 2])
    deep = partition(tent_map_net(3), (0.0, 1.0))
    bits, sizes = mlp_bits(as_netspec(tent_map_net(3)).layers, deep.inputs)
    H = hamming(bits, bits, sizes)
    np.testing.assert_array_equal(rows[:, 4], H[rows[:, 0], rows[:, 1]].astype(np.int64))
    meta = json.loads((tmp_path / "fig5.json").read_text())
    assert meta["breakpoints"] == tent_breakpoints(3).tolist()
    expected_share = float(np.mean(rows[:, 4] < rows[:, 2]))
    assert out["deep_strict_share"] == pytest.approx(expected_share, rel=1e-12)
    with pytest.raises(ValueError, match="L"):
        fig5(tmp_path, L=0)


# ----------------------------------------------------------------------------------------
# campaign and plots
# ----------------------------------------------------------------------------------------
def test_campaign_main(capsys, tmp_path):
    path = tmp_path / "rows.json"
    rc = campaign.main(["--seeds", "1", "--widths", "4", "--depths", "2,3", "--shallow-widths", "6",
                        "--lines", "5", "--tent-depths", "3", "--no-progress", "--json", str(path)])
    text = capsys.readouterr().out
    assert rc == 0
    rows = json.loads(path.read_text())
    kinds = [r["kind"] for r in rows]
    assert kinds == ["arrangement", "shallow", "deep", "deep", "tent", "duplicate", "antiparallel"]
    assert all(r["ok"] for r in rows)
    assert all(r["greater"] == 0 for r in rows if r["kind"] in ("arrangement", "shallow", "deep", "tent"))
    assert all(r["greater"] > 0 for r in rows if r["kind"] in ("duplicate", "antiparallel"))
    assert "7/7 rows as expected" in text
    with pytest.raises(SystemExit):
        campaign.main(["--widths", "0"])


def test_cli_dispatches_lemmas(capsys):
    from vqgeom.cli import main

    assert main(["lemmas", "--seeds", "1", "--widths", "3", "--depths", "2", "--shallow-widths", "4",
                 "--lines", "3", "--tent-depths", "2", "--no-progress"]) == 0
    assert "rows as expected" in capsys.readouterr().out


def test_plots(tmp_path):
    from matplotlib.figure import Figure

    part = partition(random_layers(1, [5, 5]), BOX)
    fig = Figure()
    axs = fig.subplots(1, 3)
    plot_partition(part, axs[0])
    assert len(axs[0].collections) == 2  # regions + boundaries
    np.testing.assert_array_equal(axs[0].collections[1].get_segments(), list(part.edge_segments))
    plot_graph(part, axs[1])
    assert len(axs[1].collections[-1].get_offsets()) == part.n_regions
    plot_distance_scatter(part.distances(), part.code_distances(), axs[2])
    fig.savefig(tmp_path / "p.png")
    assert os.path.getsize(tmp_path / "p.png") > 0
    one_d = partition(tent_map_net(2), (0.0, 1.0))
    plot_partition(one_d, Figure().subplots())
    with pytest.raises(ValueError, match="values"):
        plot_partition(part, Figure().subplots(), values=np.zeros(3))
    with pytest.raises(ValueError, match="d_omega"):
        plot_distance_scatter(np.zeros((2, 2)), np.zeros((3, 3)))


def test_partition_panels(tmp_path):
    from vqgeom.paper.figures import partition_panels

    layers = random_layers(2, [4, 4])
    out = partition_panels(layers, tmp_path, BOX, name="p")
    for f in out["files"]:
        assert os.path.getsize(f) > 0
    part = partition(layers, BOX)
    assert out["n_regions"] == part.n_regions and out["n_edges"] == part.graph.number_of_edges()
    per_layer = [sum(1 for *_, a in part.graph.edges(data=True) if a["layer"] == l) for l in range(2)]
    assert out["edges_per_layer"] == per_layer
    rep = verify_lemma2(part)
    assert out["lemma2"]["less"] == rep.less and out["lemma2"]["violations"] == 0
    assert "lemma1" not in out
    one = partition_panels(random_lines(0, 4), tmp_path, BOX, name="q")
    assert one["lemma1"]["violations"] == 0
    with pytest.raises(ValueError, match="bounds"):
        partition_panels(layers, tmp_path)
