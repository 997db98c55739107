"""Benchmark: modelled latency of reversed reads (review 7 R7-1).

Stage: benchmark (spec text -> generate -> simulate cost-only -> cost model -> table). Four
statements reading ``x`` with reversed rows, a reversed free axis, both, and a scan over a
reversed free axis, float32 at 130 x 300 and 1024 x 2048, nki/trn2 and neuronxcc/trn1. Run it
on two trees to compare (``PYTHONPATH=<tree> python benchmarks/bench_reversed_reads.py``); a
kernel the tree's simulator refuses prints ``refused``.
"""

from __future__ import annotations

import nkigen.sim as sim
from nkigen.frontend import load_spec_text
from nkigen.pipeline import generate
from nkigen.sim.errors import SimError

SPEC = """nkigen: 1
name: rev
doc: d
sizes:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 130, N: 37}
"""
STATEMENTS = ("y[m, n] = 2.0 * x[M - 1 - m, n]", "y[m, n] = 2.0 * x[m, N - 1 - n] + x[m, n]",
              "y[m, n] = x[M - 1 - m, N - 1 - n] + x[m, n]",
              "y[m, n] = cumsum(x[m, N - 1 - n], n)")


def main() -> None:
    import types
    for st in STATEMENTS:
        spec = load_spec_text(SPEC.replace("STATEMENT", st))
        for m, n in ((130, 300), (1024, 2048)):
            for dialect, target in (("nki", "trn2"), ("neuronxcc", "trn1")):
                src = generate(spec, target=target, dialect=dialect)
                mod = types.ModuleType("_bench_rev")
                with sim.installed():
                    exec(compile(src, "<bench>", "exec"), mod.__dict__)
                try:
                    res = sim.run(getattr(mod, spec.name), [sim.placeholder((m, n), "float32")],
                                  target=target, numerics=False)
                    lat = f"{res.report.latency_us:.2f} us"
                except SimError:
                    lat = "refused"
                print(f"{st:46s} {m:5d} x {n:<5d} {dialect:9s} {target}: {lat}")


if __name__ == "__main__":
    main()
