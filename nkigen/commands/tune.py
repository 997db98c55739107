"""`nkigen tune SPEC [--sizes M=...,N=...] [--target] [--executor WHERE]`: rank legal schedules
by the cost model (simulations in a local pool, or as Ray tasks with ``--executor ray``).

Output: the ranked table on stdout; on stderr, while it runs, the progress (candidates evaluated,
the phase, the best so far): redrawn in place on a terminal, else a line at most every
:data:`LINE_EVERY` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nkigen.cli import EXECUTOR_HELP, MAX_JOBS, executor_arg, jobs_arg, require_paths
from nkigen.diagnostics import Loc, error, one_line

CMDLINE = Loc("<command line>")

HELP = "rank legal schedules for a spec by modeled latency (cost model) and show the best"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="spec file (.yaml)")
    p.add_argument("--sizes", default=None, help="tuning sizes, e.g. M=4096,K=8192,N=8192")
    p.add_argument("--target", choices=["trn1", "trn2"], default=None)
    p.add_argument("--dialect", choices=["nki", "neuronxcc"], default="nki")
    p.add_argument("--cache", type=Path, default=None,
                   help="tuning cache folder (default $NKIGEN_CACHE_DIR/tune, else "
                   "$XDG_CACHE_HOME/nkigen/tune, else ~/.cache/nkigen/tune)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--top", type=_positive, default=None, help="show only the best N candidates")
    p.add_argument("-j", "--jobs", type=jobs_arg, default=2, metavar="N",
                   help=f"parallel simulations (default 2; 0 = all cores; at most {MAX_JOBS})")
    p.add_argument("--executor", type=executor_arg, default=None, metavar="WHERE",
                   help=EXECUTOR_HELP + "; with ray, each simulation is a Ray task")
    p.add_argument("--exhaustive", action="store_true",
                   help="simulate every candidate the search visits, also those whose latency "
                        "lower bound shows they cannot win (same pick, slower)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def parse_sizes(text: str | None) -> dict[str, int]:
    """``--sizes M=4096,N=8192`` (None: not given) -> {name: value}; every entry checked."""
    out: dict[str, int] = {}
    if text is None:
        return out
    if not text.strip():
        raise error(CMDLINE, "--sizes", "no size given", repr(text),
                    "write e.g. --sizes M=4096,N=8192, or leave --sizes out")
    for item in (s.strip() for s in text.split(",")):
        if not item:
            raise error(CMDLINE, "--sizes", "empty entry (two commas, or a trailing one)", text,
                        "write e.g. --sizes M=4096,N=8192")
        name, _, value = (x.strip() for x in item.partition("="))
        if (not name or not value.isascii() or not value.isdigit() or len(value) > 18
                or int(value) <= 0):
            raise error(CMDLINE, "--sizes", "each entry must be NAME=positive integer", item,
                        "write e.g. --sizes M=4096,N=8192")
        if name in out:
            raise error(CMDLINE, "--sizes", f"size {name} is given twice", text,
                        f"give {name} once")
        out[name] = int(value)
    return out


LINE_EVERY = 2.0   # seconds between two progress lines when stderr is not a terminal


class TuneProgress:
    """``tuning k: 23 candidates (proxy sizes), best so far 12.3 us (tiles m=128)`` on ``stream``:
    redrawn in place on a terminal; on a pipe a line at most every LINE_EVERY seconds, on each
    change of phase and at the end."""

    PHASES = {"proxy": "exploring at proxy sizes", "final": "at the real sizes"}

    def __init__(self, name: str, stream: TextIO | None = None, clock=time.monotonic):
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.clock = clock
        self.start = self._last = clock()
        self.count = 0
        self.phase = ""
        self.best: dict[str, Any] = {}
        self._width = 0

    def line(self) -> str:
        best = self.best.get(self.phase)
        shown = (f"best so far {best.latency_us:.1f} us ({best.key})" if best is not None
                 else "no legal schedule yet")
        return (f"tuning {self.name}: {self.count} evaluated, "
                f"{self.PHASES.get(self.phase, self.phase)}, {shown}, "
                f"{self.clock() - self.start:.1f} s")

    def __call__(self, phase: str, cand: Any) -> None:
        self.count += 1
        changed = phase != self.phase
        self.phase = phase
        if cand.legal and cand.latency_us is not None:
            old = self.best.get(phase)
            if old is None or cand.latency_us < old.latency_us:
                self.best[phase] = cand
        now = self.clock()
        if self.tty:
            text = self.line()
            self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
            self._width = len(text)
            self.stream.flush()
        elif changed or now - self._last >= LINE_EVERY:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
        elif not self.tty and self.count:
            print(self.line(), file=self.stream)
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    # internal errors (and too deep specs) are reported by nkigen.cli.main, without traceback
    from nkigen.pipeline import load_spec
    from nkigen.tune import check_tuning_sizes, format_table, tune, tuning_sizes

    require_paths([args.spec])
    spec = load_spec(args.spec)
    sizes = parse_sizes(args.sizes)
    unknown = sorted(set(sizes) - {s.name for s in spec.free_sizes})
    if unknown:
        raise error(CMDLINE, "--sizes", "unknown or derived size", ", ".join(unknown),
                    "name only sizes of " + ", ".join(s.name for s in spec.free_sizes))
    check_tuning_sizes(spec, tuning_sizes(spec, sizes), field="--sizes", loc=CMDLINE)
    cache = False if args.no_cache else (args.cache or True)
    if args.cache is not None and not args.no_cache:
        # (os.path tests: a Path method raises on a name the OS refuses, ENAMETOOLONG)
        blocker = next((p for p in (args.cache, *args.cache.parents)
                        if os.path.exists(p) and not os.path.isdir(p)), None)
        if blocker is not None:   # an unusable cache only costs time: said, not fatal
            print(one_line(f"{args.cache}: warning: --cache: the tuning cache must be a folder "
                           f"(got {blocker} is a file); tuning without it — pass a folder "
                           "(created if missing), or --no-cache"), file=sys.stderr)
            cache = False
    progress = None if args.quiet else TuneProgress(spec.name)
    try:
        result = tune(spec, target=args.target, dialect=args.dialect, sizes=sizes,
                      cache_dir=cache, jobs=args.jobs, progress=progress,
                      executor=args.executor, prune=not args.exhaustive)
    finally:
        if progress is not None:
            progress.close()
    print(format_table(result, args.top))
    if not result.best.legal:
        # no schedule could be planned (the default's reason is its located diagnostic):
        # a failure, said on stderr with exit 1, as `nkigen build` would fail the spec (fuzz7:
        # a spec the planner rejects printed the table and exited 0)
        why = result.default.reason or result.best.reason or "no candidate could be planned"
        print(one_line(why if why.startswith(f"{args.spec}:") else
                       f"{args.spec}: no legal schedule: {why}"), file=sys.stderr)
        return 1
    return 0
