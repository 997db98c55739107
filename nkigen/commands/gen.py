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

from nkigen.hw import TARGETS

HELP = "generate the NKI kernel of a spec (stdout or -o FILE)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the kernel spec (YAML)")
    p.add_argument("-o", "--output", help="write the kernel here (atomically) instead of stdout")
    p.add_argument("--target", choices=sorted(TARGETS), default=None,
                   help="NeuronCore generation (default: the spec's target, else trn2)")
    p.add_argument("--dialect", default="nki", help="template dialect (default: nki)")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> int:
    from nkigen.codegen import generate
    from nkigen.pipeline import load_spec

    spec = load_spec(args.spec)
    src = generate(spec, target=args.target, dialect=args.dialect)
    if args.output:
        write_atomic(Path(args.output), src)
    else:
        sys.stdout.write(src)
    return 0
