"""Command ``nkigen build``: spec files/folders -> a verified kernel library (nkigen.library).

Input: ``SPECS... -o OUT [--target] [--dialect] [-j N] [--executor WHERE] [--keep-going]``.
Output: the library in OUT; on stdout the table, one row per spec as it finishes (so a pipe
sees progress), then the totals; on stderr a progress bar (terminal) or progress lines (pipe)
and the located diagnostics of failed specs. Exit 1 if any spec failed, 2 for usage errors
(missing path, a folder holding no spec, bad option), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nkigen.cli import (
    EXECUTOR_HELP,
    MAX_JOBS,
    UsageError,
    executor_arg,
    jobs_arg,
    require_paths,
)

HELP = "build a verified kernel library (kernels, goldens, pytest suite, manifest) from specs"

EPILOG = """\
OUT receives kernels/<name>.py, golden/<name>/<case>.npz, tests/ (run: pytest OUT/tests),
manifest.json and README.md. Every kernel is verified in the simulator against the float64
reference on each test case before it enters the library.

Hints: a spec whose tiling hints the cost model puts more than 4x slower than the planner's
defaults at its largest test case gets a warning naming the hints and both estimates (it still
builds; drop or raise the hints, or rank them with nkigen tune SPEC).

Incremental: a spec whose bytes, path, target, dialect and nkigen sources are unchanged is not
rebuilt; its files are carried over from the previous OUT (status "cached").

Failures: if any spec fails (or two specs define the same kernel name), OUT is left exactly as it
was, every failure is printed with its location, and the exit status is 1. With --keep-going the
library of the specs that did build replaces OUT anyway (still exit status 1). A build is
atomic: it is written to a temporary folder next to OUT and swapped in at the end; an error or
Ctrl-C leaves OUT untouched. OUT must be new, empty, or a library written by nkigen.

--executor ray[://HOST:PORT] runs each spec as a Ray task (pip install 'nkigen[ray]'); the
workers send the files back to this process, which writes the same library a local build does.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("specs", nargs="+", metavar="SPECS", help="spec files or folders of *.yaml")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="library folder to write")
    p.add_argument("--target", choices=("trn1", "trn2"), default=None,
                   help="target for every kernel (default: each spec's target, else trn2)")
    p.add_argument("--dialect", choices=("nki", "neuronxcc"), default="nki",
                   help="NKI API to emit (default: nki)")
    p.add_argument("-j", "--jobs", type=jobs_arg, default=1, metavar="N",
                   help="build N specs in parallel processes (default 1; 0 = all cores; at "
                   f"most {MAX_JOBS})")
    p.add_argument("--executor", type=executor_arg, default=None, metavar="WHERE",
                   help=EXECUTOR_HELP + "; with ray, -j is ignored (the cluster's CPUs decide)")
    p.add_argument("--keep-going", action="store_true",
                   help="write the library of the good kernels even if some specs fail")
    p.add_argument("--no-lint", dest="lint", action="store_false",
                   help="skip the lint stage (nkigen lint on every generated kernel)")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild every spec, ignoring the previous library's cache")


def run(args: argparse.Namespace) -> int:
    from nkigen.library.build import SPEC_SUFFIXES, BuildOptions, build
    from nkigen.library.progress import LiveTable

    require_paths(args.specs)
    for p in map(Path, args.specs):
        if p.is_dir() and not any(f.suffix in SPEC_SUFFIXES for f in p.iterdir()):
            raise UsageError(f"no *.yaml or *.yml spec in folder {p}")
    names = [Path(s).stem for s in args.specs if not Path(s).is_dir()] + [
        f.stem for s in args.specs if Path(s).is_dir() for f in Path(s).iterdir()
        if f.suffix in SPEC_SUFFIXES]
    table = LiveTable(names)
    opts = BuildOptions(specs=tuple(args.specs), out=args.out, target=args.target,
                        dialect=args.dialect, jobs=args.jobs, keep_going=args.keep_going,
                        rebuild=args.rebuild, lint=args.lint, progress=False,
                        executor=args.executor)
    try:
        report = build(opts, on_result=table.add)
    finally:
        table.close()
    for w in report.warnings:
        print(w, file=sys.stderr)
    for r in report.failed:
        for d in r.diagnostics:
            print(d, file=sys.stderr)
    if report.up_to_date:
        print(f"{args.out} is up to date")
        return 0
    if report.failed:
        if report.written:
            print(f"nkigen: {len(report.failed)} spec(s) failed; wrote the other kernels to "
                  f"{args.out} (--keep-going)", file=sys.stderr)
        else:
            print(f"nkigen: {len(report.failed)} spec(s) failed; {args.out} left unchanged "
                  "(use --keep-going to write the good kernels)", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0
