"""`nkigen gen`: print or write the generated NKI kernel of one spec.

Stage: CLI (spec file -> kernel source on stdout or in a file, written atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

from nkigen.cli import require_paths
from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.hw import TARGETS

HELP = "generate the NKI kernel of a spec (stdout or -o FILE)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the kernel spec (YAML)")
    p.add_argument("-o", "--output", help="write the kernel here (atomically) instead of stdout")
    p.add_argument("--target", choices=sorted(TARGETS), default=None,
                   help="NeuronCore generation (default: the spec's target, else trn2)")
    p.add_argument("--dialect", choices=("nki", "neuronxcc"), default="nki",
                   help="NKI API to emit (default: nki)")


def _refuse(path: Path, rule: str, fix: str, got: str | None = None) -> NkigenError:
    return NkigenError(Diagnostic(Loc(str(path)), "-o/--output", rule, got=got, fix=fix))


def check_output(path: Path, spec: str) -> None:
    """Refuse an output that is a folder or the spec itself (it would be overwritten)."""
    # os.path tests: a Path method raises on a name the OS refuses (ENAMETOOLONG, fuzz10)
    if os.path.isdir(path):
        raise _refuse(path, "is a folder", "pass a file name, e.g. " + str(path / "kernel.py"))
    with contextlib.suppress(OSError):
        if os.path.realpath(path) == os.path.realpath(spec) or os.path.samefile(path, spec):
            raise _refuse(path, "is the spec file itself (it would be overwritten with the "
                          "kernel)", "pass another file name, e.g. kernel.py")


def write_atomic(path: Path, text: str, what: str = "the kernel") -> None:
    """Write ``text`` to ``path``: a regular file atomically (temporary file + rename, nothing
    left behind on failure); an existing non-regular file (a device such as /dev/null, a FIFO)
    in place. Any OS error is a NkigenError naming the path."""
    try:
        if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # (the temporary name is cut: the file's own name may be as long as the OS allows,
        # NAME_MAX 255 on Linux, and the temporary one adds a dot and a random tail)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp",
                                   dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.chmod(tmp, _mode(path))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        where = e.filename if isinstance(e.filename, str) else str(path)
        blocker = next((a for a in path.parents if os.path.exists(a) and not os.path.isdir(a)),
                       None)
        if blocker is not None:
            raise _refuse(path, "cannot create its folder", got=f"{blocker} is a file",
                          fix="pass a path under a folder") from None
        raise _refuse(path, f"cannot write {what}", got=f"{where}: {e.strerror or e}",
                      fix="pass a writable file path") from None


def _mode(path: Path) -> int:
    """The mode of the file being replaced, else that of a new file (0o666 minus umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def run(args: argparse.Namespace) -> int:
    from nkigen.codegen import generate
    from nkigen.pipeline import load_spec

    require_paths([args.spec])
    if args.output is not None and not args.output.strip():
        raise _refuse(Path("<command line>"), "empty path",
                      "pass a file name such as kernel.py, or leave -o out for stdout",
                      repr(args.output))
    if args.output:
        check_output(Path(args.output), args.spec)
    spec = load_spec(args.spec)
    src = generate(spec, target=args.target, dialect=args.dialect)
    if args.output:
        write_atomic(Path(args.output), src)
    else:
        sys.stdout.write(src)
    return 0
