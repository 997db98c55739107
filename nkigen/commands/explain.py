"""`nkigen explain SPEC`: print what nkigen understood of a spec (stages: load, parse, analyze).

Input: one spec file. Output on stdout: sizes and constraints (derived ones too), params, index
extents and their source, each statement's affine access maps, the bounds and exactly-once
proofs, and the tiling with per-tile maps and tile counts (``format_analysis``); then the kernel
plan when ``nkigen.codegen`` provides ``format_plan``.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "explain a spec: sizes, index extents, access maps, proofs, tiling (and the kernel plan)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file")


def _plan_formatter():
    try:
        codegen = importlib.import_module("nkigen.codegen")
    except ModuleNotFoundError as e:
        if e.name not in ("nkigen.codegen",):
            raise
        return None
    return getattr(codegen, "format_plan", None)


def run(args: argparse.Namespace) -> int:
    from nkigen import pipeline
    from nkigen.analysis import format_analysis

    _, analysis = pipeline.check(args.spec)
    print(format_analysis(analysis), end="")
    fmt = _plan_formatter()
    if fmt is not None:
        print()
        print(fmt(analysis), end="")
    return 0
