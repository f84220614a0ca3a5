"""The ``vqgeom`` command line and its demo (issue 2 item 8)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from vqgeom import cli, demo


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "vqgeom.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "demo" in r.stdout


def test_demo_writes_its_figures_and_a_consistent_summary(tmp_path):
    assert demo.main(["--out", str(tmp_path), "--width", "24", "--grid", "24", "--no-progress"]) == 0
    for name in ("kernel.png", "eigenvectors.png", "embedding.png", "summary.txt"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = (tmp_path / "summary.txt").read_text()
    assert "accuracy 1.000" in summary  # two moons are separable: training reaches 100%
    assert "72 hyperplanes in 3 layers (24, 24, 24)" in summary
    eig = [float(v) for v in summary.split("(normalised): ")[1].splitlines()[0].split(", ")]
    assert eig[0] == 1.0 and all(0 <= v <= 1 for v in eig) and eig == sorted(eig, reverse=True)
    assert np.isfinite(eig).all()
