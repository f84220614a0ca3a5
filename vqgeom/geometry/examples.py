"""The 1-D networks of Appendix B.2 (see ERRATA.md, note 1).

* :func:`printed_map_net`: ``f(z) = 2z - relu(2z - 1)`` as printed, i.e. ``min(2z, 1)`` on
  [0, 1]; ``L`` layers give ``L + 1`` pieces.
* :func:`tent_map_net`: the tent map ``f(z) = 2z - 2 relu(2z - 1)``; ``L`` layers give
  ``2**L`` pieces on [0, 1], one *switching* hyperplane per layer.
* :func:`shallow_tent_net`: one hidden layer of ``2**L - 1`` ReLU units with the same
  partition of [0, 1] as ``tent_map_net(L)``.

The skip connection ``2z`` is written as a ReLU unit ``relu(z)``, which equals ``z`` on
[0, 1] (the maps keep [0, 1] invariant). That unit's pre-activation is ``>= 0`` on the
whole interval, so its bit never changes there and adds nothing to a VQ distance; each
deep layer therefore has 2 units but a single hyperplane that cuts the domain.
"""

from __future__ import annotations

import numpy as np

__all__ = ["printed_map_net", "tent_map_net", "shallow_tent_net", "tent_breakpoints"]


def _check_depth(L: int) -> int:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L: expected a positive integer number of layers, got {L!r}")
    return int(L)


def _chain(first_units: np.ndarray, first_bias: np.ndarray, out_w: np.ndarray, L: int):
    """nn.Sequential (float64): L layers ``relu(u * z + bias)``, each fed ``out_w . previous``."""
    import torch
    import torch.nn as nn

    mods = []
    for l in range(L):
        lin = nn.Linear(1 if l == 0 else 2, 2, dtype=torch.float64)
        W = first_units[:, None] if l == 0 else first_units[:, None] @ out_w[None, :]
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(first_bias))
        mods += [lin, nn.ReLU()]
    head = nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(out_w[None, :]))
        head.bias.zero_()
    return nn.Sequential(*mods, head)


def printed_map_net(L: int):
    """``L`` compositions of ``f(z) = 2z - relu(2z - 1)``: a float64 ``nn.Sequential`` (1 -> 1).

    Layer ``l`` has the units ``relu(z)`` and ``relu(2z - 1)``; the output layer and the next
    layer read ``2 relu(z) - relu(2z - 1)``. On [0, 1] it has ``L + 1`` linear pieces.
    """
    L = _check_depth(L)
    return _chain(np.array([1.0, 2.0]), np.array([0.0, -1.0]), np.array([2.0, -1.0]), L)


def tent_map_net(L: int):
    """``L`` compositions of the tent map ``f(z) = 2z - 2 relu(2z - 1)`` (float64 ``nn.Sequential``, 1 -> 1).

    On [0, 1] the partition is the ``2**L`` intervals ``[k / 2**L, (k + 1) / 2**L]``.
    """
    L = _check_depth(L)
    return _chain(np.array([1.0, 2.0]), np.array([0.0, -1.0]), np.array([2.0, -2.0]), L)


def tent_breakpoints(L: int) -> np.ndarray:
    """The interior breakpoints ``k / 2**L``, ``k = 1 .. 2**L - 1`` (float64, exact)."""
    L = _check_depth(L)
    return np.arange(1, 2**L, dtype=np.float64) / 2**L


def shallow_tent_net(L: int):
    """One hidden layer of ``2**L - 1`` ReLU units ``relu(x - k / 2**L)`` (float64 ``nn.Sequential``).

    Same partition of [0, 1] as :func:`tent_map_net` ``(L)``; by Lemma 1 its VQ distance
    equals the hop distance d_Omega.
    """
    import torch
    import torch.nn as nn

    bp = tent_breakpoints(L)
    lin = nn.Linear(1, bp.size, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.copy_(torch.from_numpy(-bp))
    return nn.Sequential(lin, nn.ReLU())
