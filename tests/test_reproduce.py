"""vqgeom reproduce: every target at reduced size (--small), its files, and its numbers against the reference.

One module-scoped run of ``vqgeom reproduce all --small`` (about 20 s on 2 cores) feeds the checks;
the saved checkpoints let each figure's numbers be recomputed with ``vqgeom.kernels.reference``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from vqgeom import models
from vqgeom.paper import data, reproduce
from vqgeom.kernels import reference
from vqgeom.paper.reproduce import _common, fig1, fig2, mnist

MNIST_DIR = Path(os.environ.get("VQGEOM_MNIST") or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
TARGETS = ("fig1", "fig2", "fig3", "fig4", "fig5")


def _synthetic_mnist(folder: Path, n: int = 1000) -> dict[str, str]:
    """MNIST-shaped IDX files (random digits) and their checksums, for machines without the real ones."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    sums = {}
    for name, arr, code in (("t10k-images-idx3-ubyte.gz", images, 3), ("t10k-labels-idx1-ubyte.gz", labels, 1)):
        raw = struct.pack(">BBBB", 0, 0, 8, code) + struct.pack(f">{code}I", *arr.shape) + arr.tobytes()
        (folder / name).write_bytes(gzip.compress(raw))
        sums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    return sums


@pytest.fixture(scope="module")
def run_all(tmp_path_factory):
    """``vqgeom reproduce all --small`` once; the shared MNIST files if present, else synthetic ones."""
    out = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as mp:
        folder = MNIST_DIR
        if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
            folder = tmp_path_factory.mktemp("mnist")
            sums = _synthetic_mnist(folder)
            mp.setattr(data, "MNIST_FILES", {"test": tuple((k, v) for k, v in sums.items())})
        rc = reproduce.main(["all", "--small", "--out", str(out), "--mnist", str(folder), "--no-progress"])
    assert rc == 0
    return out, folder


def ref_layers(net: nn.Module) -> list[tuple]:
    """``(A, b, act)`` of an :func:`vqgeom.models.mlp` ReLU network for the reference."""
    lins = [m for m in net if isinstance(m, nn.Linear)]
    return [(l.weight.detach().double().numpy(), l.bias.detach().double().numpy(), "relu" if i < len(lins) - 1 else None)
            for i, l in enumerate(lins)]


def ref_kernel(net: nn.Module, X: np.ndarray) -> np.ndarray:
    # float64 reference on a float32 network: a code could differ only for a pre-activation within
    # float32 rounding (~1e-7) of 0, which the fixed seeds here do not produce
    bits, sizes = reference.mlp_bits(ref_layers(net), X.astype(np.float32).astype(np.float64))
    return reference.hamming(bits, bits, sizes)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- files of every target
@pytest.mark.parametrize("target", TARGETS)
def test_every_target_writes_png_pdf_and_numbers(run_all, target):
    out, _ = run_all
    d = out / target
    png, pdf = d / f"{target}.png", d / f"{target}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert list(d.glob("*.csv")), f"{target}: no CSV written"
    doc = json.loads((d / f"{target}.json").read_text())
    assert doc.get("small", True) is True or target == "fig5"


def test_summary_has_the_time_of_every_figure(run_all):
    out, _ = run_all
    s = json.loads((out / "summary.json").read_text())
    assert set(s["seconds"]) == set(TARGETS) and s["small"] is True
    assert s["total_seconds"] >= sum(s["seconds"].values()) * 0.99


# ----------------------------------------------------------------------------- fig1
def test_fig1_kernel_and_eigenvectors_match_the_reference(run_all):
    out, _ = run_all
    s = fig1.settings(True)
    X, y = data.two_moons(s.n, s.noise, s.data_seed)
    net, meta = models.load_checkpoint(out / "fig1" / "model_original_seed0.pt")
    assert meta["accuracy"] == models.accuracy(net, X, y)
    order = _common.order_by_label(y)
    K = ref_kernel(net, X)
    saved = np.loadtxt(out / "fig1" / "fig1_kernel_train_original.csv", delimiter=",")
    np.testing.assert_array_equal(saved, K[np.ix_(order, order)])

    P, _ = data.disc_grid(s.grid)
    rows = np.loadtxt(out / "fig1" / "fig1_grid.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(rows[:, :2], P, atol=1e-8)  # CSV keeps 8 significant digits
    _, vecs = reference.mds_dense(ref_kernel(net, P), 3)
    for k in range(3):
        # same eigenvector up to sign; 1e-6 covers the CSV's 8 digits and eigensolver round-off
        assert abs(abs(np.dot(vecs[:, k], rows[:, 2 + k]) / np.linalg.norm(rows[:, 2 + k])) - 1) < 1e-6


def test_fig1_claims_are_consistent(run_all):
    out, _ = run_all
    doc = json.loads((out / "fig1" / "fig1.json").read_text())
    c = doc["claims"]
    s = fig1.settings(True)
    assert len(c["kernel_corr"]["grid_rotated_corresponding"]) == s.seeds
    assert len(c["kernel_corr"]["grid_same_data_other_seed"]) == s.seeds * (s.seeds - 1) // 2
    for group in ("kernel_corr", "procrustes_3d", "knn_loo_accuracy"):
        for v in c[group].values():
            assert all(-1 <= x <= 1 for x in v)
    # the Euclidean kernel of 2-D points has exactly two non-zero MDS eigenvalues
    lam = np.asarray(c["spectrum"]["euclidean_train"]["eigenvalues"])
    assert lam[1] > 1e-3 and np.all(lam[2:] < 1e-9)
    assert c["spectrum"]["euclidean_train"]["k90"] <= 2
    assert [t["stop_reason"] for t in doc["training"]] and all(t["epochs"] >= 1 for t in doc["training"])


def test_fig1_untrained_baseline_matches_the_reference(run_all):
    out, _ = run_all
    s = fig1.settings(True)
    doc = json.loads((out / "fig1" / "fig1.json").read_text())
    P, _ = data.disc_grid(s.grid)
    net = models.mlp(2, s.width, s.depth, 1, seed=0)  # the common initial network of seed 0
    K, KR = ref_kernel(net, P), ref_kernel(net, data.rotate(P, s.angle))
    iu = np.triu_indices(len(P), 1)
    expect = np.corrcoef(K[iu].astype(float), KR[iu].astype(float))[0, 1]
    # streamed float64 moments against numpy's two-pass correlation: 1e-10
    assert abs(doc["claims"]["kernel_corr"]["grid_untrained_rotated_inputs"][0] - expect) < 1e-10
    assert len(doc["claims"]["kernel_corr"]["grid_untrained_other_seed"]) == s.seeds - 1


# ----------------------------------------------------------------------------- fig2
def test_fig2_held_out_measures_match_the_reference(run_all):
    out, _ = run_all
    s = fig2.settings(True)
    doc = json.loads((out / "fig2" / "fig2.json").read_text())
    h = doc["claims"]["held_out_kernels"]
    assert set(h) == {"paper", "generalising"}
    Xt, yt = data.high_dim_moons(s.n_test, s.noise, s.data_seed + 1, dim=s.dim, scale=s.gen_scale)
    net, _ = models.load_checkpoint(out / "fig2" / "model_generalising_seed0.pt")
    assert h["generalising"]["held_out_accuracy"][0] == models.accuracy(net, Xt, yt)
    Xk, yk = Xt[: s.n_kernel], yt[: s.n_kernel]
    D = ref_kernel(net, Xk).astype(float)
    U = Xk[:, :2] / s.gen_scale
    d_u = np.sqrt(((U[:, None] - U[None]) ** 2).sum(-1))
    same = (yk[:, None] == yk[None, :]) & ~np.eye(len(yk), dtype=bool)
    expect = np.corrcoef(D[same], d_u[same])[0, 1]
    assert abs(h["generalising"]["vq_corr_signal_within_class"][0] - expect) < 1e-10  # float64 round-off
    assert h["generalising"]["vq_knn_full"][0] == _common.loo_knn_accuracy(D, yk, s.knn_k)


def test_fig2_distances_and_data_match_the_reference(run_all):
    out, _ = run_all
    s = fig2.settings(True)
    X, y = data.high_dim_moons(s.n, s.noise, s.data_seed, dim=s.dim, scale=s.scale)
    Xr = data.rotate(X, s.angle)
    order = _common.order_by_label(y)
    for tag, XX in (("original", X), ("rotated", Xr)):
        net, _ = models.load_checkpoint(out / "fig2" / f"model_{tag}_seed0.pt")
        saved = np.loadtxt(out / "fig2" / f"fig2_distances_vq_{tag}.csv", delimiter=",")
        np.testing.assert_array_equal(saved, ref_kernel(net, XX)[np.ix_(order, order)])
    eu = np.loadtxt(out / "fig2" / "fig2_distances_euclidean.csv", delimiter=",")
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(eu, D[np.ix_(order, order)], atol=1e-6)  # written with 6 decimals
    emb = read_rows(out / "fig2" / "fig2_embeddings.csv")
    np.testing.assert_allclose([[float(r["u1"]), float(r["u2"])] for r in emb], X[:, :2] / s.scale, rtol=1e-7)
    doc = json.loads((out / "fig2" / "fig2.json").read_text())
    assert doc["claims"]["knn_loo_accuracy"]["signal_plane_oracle"][0] == _common.loo_knn_accuracy(
        ((X[:, None, :2] - X[None, :, :2]) ** 2).sum(-1), y, s.knn_k)


# ----------------------------------------------------------------------------- fig3 / fig4
def _mnist_test_set(folder: Path, s) -> tuple[np.ndarray, np.ndarray]:
    images, labels = data.load_mnist(folder, verify=False)
    X = images.reshape(len(images), -1).astype(np.float32) / 255.0
    _, _, Xte, yte = data.split(X, labels, s.n_train, s.n_test, seed=s.split_seed)
    return Xte, yte


def _cka(A: np.ndarray, B: np.ndarray) -> float:
    """Dense CKA <HAH, HBH> / (||HAH|| ||HBH||), H the centring matrix (the textbook formula)."""
    n = A.shape[0]
    H = np.eye(n) - 1.0 / n
    a, b = H @ A @ H, H @ B @ H
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_fig3_tables_match_dense_reference_formulas(run_all):
    out, folder = run_all
    s = mnist.settings(True)
    Xte, _ = _mnist_test_set(folder, s)
    cache = out / "mnist-models"
    K = {}
    for name in mnist.NAMES:
        kind, depth = name[:-3], name[-2]
        net, _ = models.load_checkpoint(cache / f"{kind.lower()}{depth}_rep0.pt")
        K[name] = ref_kernel(net, Xte).astype(np.float64)
    doc = json.loads((out / "fig3" / "fig3.json").read_text())
    np.testing.assert_array_equal(doc["paper"], mnist.PAPER_FIG3)
    tables = doc["results"]["tables"]
    iu = np.triu_indices(len(Xte), 1)
    N = mnist.NAMES
    table = lambda f: np.array([[f(a, b) for b in N] for a in N])  # noqa: E731
    cos = lambda A, B: reference.cosine_similarity(A, B)  # noqa: E731
    md = doc["results"]["scale"]["mean_distance"][0]
    np.testing.assert_allclose(md, [K[n][iu].mean() for n in N], rtol=1e-12)
    expect = {}
    for form, squared in (("squared", True), ("plain", False)):
        pooled = np.concatenate([K[n][iu] ** (2 if squared else 1) for n in N])
        assert tables[f"{form}_shared_median"]["sigma2"][0] == np.median(pooled)
        H = {n: reference.heat_kernel(K[n], float(np.median(pooled)), squared) for n in N}
        expect[f"{form}_shared_median"] = table(lambda a, b: cos(H[a], H[b]))
        own = {n: float(np.median(K[n][iu] ** (2 if squared else 1))) for n in N}
        np.testing.assert_array_equal(tables[f"{form}_per_network"]["sigma2"][0], [own[n] for n in N])
        Ho = {n: reference.heat_kernel(K[n], own[n], squared) for n in N}
        expect[f"{form}_per_network"] = table(lambda a, b: cos(Ho[a], Ho[b]))
        if squared:
            expect["rbf_cka"] = table(lambda a, b: _cka(Ho[a], Ho[b]))
    expect["linear_cka"] = table(lambda a, b: _cka(-K[a], -K[b]))
    expect["mantel"] = table(lambda a, b: np.corrcoef(K[a][iu], K[b][iu])[0, 1])
    if "squared_band" in tables:
        s2 = tables["squared_band"]["sigma2"][0]
        Hb = {n: reference.heat_kernel(K[n], s2, True) for n in N}
        expect["squared_band"] = table(lambda a, b: cos(Hb[a], Hb[b]))
    for key, M in expect.items():
        # histogram sums (integer counts times float64 kernel values) against dense float64 sums; the CKA
        # centring cancels terms of size ~N^2 against a result of size ~1: 1e-9 absolute
        np.testing.assert_allclose(np.asarray(tables[key]["per_replicate"][0]), M, rtol=1e-9, atol=1e-9, err_msg=key)
    text = (out / "fig3" / "fig3.txt").read_text()
    assert "(0.55)" in text and "(0.87)" in text  # printed beside the paper's values


def test_fig3_orderings_count_the_paper_readings():
    M = np.array([[1, 0.55, 0.28, 0.38], [0.55, 1, 0.28, 0.40], [0.28, 0.28, 1, 0.87], [0.38, 0.40, 0.87, 1]])
    o = mnist.orderings(M)
    assert o["paper_order"] and o["trained_above_trained_init"] and o["init_above_trained"]
    assert not o["trained_pair_largest"]
    M2 = M.copy()
    M2[0, 1] = M2[1, 0] = 0.39  # below Trained(6)-Init(6) = 0.40
    assert not mnist.orderings(M2)["trained_above_trained_init"] and not mnist.orderings(M2)["paper_order"]


def test_fig4_sweep_rows_and_limits(run_all):
    out, _ = run_all
    s = mnist.settings(True)
    rows = read_rows(out / "fig4" / "fig4.csv")
    assert len(rows) == 2 * s.seeds * len(s.sigma2_sweep) * 6
    sims = np.array([float(r["similarity"]) for r in rows])
    assert np.all((sims > 0) & (sims <= 1 + 1e-12))
    # fig4 reused fig3's networks (trained once) and histograms (one pass): one checkpoint per network
    assert len(list((out / "mnist-models").glob("*.pt"))) == 2 * len(s.depths) * s.seeds
    assert len(list((out / "mnist-models").glob("histograms_rep*.npz"))) == s.seeds
    doc = json.loads((out / "fig3" / "fig3.json").read_text())
    f4 = json.loads((out / "fig4" / "fig4.json").read_text())
    assert f4["training"] == doc["training"]
    assert "joint histograms of the VQ distances (1 replicate(s), one pass each)" in f4["seconds"]
    mean = np.asarray(f4["mean"]["squared"])
    assert np.all(mean[-1][np.triu_indices(4, 1)] > 0.99)  # every heat kernel tends to all-ones at large sigma^2


def test_mnist_missing_files_fail_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    monkeypatch.setattr(data, "MNIST_MIRRORS", ("file:///nonexistent-mirror/",))  # no network
    with pytest.raises(FileNotFoundError, match="VQGEOM_MNIST"):
        reproduce.run("fig3", tmp_path / "out", small=True, progress=False, mnist=str(tmp_path))


# ----------------------------------------------------------------------------- fig5
def test_fig5_lemma_checks(run_all):
    out, _ = run_all
    doc = json.loads((out / "fig5" / "fig5_reproduce.json").read_text())
    g = doc["geometry"]
    assert doc["L"] == 3 and g["n_regions_deep"] == g["n_regions_shallow"] == 2**3
    assert all(g[k] for k in ("identical_partition", "shallow_equals_d_omega", "deep_le_d_omega", "deep_le_L"))


def test_fig5_lemma2_on_slices_of_the_trained_networks(run_all):
    out, _ = run_all
    rows = json.loads((out / "fig5" / "fig5_reproduce.json").read_text())["trained_slices"]
    # every target ran before fig5 into the same folder: every checkpoint is there
    assert rows and all(r["available"] for r in rows)
    assert {r["network"].split()[0] for r in rows} == {"fig1", "fig2", "MNIST"}
    for r in rows:
        assert r["pairs"] == r["regions"] * (r["regions"] - 1) // 2 == r["equal"] + r["less"] + r["greater"]
        assert r["greater"] == 0 and r["holds"]  # Lemma 2: d <= d_Omega on every exact partition
    assert sum(r["less"] for r in rows) > 0  # the deep networks have shortcuts somewhere


# ----------------------------------------------------------------------------- CLI and helpers
def test_cli_rejects_unknown_targets(capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["fig9"])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="target"):
        reproduce.run("fig9")


@pytest.mark.parametrize("n, block", [(1, 4), (37, 8), (37, 1024)])
def test_offdiag_corr_equals_pearson_over_the_upper_triangle(n, block):
    rng = np.random.default_rng(n)
    A = rng.integers(0, 50, size=(n, n)).astype(np.int16)
    B = (A + rng.integers(0, 9, size=(n, n))).astype(np.int16)
    A, B = A + A.T, B + B.T
    if n == 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            assert np.isnan(_common.offdiag_corr(A, B, block))  # no pairs: undefined
        return
    iu = np.triu_indices(n, 1)
    expect = np.corrcoef(A[iu].astype(float), B[iu].astype(float))[0, 1]
    assert abs(_common.offdiag_corr(A, B, block) - expect) < 1e-12  # float64 sums of small integers
    with pytest.raises(ValueError, match="B"):
        _common.offdiag_corr(A, B[:-1])


def test_loo_knn_accuracy_against_a_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    hits = 0
    for i in range(40):
        others = [j for j in range(40) if j != i]
        nn_ = sorted(others, key=lambda j: (D[i, j], j))[:3]
        votes = np.bincount(y[nn_], minlength=2)
        hits += int(np.argmax(votes) == y[i])
    assert _common.loo_knn_accuracy(D, y, 3) == hits / 40


def test_procrustes_ignores_rotation_scale_and_shift():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(30, 3))
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert _common.procrustes(E, 2.5 * E @ Q + 1.0) < 1e-12
    assert _common.procrustes(E, rng.normal(size=(30, 3))) > 0.5


def test_spectrum_of_planar_points_has_rank_two():
    X = np.random.default_rng(2).normal(size=(25, 2))
    sp = _common.spectrum(_common.euclidean_sq(X))
    lam = np.asarray(sp["eigenvalues"])
    assert lam[0] == 1 and lam.shape == (25,)
    assert np.all(lam[2:] < 1e-12) and sp["k90"] <= 2 and 1 <= sp["effective_rank"] <= 2
