"""`nkigen report OUT`: one self-contained HTML page for a built kernel library (stage: report).

Input: a library folder written by ``nkigen build``. Output: ``OUT/report.html`` (or ``-o
FILE``) and a Perfetto trace per kernel in ``traces/`` beside it; the page's path on stdout.
Exit 0, 1 for a folder that is not a library, 2 for usage errors (missing path).
"""

from __future__ import annotations

import argparse

from nkigen.cli import require_paths

HELP = "write an HTML report of a built library: roofline, bound, engine utilisation, traces"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="library folder written by nkigen build")
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="the HTML file to write (default OUT/report.html); the traces go to "
                   "traces/ beside it")


def run(args: argparse.Namespace) -> int:
    from nkigen.report import write_report

    require_paths([args.out])
    if args.output is not None and not args.output.strip():
        from nkigen.diagnostics import Diagnostic, Loc, NkigenError

        raise NkigenError(Diagnostic(Loc("<command line>"), "-o/--output", "empty path",
                                     repr(args.output), "pass a file name such as report.html"))
    files = write_report(args.out, args.output)
    print(f"wrote {files.html} ({len(files.kernels)} kernels, traces in "
          f"{files.html.parent / 'traces'})")
    return 0
