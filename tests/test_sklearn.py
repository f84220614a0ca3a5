"""vqgeom.sklearn: the transformer against the reference, and with precomputed-metric estimators."""

from __future__ import annotations

import importlib
import pickle
import sys

import numpy as np
import pytest
from torch import nn

from vqgeom import models
from vqgeom.paper import data
from vqgeom.kernels import reference

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is an optional test dependency (vqgeom[test])")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.manifold import TSNE, SpectralEmbedding  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from vqgeom.sklearn import VQDistances  # noqa: E402


def ref_bits(net, X):
    lins = [m for m in net if isinstance(m, nn.Linear)]
    layers = [(l.weight.detach().double().numpy(), l.bias.detach().double().numpy(), "relu" if i < len(lins) - 1 else None)
              for i, l in enumerate(lins)]
    return reference.mlp_bits(layers, X)


@pytest.fixture(scope="module")
def moons():
    """A float64 ReLU net trained on two moons (float64: the reference's arithmetic, codes agree exactly)."""
    X, y = data.two_moons(200, noise=0.1, seed=0)
    net = models.mlp(2, 33, 2, 1, dtype="float64", seed=0)  # 33 units: crosses a 32-bit word
    models.train(net, X[:120], y[:120], "bce", lr=1e-2, threads=1, progress=False)
    return net, X[:120], y[:120], X[120:], y[120:]


def test_transform_is_the_reference_distance_to_the_fitted_sample(moons):
    net, Xtr, _, Xte, _ = moons
    t = VQDistances(net).fit(Xtr)
    bx, sizes = ref_bits(net, Xte)
    by, _ = ref_bits(net, Xtr)
    D = t.transform(Xte)
    assert D.shape == (len(Xte), len(Xtr)) and D.dtype == np.float64
    np.testing.assert_array_equal(D, reference.hamming(bx, by, sizes))
    np.testing.assert_array_equal(t.transform(Xte[:1]), reference.hamming(bx[:1], by, sizes))  # one row
    np.testing.assert_array_equal(VQDistances(net).fit_transform(Xtr), reference.hamming(by, by, sizes))


def test_weights_and_heat_kernel_forms(moons):
    net, Xtr, _, Xte, _ = moons
    bx, sizes = ref_bits(net, Xte)
    by, _ = ref_bits(net, Xtr)
    w = [0.5, 2.0]
    Dw = reference.hamming(bx, by, sizes, w)
    # real weights: float sums of at most 66 terms, exact to ~1e-13 relative
    np.testing.assert_allclose(VQDistances(net, weights=w).fit(Xtr).transform(Xte), Dw, rtol=1e-13)
    for squared in (False, True):
        H = VQDistances(net, weights=w, sigma2=8.0, squared=squared).fit(Xtr).transform(Xte)
        # exp of identical float64 inputs: the last-bit differences of the weighted sum only
        np.testing.assert_allclose(H, reference.heat_kernel(Dw, 8.0, squared), rtol=1e-12)


def test_knn_classifier_on_precomputed_vq_distances(moons):
    net, Xtr, ytr, Xte, yte = moons
    pipe = make_pipeline(VQDistances(net), KNeighborsClassifier(n_neighbors=5, metric="precomputed"))
    pipe.fit(Xtr, ytr)
    assert pipe.score(Xte, yte) > 0.9  # a converged net on two moons; the VQ geometry follows the classes
    # the neighbours' distances are the reference's smallest distances (ties may reorder indices, not values)
    knn = pipe[-1]
    dist, _ = knn.kneighbors(pipe[0].transform(Xte))
    bx, sizes = ref_bits(net, Xte)
    by, _ = ref_bits(net, Xtr)
    np.testing.assert_array_equal(dist, np.sort(reference.hamming(bx, by, sizes), axis=1)[:, :5])


def test_tsne_and_spectral_embedding_on_vq_geometry(moons):
    net, Xtr, ytr, _, _ = moons
    D = VQDistances(net).fit_transform(Xtr)
    E = TSNE(n_components=2, metric="precomputed", init="random", perplexity=15, random_state=0).fit_transform(D)
    assert E.shape == (len(Xtr), 2) and np.isfinite(E).all()
    A = VQDistances(net, sigma2=float(np.median(D))).fit_transform(Xtr)
    S = SpectralEmbedding(n_components=2, affinity="precomputed", random_state=0).fit_transform(A)
    assert S.shape == (len(Xtr), 2) and np.isfinite(S).all()
    # both embeddings keep the classes apart: leave-one-out 5-NN accuracy in the 2-D embeddings
    from vqgeom.paper.reproduce._common import euclidean_sq, loo_knn_accuracy

    assert loo_knn_accuracy(euclidean_sq(E), ytr, 5) > 0.9
    assert loo_knn_accuracy(euclidean_sq(S), ytr, 5) > 0.9


def test_sklearn_protocol_clone_params_pickle(moons):
    net, Xtr, _, Xte, _ = moons
    t = VQDistances(net, sigma2=2.0, squared=True)
    p = t.get_params()
    assert p["sigma2"] == 2.0 and p["squared"] is True and p["model"] is net
    c = clone(t)
    assert c.get_params()["sigma2"] == 2.0 and not hasattr(c, "codes_")
    fitted = t.fit(Xtr)
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.transform(Xte), fitted.transform(Xte))


def test_bad_use(moons):
    net, Xtr, _, Xte, _ = moons
    with pytest.raises(NotFittedError):
        VQDistances(net).transform(Xte)
    with pytest.raises(ValueError, match="model"):
        VQDistances().fit(Xtr)
    with pytest.raises(ValueError, match="features"):
        VQDistances(net).fit(Xtr).transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="sigma2"):
        VQDistances(net, sigma2=-1.0).fit_transform(Xtr)


def test_module_imports_without_sklearn(monkeypatch):
    import vqgeom

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn...` raise ImportError
    monkeypatch.delitem(sys.modules, "vqgeom.sklearn")
    monkeypatch.delattr(vqgeom, "sklearn", raising=False)  # restored by monkeypatch with the module above
    mod = importlib.import_module("vqgeom.sklearn")
    assert mod is not sys.modules.get("sklearn")
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        mod.VQDistances
