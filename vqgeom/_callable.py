"""Submodules that share their name with their function: ``vqgeom.encode``, ``vqgeom.mds``, ``vqgeom.knn``.

Python's import system binds the package attribute ``vqgeom.<name>`` to the submodule whenever the
submodule is imported (``from .encode import encode`` inside ``vq_kernel``, ``from vqgeom.mds import
MDSResult``, ``vqgeom.MDSResult``), replacing the lazily exported function of the same name; whether
``vqgeom.mds(codes)`` worked then depended on import order ("'module' object is not callable").
Such modules are made callable as their function, and the package exports the module itself under
that name, so ``vqgeom.mds`` is the same object whatever was imported first.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

__all__ = ["make_module_callable"]


class _CallableModule(types.ModuleType):
    """A module whose call forwards to its attribute named like the module's last component."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def make_module_callable(module_name: str) -> None:
    """Make ``sys.modules[module_name]`` callable as its function of the same (last) name.

    ``vqgeom.<name>`` is then always the module; ``inspect.signature`` reports the function's.
    """
    module = sys.modules[module_name]
    module.__class__ = _CallableModule
    module.__signature__ = inspect.signature(getattr(module, module_name.rsplit(".", 1)[-1]))
