"""The ``vqgeom`` command line: ``vqgeom demo | lemmas | reproduce ...``.

Each subcommand lives in its own module exposing ``main(argv) -> int``; they are
imported only when asked for, so ``vqgeom --help`` stays fast.
"""

from __future__ import annotations

import importlib
import re
import sys

COMMANDS = {
    "demo": ("vqgeom.demo", "train a small ReLU MLP on two moons and draw its VQ-Kernel"),
    "lemmas": ("vqgeom.paper.campaign", "randomised check of Lemma 1 (d = d_Omega) and Lemma 2 (d <= d_Omega)"),
    "reproduce": ("vqgeom.paper.reproduce", "reproduce the paper: fig1|fig2|fig3|fig4|fig5|all"),
}


def _usage() -> str:
    lines = ["usage: vqgeom <command> [options]", "       vqgeom --version | --help", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this help and exit", "  --version   print the vqgeom version and exit",
              "", "Run 'vqgeom <command> --help' for a command's options."]
    return "\n".join(lines)


def plain(text: str) -> str:
    """Docstring text for a terminal: RST markup (``code``, *emphasis*, :role:`x`) removed."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # A bare command is a mistake (nothing to do): the help, on stderr, and a non-zero status.
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"vqgeom {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vqgeom: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
