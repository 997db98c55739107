"""`nkigen tune SPEC [--sizes M=...,N=...] [--target]`: rank legal schedules by the cost model."""

from __future__ import annotations

import argparse
from pathlib import Path

from nkigen.diagnostics import Loc, error

CMDLINE = Loc("<command line>")

HELP = "rank legal schedules for a spec by modeled latency (cost model) and show the best"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="spec file (.yaml)")
    p.add_argument("--sizes", default="", help="tuning sizes, e.g. M=4096,K=8192,N=8192")
    p.add_argument("--target", choices=["trn1", "trn2"], default=None)
    p.add_argument("--dialect", choices=["nki", "neuronxcc"], default="nki")
    p.add_argument("--cache", type=Path, default=None,
                   help="tuning cache folder (default $NKIGEN_TUNE_CACHE or ~/.cache/nkigen/tune)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--top", type=_positive, default=None, help="show only the best N candidates")
    p.add_argument("-j", "--jobs", type=int, default=2, help="parallel simulations (default 2)")


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def parse_sizes(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
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


def run(args: argparse.Namespace) -> int:
    # internal errors (and too deep specs) are reported by nkigen.cli.main, without traceback
    from nkigen.pipeline import load_spec
    from nkigen.tune import check_tuning_sizes, format_table, tune, tuning_sizes

    spec = load_spec(args.spec)
    sizes = parse_sizes(args.sizes)
    unknown = sorted(set(sizes) - {s.name for s in spec.free_sizes})
    if unknown:
        raise error(CMDLINE, "--sizes", "unknown or derived size", ", ".join(unknown),
                    "name only sizes of " + ", ".join(s.name for s in spec.free_sizes))
    check_tuning_sizes(spec, tuning_sizes(spec, sizes), field="--sizes", loc=CMDLINE)
    cache = False if args.no_cache else (args.cache or True)
    result = tune(spec, target=args.target, dialect=args.dialect, sizes=sizes, cache_dir=cache,
                  jobs=max(1, args.jobs))
    print(format_table(result, args.top))
    return 0
