"""`nkigen lint PATH...`: check NKI kernel files against the documented API without running
them (stage: lint).

Input: kernel files and folders (searched recursively for *.py, sorted). Output: one line per
finding, ``FILE:LINE:COL: lint[rule-id]: rule (got actual); fix``, on stdout (``--format json``
for a JSON document), and a summary line on stderr. The API generation is detected from the
imports (``--api`` forces it). Exit 0 when every file is clean, 1 when any has a finding (or can
not be read), 2 for usage errors. ``--rules`` prints the lint table (sizes, rules, sources).
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "lint NKI kernel files against the documented API (static; nothing is executed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="kernel files or folders")
    parser.add_argument("--api", choices=("nki", "neuronxcc"),
                        help="API generation to check against (default: from the imports)")
    parser.add_argument("--nki-version", choices=("0.3", "0.4", "0.5", "0.6"), default="0.3",
                        help="targeted nki version: names deprecated up to it are reported "
                        "(the signature table is nki 0.3's; default 0.3)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--rules", action="store_true",
                        help="print the lint table (rows, rules, sources) and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line")


def find_files(paths: list[str]) -> list[str]:
    """Expand folders to the *.py files under them; ValueError for missing paths/empty folders."""
    if not paths:
        raise ValueError("give at least one kernel file or folder")
    out: list[str] = []
    for p in paths:
        if not os.path.lexists(p):
            raise ValueError(f"no such file or folder: {p}")
        if not os.path.isdir(p):
            out.append(p)
            continue
        found = []
        for root, dirs, files in os.walk(p):
            dirs.sort()
            found += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
        if not found:
            raise ValueError(f"no *.py file under folder {p}")
        out += found
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    from nkigen.lint import report
    from nkigen.lint.checker import LintResult, lint_source
    from nkigen.lint.table import Api

    if args.rules:
        sys.stdout.write(report.rules_markdown())
        return 0
    try:
        files = find_files(list(args.paths))
    except ValueError as e:
        print(f"nkigen lint: error: {e}", file=sys.stderr)
        return 2
    api = Api(args.api) if args.api else None
    results: list[LintResult] = []
    unreadable = 0
    for path in files:
        try:
            with open(path, "rb") as fb:
                raw = fb.read()
            src = raw.decode("utf-8-sig")    # a UTF-8 BOM is valid Python source
        except OSError as e:
            unreadable += 1
            print(f"{path}: lint: can not read the file (got {e.strerror or e}); pass a "
                  "readable kernel file", file=sys.stderr)
            continue
        except UnicodeDecodeError as e:
            unreadable += 1
            data = e.object     # the bytes after a BOM, if any: offsets are relative to them
            head = data[:e.start]
            line, col = head.count(b"\n") + 1, e.start - head.rfind(b"\n")
            print(f"{path}:{line}:{col}: lint[encoding]: the file is not UTF-8 text (got byte "
                  f"0x{data[e.start]:02x} at offset {e.start}); save the file as UTF-8 Python "
                  "source", file=sys.stderr)
            continue
        major, minor = (int(x) for x in args.nki_version.split("."))
        r = lint_source(src, path, api, (major, minor))
        results.append(r)
        if r.api is None and not args.quiet and not any(f.rule == "syntax" for f in r.findings):
            print(f"{path}: imports no NKI API (import nki or neuronxcc.nki, or pass --api); "
                  "not checked", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(report.as_json(results))
    else:
        sys.stdout.write(report.text(results))
    n = sum(len(r.findings) for r in results)
    bad = sum(1 for r in results if r.findings) + unreadable
    if not args.quiet:
        print(f"{len(files)} file{'s' if len(files) != 1 else ''}: {n} finding"
              f"{'s' if n != 1 else ''} in {bad} file{'s' if bad != 1 else ''}", file=sys.stderr)
    return 1 if bad else 0
