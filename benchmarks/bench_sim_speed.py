"""Benchmark: simulator speed with numerics, as a ratio to numpy.matmul in the same run; and
cost-only speed.

Stage: benchmark (simulate with numerics). Simulates the tiled bf16 matmul of
benchmarks/kernels/matmul_tutorial.py at SIZE^3 (default 2048) on NumPy inputs, times it, and
times ``numpy.matmul`` of the same arrays as float32 (best of a few runs each). Prints both times
and the ratio (target <= 3x). ``--profile`` prints the top cProfile entries of one simulated run.

``--cost-only`` instead times a cost-only run (placeholders, ``numerics=False``, trace +
schedule + report) of the kernel at lhsT [8192, 4096] x rhs [8192, 8192] (the published
tutorial size; 99,328 instructions for ``tiled``) ``--runs`` times (default 5) in one process
and prints the median CPU time (process time: the machine is shared) and wall time against the
issue-18 target (<= 1 s); ``--profile`` then profiles one more run.

    python benchmarks/bench_sim_speed.py [--size 2048] [--kernel tiled] [--profile]
    python benchmarks/bench_sim_speed.py --cost-only [--kernel tiled] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from pathlib import Path

import ml_dtypes
import numpy as np

from nkigen import sim
from nkigen.sim import blas

KERNELS_FILE = Path(__file__).parent / "kernels" / "matmul_tutorial.py"


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--kernel", default="tiled")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--cost-only", action="store_true", help="time a cost-only run instead")
    ap.add_argument("--runs", type=int, default=5, help="cost-only runs (median)")
    args = ap.parse_args(argv)
    if args.cost_only:
        return cost_only(args.kernel, args.runs, args.profile)

    kern = sim.load(KERNELS_FILE, "KERNELS")[args.kernel]
    n = args.size
    rng = np.random.default_rng(0)
    lhsT = rng.standard_normal((n, n), dtype=np.float32).astype(ml_dtypes.bfloat16)
    rhs = rng.standard_normal((n, n), dtype=np.float32).astype(ml_dtypes.bfloat16)
    a32, b32 = lhsT.astype(np.float32), rhs.astype(np.float32)

    out: list = []

    def simulate() -> None:
        out[:] = [sim.run(kern, [lhsT, rhs], target="trn1")]

    def numerics_only() -> None:
        sim.simulate(kern, target="trn1")(lhsT, rhs)

    t_np = best_of(lambda: np.matmul(a32.T, b32), max(3, args.repeat))
    with blas.single_threaded():
        t_np1 = best_of(lambda: np.matmul(a32.T, b32), max(3, args.repeat))
    t_num = best_of(numerics_only, args.repeat)
    t_sim = best_of(simulate, args.repeat)
    res = out[0]
    ref = a32.T @ b32
    err = float(np.abs(res.outputs[0].astype(np.float32) - ref).max() / np.abs(ref).max())
    load = os.getloadavg()[0]
    print(f"{args.kernel} matmul {n}^3 bf16, numerics on, {len(res.instrs)} instructions "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs; the simulator runs BLAS "
          "single-threaded, numpy.matmul uses every BLAS thread)")
    print(f"  simulator, nkigen.sim.simulate:  {t_num:8.3f} s")
    print(f"  simulator + cost estimate (run): {t_sim:8.3f} s")
    print(f"  numpy.matmul float32:            {t_np:8.3f} s")
    print(f"  numpy.matmul, 1 BLAS thread:     {t_np1:8.3f} s  (context: the simulator's setting)")
    print(f"  ratio simulate / numpy:          {t_num / t_np:8.2f} x   (target <= 3x)")
    print(f"  ratio run / numpy:               {t_sim / t_np:8.2f} x")
    print(f"  max |error| / max |ref|:         {err:.2e}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        simulate()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


def cost_only(kernel: str, runs: int, profile: bool) -> int:
    """Median CPU and wall time of cost-only runs at the tutorial size (see the docstring)."""
    kern = sim.load(KERNELS_FILE, "KERNELS")[kernel]
    args = [sim.placeholder((8192, 4096), "bfloat16"), sim.placeholder((8192, 8192), "bfloat16")]
    cpu: list[float] = []
    wall: list[float] = []
    res = None
    for _ in range(runs):
        res = None                          # the previous run's trace is freed outside the timing
        c0, w0 = time.process_time(), time.perf_counter()
        res = sim.run(kern, args, target="trn1", numerics=False)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    assert res is not None and res.report is not None
    load = os.getloadavg()[0]
    print(f"{kernel} matmul lhsT [8192, 4096] x rhs [8192, 8192] bf16, cost-only on trn1: "
          f"{len(res.instrs)} instructions, modelled latency {res.report.latency_us:.2f} us "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs)")
    print("  CPU s per run:  " + " ".join(f"{x:.3f}" for x in cpu))
    print(f"  median CPU:     {statistics.median(cpu):8.3f} s   (target <= 1 s)")
    print(f"  median wall:    {statistics.median(wall):8.3f} s")
    if profile:
        res = None
        prof = cProfile.Profile()
        prof.enable()
        sim.run(kern, args, target="trn1", numerics=False)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
