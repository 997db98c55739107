"""`nkigen tune SPEC [--sizes M=...,N=...] [--target]`: rank legal schedules by the cost model."""

from __future__ import annotations

import argparse
from pathlib import Path

from nkigen.diagnostics import error

HELP = "rank legal schedules for a spec by modeled latency (cost model) and show the best"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="spec file (.yaml)")
    p.add_argument("--sizes", default="", help="tuning sizes, e.g. M=4096,K=8192,N=8192")
    p.add_argument("--target", choices=["trn1", "trn2"], default=None)
    p.add_argument("--dialect", choices=["nki", "neuronxcc"], default="nki")
    p.add_argument("--cache", type=Path, default=None,
                   help="tuning cache folder (default $NKIGEN_TUNE_CACHE or ~/.cache/nkigen/tune)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--top", type=int, default=None, help="show only the best N candidates")
    p.add_argument("-j", "--jobs", type=int, default=2, help="parallel simulations (default 2)")


def parse_sizes(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, value = item.partition("=")
        if not name.strip() or not value.strip().isdigit() or int(value) <= 0:
            raise error(None, "--sizes", "each entry must be NAME=positive integer", item,
                        "write e.g. --sizes M=4096,N=8192")
        out[name.strip()] = int(value)
    return out


def run(args: argparse.Namespace) -> int:
    from nkigen.pipeline import load_spec
    from nkigen.tune import format_table, tune

    spec = load_spec(args.spec)
    sizes = parse_sizes(args.sizes)
    unknown = sorted(set(sizes) - {s.name for s in spec.free_sizes})
    if unknown:
        raise error(None, "--sizes", "unknown or derived size", ", ".join(unknown),
                    "name only sizes of " + ", ".join(s.name for s in spec.free_sizes))
    cache = False if args.no_cache else (args.cache or True)
    result = tune(spec, target=args.target, dialect=args.dialect, sizes=sizes, cache_dir=cache,
                  jobs=max(1, args.jobs))
    print(format_table(result, args.top))
    return 0
