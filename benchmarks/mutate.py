"""Mutation benchmark (issue 17): do the tests catch deliberate bugs?

Each mutant is one small source edit (a sign flip, an off-by-one, a loosened limit, a swapped
dtype, a skipped check) in the simulator, the reference, codegen, the library builder or the
cost model. For each, a copy of the package and tests is edited and only the test files relevant
to that module run, with ``-x``; a mutant is *killed* when they fail. Prints one line per mutant
and the kill rate. A mutant whose edit no longer applies (the code moved) is reported as
``stale`` and left out of the rate.

Usage: ``python benchmarks/mutate.py [-k SUBSTRING] [--timeout S]`` from the repository root.
Not a test: it takes minutes (about 40 mutants x a few targeted test files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SIM = ["tests/test_boundaries.py", "tests/test_sim_strict.py", "tests/test_sim_api.py",
       "tests/test_sim_isa_extra.py", "tests/test_sim_kernels.py"]
REF = ["tests/test_boundaries_tolerance.py", "tests/test_reference.py",
       "tests/test_reference_testdata.py"]
CODEGEN = ["tests/test_codegen_golden.py", "tests/test_codegen.py"]   # ~2 min when none fails
LIB = ["tests/test_boundaries_tolerance.py", "tests/test_faults.py", "tests/test_build.py",
       "tests/test_build_suite.py", "tests/test_build_hardening.py",
       "tests/test_security_build.py"]
COST = ["tests/test_boundaries_cost.py", "tests/test_cost.py", "tests/test_cost_sim.py"]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


def m(name: str, file: str, old: str, new: str, tests: list[str]) -> Mutant:
    return Mutant(name, file, old, new, tuple(tests))


MUTANTS = [
    # ---- simulator limits and numerics ----
    m("sim: stationary limit +1", "nkigen/sim/isa_move.py",
      "if m > hw.GEMM_STATIONARY_FMAX:", "if m > hw.GEMM_STATIONARY_FMAX + 1:", SIM),
    m("sim: moving limit x2", "nkigen/sim/isa_move.py",
      "if n > hw.GEMM_MOVING_FMAX:", "if n > 2 * hw.GEMM_MOVING_FMAX:", SIM),
    m("sim: partition limit +1", "nkigen/sim/tensor.py",
      "if shape[0] > hw.PMAX:", "if shape[0] > hw.PMAX + 1:", SIM),
    m("sim: SBUF capacity +20%", "nkigen/sim/state.py",
      "Pool(Mem.SBUF, self.target.sbuf_bytes_per_partition)",
      "Pool(Mem.SBUF, int(self.target.sbuf_bytes_per_partition * 1.2))", SIM),
    m("sim: PSUM/SBUF engine limits swapped", "nkigen/sim/emit.py",
      "lim = hw.PSUM_FMAX_ELEMS_ENGINE if mem is _PSUM else hw.SBUF_FMAX_ELEMS",
      "lim = hw.SBUF_FMAX_ELEMS if mem is _PSUM else hw.SBUF_FMAX_ELEMS", SIM),
    m("sim: PSUM bank edge off by 4 B", "nkigen/sim/isa_move.py",
      "(reg.b1 - 1) // hw.PSUM_BANK_BYTES:", "(reg.b1 - 5) // hw.PSUM_BANK_BYTES:", SIM),
    m("sim: bn_stats limit +1", "nkigen/sim/isa_compute.py",
      "if n > hw.BN_STATS_FMAX:", "if n > hw.BN_STATS_FMAX + 1:", SIM),
    m("sim: vector transpose 33x33", "nkigen/sim/isa_move.py",
      "lim = hw.PMAX if eng is _E_TENSOR else 32",
      "lim = hw.PMAX if eng is _E_TENSOR else 33", SIM),
    m("sim: matmul sign flip", "nkigen/sim/isa_move.py",
      "s, mv = read(stationary), read(moving)",
      "s, mv = -read(stationary), read(moving)", SIM),
    m("sim: exp is expm1", "nkigen/sim/ops.py",
      '"exp": np.exp,', '"exp": np.expm1,', SIM),
    m("sim: AP free dims 5", "nkigen/sim/emit.py",
      "_ap_dims(t.shape[1:], t.strides[1:]) > hw.MAX_AP_FREE_DIMS:",
      "_ap_dims(t.shape[1:], t.strides[1:]) > hw.MAX_AP_FREE_DIMS + 1:", SIM),
    # ---- reference and tolerances ----
    m("ref: accumulate subtracts", "nkigen/reference.py",
      "data = values[stmt.target] + data", "data = values[stmt.target] - data", REF),
    m("ref: mean off by one", "nkigen/reference.py",
      "v = _Val(v.data / self.ftype(count), v.axes)",
      "v = _Val(v.data / self.ftype(count + 1), v.axes)", REF),
    m("ref: relu is abs", "nkigen/reference.py",
      "Func.RELU: lambda x: np.maximum(x, 0),", "Func.RELU: lambda x: np.abs(x),", REF),
    m("ref: sigmoid sign", "nkigen/reference.py",
      "z = np.exp(-np.abs(x))", "z = np.exp(np.abs(x))", REF),
    m("ref: outputs not rounded to dtype", "nkigen/reference.py",
      "return decl.dtype.round(data).astype(ftype)", "return data.astype(ftype)", REF),
    m("dtypes: bfloat16 rounds as float16", "nkigen/dtypes.py",
      "DType.bfloat16: np.dtype(ml_dtypes.bfloat16),",
      "DType.bfloat16: np.dtype(np.float16),", REF),
    m("tol: storage flips x10", "nkigen/testdata.py",
      "STORE_FLIPS = 4.0", "STORE_FLIPS = 40.0", REF),
    m("tol: accumulation slack x10", "nkigen/testdata.py",
      "ACC_FACTOR = 8.0", "ACC_FACTOR = 80.0", REF),
    m("tol: transcendental allowance x512", "nkigen/testdata.py",
      "**{f: 2.0**-16 for f in", "**{f: 2.0**-7 for f in", REF),
    # ---- codegen ----
    m("codegen: classic affine loops sequential", "nkigen/templates/neuronxcc/ops.j2",
      '"parallel": "nl.affine_range"', '"parallel": "nl.sequential_range"', CODEGEN),
    m("codegen: matmul cost model cycles", "nkigen/codegen/matmul.py",
      "+ 128 / t.tensor_ghz", "+ 256 / t.tensor_ghz",
      ["tests/test_boundaries_cost.py", *CODEGEN]),
    m("codegen: slice stop off by one", "nkigen/codegen/render.py",
      "stop = sympy.expand(start + (size - 1) * step + 1)",
      "stop = sympy.expand(start + size * step + 1)", CODEGEN),
    m("codegen: column-reduce tile Min -> Max", "nkigen/codegen/colreduce.py",
      "P.Let(qsz, Min(sympy.Integer(GEMM_MOVING_FMAX), S(fsz) - S(q0))),",
      "P.Let(qsz, Max(sympy.Integer(GEMM_MOVING_FMAX), S(fsz) - S(q0))),", CODEGEN),
    # ---- library ----
    m("lib: tolerance x10 looser", "nkigen/library/unit.py",
      "(err <= atol + rtol * np.abs(want))", "(err <= 10 * (atol + rtol * np.abs(want)))", LIB),
    m("lib: goldens from the kernel output", "nkigen/library/unit.py",
      "{t.name: a for t, a in zip(spec.inputs, args)}, expected))",
      "{t.name: a for t, a in zip(spec.inputs, args)}, got))", LIB),
    m("lib: lax kernel dropped from invalid cases", "nkigen/library/unit.py",
      '    raise NkigenError(Diagnostic(\n        loc, "sizes", f"kernel accepted invalid sizes',
      '    return None\n    raise NkigenError(Diagnostic(\n        loc, "sizes", '
      'f"kernel accepted invalid sizes', LIB),
    m("lib: golden outputs always float32", "nkigen/library/golden.py",
      'out[f"output.{name}"] = f32 if exact else ref', 'out[f"output.{name}"] = f32', LIB),
    m("lib: suite rtol x1000", "nkigen/templates/library/conftest.py.j2",
      "rtol=rtol, atol=atol,", "rtol=rtol * 1000, atol=atol * 1000,", LIB),
    m("lib: suite ignores a missing golden output", "nkigen/templates/library/conftest.py.j2",
      "if sorted(expected) != sorted(outputs):", "if False:", LIB),
    m("lib: cache skips the hash check", "nkigen/library/cache.py",
      "or sha256_file(p) != digest:", "or False:", LIB),
    m("lib: cache key ignores the target", "nkigen/library/cache.py",
      "for part in (hashlib.sha256(spec_bytes).hexdigest(), version, str(target), dialect,",
      "for part in (hashlib.sha256(spec_bytes).hexdigest(), version, dialect,", LIB),
    m("lib: failures written without --keep-going", "nkigen/library/build.py",
      'if any(r.status == "failed" for r in results) and not options.keep_going:',
      'if any(r.status == "failed" for r in results) and options.keep_going:', LIB),
    m("lib: duplicate names allowed", "nkigen/library/build.py",
      "if r.status != \"failed\" and len(same) > 1:",
      "if r.status != \"failed\" and len(same) > 2:", LIB),
    m("lib: shared lock", "nkigen/library/atomic.py",
      "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
      "fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)", LIB),
    m("lib: OS error is a spec failure", "nkigen/library/build.py",
      "broken = next((r for r in results if r.os_error), None)", "broken = None", LIB),
    m("lib: no re-check at link time", "nkigen/library/build.py",
      'if r.status == "cached" and cache.sha256_file(tmp / rel) != digest:', "if False:", LIB),
    m("lib: tune symlink followed", "nkigen/library/build.py",
      "if src.is_symlink() or not src.is_dir():", "if not src.is_dir():", LIB),
    # ---- cost model ----
    m("cost: DMA in-flight 8", "nkigen/sim/cost_rules.py",
      "dma_inflight: int = 4", "dma_inflight: int = 8", COST),
    m("cost: small-chunk efficiency 0.3", "nkigen/sim/cost_rules.py",
      "dma_small_chunk_eff: float = 0.25", "dma_small_chunk_eff: float = 0.3", COST),
    m("cost: fp32 matmul 2x not 4x", "nkigen/sim/cost_rules.py",
      'return cyc * (2.0 if ins.attrs.get("onezero") else 4.0)',
      'return cyc * (2.0 if ins.attrs.get("onezero") else 2.0)', COST),
    m("cost: no MIN_II floor", "nkigen/sim/cost_rules.py",
      "return max(float(p.min_ii), cycles)", "return cycles", COST),
    m("cost: DMA fixed cost dropped from latency", "nkigen/sim/cost_rules.py",
      "return k, occ, xfer + target.dma_fixed_ns", "return k, occ, xfer", COST),
]


def run_mutant(mu: Mutant, timeout: float) -> tuple[str, float, str]:
    with tempfile.TemporaryDirectory(prefix="nkigen-mutant-") as d:
        work = Path(d)
        work = work / "repo"     # the tests read specs/, examples/... next to the package
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(
            "__pycache__", ".git", "*.egg-info", ".mypy_cache", ".ruff_cache"))
        if mu.file:
            target = work / mu.file
            src = target.read_text()
            if src.count(mu.old) != 1:
                return "stale", 0.0, f"edit applies {src.count(mu.old)} times"
            target.write_text(src.replace(mu.old, mu.new))
        tests = [t for t in mu.tests if (work / t).exists()]
        env = dict(os.environ, PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="1")
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                "no:cacheprovider", *tests], cwd=work, env=env,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed", time.perf_counter() - t0, "timeout"
        dt = time.perf_counter() - t0
        if r.returncode == 0:
            return "SURVIVED", dt, ""
        fail = next((ln for ln in r.stdout.splitlines() if ln.startswith("FAILED")),
                    r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "")
        return "killed", dt, fail[:120]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only mutants whose name contains this")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    # baseline: every test group passes unmutated, else a "kill" would mean nothing
    for group in (SIM, REF, CODEGEN, LIB, COST):
        status, dt, why = run_mutant(Mutant("baseline", "", "", "", tuple(group)), args.timeout)
        print(f"baseline {dt:6.1f}s  {' '.join(group)}  {why}", flush=True)
        if status != "SURVIVED":
            print("baseline fails: fix the tests first", file=sys.stderr)
            return 1
    counts = {"killed": 0, "SURVIVED": 0, "stale": 0}
    survivors = []
    for mu in MUTANTS:
        if args.k not in mu.name:
            continue
        status, dt, why = run_mutant(mu, args.timeout)
        counts[status] += 1
        if status == "SURVIVED":
            survivors.append(mu.name)
        print(f"{status:8s} {dt:6.1f}s  {mu.name}  {why}", flush=True)
    live = counts["killed"] + counts["SURVIVED"]
    rate = 100.0 * counts["killed"] / live if live else 0.0
    print(f"\nkill rate: {counts['killed']}/{live} = {rate:.1f} %  (stale: {counts['stale']})")
    for s in survivors:
        print(f"  survived: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
