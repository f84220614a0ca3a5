"""Dask-backed codes on a real cluster (issue 11): a LocalCluster of 2 worker processes x 1 thread.

Every lazy result is computed on the cluster and compared with the in-memory function on the same
codes (which the other test files check against vqgeom.kernels.reference): integers exactly, floats
to 1e-10 relative (the only difference is the order of float64 sums over tiles; 1e-10 leaves
five orders of magnitude above the ~1e-15 such reorderings give). The cluster starts once per
module; its workers have a 600 MB memory limit, below the N x N float64 matrix of the large test.
"""

from __future__ import annotations

import os
import resource
import sys
import zlib

import numpy as np
import pytest
import torch

import vqgeom
from vqgeom.codes import Codes
from vqgeom.kernels import reference

da = pytest.importorskip("dask.array", reason="the [distributed] extra (dask) is not installed")
distributed = pytest.importorskip("distributed", reason="the [distributed] extra (distributed) is not installed")
pytest.importorskip("zarr", reason="the [distributed] extra (zarr) is not installed")
import cloudpickle  # noqa: E402  (a dependency of distributed)
import dask  # noqa: E402

# The worker plugin below is defined here; workers cannot import this file, so ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

RTOL = 1e-10  # see the module docstring
WORKER_MEMORY = 600_000_000  # bytes per worker (a worker with torch loaded peaks near 350 MB in these tests)


def seed(name: str) -> int:
    return zlib.crc32(name.encode())


@pytest.fixture(scope="module")
def client():
    # No spilling or pausing: a worker over its limit is terminated by its nanny (at 95%), which
    # is the failure the large test must not see; pausing would only stall.
    cfg = {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": 0.95,
        "distributed.scheduler.allowed-failures": 3,
    }
    with dask.config.set(cfg):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           memory_limit=WORKER_MEMORY, dashboard_address=":0")
        c = distributed.Client(cluster)
        try:
            yield c
        finally:
            c.close()
            cluster.close()


@pytest.fixture(autouse=True)
def one_column_block_per_task(monkeypatch):
    """k-NN tasks of one column block each (the default joins blocks up to 50,000 columns,
    more than these tests have), so the merge tree is exercised; test_knn_column_groups
    checks the grouping itself."""
    from vqgeom import _dask

    monkeypatch.setattr(_dask, "KNN_TASK_COLS", 1)


def random_codes(name: str, n: int, sizes, chunk: int, p: float = 0.5) -> tuple[Codes, Codes]:
    rng = np.random.default_rng(seed(name))
    bits = rng.random((n, sum(sizes))) < p
    if n > 10:
        bits[7] = bits[3]  # duplicate rows: equal distances, so the tie rule matters
        bits[9] = bits[3]
    c = Codes.from_bits(bits, sizes)
    return c, Codes(da.from_array(c.words, chunks=(chunk, -1)), sizes)


def assert_close(got, want):
    want = np.asarray(want)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * scale)


# ------------------------------------------------------------------------------------------------

def test_codes_accept_dask_words_and_rechunk_columns():
    c, _ = random_codes("codes", 50, (40, 7, 33), 16)
    dc = Codes(da.from_array(c.words, chunks=(16, 2)), c.layer_sizes)  # a row split over 3 chunks
    assert dc.array_type == "dask" and len(dc.words.chunks[1]) == 1
    np.testing.assert_array_equal(dc.words_numpy(), c.words)
    np.testing.assert_array_equal(dc[5:20].words.compute(), c.words[5:20])
    np.testing.assert_array_equal(dc.layers([2, 0]).words.compute(), c.layers([2, 0]).words)
    both = Codes.concatenate([dc, dc[:3]])
    assert both.array_type == "dask" and both.n == 53
    with pytest.raises(TypeError, match="uint32"):
        Codes(da.zeros((4, 1), dtype=np.int64, chunks=2), (5,))
    unknown = da.from_array(c.words, chunks=(16, -1))
    unknown = unknown[unknown[:, 0] >= 0]  # a mask of unknown length: row chunks unknown
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        Codes(unknown, c.layer_sizes)


def test_pairwise_distances_tiles_equal_in_memory_and_reference(client, tmp_path):
    c, dc = random_codes("pairwise", 300, (40, 7, 33), 70)
    c2, dc2 = random_codes("pairwise-y", 130, (40, 7, 33), 50)
    K = vqgeom.pairwise_distances(dc)
    assert isinstance(K, da.Array) and K.chunks[0] == dc.words.chunks[0]
    want = reference.hamming(c.unpack(), c.unpack(), c.layer_sizes, None)
    got = K.compute()
    assert got.dtype == vqgeom.pairwise_distances(c).dtype
    np.testing.assert_array_equal(got, want)
    w = [1, 3, 2]
    np.testing.assert_array_equal(vqgeom.pairwise_distances(dc, dc2, weights=w).compute(),
                                  vqgeom.pairwise_distances(c, c2, weights=w))
    wf = [0.5, 2.25, 1.0]
    assert_close(vqgeom.pairwise_distances(dc, dc2, weights=wf).compute(), vqgeom.pairwise_distances(c, c2, weights=wf))
    np.testing.assert_array_equal(vqgeom.pairwise_distances(dc, dc2, per_layer=True).compute(),
                                  vqgeom.pairwise_distances(c, c2, per_layer=True))
    # tile by tile into Zarr: the store holds the in-memory matrix
    import zarr

    K.to_zarr(str(tmp_path / "K.zarr"))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "K.zarr"), mode="r")[...], want)


@pytest.mark.parametrize("weights", [None, [1, 3, 2], [0.5, 1.5, 1.0]])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_knn_equals_in_memory_with_ties(client, weights, exclude_self):
    c, dc = random_codes("knn", 257, (40, 7, 33), 40, p=0.9)  # p = 0.9: many equal distances
    d, i = vqgeom.knn(c, k=9, weights=weights, exclude_self=exclude_self)
    dd, ii = vqgeom.knn(dc, k=9, weights=weights, exclude_self=exclude_self)
    assert isinstance(dd, da.Array) and isinstance(ii, da.Array)
    dd, ii = dask.compute(dd, ii)
    assert dd.dtype == d.dtype and ii.dtype == np.int64
    np.testing.assert_array_equal(ii, i)  # the tie rule (smaller index first) survives the merge tree
    np.testing.assert_array_equal(dd, d)


def test_knn_cross_sets_and_k_larger_than_a_column_block(client):
    c, dc = random_codes("knn-x", 90, (20, 12), 25)
    q, dq = random_codes("knn-q", 31, (20, 12), 8)
    d, i = vqgeom.knn(q, c, k=30)  # 30 > 25 rows per column block: the merge must gather them
    dd, ii = dask.compute(*vqgeom.knn(dq, dc, k=30))
    np.testing.assert_array_equal(ii, i)
    np.testing.assert_array_equal(dd, d)
    c1, dc1 = random_codes("knn-one", 40, (20, 12), 40)  # one tile: its selection is sorted at the end
    d, i = vqgeom.knn(c1, k=3)
    dd, ii = dask.compute(*vqgeom.knn(dc1, k=3))
    np.testing.assert_array_equal(ii, i)
    np.testing.assert_array_equal(dd, d)
    with pytest.raises(ValueError, match="same array type"):
        vqgeom.knn(q, dc, k=5)  # numpy queries against dask references: wrap them with da.from_array


@pytest.mark.parametrize("task_cols", [100, 10**6])
def test_knn_column_groups(client, monkeypatch, task_cols):
    from vqgeom import _dask

    monkeypatch.setattr(_dask, "KNN_TASK_COLS", task_cols)
    c, dc = random_codes("knn-groups", 257, (40, 7, 33), 40, p=0.9)  # 7 column blocks of 40 (the last 17)
    q, dq = random_codes("knn-groups-q", 50, (40, 7, 33), 20)
    for args, kw in (((c,), {}), ((q, c), dict(k=12)), ((c,), dict(weights=[1, 3, 2], exclude_self=False))):
        d, i = vqgeom.knn(*args, **{"k": 9, **kw})
        dargs = tuple(dq if a is q else dc for a in args)
        lazy = vqgeom.knn(*dargs, **{"k": 9, **kw})
        tiles = {k for k in dict(lazy[0].__dask_graph__()) if "vqgeom-knn-tile" in str(k)}
        row_blocks = len(dargs[0].words.chunks[0])
        # 100 columns: groups of 3 blocks (120, 120, 17 columns); 10**6: one task per row block
        assert len(tiles) == row_blocks * (3 if task_cols == 100 else 1)
        dd, ii = dask.compute(*lazy)
        np.testing.assert_array_equal(ii, i)
        np.testing.assert_array_equal(dd, d)


def test_knn_and_heat_with_an_empty_row_chunk(client):
    c, _ = random_codes("knn-empty", 120, (20, 12), 120)
    dc = Codes(da.from_array(c.words, chunks=((50, 0, 70), (c.n_words,))), c.layer_sizes)  # a zero-row block
    d, i = vqgeom.knn(c, k=5)
    dd, ii = dask.compute(*vqgeom.knn(dc, k=5))
    np.testing.assert_array_equal(ii, i)
    np.testing.assert_array_equal(dd, d)
    assert_close(vqgeom.heat_matmat(dc, np.ones(c.n), 7.0).compute(), vqgeom.heat_matmat(c, np.ones(c.n), 7.0))


def test_heat_products_and_embedding(client):
    c, dc = random_codes("heat", 240, (40, 7, 33), 100)
    rng = np.random.default_rng(seed("heat-v"))
    V = rng.standard_normal((c.n, 3))
    for squared, s2 in ((False, 20.0), (True, 300.0)):
        got = vqgeom.heat_matmat(dc, V, s2, squared=squared)
        assert isinstance(got, da.Array)
        D = reference.hamming(c.unpack(), c.unpack(), c.layer_sizes, None)
        want = np.exp(-(D * D if squared else D) / s2) @ V
        assert_close(got.compute(), want)
        assert_close(got.compute(), vqgeom.heat_matmat(c, V, s2, squared=squared))
    v = da.from_array(V[:, 0], chunks=100)  # a dask vector, chunked unlike the codes
    assert_close(vqgeom.heat_matmat(dc, v, 20.0, weights=[1, 2, 0.5]).compute(),
                 vqgeom.heat_matmat(c, V[:, 0], 20.0, weights=[1, 2, 0.5]))
    # Lanczos on the client over distributed products; tight tol so both runs converge to 1e-10
    e = vqgeom.heat_embedding(c, 20.0, 3, tol=1e-13)
    ed = vqgeom.heat_embedding(dc, 20.0, 3, tol=1e-13)
    assert_close(ed.eigenvalues, e.eigenvalues)
    assert_close(ed.eigenvectors.compute(), e.eigenvectors)


def test_mds_gram_tree_equals_in_memory(client):
    c, dc = random_codes("mds", 333, (40, 7, 33), 50)
    for w in (None, [1.0, 4.0, 0.25]):
        m, md = vqgeom.mds(c, 4, weights=w), vqgeom.mds(dc, 4, weights=w)
        assert isinstance(md.eigenvectors, da.Array)
        assert_close(md.raw_eigenvalues, m.raw_eigenvalues)
        assert_close(md.eigenvectors.compute(), m.eigenvectors)
        assert_close(md.embedding.compute(), m.embedding)


def _mlp(name: str, widths):
    torch.manual_seed(seed(name))
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).double()


def test_encode_by_blocks_sends_the_model_once(client):
    net = _mlp("enc", (6, 30, 40))
    X = np.random.default_rng(seed("enc-x")).standard_normal((500, 6))
    Xd = da.from_array(X, chunks=(120, 3))
    dc = vqgeom.encode(net, Xd)
    c = vqgeom.encode(net, X)
    assert dc.array_type == "dask" and dc.layer_sizes == c.layer_sizes and dc.layer_names == c.layer_names
    graph = dict(dc.words.__dask_graph__())
    model_keys = [k for k in graph if str(k).startswith("vqgeom-model-")]
    assert len(model_keys) == 1  # one key holds the model; block tasks refer to it
    enc_tasks = [v for k, v in graph.items() if str(k).startswith("vqgeom-encode-")]
    assert len(enc_tasks) == 5 and all(model_keys[0] in getattr(t, "dependencies", ()) for t in enc_tasks)
    np.testing.assert_array_equal(dc.words.compute(), c.words)


def test_compare_with_dask_X(client):
    nets = [_mlp("cmp-a", (4, 20, 20)), _mlp("cmp-b", (4, 16, 24)), _mlp("cmp-c", (4, 30))]
    X = np.random.default_rng(seed("cmp-x")).standard_normal((260, 4))
    s2 = [1.0, 10.0, 100.0]
    want = vqgeom.compare(nets, X, s2)
    got = vqgeom.compare(nets, da.from_array(X, chunks=(70, 4)), s2)
    assert_close(got.similarity, want.similarity)
    got2 = vqgeom.compare(nets, da.from_array(X, chunks=(70, 4)), s2, squared=True, weights=[[1.0, 2.0], [1, 3], [0.5]])
    assert_close(got2.similarity, vqgeom.compare(nets, X, s2, squared=True, weights=[[1.0, 2.0], [1, 3], [0.5]]).similarity)
    # integer distances: every measure and per-network bandwidths from count arrays summed on the cluster
    Xd = da.from_array(X, chunks=(70, 4))
    for kw in (dict(measure="all", sigma2s=s2), dict(measure="all", sigma2s="per_network"),
               dict(measure=["mantel", "linear_cka"], sigma2s=s2, weights=[[1, 2], [3, 1], [2]]),
               dict(measure="rbf_cka", sigma2s=np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 50.0]]), squared=True)):
        want = vqgeom.compare(nets, X, method="histogram", **kw)
        got = vqgeom.compare(nets, Xd, **kw)
        assert got.route == "dask-histogram" and sorted(got.values) == sorted(want.values)
        for name in want.values:
            assert_close(got[name], want[name])
        np.testing.assert_array_equal(got.bandwidths, want.bandwidths)  # per-network medians: exact
    direct = vqgeom.compare(nets, X, s2, method="direct", measure="all")  # the in-memory direct route agrees too
    assert_close(vqgeom.compare(nets, Xd, s2, measure="all")["rbf_cka"], direct["rbf_cka"])
    from vqgeom import _dask

    small = _dask.ROW_HIST_BYTES
    try:  # the per-row histograms of a row block are bounded: too large a block is refused, naming X
        _dask.ROW_HIST_BYTES = 1000
        with pytest.raises(ValueError, match="^X: the CKA measures keep per-row histograms"):
            vqgeom.compare(nets, Xd, s2, measure="linear_cka")
        assert vqgeom.compare(nets, Xd, s2).route == "dask-histogram"  # heat_cosine needs no row histograms
    finally:
        _dask.ROW_HIST_BYTES = small
    # real weights have no histograms: heat_cosine with shared sigma2s only, other requests name their argument
    real = [[1.0, 2.5], [1, 3], [0.5]]
    for kw, arg in ((dict(measure="mantel"), "measure"), (dict(measure=["heat_cosine", "rbf_cka"]), "measure"),
                    (dict(sigma2s="per_network"), "sigma2s"), (dict(sigma2s=[[1.0, 2.0, 3.0]]), "sigma2s"),
                    (dict(method="histogram"), "method"), (dict(method="sym"), "method")):
        with pytest.raises(ValueError, match=f"^{arg}: "):
            vqgeom.compare(nets, Xd, **{"sigma2s": s2, "weights": real, **kw})


def test_zarr_round_trip(client, tmp_path):
    c, dc = random_codes("zarr", 203, (40, 7, 33), 64)
    c = Codes(c.words, c.layer_sizes, ("a", "b", "c"))
    dc = Codes(dc.words, dc.layer_sizes, ("a", "b", "c"))
    dc.to_zarr(str(tmp_path / "d"))
    back = Codes.from_zarr(str(tmp_path / "d"))
    assert back.array_type == "dask" and back.layer_sizes == c.layer_sizes and back.layer_names == c.layer_names
    np.testing.assert_array_equal(back.words.compute(), c.words)
    c.to_zarr(str(tmp_path / "n"), chunk_rows=50)  # numpy words
    back = Codes.from_zarr(str(tmp_path / "n"), chunks=100)
    assert back.words.chunks[0] == (100, 100, 3)
    np.testing.assert_array_equal(back.to("numpy").words, c.words)
    with pytest.raises(Exception):
        c.to_zarr(str(tmp_path / "n"))  # exists, no overwrite
    c.to_zarr(str(tmp_path / "n"), overwrite=True)
    # per-layer fields beyond the sizes travel too: one-hot groups (halved layers) of max-type units
    rng = np.random.default_rng(seed("zarr-groups"))
    bits = np.zeros((30, 11), dtype=bool)
    bits[np.arange(30), rng.integers(0, 3, 30)] = True
    bits[np.arange(30), 3 + rng.integers(0, 3, 30)] = True
    bits[:, 6:] = rng.random((30, 5)) < 0.5
    g = Codes.from_bits(bits, (6, 5), groups=(3, 1))
    g.to_zarr(str(tmp_path / "g"))
    gb = Codes.from_zarr(str(tmp_path / "g"))
    assert gb.groups == (3, 1)
    np.testing.assert_array_equal(vqgeom.pairwise_distances(gb).compute(), vqgeom.pairwise_distances(g))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="store"):
        Codes.from_zarr(str(tmp_path / "empty"))


def test_missing_extra_names_it(monkeypatch):
    c, _ = random_codes("extra", 5, (3,), 5)
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now raises ImportError
    with pytest.raises(ImportError, match=r"vqgeom\[distributed\]"):
        c.to_zarr("unused")


class KillOnce(distributed.WorkerPlugin):
    """Kills its worker's process once (across restarts), after the worker finished ``after`` k-NN tiles."""

    name = "vqgeom-test-kill-once"

    def __init__(self, marker: str, after: int):
        self.marker, self.after, self.done = marker, after, 0

    def transition(self, key, start, finish, **kwargs):
        if finish == "memory" and "vqgeom-knn-tile" in str(key):
            self.done += 1
            if self.done == self.after:
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    return  # a restarted worker: the one kill has happened
                os._exit(1)


def test_knn_survives_a_killed_worker(client, tmp_path):
    c, dc = random_codes("kill", 600, (40, 7, 33), 60)  # 10 x 10 tiles
    d, i = vqgeom.knn(c, k=6)
    marker = tmp_path / "killed"
    before = set(client.scheduler_info()["workers"])
    client.register_plugin(KillOnce(str(marker), after=6))
    try:
        dd, ii = dask.compute(*vqgeom.knn(dc, k=6))
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    assert marker.exists()  # a worker did die in the middle (after its 6th tile)
    np.testing.assert_array_equal(ii, i)
    np.testing.assert_array_equal(dd, d)
    client.wait_for_workers(2, timeout=60)
    assert set(client.scheduler_info()["workers"]) != before  # the nanny replaced it


def test_nothing_quadratic_under_a_memory_limit(client):
    """N x N float64 (or int64, knn's working type) is 968 MB, above each worker's 600 MB limit; a worker
    that went over it would be terminated (and the task fail after 3 tries). Each worker's peak RSS
    is also read back and must stay below that matrix. (N = 11,000: a worker that has loaded numba
    for the CPU popcount kernel, about 120 MB of fixed library, peaked at 700-760 MB in the full
    suite, above the 648 MB of the N = 9,000 used before.)"""
    n = 11_000
    nn_bytes = n * n * 8
    assert nn_bytes > WORKER_MEMORY
    c, dc = random_codes("memory", n, (64,), 1500)
    dd, ii = dask.compute(*vqgeom.knn(dc, dc, k=4, exclude_self=False))
    hv = vqgeom.heat_matmat(dc, np.ones(n), 16.0).compute()
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    assert len(peaks) == 2 and max(peaks.values()) < nn_bytes, peaks
    rows = np.random.default_rng(seed("memory-rows")).choice(n, 40, replace=False)
    d, i = vqgeom.knn(c[rows], c, k=4)
    np.testing.assert_array_equal(ii[rows], i)
    np.testing.assert_array_equal(dd[rows], d)
    D = vqgeom.pairwise_distances(c[rows], c).astype(np.float64)
    assert_close(hv[rows], np.exp(-D / 16.0).sum(axis=1))


# GPU workers: dask_cuda.LocalCUDACluster with backend="triton" tiles. Runs only where a CUDA GPU and
# dask-cuda are present (none on the CI machine: this test is skipped there, not counted as coverage).
@pytest.mark.gpu
def test_gpu_workers_triton_tiles(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    dask_cuda = pytest.importorskip("dask_cuda", reason="dask-cuda is not installed")
    c, dc = random_codes("gpu", 3000, (40, 7, 33), 700)
    with dask_cuda.LocalCUDACluster() as cluster, distributed.Client(cluster):
        dd, ii = dask.compute(*vqgeom.knn(dc, k=8, backend="triton"))
        K = vqgeom.pairwise_distances(dc, backend="triton").compute()
    d, i = vqgeom.knn(c, k=8)
    np.testing.assert_array_equal(ii, i)
    np.testing.assert_array_equal(dd, d)
    np.testing.assert_array_equal(K, vqgeom.pairwise_distances(c))
