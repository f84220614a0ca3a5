"""The paper's apparatus (vqgeom.paper) stays apart: the library proper never imports it.

Checked twice: statically, every import statement of every library module (relative imports resolved)
against vqgeom.paper and its aliases; and at run time, importing the library's modules in a fresh
interpreter loads no vqgeom.paper module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# command-line front ends may reach the paper (they dispatch ``vqgeom reproduce`` and ``vqgeom demo``)
FRONT_ENDS = {"vqgeom.cli", "vqgeom.demo"}
PAPER = ("vqgeom.paper", "vqgeom.data", "vqgeom.reproduce")  # the package and its old names


def _modules() -> dict[str, Path]:
    """Module name -> file of the library proper: vqgeom/** and kernels/** (installed as vqgeom.kernels)."""
    out = {}
    for base, pkg in ((ROOT / "vqgeom", "vqgeom"), (ROOT / "kernels", "vqgeom.kernels")):
        for f in base.rglob("*.py"):
            parts = list(f.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([pkg, *parts])
            if name == "vqgeom.paper" or name.startswith("vqgeom.paper.") or name in FRONT_ENDS:
                continue
            out[name] = f
    return out


def imported_names(name: str, path: Path) -> list[str]:
    """Absolute names of every module (and ``module.name`` for ``from module import name``) ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return found


def _hits(names: list[str]) -> list[str]:
    return [n for n in names if any(n == p or n.startswith(p + ".") for p in PAPER)]


def test_the_library_modules_are_found():
    mods = _modules()
    for expected in ("vqgeom.codes", "vqgeom.encoding", "vqgeom.distances", "vqgeom.heat", "vqgeom.embedding",
                     "vqgeom.neighbors", "vqgeom.geometry", "vqgeom.geometry.lemmas", "vqgeom.kernels.reference"):
        assert expected in mods
    assert not any(m.startswith("vqgeom.paper") for m in mods)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_library_module_imports_the_paper(name):
    path = _modules()[name]
    assert _hits(imported_names(name, path)) == [], f"{path} imports the paper apparatus"


def test_the_static_check_sees_relative_and_absolute_paper_imports(tmp_path):
    # the checker itself must be able to fail: each spelling of an import of the paper is caught
    for src in ("from vqgeom.paper import data", "from ..paper.reproduce import fig1", "import vqgeom.paper.figures",
                "from .. import data", "from vqgeom import reproduce"):
        f = tmp_path / "mod.py"
        f.write_text(src + "\n")
        assert _hits(imported_names("vqgeom.geometry.mod", f)), src


def test_importing_the_library_loads_no_paper_module():
    code = (
        "import sys, vqgeom, vqgeom.codes, vqgeom.encoding, vqgeom.distances, vqgeom.heat, vqgeom.similarity, "
        "vqgeom.embedding, vqgeom.neighbors, vqgeom.spectral, vqgeom.models, vqgeom.geometry, vqgeom.geometry.plot, "
        "vqgeom.kernels.reference, vqgeom.kernels.cpu\n"
        "print(sorted(m for m in sys.modules if m.startswith('vqgeom.paper')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
