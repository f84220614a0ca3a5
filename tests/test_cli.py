"""The ``vqgeom`` command line and its demo (issue 2 item 8)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

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


def test_bare_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "usage: vqgeom <command>" in cap.err
    for name in cli.COMMANDS:
        assert name in cap.err
    r = subprocess.run([sys.executable, "-m", "vqgeom.cli"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "usage:" in r.stderr


def test_version(capsys):
    import vqgeom

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vqgeom {vqgeom.__version__}"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_subcommand_help_is_plain_text_and_explains_every_option(command, capsys):
    import importlib

    module = importlib.import_module(cli.COMMANDS[command][0])
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and "====" not in out, out  # no RST markup
    # every option line of argparse's table carries a description (on its line or the next one)
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("options:"))
    for i in range(start + 1, len(lines)):
        l = lines[i]
        if l.lstrip().startswith("-"):
            text = l.strip().split("  ", 1)
            described = len(text) == 2 and text[1].strip()
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            assert described or (nxt.startswith(" " * 10) and nxt.strip()), f"{command}: no help for {l.strip()!r}"


def test_plain_removes_rst_markup():
    assert cli.plain("``vqgeom demo``: *expected* :func:`vqgeom.mds` a*b 2 * 3") == "vqgeom demo: expected vqgeom.mds a*b 2 * 3"


def test_training_bar_ends_at_the_epochs_that_ran(capsys):
    from vqgeom import models
    from vqgeom.paper import data

    X, y = data.two_moons(60, seed=0)
    net = models.mlp(2, 16, 2, 1, seed=0)
    r = models.train(net, X, y, "bce", lr=1e-2, seed=0, threads=1, progress=True, max_epochs=2000, desc="moons")
    assert r.stop_reason == "converged" and r.epochs < 2000  # the premise: early stop
    frames = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [f for f in frames if f.strip()][-1]
    assert f"moons (converged): 100%" in last and f"{r.epochs}/{r.epochs}" in last, last
