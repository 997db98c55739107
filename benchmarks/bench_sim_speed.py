"""Benchmark: simulator speed with numerics, as a ratio to numpy.matmul in the same run; and
cost-only speed.

Stage: benchmark (simulate with numerics). Simulates the tiled bf16 matmul of
benchmarks/kernels/matmul_tutorial.py at SIZE^3 (default 2048) on NumPy inputs, times it, and
times ``numpy.matmul`` of the same arrays as float32. Two floors are timed too: the run's
numerics without the interpreter (the same tile loads, widening and products, in the kernel's
order) and the products alone on operands already in cache; and the same matmul written in the
classic API as the tutorial does (benchmarks/kernels/matmul_classic.py). Every figure is the
median of ``--repeat`` (5) rounds that interleave all measurements, wall and CPU time. Prints the
times and the ratios (target <= 1.5x, issue 18). ``--profile`` prints the top cProfile entries of
one simulated run.

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
from nkigen.sim import batch, blas, gemm
from nkigen.sim.emit import widen

KERNELS_FILE = Path(__file__).parent / "kernels" / "matmul_tutorial.py"
CLASSIC_FILE = Path(__file__).parent / "kernels" / "matmul_classic.py"


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process: every thread)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def medians(fns: dict, repeat: int) -> dict:
    """Median wall and CPU seconds of each function over ``repeat`` rounds; the rounds
    interleave the functions, so a change in the machine's load hits all of them alike."""
    got: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            got[k].append(timed(fn))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in got.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--kernel", default="tiled")
    ap.add_argument("--repeat", type=int, default=5)
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

    classic = sim.load(CLASSIC_FILE, "KERNELS")["nl"]

    def classic_only() -> None:
        sim.simulate(classic, target="trn1")(lhsT, rhs)

    def np_multi() -> None:
        np.matmul(a32.T, b32)

    def np_single() -> None:
        with blas.single_threaded():
            np.matmul(a32.T, b32)

    def forced(on: bool):
        def fn() -> None:
            batch.FORCE = on
            try:
                numerics_only()
            finally:
                batch.FORCE = None
        return fn

    tm, tn, tk = 128, 512, 128      # the tiled kernel's tiles (matmul_tutorial.py)

    def data_work() -> None:
        """The run's numerics without the interpreter: in the kernel's loop order, each
        instruction's tile loads (bfloat16 copies out of the inputs), widening and the
        product into PSUM (nkigen.sim.gemm, the fast path's call), and the evictions."""
        with blas.single_threaded():
            for m0 in range(0, n, tm):
                for n0 in range(0, n, tn):
                    acc = np.empty((tm, tn), np.float32)
                    for k0 in range(0, n, tk):
                        a = np.empty((tk, tm), lhsT.dtype)
                        b = np.empty((tk, tn), rhs.dtype)
                        a[...] = lhsT[k0:k0 + tk, m0:m0 + tm]
                        b[...] = rhs[k0:k0 + tk, n0:n0 + tn]
                        if not gemm.into(acc, widen(a), widen(b), k0 > 0):
                            raise SystemExit("bench: gemm.into declined (no probed sgemm)")
                    acc.astype(lhsT.dtype)

    s_hot, m_hot = a32[:tk, :tm].copy(), b32[:tk, :tn].copy()

    def gemm_only() -> None:
        """The same number of TensorE products on operands already in cache: BLAS alone."""
        acc = np.zeros((tm, tn), np.float32)
        with blas.single_threaded():
            for _ in range((n // tm) * (n // tn) * (n // tk)):
                gemm.into(acc, s_hot, m_hot, True)

    simulate()          # warm-up (imports, kernel load)
    m = medians({"np": np_multi, "np1": np_single, "num": numerics_only, "sim": simulate,
                 "classic": classic_only,
                 "on": forced(True), "off": forced(False), "data": data_work,
                 "gemm": gemm_only}, args.repeat)
    (t_np, c_np), (t_np1, c_np1) = m["np"], m["np1"]
    (t_num, c_num), (t_sim, c_sim) = m["num"], m["sim"]
    res = out[0]
    ref = a32.T @ b32
    err = float(np.abs(res.outputs[0].astype(np.float32) - ref).max() / np.abs(ref).max())
    load = os.getloadavg()[0]
    print(f"{args.kernel} matmul {n}^3 bf16, numerics on, {len(res.instrs)} instructions, "
          f"median of {args.repeat} interleaved rounds (load average {load:.1f} on "
          f"{os.cpu_count()} CPUs; the simulator runs BLAS single-threaded, plus a worker "
          f"thread for TensorE products while a CPU is free (now: {batch.wanted()}); "
          "numpy.matmul uses every BLAS thread)")
    print("                                      wall        CPU (all threads)")
    print(f"  simulator, nkigen.sim.simulate:  {t_num:8.3f} s  {c_num:8.3f} s")
    print(f"  simulator + cost estimate (run): {t_sim:8.3f} s  {c_sim:8.3f} s")
    print(f"  classic API, tutorial style:     {m['classic'][0]:8.3f} s  {m['classic'][1]:8.3f} s"
          "   (matmul_classic.py: nl.load, acc += nl.matmul)")
    print(f"  simulate, TensorE worker on:     {m['on'][0]:8.3f} s  {m['on'][1]:8.3f} s")
    print(f"  simulate, TensorE worker off:    {m['off'][0]:8.3f} s  {m['off'][1]:8.3f} s")
    print(f"  numpy.matmul float32:            {t_np:8.3f} s  {c_np:8.3f} s")
    print(f"  numpy.matmul, 1 BLAS thread:     {t_np1:8.3f} s  {c_np1:8.3f} s")
    print(f"  numerics alone, no interpreter:  {m['data'][0]:8.3f} s  {m['data'][1]:8.3f} s"
          "   (same loads, widening, products)")
    print(f"  products alone, hot operands:    {m['gemm'][0]:8.3f} s  {m['gemm'][1]:8.3f} s"
          f"   ({(n // tm) * (n // tn) * (n // tk)} x sgemm {tm}x{tk}x{tn})")
    print(f"  ratio simulate / numpy:          {t_num / t_np:8.2f} x  {c_num / c_np:8.2f} x"
          "   (target <= 1.5x)")
    print(f"  ratio numerics alone / numpy:    {m['data'][0] / t_np:8.2f} x  "
          f"{m['data'][1] / c_np:8.2f} x   (the floor without interpreting the kernel)")
    print(f"  ratio products alone / numpy:    {m['gemm'][0] / t_np:8.2f} x  "
          f"{m['gemm'][1] / c_np:8.2f} x")
    print(f"  ratio run / numpy:               {t_sim / t_np:8.2f} x  {c_sim / c_np:8.2f} x")
    print(f"  ratio classic API / numpy:       {m['classic'][0] / t_np:8.2f} x  "
          f"{m['classic'][1] / c_np:8.2f} x")
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
