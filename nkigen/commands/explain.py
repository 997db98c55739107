"""`nkigen explain SPEC`: print what nkigen understood of a spec (stages: load, parse, analyze).

Input: one spec file. Output on stdout: sizes and constraints (derived ones too), params, index
extents and their source, each statement's affine access maps, the bounds and exactly-once
proofs, and the tiling with per-tile maps and tile counts (``format_analysis``); then the kernel
plan when ``nkigen.codegen`` provides ``plan_kernel`` and ``format_plan``.
"""

from __future__ import annotations

import argparse
import importlib

from nkigen.cli import require_paths
from nkigen.diagnostics import NkigenError

HELP = "explain a spec: sizes, index extents, access maps, proofs, tiling (and the kernel plan)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file")
    parser.add_argument("--target", choices=("trn1", "trn2"), default=None,
                        help="target for the kernel plan (default: the spec's, else trn2)")
    parser.add_argument("--dialect", choices=("nki", "neuronxcc"), default="nki",
                        help="NKI API of the kernel whose size branches are listed "
                             "(default: nki)")


def _codegen():
    """nkigen.codegen when it provides ``plan_kernel`` and ``format_plan``, else None."""
    try:
        codegen = importlib.import_module("nkigen.codegen")
    except ModuleNotFoundError as e:
        if e.name != "nkigen.codegen":
            raise
        return None
    if hasattr(codegen, "plan_kernel") and hasattr(codegen, "format_plan"):
        return codegen
    return None


def run(args: argparse.Namespace) -> int:
    from nkigen import pipeline
    from nkigen.analysis import format_analysis

    # internal errors (and too deep specs) are reported by nkigen.cli.main, without traceback
    require_paths([args.spec])
    spec, analysis = pipeline.check(args.spec)
    print(format_analysis(analysis), end="")
    codegen = _codegen()
    if codegen is None:
        return 0
    print()
    print("kernel plan (nkigen.codegen)")
    try:
        plan = codegen.plan_kernel(spec, analysis, args.target or analysis.target)
    except (NkigenError, NotImplementedError) as e:
        print(f"kernel plan: not available for this spec yet ({e})")
        return 0
    print(codegen.format_plan(plan), end="")
    _branches(spec, analysis, codegen, args)
    return 0


def _branches(spec, analysis, codegen, args: argparse.Namespace) -> None:
    """The generated kernel's trace-time size branches, the test cases reaching each side and
    the derived cases ``nkigen build`` adds (nkigen.library.autocase)."""
    from nkigen.library import autocase
    from nkigen.library.golden import case_name
    from nkigen.testdata import cases

    try:
        plan = codegen.plan_kernel(spec, analysis, args.target or analysis.target,
                                   dialect=args.dialect)
        source = codegen.render(plan, args.dialect)
        given = [{k: int(v) for k, v in c.items()} for c in cases(spec)]
        cov = autocase.derive(spec, source, args.dialect, given)
    except (NkigenError, NotImplementedError, ValueError) as e:
        print(f"\nsize branches: not available for this spec ({e})")
        return
    print(autocase.describe(cov, spec, given, f"kernels/{spec.name}.py", args.dialect,
                            [s.name for s in spec.sizes], case_name), end="")
