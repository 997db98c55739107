"""Benchmark of ``--executor ray``: a cold library build on a local Ray instance vs the local pool.

Input: a spec folder (default ``specs/``), of which the first ``--count`` specs are built.
Output: printed figures: wall time of a cold build with the local executor at -j 1 and -j 2 and
on a local Ray instance with ``--cpus`` CPUs (its start-up and the workers' first imports timed
apart; once with each test case and tuning simulation a Ray task of its own, the default, and
once with one task per spec), the speed-ups, whether the Ray libraries are byte-identical to the
local one, the per-task overhead of each executor
(``--tasks`` empty tasks), and from how many specs a Ray cluster of W workers beats this machine's
local pool: ``n * (t + o) / W + s < n * t / 2``, i.e. ``n > s / (t / 2 - (t + o) / W)``, with
``t`` the mean build time of a spec, ``o`` Ray's overhead per spec (the Ray build's wall time
over the local -j 2 one, per spec) and ``s`` the start-up (or connection) time plus one cold
import of nkigen in a fresh worker.
Run: ``python benchmarks/bench_ray.py [SPECS] [--count N] [--cpus 2]``.
Needs ray (``pip install 'nkigen[ray]'``); keep ``--count`` small on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def timed_build(specs: Path, out: Path, stages, **kw) -> tuple[float, object]:
    from nkigen.library.build import BuildOptions, build

    t0 = time.perf_counter()
    rep = build(BuildOptions((str(specs),), str(out), progress=False, **kw), stages)
    return time.perf_counter() - t0, rep


def empty() -> int:
    return os.getpid()


def per_task(ex, n: int) -> float:
    """Seconds per empty task through ``ex``, after one warm-up batch."""
    for _ in ex.map_unordered(empty, [()] * 4):
        pass
    t0 = time.perf_counter()
    for _ in ex.map_unordered(empty, [()] * n):
        pass
    return (time.perf_counter() - t0) / n


def cold_import() -> float:
    """Seconds a fresh worker process spends importing the pipeline (once per worker)."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from nkigen.library.stages import real_stages; "
                    "real_stages(); from nkigen.library.cache import package_hash; "
                    "package_hash()"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="?", default="specs")
    ap.add_argument("--count", type=int, default=12, help="build the first N specs")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--tasks", type=int, default=200, help="empty tasks for the overhead")
    args = ap.parse_args()

    import ray

    from nkigen.library.executor import LocalExecutor, RayExecutor
    from nkigen.library.stages import real_stages

    stages = real_stages()   # import cost paid once, outside the timings
    chosen = sorted(p for p in Path(args.specs).iterdir() if p.suffix in (".yaml", ".yml"))
    chosen = chosen[:args.count]
    with tempfile.TemporaryDirectory(prefix="nkigen-bench-ray-") as d:
        specs = Path(d) / "specs"
        specs.mkdir()
        for p in chosen:
            shutil.copy(p, specs / p.name)
        n = len(chosen)
        t1, rep1 = timed_build(specs, Path(d) / "j1", stages, jobs=1)
        t2, _ = timed_build(specs, Path(d) / "j2", stages, jobs=2)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=200 * 1024 * 1024)
        t_start = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()     # warm-up: workers started, nkigen imported in them
            warm_dir = Path(d) / "warm-specs"
            warm_dir.mkdir()
            shutil.copy(chosen[0], warm_dir / chosen[0].name)
            timed_build(warm_dir, Path(d) / "warm", stages, executor="ray")
            t_warm = time.perf_counter() - t0
            with RayExecutor(nested=False) as whole:     # one task per spec
                tw, rep_w = timed_build(specs, Path(d) / "ray-spec", stages, executor=whole)
            tr, rep_r = timed_build(specs, Path(d) / "ray", stages, executor="ray")
            same = snapshot(Path(d) / "ray") == snapshot(Path(d) / "j1") \
                == snapshot(Path(d) / "ray-spec")
            with RayExecutor() as rex:
                o_ray = per_task(rex, args.tasks)
        finally:
            ray.shutdown()
        o_local = per_task(LocalExecutor(2), args.tasks)
    warm = cold_import()

    failed = len(rep1.failed) + len(rep_r.failed) + len(rep_w.failed)  # type: ignore[attr-defined]
    t_spec = sum(r.seconds for r in rep1.results) / max(n, 1)   # type: ignore[attr-defined]
    o_spec = max(0.0, (tr - t2) / max(n, 1))
    print(f"{n} specs of {args.specs} ({failed} failed), cold builds, wall time:")
    print(f"  local -j 1        {t1:7.2f} s   ({t_spec:.2f} s per spec)")
    print(f"  local -j 2        {t2:7.2f} s   speed-up x{t1 / t2:.2f} over -j 1")
    print(f"  ray, {args.cpus} CPUs      {tr:7.2f} s   speed-up x{t1 / tr:.2f} over -j 1, "
          f"x{t2 / tr:.2f} over -j 2 (+ {t_start:.1f} s to start the local Ray instance, "
          f"{t_warm:.1f} s for a warm-up build of one spec)")
    print(f"  ray, {args.cpus} CPUs, one task per spec (cases and tuning inside it) "
          f"{tw:7.2f} s   x{t1 / tw:.2f} over -j 1; per-case tasks vs it: x{tw / tr:.2f}")
    print(f"  ray libraries byte-identical to the local one: {same}")
    print(f"per-task overhead ({args.tasks} empty tasks): ray {1e3 * o_ray:.2f} ms, "
          f"local pool (2 processes) {1e3 * o_local:.2f} ms; ray vs local -j 2 per spec "
          f"{1e3 * o_spec:.0f} ms")
    print(f"a fresh Ray worker imports nkigen once: {warm:.1f} s")
    print("a Ray cluster of W one-CPU workers beats local -j 2 here from n specs "
          f"(t = {t_spec:.2f} s/spec, o = {o_spec:.2f} s/spec, s = start-up + one import):")
    for s_label, s in ((f"connect 2 s + {warm:.0f} s", 2.0 + warm),
                       (f"local start {t_start:.0f} s + {warm:.0f} s", t_start + warm)):
        cells = []
        for w in (4, 8, 32, 128):
            gain = t_spec / 2 - (t_spec + o_spec) / w
            cells.append(f"W={w}: {'never' if gain <= 0 else f'n > {s / gain:.0f}'}")
        print(f"  {s_label:24} " + ", ".join(cells))
    return 0 if same and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
