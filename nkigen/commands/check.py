"""`nkigen check PATH...`: load, parse and analyze specs, then plan, render and lint each
kernel as ``nkigen build`` would; report every problem (stages: load, parse, analyze, plan,
render, lint; no data is drawn and nothing is simulated).

Input: spec files and folders (searched recursively for *.yaml / *.yml, sorted). Output: ``ok
<path>`` per valid spec on stdout, every diagnostic of invalid specs on stderr, and warnings
(``FILE:LINE:COL: warning: ...``, see :mod:`nkigen.analysis.checktime`) on stderr. Beyond the
analysis' checks, every refusal ``nkigen build`` makes from the spec alone, with build's own
wording (:func:`nkigen.library.unit.check_buildable`): test cases (declared or derived) over the
memory or tile budget, and every refusal of the planner (a tiling or block hint over the SBUF
budget, a gather table over 2**24 elements, a form no lowering takes, ...) for ``--target`` and
``--dialect`` (build's defaults: the spec's target, else trn2; nki); a ``schedule: auto`` spec
is planned with the planner's defaults (build tunes it first). ``--no-plan`` stops after the
analysis. Kernel names used by two of the specs checked together are errors. Exit 0 when all
are valid (warnings or not), 1 when any spec has a problem, 2 for usage errors (no paths, a
missing path, a folder holding no spec).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from nkigen.cli import UsageError, debug, internal_error
from nkigen.diagnostics import Loc, NkigenError, one_line
from nkigen.hw import TARGETS

if TYPE_CHECKING:
    from nkigen.ir import Spec

HELP = ("check specs (files or folders): YAML, schema, statements, indices, bounds, hints, "
        "and every refusal of build that needs no data (plan, render, lint)")
SUFFIXES = (".yaml", ".yml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="spec files or folders")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing for valid specs, only problems and the summary")
    parser.add_argument("--target", choices=sorted(TARGETS), default=None,
                        help="NeuronCore generation the kernel is planned for, as in build "
                        "(default: each spec's target, else trn2)")
    parser.add_argument("--dialect", choices=("nki", "neuronxcc"), default="nki",
                        help="NKI API the kernel is planned for, as in build (default: nki)")
    parser.add_argument("--no-plan", dest="build", action="store_false",
                        help="stop after the analysis: skip planning, rendering and linting "
                        "the kernel (faster; misses refusals of those stages)")


def find_specs(paths: list[str]) -> list[str]:
    """Expand folders to the specs under them; raise UsageError for missing paths/empty folders."""
    if not paths:
        raise UsageError("give at least one spec file or folder")
    out: list[str] = []
    for p in paths:
        if not os.path.lexists(p):
            raise UsageError(f"no such file or folder: {p}")
        if not os.path.isdir(p):
            out.append(p)
            continue
        found = []
        for root, dirs, files in os.walk(p, followlinks=False):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(SUFFIXES):
                    found.append(os.path.join(root, f))
        if not found:
            raise UsageError(f"no *.yaml or *.yml spec under folder {p}")
        out.extend(found)
    return list(dict.fromkeys(out))


def _has_analysis() -> bool:
    try:
        spec = importlib.util.find_spec("nkigen.analysis")
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def check_one(path: str, analyze: bool, target: str | None = None, dialect: str = "nki",
              build: bool = True) -> tuple[Spec, list[str]]:
    """The spec at ``path`` and its warnings; raise NkigenError with every problem of it: the
    analysis', then (``build``) every refusal ``nkigen build --target TARGET --dialect
    DIALECT`` makes before it draws data, with build's diagnostics
    (:func:`nkigen.library.unit.check_buildable`: test cases and their budgets, plan, render,
    lint)."""
    from nkigen import pipeline
    from nkigen.analysis.checktime import (
        case_memory_diagnostics,
        case_tile_diagnostics,
        warnings_of,
    )

    # the analysis raises the operand-pairing and argmax-index errors too (every command shares
    # them: nkigen.analysis.analyze step 6)
    spec = pipeline.check(path)[0] if analyze else pipeline.load_spec(path)
    if analyze and build:
        from nkigen.library.unit import check_buildable

        try:
            check_buildable(spec, target, dialect)
        except NkigenError as e:    # an unlocated diagnostic names the spec, as build's do
            raise NkigenError([d if d.loc is not None else replace(d, loc=Loc(path))
                               for d in e.diagnostics]) from None
    else:
        diags = case_memory_diagnostics(spec) + case_tile_diagnostics(spec)
        if diags:
            raise NkigenError(diags)
    return spec, [str(w) for w in warnings_of(spec)]


def run(args: argparse.Namespace) -> int:
    specs = find_specs(list(args.paths))   # UsageError: check's usage, exit 2 (nkigen.cli)
    analyze = _has_analysis()
    bad = 0
    good: list[tuple[str, Spec]] = []
    for path in specs:
        try:
            spec, warnings = check_one(path, analyze, args.target, args.dialect, args.build)
        except NkigenError as e:
            bad += 1
            for d in e.diagnostics:
                print(str(d), file=sys.stderr)
            continue
        except RecursionError:
            bad += 1
            print(one_line(f"{path}: spec is too deeply nested to check"), file=sys.stderr)
            continue
        except Exception as e:  # a bug in nkigen: one line (cli's wording), then the next spec
            bad += 1
            if debug():
                raise
            print(internal_error(e, path), file=sys.stderr)
            continue
        for w in warnings:
            print(w, file=sys.stderr)
        good.append((path, spec))
    from nkigen.analysis.checktime import duplicate_name_diagnostics

    dup_diags = duplicate_name_diagnostics([s for _, s in good])
    for d in dup_diags:
        print(str(d), file=sys.stderr)
    names = [s.name for _, s in good]
    bad += sum(names.count(n) > 1 for n in names)
    if not args.quiet:   # after the duplicates are known: "ok" only for specs really ok
        for path, spec in good:
            if names.count(spec.name) == 1:
                print(one_line(f"ok  {path}"))
    if len(specs) > 1 or args.quiet:
        line = f"{len(specs)} spec{'s' if len(specs) != 1 else ''}: {len(specs) - bad} ok, " \
               f"{bad} with problems"
        print(line, file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0
