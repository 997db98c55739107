"""CLI start-up: whole-process wall and CPU time of the commands a user types most.

    python benchmarks/bench_cli.py [-n RUNS]

Each command runs as a fresh ``python -m nkigen ...`` process (what the ``nkigen`` script
does), once to warm the file cache and then RUNS times (default 5); the median wall time and
the median CPU time (user + sys of the child, from ``getrusage``) are printed against the
targets. ``python -c pass`` is the floor. The no-op build first builds ``specs/`` into a
temporary folder (not timed), then times rebuilding it with nothing changed. On a shared
machine wall time includes waiting for a core: compare CPU time when the load is high.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"--version": 0.15, "check one spec": 1.0, "no-op build of specs/": 1.0}


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace')[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    run_once(argv)   # warm-up
    walls, cpus = zip(*(run_once(argv) for _ in range(runs)))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    nk = [py, "-m", "nkigen"]
    with tempfile.TemporaryDirectory() as d:
        lib = str(Path(d) / "lib")
        env_cache = {"NKIGEN_CACHE_DIR": str(Path(d) / "cache")}
        os.environ.update(env_cache)
        subprocess.run(nk + ["build", "specs", "-o", lib, "-j", "0"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        cases = [
            ("python -c pass (floor)", [py, "-c", "pass"]),
            ("--version", nk + ["--version"]),
            ("check one spec", nk + ["check", "specs/matmul_bias_gelu.yaml"]),
            ("no-op build of specs/", nk + ["build", "specs", "-o", lib]),
        ]
        print(f"whole process, median of {args.runs} runs after one warm-up")
        print(f"{'command':<24}  {'wall s':>7}  {'cpu s':>6}  target (wall)")
        for label, argv in cases:
            wall, cpu = measure(argv, args.runs)
            target = TARGETS.get(label)
            shown = f"<= {target:.2f} s" if target is not None else "-"
            print(f"{label:<24}  {wall:7.3f}  {cpu:6.3f}  {shown}")


if __name__ == "__main__":
    main()
