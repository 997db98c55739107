"""Compare two folders of classic kernels (``SPEC.py`` from ``nkigen gen --dialect neuronxcc``)
at every test size of their specs: outputs bit-identical, the same instruction stream (what the
cost model sees of each instruction, its read and write regions included) and, with ``--cost``,
the same modeled latency.

Stage: measurement (issue 12: a change to how accesses are spelled must leave the kernels'
results and cost unchanged).

    python benchmarks/classic_same_stream.py BEFORE AFTER [--cost] [SPEC ...]
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _sig(i) -> tuple:
    return (i.engine, i.op.rsplit(".", 1)[-1], i.partitions, i.free, i.dtype, i.out_dtype,
            i.stationary_free, i.moving_free, i.nbytes, i.chunk_bytes, i.transpose,
            i.accumulate, i.in_psum, len(i.reads),
            tuple((r.mem, r.p0, r.p1, r.b0, r.b1) for r in i.writes),
            tuple((r.mem, r.p0, r.p1, r.b0, r.b1) for r in i.reads))


def main(argv: list[str] | None = None) -> int:
    import nkigen.sim as sim
    from nkigen.frontend import load_spec
    from nkigen.testdata import cases, make_inputs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--cost", action="store_true", help="also the cost model's latency")
    args = ap.parse_intermixed_args(argv)

    def load(folder: Path, stem: str, name: str):
        mod = types.ModuleType(f"_k_{stem}")
        with sim.installed():
            exec(compile((folder / f"{stem}.py").read_text(), f"<{folder.name}/{stem}>",
                         "exec"), mod.__dict__)
        return getattr(mod, name)

    bad = 0
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        if args.specs and path.stem not in args.specs:
            continue
        spec = load_spec(path)
        kb, ka = (load(d, path.stem, spec.name) for d in (args.before, args.after))
        for case in cases(spec):
            ins = list(make_inputs(spec, case).values())
            rb, ra = (sim.run(k, ins, report=args.cost) for k in (kb, ka))
            same_out = all(np.array_equal(x, y, equal_nan=True)
                           for x, y in zip(rb.outputs, ra.outputs))
            same_ins = [_sig(i) for i in rb.instrs] == [_sig(i) for i in ra.instrs]
            lat = (rb.report.latency_us, ra.report.latency_us) if args.cost else None
            ok = same_out and same_ins and (lat is None or lat[0] == lat[1])
            bad += not ok
            if args.cost or not ok:
                print(f"{path.stem} {case}: outputs {'same' if same_out else 'DIFFER'}, "
                      f"instructions {'same' if same_ins else 'DIFFER'} ({len(ra.instrs)})"
                      + (f", latency {lat[0]:.3f} -> {lat[1]:.3f} us" if lat else ""))
    print(f"cases that differ: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
