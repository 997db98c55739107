"""Benchmark of `nkigen check` work (load + parse + analyze) per spec.

Prints, per spec in specs/ (or the paths given), the median wall time of REPEATS runs with every
cache cleared before each run (nkigen's prover cache and sympy's cache), then the median over
specs. Target: at most 100 ms median per spec. A benchmark prints figures; tests never assert
timings.

    python benchmarks/bench_check.py [SPEC ...] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sympy.core.cache import clear_cache

from nkigen.analysis import analyze, check_schedule, default_tiles, tile_maps
from nkigen.analysis.prover import _prove
from nkigen.frontend import load_spec
from nkigen.ir import Schedule

ROOT = Path(__file__).resolve().parent.parent


def time_one(path: Path, repeats: int) -> tuple[float, float, float]:
    """Median (load+parse, analyze, total) milliseconds with cold caches."""
    loads, analyses = [], []
    for _ in range(repeats):
        clear_cache()
        _prove.cache_clear()
        t0 = time.perf_counter()
        spec = load_spec(path)
        t1 = time.perf_counter()
        analyze(spec)
        t2 = time.perf_counter()
        loads.append((t1 - t0) * 1e3)
        analyses.append((t2 - t1) * 1e3)
    lo, an = statistics.median(loads), statistics.median(analyses)
    return lo, an, lo + an


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    paths = args.paths or sorted((ROOT / "specs").glob("*.yaml"))
    if not paths:
        print("no specs found", file=sys.stderr)
        return 2
    load_spec(paths[0])          # warm imports once
    totals = []
    print(f"{'spec':<24} {'load+parse ms':>14} {'analyze ms':>11} {'total ms':>9}")
    for p in paths:
        lo, an, tot = time_one(p, args.repeats)
        totals.append(tot)
        print(f"{p.stem:<24} {lo:14.1f} {an:11.1f} {tot:9.1f}")
    med = statistics.median(totals)
    print(f"median over {len(paths)} specs: {med:.1f} ms per spec (target <= 100 ms); "
          f"max {max(totals):.1f} ms; {args.repeats} cold-cache repeats each")
    tiles_ms, hints_ms = [], []
    for p in paths:
        a = analyze(load_spec(p))
        tiles = default_tiles(a)
        t0 = time.perf_counter()
        for st in range(len(a.statements)):
            tile_maps(a, st, tiles)
        t1 = time.perf_counter()
        check_schedule(a, Schedule(False, tiles=tuple(sorted(tiles.items()))))
        t2 = time.perf_counter()
        tiles_ms.append((t1 - t0) * 1e3 / max(1, len(a.statements)))
        hints_ms.append((t2 - t1) * 1e3)
    print(f"tile_maps: median {statistics.median(tiles_ms):.2f} ms per statement; "
          f"check_schedule: median {statistics.median(hints_ms):.2f} ms per schedule (warm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
