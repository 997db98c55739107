"""Command-line interface: a thin dispatcher; each subcommand is ``nkigen/commands/<name>.py``.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Exit codes: 0 success, 1 a spec/kernel/input problem (reported as located diagnostics),
2 usage errors. A user error never prints a Python traceback; neither does a bug in nkigen: an
unexpected exception is reported in one line by :func:`main` (the last-resort catch, the one
place for it; :func:`internal_error` is its wording) and exits 1, unless ``NKIGEN_DEBUG`` is set,
which re-raises it for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
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


DEBUG_ENV = "NKIGEN_DEBUG"


def debug() -> bool:
    """True when ``NKIGEN_DEBUG`` asks for tracebacks of internal errors."""
    return bool(os.environ.get(DEBUG_ENV))


def internal_error(e: BaseException, where: str | None = None) -> str:
    """The one-line report of an unexpected exception (a bug in nkigen, not the user's).

    ``where``: the spec being processed, if known; it then starts the line, as in a diagnostic.
    """
    what = " ".join(f"{type(e).__name__}: {e}".split())
    if len(what) > 300:
        what = what[:297] + "..."
    head = f"{where}: internal error in nkigen" if where else "nkigen: internal error"
    return f"{head} ({what}); please report it — set {DEBUG_ENV}=1 for the traceback"


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
    try:    # command modules are imported here: Ctrl-C during the imports is no traceback
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("nkigen: interrupted", file=sys.stderr)
        return 130
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
    except RecursionError as e:
        if debug():
            raise
        spec = _spec_of(args)
        if spec is not None:
            print(f"{spec}: spec is too deeply nested to {args.command}", file=sys.stderr)
        else:
            print(internal_error(e), file=sys.stderr)
        return 1
    except Exception as e:  # last resort: a bug in nkigen, never a traceback (but NKIGEN_DEBUG)
        if debug():
            raise
        print(internal_error(e, _spec_of(args)), file=sys.stderr)
        return 1


def _spec_of(args: argparse.Namespace) -> str | None:
    """The one spec file a command was working on, when it takes exactly one."""
    spec = getattr(args, "spec", None)
    return spec if isinstance(spec, str) else None


if __name__ == "__main__":
    sys.exit(main())
