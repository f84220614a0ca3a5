"""scikit-learn interop: VQ distances (or heat-kernel affinities) to a fitted sample, as a transformer.

:class:`VQDistances` wraps a network (anything :func:`vqgeom.encode` takes). ``fit(X)`` stores the
codes of ``X``; ``transform(Z)`` returns the ``(len(Z), len(X))`` VQ distances from ``Z`` to the
fitted sample, which is exactly what scikit-learn's ``metric="precomputed"`` estimators expect::

    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from vqgeom.sklearn import VQDistances

    clf = make_pipeline(VQDistances(net), KNeighborsClassifier(n_neighbors=5, metric="precomputed"))
    clf.fit(X_train, y_train).score(X_test, y_test)

    from sklearn.manifold import TSNE, SpectralEmbedding
    TSNE(metric="precomputed", init="random").fit_transform(VQDistances(net).fit_transform(X))
    SpectralEmbedding(affinity="precomputed").fit_transform(VQDistances(net, sigma2=8.0).fit_transform(X))

scikit-learn is optional: this module imports without it, and the class is built (importing
scikit-learn) on first use; without scikit-learn that use raises an ImportError saying so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import to_numpy

__all__ = ["VQDistances"]


def _build() -> type:
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils.validation import check_is_fitted

    import vqgeom

    class VQDistances(TransformerMixin, BaseEstimator):
        """VQ distances (or heat-kernel affinities) from new points to the points seen by ``fit``.

        Parameters
        ----------
        model : torch.nn.Module, list of (A, b) pairs, or vqgeom.Hyperplanes
            The network whose VQ codes define the distance (see :func:`vqgeom.encode`).
        weights : sequence of L positive floats, optional
            Per-layer weights ``w_l`` of the VQ distance (default: all 1).
        sigma2 : float, optional
            If given, return the heat kernel ``exp(-d / sigma2)`` (``exp(-d**2 / sigma2)`` with
            ``squared=True``), i.e. affinities for ``affinity="precomputed"`` / ``kernel="precomputed"``
            estimators, instead of distances.
        squared : bool
            Heat-kernel form of Appendix A.2 (only with ``sigma2``).
        backend : str
            Compute backend of :func:`vqgeom.pairwise_distances`.
        batch_size : int, optional
            Rows per forward pass of :func:`vqgeom.encode`.

        Attributes
        ----------
        codes_ : vqgeom.Codes
            Codes of the fitted sample (``n_fit`` rows).
        n_features_in_ : int
            Features of the fitted sample (second dimension of ``X``).
        """

        def __init__(self, model: Any = None, *, weights: Any = None, sigma2: float | None = None, squared: bool = False,
                     backend: str = "auto", batch_size: int | None = None):
            self.model = model
            self.weights = weights
            self.sigma2 = sigma2
            self.squared = squared
            self.backend = backend
            self.batch_size = batch_size

        def _encode(self, X: Any) -> Any:
            if self.model is None:
                raise ValueError("model: expected a network (torch module, (A, b) layers or Hyperplanes), got None")
            return vqgeom.encode(self.model, X, batch_size=self.batch_size)

        def _finish(self, D: Any) -> np.ndarray:
            D = to_numpy(D).astype(np.float64)  # sklearn estimators want floats; integer distances stay exact
            if self.sigma2 is None:
                return D
            return np.asarray(vqgeom.heat_kernel(D, self.sigma2, squared=self.squared))

        def fit(self, X: Any, y: Any = None) -> "VQDistances":
            """Store the codes of ``X`` (array (n_fit, ...)); ``y`` is ignored."""
            self.codes_ = self._encode(X)
            self.n_features_in_ = int(np.shape(X)[1]) if np.ndim(X) >= 2 else 1
            return self

        def transform(self, X: Any) -> np.ndarray:
            """VQ distances (or affinities) from ``X`` to the fitted sample.

            Parameters
            ----------
            X : array (n, ...)

            Returns
            -------
            ndarray, shape (n, n_fit), float64
            """
            check_is_fitted(self, "codes_")
            if np.ndim(X) >= 2 and np.shape(X)[1] != self.n_features_in_:
                raise ValueError(f"X: expected {self.n_features_in_} features like the fitted sample, got {np.shape(X)[1]}")
            codes = self._encode(X)
            fitted = self.codes_
            if codes.array_type != fitted.array_type or _device(codes) != _device(fitted):
                # X of another array type or device than the fitted sample: compare where the
                # fitted codes live (the result is a numpy array either way).
                codes = codes.to("numpy") if fitted.array_type == "numpy" else codes.to(fitted.words)
            return self._finish(vqgeom.pairwise_distances(codes, fitted, weights=self.weights, backend=self.backend))

        def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
            """``fit(X)`` then the ``(n_fit, n_fit)`` VQ-Kernel of ``X`` (encoded once)."""
            self.fit(X, y)
            return self._finish(vqgeom.pairwise_distances(self.codes_, weights=self.weights, backend=self.backend))

    VQDistances.__module__ = __name__
    VQDistances.__qualname__ = "VQDistances"  # pickles as vqgeom.sklearn.VQDistances
    return VQDistances


def _device(codes: Any) -> str:
    from .distances import _device as device

    return device(codes)


def __getattr__(name: str) -> Any:
    if name == "VQDistances":
        try:
            cls = _build()
        except ImportError as exc:
            raise ImportError(
                "vqgeom.sklearn.VQDistances needs scikit-learn: pip install \"vqgeom[sklearn]\" "
                f"(or pip install scikit-learn); import failed with: {exc}"
            ) from exc
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
