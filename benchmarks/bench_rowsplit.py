"""Decode-shaped rows (codegen/rowsplit.py): modelled latency of the one-row-per-partition pass
and of the split form, side by side, for the shipped row-reduction specs.

    python benchmarks/bench_rowsplit.py [--cases 1x4096,8x4096,1x8192] [--specs rmsnorm,...]

For each spec, dialect and target: the kernel generated as shipped (which takes the split form
where its trace-time rule says so) and the same spec generated with the split form switched off
(the per-row lengths set out of reach), both run cost-only in the simulator on the same case.
Prints ``old -> new us (ratio)``; ``=`` where the rule keeps the old pass (the two kernels then
run the same instructions). Figures are the nkigen cost model's, not measurements.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["rmsnorm", "residual_rmsnorm", "layernorm", "row_sum", "row_mean", "softmax",
         "log_softmax", "row_max"]


def _load(src: str, name: str):
    import nkigen.sim as sim
    mod = types.ModuleType(f"_bench_{name}")
    with sim.installed():
        exec(compile(src, f"<nkigen {name}>", "exec"), mod.__dict__)
    return getattr(mod, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="1x4096,8x4096,1x8192,16x8192")
    ap.add_argument("--specs", default=",".join(SPECS))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import nkigen.sim as sim
    from nkigen.codegen import generate, rowsplit
    from nkigen.frontend import load_spec
    from nkigen.testdata import make_inputs

    cases = [tuple(int(v) for v in c.split("x")) for c in args.cases.split(",")]
    knobs = ("ROW_ELEMS_PER_ROW", "REDUCE_ELEMS_PER_ROW")
    print("modelled latency, one row per partition -> split form (nkigen cost model)")
    for name in args.specs.split(","):
        spec = load_spec(str(ROOT / "specs" / f"{name}.yaml"))
        rows, cols = (s.name for s in spec.free_sizes)
        for dialect in ("nki", "neuronxcc"):
            for target in ("trn1", "trn2"):
                new = _load(generate(spec, target=target, dialect=dialect), spec.name)
                saved = {k: getattr(rowsplit, k) for k in knobs}
                try:
                    for k in knobs:
                        setattr(rowsplit, k, 10 ** 9)
                    old = _load(generate(spec, target=target, dialect=dialect), spec.name)
                finally:
                    for k, v in saved.items():
                        setattr(rowsplit, k, v)
                cells = []
                for m, d in cases:
                    ins = make_inputs(spec, {rows: m, cols: d})
                    args_ = [sim.placeholder(a.shape, str(a.dtype)) for a in ins.values()]
                    reports: list[Any] = [sim.run(k, args_, target, numerics=False).report
                                          for k in (old, new)]
                    a, b = (r.latency_us for r in reports)
                    cells.append(f"{m}x{d}: {a:6.2f} = " if abs(a - b) < 1e-9 else
                                 f"{m}x{d}: {a:6.2f} -> {b:6.2f} us ({a / b:4.2f}x)")
                print(f"{name:17s} {dialect:9s} {target}  " + "   ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
