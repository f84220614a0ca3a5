"""vqgeom: the VQ-Kernel geometry of ReLU-family networks.

A network's *VQ code* of an input is one bit per activation hyperplane (set iff the
pre-activation is >= 0); the VQ pseudodistance counts, layer by layer, the hyperplanes
on which two inputs disagree. Quick start::

    import torch, vqgeom
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 1))
    X = torch.rand(500, 2) * 2 - 1
    codes = vqgeom.encode(net, X)             # Codes: 2 layers of 64 units in int32 words (torch input)
    K = vqgeom.pairwise_distances(codes)      # (500, 500) VQ-Kernel, exact integers
    H = vqgeom.heat_kernel(K, sigma2=8.0)     # exp(-K / sigma2)
    emb = vqgeom.mds(codes, 3).embedding      # MDS without the N x N matrix

Submodules load on first use: importing vqgeom loads neither triton, cupy nor shapely.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Codes": "vqgeom.codes",
    "encode": "vqgeom.encoding",
    "Hyperplanes": "vqgeom.encoding",
    "EncodingError": "vqgeom.encoding",
    "Maxout": "vqgeom.models",
    "pairwise_distances": "vqgeom.distances",
    "vq_kernel": "vqgeom.distances",
    "heat_kernel": "vqgeom.heat",
    "heat_matmat": "vqgeom.heat",
    "kernel_cosine": "vqgeom.heat",
    "compare": "vqgeom.heat",
    "Comparison": "vqgeom.heat",
    "joint_histogram": "vqgeom.similarity",
    "DistanceHistograms": "vqgeom.similarity",
    "median_sigma2": "vqgeom.similarity",
    "mds": "vqgeom.embedding",
    "MDSResult": "vqgeom.embedding",
    "knn": "vqgeom.neighbors",
    "heat_embedding": "vqgeom.spectral",
    "HeatEmbedding": "vqgeom.spectral",
    "available_backends": "vqgeom._backend",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

# The paper's apparatus lives in vqgeom.paper; its modules keep their old names as attributes
# (``from vqgeom import data`` still works), resolved only when asked for.
_MOVED = {"data": "vqgeom.paper.data", "reproduce": "vqgeom.paper.reproduce"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        # No submodule shares a name with an exported function: importing a submodule binds
        # it as a package attribute, which would shadow the function.
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'vqgeom' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
