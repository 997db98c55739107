"""Command-line interface: a thin dispatcher; each subcommand is ``nkigen/commands/<name>.py``.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
importing it must stay cheap (heavy imports go inside ``run``). Only the module of the command
being run is imported (all of them for ``nkigen --help``), so start-up does not pay for the
simulator or sympy unless the command needs them.
Exit codes: 0 success, 1 a spec/kernel/input problem (reported as located diagnostics),
2 usage errors (bad option, missing path, folder with no spec: :class:`UsageError`). A user
error never prints a Python traceback; neither does a bug in nkigen: an unexpected exception is
reported in one line by :func:`main` (the last-resort catch, the one place for it;
:func:`internal_error` is its wording) and exits 1, unless ``NKIGEN_DEBUG`` is set, which
re-raises it for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from nkigen import __version__, interrupts
from nkigen.diagnostics import NkigenError

# name -> module; the order is the order of `nkigen --help`.
COMMANDS: dict[str, str] = {
    "check": "nkigen.commands.check",
    "explain": "nkigen.commands.explain",
    "schema": "nkigen.commands.schema",
    "gen": "nkigen.commands.gen",
    "sim": "nkigen.commands.sim",
    "lint": "nkigen.commands.lint",
    "build": "nkigen.commands.build",
    "tune": "nkigen.commands.tune",
    "report": "nkigen.commands.report",
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
    from nkigen.diagnostics import one_line

    return one_line(f"{head} ({what}); please report it — set {DEBUG_ENV}=1 for the traceback")


class UsageError(Exception):
    """A usage error found by a command (missing path, folder with no spec): exit status 2."""


# The most worker processes ``-j`` may ask for: every job is a process holding a simulator
# (hundreds of MB); far more than any one machine's cores, far fewer than would exhaust its
# process table or memory before the first spec builds.
MAX_JOBS = 256


def jobs_arg(text: str) -> int:
    """``-j N``: 0 (all cores) or 1..:data:`MAX_JOBS`."""
    if not (text.isascii() and text.isdigit()) or len(text) > 12 or int(text) > MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be 0 (all cores) or 1..{MAX_JOBS}, "
                                         f"got {text[:40]!r}")
    return worker_count(int(text))


def worker_count(jobs: int) -> int:
    """A legal job count (0..:data:`MAX_JOBS`) as processes: 0 means every core."""
    return jobs if jobs > 0 else min(os.cpu_count() or 1, MAX_JOBS)


def executor_arg(text: str):
    """``--executor local|ray|ray://HOST:PORT`` (nkigen.library.executor)."""
    from nkigen.library.executor import parse_executor

    try:
        return parse_executor(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


EXECUTOR_HELP = ("where independent work runs: local (a pool of -j processes, the default), "
                 "ray (the cluster RAY_ADDRESS names or `ray start` started here, else a new local "
                 "Ray instance) or "
                 "ray://HOST:PORT (a Ray cluster's client address); Ray needs: pip install "
                 "'nkigen[ray]'")


def require_paths(paths: Sequence[str]) -> None:
    """Raise :class:`UsageError` for the first input path that does not exist."""
    for p in paths:
        if not os.path.lexists(p):
            raise UsageError(f"no such file or folder: {p}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _available(only: str | None = None) -> dict[str, Any]:
    """The command modules that exist (``only``: just that one, when it is a command)."""
    names = [only] if only in COMMANDS else list(COMMANDS)
    mods: dict[str, Any] = {}
    for name in names:
        modname = COMMANDS[name]
        try:
            mods[name] = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
    return mods


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    for a in argv:
        if not a.startswith("-"):
            return a if a in COMMANDS else None
        if a == "--":
            return None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``only``: import and add just that command (start-up speed)."""
    return _build(only)[0]


def _build(only: str | None) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(prog="nkigen", description="Declare NKI kernels in YAML; check, generate, "
                     "simulate and package them.")
    parser.add_argument("--version", action="version", version=f"nkigen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subs: dict[str, argparse.ArgumentParser] = {}
    for name, mod in _available(only).items():
        text = getattr(mod, "HELP", "")
        p = sub.add_parser(name, help=text, description=text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
        subs[name] = p
    return parser, subs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:   # the fastest path: no parser, no command module
        print(f"nkigen {__version__}")
        return 0
    interrupts.install()    # a Ctrl-C CPython would drop during the imports is not lost
    try:    # command modules are imported here: Ctrl-C during the imports is no traceback
        command = _command_of(argv)
        parser, subs = _build(command)
        args, extra = parser.parse_known_args(argv)
    except KeyboardInterrupt:
        print("nkigen: interrupted", file=sys.stderr)
        return 130
    if extra:   # an unknown option of a command: that command's usage, not nkigen's
        (subs.get(args.command) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except UsageError as e:
        subs[args.command].print_usage(sys.stderr)
        print(f"nkigen {args.command}: error: {e}", file=sys.stderr)
        return 2
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
        if interrupts.received():   # Ctrl-C inside an import can surface as an ImportError
            print("nkigen: interrupted", file=sys.stderr)
            return 130
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
