"""Benchmark: the tuner (`schedule: auto`) against the planner's defaults and the spec's hints.

Prints
1. bf16 matmul [4096,8192] @ [8192,8192] on trn1, for the contraction-major left operand of the
   public tutorial (specs/matmul_lhst_bf16.yaml, hints: the tutorial's blocking) and for the
   row-major one (specs/matmul_bf16.yaml, which needs transposes): auto's modeled latency and
   TensorE utilisation against the defaults and the spec's hints, with the cold tuning time
   (empty cache) and the cached one;
2. for every spec in specs/: auto's modeled latency against the default schedule's, at the
   spec's largest test case (the sizes `nkigen build` tunes at) or, with --sizes tuner, at the
   tuner's own default sizes.

All latencies are cost-model estimates. Run:
python benchmarks/bench_tune.py [--sizes cases|tuner] [--oracle: also the exhaustive search]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from nkigen.frontend import load_spec
from nkigen.testdata import cases
from nkigen.tune import tune
from nkigen.tune.space import schedule_key

ROOT = Path(__file__).resolve().parent.parent


def matmul_section(name: str, jobs: int, oracle: bool) -> None:
    spec = load_spec(ROOT / "specs" / name)
    sizes = {"M": 4096, "K": 8192, "N": 8192}
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        r = tune(spec, target="trn1", sizes=sizes, cache_dir=Path(cache), jobs=jobs)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        tune(spec, target="trn1", sizes=sizes, cache_dir=Path(cache), jobs=jobs)
        warm = time.perf_counter() - t0
    pruned = sum(c.pruned for c in r.candidates + r.explored)
    hints = next(c for c in r.candidates if c.key == schedule_key(spec.schedule))
    print(f"bf16 matmul [4096,8192] @ [8192,8192], trn1 (cost model): specs/{name}")
    print(f"  {'schedule':58s} {'latency ms':>10s} {'TensorE util':>12s}")
    for label, c in (("auto: " + r.best.key, r.best), ("spec hints: " + hints.key, hints),
                     ("planner default", r.default)):
        print(f"  {label:58s} {c.latency_us / 1e3:10.3f} {c.hfu:12.1%}")
    print(f"  auto / hints latency ratio: {r.best.latency_us / hints.latency_us:.3f}")
    print(f"  tuning time: cold {cold:.1f} s ({r.simulated} simulations, {pruned} candidates "
          f"ruled out by their latency bound, -j {jobs}), cached {warm:.2f} s  (targets: "
          "<= 5 s, <= 1 s; whole process: time `nkigen tune` itself)")
    if oracle:      # the exhaustive search must pick the same schedule at the same latency
        t0 = time.perf_counter()
        x = tune(spec, target="trn1", sizes=sizes, cache_dir=None, jobs=jobs, prune=False)
        same = (x.best.key, x.best.latency_us) == (r.best.key, r.best.latency_us)
        print(f"  exhaustive search: {time.perf_counter() - t0:.1f} s ({x.simulated} "
              f"simulations), same pick and latency: {'yes' if same else 'NO'}")
    print()


def library_section(mode: str) -> None:
    print(f"every spec in specs/: auto vs default (sizes: {mode})")
    print(f"  {'spec':18s} {'default us':>11s} {'auto us':>11s} {'ratio':>6s}  schedule")
    worse = 0
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        spec = load_spec(path)
        sizes = None
        if mode == "cases":
            sizes = max(cases(spec), key=lambda c: sum(c.values()))
        r = tune(spec, sizes=sizes, cache_dir=None)
        d, a = r.default.latency_us, r.best.latency_us
        if d is None or a is None:
            print(f"  {spec.name:18s} {'illegal':>11s}")
            continue
        worse += a > d
        print(f"  {spec.name:18s} {d:11.2f} {a:11.2f} {a / d:6.3f}  {r.best.key}")
    print(f"  specs where auto is slower than default: {worse}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", choices=["cases", "tuner"], default="cases")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--skip-matmul", action="store_true")
    ap.add_argument("--oracle", action="store_true",
                    help="also run the exhaustive search (no pruning) and compare its pick")
    args = ap.parse_args()
    print("(modeled figures are estimates from the nkigen cost model, not measurements)\n")
    if not args.skip_matmul:
        for name in ("matmul_lhst_bf16.yaml", "matmul_bf16.yaml"):
            matmul_section(name, args.jobs, args.oracle)
    library_section(args.sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
