"""`nkigen check PATH...`: load, parse and analyze specs; report every problem (stages: load,
parse, analyze).

Input: spec files and folders (searched recursively for *.yaml / *.yml, sorted). Output: ``ok
<path>`` per valid spec on stdout, every diagnostic of invalid specs on stderr. Exit 0 when all
are valid, 1 when any spec has a problem, 2 for usage errors (no paths, a missing path, a folder
holding no spec).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from nkigen.cli import debug, internal_error
from nkigen.diagnostics import NkigenError

HELP = "check specs (files or folders): YAML, schema, statements, indices, bounds, hints"
SUFFIXES = (".yaml", ".yml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="spec files or folders")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing for valid specs, only problems and the summary")


class UsageError(Exception):
    pass


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


def check_one(path: str, analyze: bool) -> None:
    """Raise NkigenError with every problem of one spec."""
    from nkigen import pipeline

    if analyze:
        pipeline.check(path)
    else:
        pipeline.load_spec(path)


def run(args: argparse.Namespace) -> int:
    try:
        specs = find_specs(list(args.paths))
    except UsageError as e:
        print(f"nkigen check: error: {e}", file=sys.stderr)
        return 2
    analyze = _has_analysis()
    bad = 0
    for path in specs:
        try:
            check_one(path, analyze)
        except NkigenError as e:
            bad += 1
            for d in e.diagnostics:
                print(str(d), file=sys.stderr)
            continue
        except RecursionError:
            bad += 1
            print(f"{path}: spec is too deeply nested to check", file=sys.stderr)
            continue
        except Exception as e:  # a bug in nkigen: one line (cli's wording), then the next spec
            bad += 1
            if debug():
                raise
            print(internal_error(e, path), file=sys.stderr)
            continue
        if not args.quiet:
            print(f"ok  {path}")
    if len(specs) > 1 or args.quiet:
        line = f"{len(specs)} spec{'s' if len(specs) != 1 else ''}: {len(specs) - bad} ok, " \
               f"{bad} with problems"
        print(line, file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0
