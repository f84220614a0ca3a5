"""Backend resolution (issue 2, design for what comes next): argument, then $VQGEOM_BACKEND, then the arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vqgeom
from vqgeom._backend import BACKENDS, ENV_VAR, available_backends, resolve_backend
from vqgeom.codes import Codes

CODES = Codes.from_bits(np.eye(3, 5, dtype=bool), [5])
NET = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def unavailable():
    missing = [b for b in BACKENDS if b not in available_backends()]
    if not missing:
        pytest.skip("every backend is available on this machine")
    return missing[0]


def test_available_always_includes_the_host_backends():
    avail = available_backends()
    assert {"numpy", "cpu"} <= set(avail) and set(avail) <= set(BACKENDS)
    assert vqgeom.available_backends() == avail


def test_auto_on_host_arrays_is_cpu():
    assert resolve_backend("auto", np.zeros(3)) == "cpu"
    assert resolve_backend(None, torch.zeros(3)) == "cpu"
    assert resolve_backend("AUTO") == "cpu"
    for name in ("numpy", "cpu", "Numpy"):
        assert resolve_backend(name, np.zeros(3)) == name.lower()


def test_environment_variable(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "numpy")
    assert resolve_backend("auto", np.zeros(3)) == "numpy"
    assert resolve_backend("cpu", np.zeros(3)) == "cpu"  # the argument wins
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(ValueError, match=r"\$VQGEOM_BACKEND"):
        resolve_backend("auto")


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend") as err:
        resolve_backend("gpu")
    assert "'gpu'" in str(err.value) and "cpu" in str(err.value)
    with pytest.raises(TypeError, match="backend"):
        resolve_backend(3)


def test_unavailable_backend_lists_available_ones():
    name = unavailable()
    for call in (
        lambda: resolve_backend(name),
        lambda: vqgeom.pairwise_distances(CODES, backend=name),
        lambda: vqgeom.encode(NET, np.ones((2, 2), dtype=np.float32), backend=name),
        lambda: vqgeom.vq_kernel(NET, np.ones((2, 2), dtype=np.float32), backend=name),
        lambda: vqgeom.knn(CODES, k=1, backend=name),
    ):
        with pytest.raises(ValueError, match="backend") as err:
            call()
        msg = str(err.value)
        assert repr(name) in msg and all(repr(b) in msg for b in available_backends())


def test_auto_never_raises_for_availability():
    # Whatever is installed, auto on host data works and agrees with the reference backend.
    np.testing.assert_array_equal(
        vqgeom.pairwise_distances(CODES, backend="auto"), vqgeom.pairwise_distances(CODES, backend="numpy")
    )
