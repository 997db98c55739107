"""Count the loop kinds of the classic-dialect kernels of every shipped spec.

Stage: measurement (issue 12 item 5). Generates each spec in specs/ with ``--dialect neuronxcc``
and counts the ``nl.static_range`` / ``nl.affine_range`` / ``nl.sequential_range`` loops of the
source (``for`` statements whose iterator is a call of that name), plus the kernels that still
carry a ragged-tile note (their reason is printed with ``-v``).

    python benchmarks/classic_loops.py [-v] [SPEC ...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("static_range", "affine_range", "sequential_range")


def loop_kinds(src: str) -> Counter:
    """``for`` loops of a kernel source by the ``nl.*_range`` they iterate over."""
    out: Counter = Counter()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Call):
            f = node.iter.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "?")
            out[name if name in KINDS else "other"] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    from nkigen.codegen import generate
    from nkigen.frontend import load_spec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", type=Path)
    ap.add_argument("-v", action="store_true", help="one line per spec")
    a = ap.parse_args(argv)
    paths = a.specs or sorted((ROOT / "specs").glob("*.yaml"))
    total: Counter = Counter()
    for p in paths:
        src = generate(load_spec(p), dialect="neuronxcc")
        c = loop_kinds(src)
        total += c
        if a.v:
            kinds = " ".join(f"{k}={c[k]}" for k in KINDS if c[k])
            print(f"{p.stem:<24} {kinds}")
    print(f"{len(paths)} specs: " + ", ".join(f"{k} {total[k]}" for k in KINDS + ("other",)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
