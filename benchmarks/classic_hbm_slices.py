"""Count the basic slices of HBM tensors that run past the tensor's end in classic kernels.

Stage: measurement (issue 12, last blocker). Runs each classic kernel (generated from specs/,
or read from a folder of ``SPEC.py`` files written by ``nkigen gen --dialect neuronxcc``) in the
simulator at its spec's test sizes and its smallest legal sizes, and with ``--blocks`` also
cost-only at sizes just past 2048 (every block ragged; batch-like sizes kept small), and
records every slice of an HBM tensor that passes its end: the simulator's classic indexing
accepts one only as an nl.arange index in disguise (nkigen/sim/classic/tile.py
``_slices_as_index``), so every such slice goes through there. Prints the kernel lines
(sites) per spec and the total.

    python benchmarks/classic_hbm_slices.py [--dir DIR] [--blocks] [SPEC ...]
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BATCH = ("B", "H", "KV", "J", "S")      # sizes kept at their smallest in --blocks runs


def smallest(spec) -> dict[str, int]:
    return {s.name: -(-max(s.min, 1) // (s.multiple_of or 1)) * (s.multiple_of or 1)
            for s in spec.free_sizes}


def past_blocks(spec) -> dict[str, int]:
    """Each size at its smallest legal value past 2048 (its max if lower), batch-like ones at
    their smallest."""
    out = smallest(spec)
    for s in spec.free_sizes:
        if s.name in _BATCH:
            continue
        m = s.multiple_of or 1
        v = (2048 // m + 1) * m
        if s.max is not None and v > s.max:
            v = s.max // m * m
        out[s.name] = max(v, s.min)
    return out


def main(argv: list[str] | None = None) -> int:
    import nkigen.sim as sim
    from nkigen.codegen import generate
    from nkigen.frontend import load_spec
    from nkigen.sim.classic import tile
    from nkigen.sim.runner import placeholder
    from nkigen.testdata import cases, make_inputs, resolve_sizes, shape_of

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", type=Path)
    ap.add_argument("--dir", type=Path, help="read SPEC.py kernels from here")
    ap.add_argument("--blocks", action="store_true", help="also sizes just past 2048")
    args = ap.parse_args(argv)
    specs = args.specs or sorted((ROOT / "specs").glob("*.yaml"))

    hits: list[int] = []
    orig = tile._slices_as_index

    def record(base, key):
        f = sys._getframe(1)
        while f is not None and f.f_code.co_filename != "<classic kernel>":
            f = f.f_back
        hits.append(f.f_lineno if f else 0)
        return orig(base, key)

    tile._slices_as_index = record
    total = specs_hit = 0
    for path in specs:
        spec = load_spec(path)
        src = (args.dir / f"{path.stem}.py").read_text() if args.dir \
            else generate(spec, dialect="neuronxcc")
        mod = types.ModuleType(f"_k_{path.stem}")
        with sim.installed():
            exec(compile(src, "<classic kernel>", "exec"), mod.__dict__)
        kern = getattr(mod, spec.name)
        hits.clear()
        for case in [*cases(spec), smallest(spec)]:
            sim.run(kern, list(make_inputs(spec, case).values()), report=False)
        if args.blocks:                 # cost-only: placeholders, nothing computed
            env = {**spec.param_values(), **resolve_sizes(spec, past_blocks(spec))}
            ins = [placeholder(shape_of(t, env), t.dtype.np) for t in spec.inputs]
            sim.run(kern, ins, numerics=False, report=False)
        sites = sorted(set(hits))
        if sites:
            specs_hit += 1
            total += len(sites)
            print(f"{path.stem}: {len(sites)} sites (kernel lines {sites})")
    print(f"total: {total} HBM slice sites past the end in {specs_hit} of {len(specs)} specs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
