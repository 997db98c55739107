"""Command-line interface: a thin dispatcher; each subcommand is ``nkigen/commands/<name>.py``.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Exit codes: 0 success, 1 a spec/kernel/input problem (reported as located diagnostics),
2 usage errors. A user error never prints a Python traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from nkigen import __version__
from nkigen.diagnostics import NkigenError

# name -> module; the order is the order of `nkigen --help`.
COMMANDS: dict[str, str] = {
    "check": "nkigen.commands.check",
    "explain": "nkigen.commands.explain",
    "schema": "nkigen.commands.schema",
    "gen": "nkigen.commands.gen",
    "sim": "nkigen.commands.sim",
    "build": "nkigen.commands.build",
    "tune": "nkigen.commands.tune",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _available() -> dict[str, Any]:
    mods: dict[str, Any] = {}
    for name, modname in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nkigen", description="Declare NKI kernels in YAML; check, generate, "
                     "simulate and package them.")
    parser.add_argument("--version", action="version", version=f"nkigen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, mod in _available().items():
        text = getattr(mod, "HELP", "")
        p = sub.add_parser(name, help=text, description=text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except NkigenError as e:
        for d in e.diagnostics:
            print(str(d), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nkigen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
