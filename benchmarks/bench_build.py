"""Benchmark of `nkigen build`: cold build of a spec folder and a no-op rebuild.

Input: a spec folder (default ``specs/``). Output: printed figures: wall time per spec of a cold
build (tune with an empty tuner cache + generate + verify every case in the
simulator + goldens + tests), the total, and the wall
time of a no-op rebuild of the whole library (every spec cached). Targets: <= 2 s per spec cold,
<= 1 s for the no-op rebuild. Run: ``python benchmarks/bench_build.py [SPECS] [-j N]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from nkigen.library.build import BuildOptions, build
from nkigen.library.stages import real_stages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="?", default="specs")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--target", default=None)
    args = ap.parse_args()

    stages = real_stages()   # import cost paid once, outside the timings
    with tempfile.TemporaryDirectory(prefix="nkigen-bench-") as d:
        os.environ["NKIGEN_TUNE_CACHE"] = str(Path(d) / "tune")   # a cold tuner cache too
        out = Path(d) / "library"
        opts = BuildOptions((args.specs,), str(out), target=args.target, jobs=args.jobs,
                            progress=False)
        t0 = time.perf_counter()
        cold = build(opts, stages)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        noop = build(opts, stages)
        t_noop = time.perf_counter() - t0

    n = len(cold.results)
    print(f"cold build of {args.specs} (-j {args.jobs}): {n} specs, "
          f"{len(cold.failed)} failed, {t_cold:.2f} s wall")
    print(f"{'spec':32} {'status':8} {'cases':>5} {'seconds':>8}")
    for r in cold.results:
        cases = len(r.entry["cases"]) if r.entry else 0
        print(f"{r.spec:32} {r.status:8} {cases:>5} {r.seconds:8.2f}")
    slowest = max((r.seconds for r in cold.results), default=0.0)
    print(f"per spec: mean {t_cold / max(n, 1):.2f} s wall, slowest {slowest:.2f} s "
          f"(target <= 2 s per spec)")
    cached = sum(r.status == "cached" for r in noop.results)
    print(f"no-op rebuild: {t_noop:.3f} s wall, {cached}/{n} cached (target <= 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
