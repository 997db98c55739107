"""Benchmark: the two per-candidate costs of ``nkigen tune`` on the matmul spec.

Stage: benchmark (plan + cost-only simulate). Plans ``--candidates`` schedules of
specs/matmul_lhst_bf16.yaml (tiles 128/512/128, block m in 1..16 x k in 1..8) at the proxy size
2048^3 in one process, as the tuner's workers do (``prepare``: plan, render, latency bound), and
prints the median milliseconds per candidate; then simulates the generated kernel of one
candidate (default ``block k=4,m=8``, the tuner's pick) cost-only at the real size
M=4096, K=8192, N=8192 ``--runs`` times (``simulate_source``, what a finalist costs) and prints
the median CPU and wall seconds (CPU: process time, the machine is shared).

    python benchmarks/bench_tune_candidate.py [--runs 5] [--block-m 8] [--block-k 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from nkigen.analysis import analyze
from nkigen.frontend import load_spec
from nkigen.ir import Schedule
from nkigen.tune.measure import prepare, render_candidate, simulate_source

SPEC = Path(__file__).resolve().parent.parent / "specs" / "matmul_lhst_bf16.yaml"
TILES = (("m", 128), ("n", 512), ("k", 128))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--block-m", type=int, default=8)
    ap.add_argument("--block-k", type=int, default=4)
    args = ap.parse_args()
    spec = load_spec(SPEC)
    an = analyze(spec, target="trn2")
    proxy = {"M": 2048, "K": 2048, "N": 2048}
    scheds = [Schedule(auto=False, tiles=TILES, block=(("m", m), ("k", k)))
              for m in (1, 2, 4, 8, 16) for k in (1, 2, 4, 8)]
    per = []
    for s in scheds:
        t = time.process_time()
        prepare(an, s, proxy, "trn2", "nki")
        per.append(time.process_time() - t)
    print(f"planning: {len(scheds)} candidates, median {1e3 * statistics.median(per):.1f} ms "
          f"CPU each (first {1e3 * per[0]:.1f} ms)")
    pick = Schedule(auto=False, tiles=TILES, block=(("m", args.block_m), ("k", args.block_k)))
    src, reason = render_candidate(an, pick, "trn2", "nki")
    if src is None:
        print(f"candidate illegal: {reason}")
        return 1
    full = {"M": 4096, "K": 8192, "N": 8192}
    cpu, wall = [], []
    for _ in range(args.runs):
        t, w = time.process_time(), time.perf_counter()
        r = simulate_source(spec, src, full, "trn2")
        cpu.append(time.process_time() - t)
        wall.append(time.perf_counter() - w)
    print(f"cost-only block m={args.block_m},k={args.block_k} at M=4096 K=8192 N=8192: "
          f"latency {r['latency_us']} us; median of {args.runs}: "
          f"{statistics.median(cpu):.3f} s CPU, {statistics.median(wall):.3f} s wall "
          f"(load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
