"""Benchmark: generated attention kernels vs hand-written expert kernels (issue 14 targets).

Stage: benchmark (spec -> generate -> simulate cost-only -> cost model -> table). Both sides run
in the same cost model (modeled estimates, not measurements), bf16 placeholders, numerics off:

* ``specs/attention_probs.yaml`` at M = N = 2048, D = 128 vs
  ``benchmarks/kernels/attention_expert.py:attention_probs_expert`` (the nki-samples
  ``attention_fwd_performance`` pattern cut after the softmax);
* ``specs/attention.yaml`` (softmax(scale q k^T) v, flash-style) at seqlen 4096, d 128 vs
  ``attention_expert`` (the same tutorial's pattern, whole attention).

Target: generated / expert <= 1.05 on each line.

    python benchmarks/bench_attention.py [--target trn2] [--target trn1] [--dialect neuronxcc]
"""

from __future__ import annotations

import argparse
import time
import types
from pathlib import Path

from nkigen import sim
from nkigen.analysis import analyze
from nkigen.codegen import plan_kernel, render
from nkigen.frontend import load_spec

ROOT = Path(__file__).resolve().parent.parent
EXPERT = Path(__file__).parent / "kernels" / "attention_expert.py"
TARGET_RATIO = 1.05

CASES = (
    # label, spec file, expert kernel, input shapes
    ("attention_probs M=N=2048 D=128", "attention_probs.yaml", "attention_probs_expert",
     [(2048, 128), (2048, 128)]),
    ("attention seqlen=4096 d=128", "attention.yaml", "attention_expert",
     [(4096, 128), (4096, 128), (4096, 128)]),
)


def _generated(spec_file: str, target: str, dialect: str = "nki"):
    spec = load_spec(ROOT / "specs" / spec_file)
    src = render(plan_kernel(spec, analyze(spec, target=target), target, dialect=dialect),
                 dialect)
    mod = types.ModuleType(f"_bench_{spec.name}")
    with sim.installed():
        exec(compile(src, f"<{spec.name}>", "exec"), mod.__dict__)
    return getattr(mod, spec.name)


def _run(kernel, shapes, target: str):
    t0 = time.perf_counter()
    res = sim.run(kernel, [sim.placeholder(s, "bfloat16") for s in shapes], target=target,
                  numerics=False)
    return res.report, time.perf_counter() - t0


def _busy(rep) -> str:
    b = getattr(rep, "engine_busy", {}) or {}
    return "/".join(f"{100 * float(b.get(k, 0.0)):.0f}" for k in ("tensor", "vector", "scalar",
                                                                  "dma"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", choices=("trn1", "trn2"))
    ap.add_argument("--dialect", default="nki", choices=("nki", "neuronxcc"),
                    help="dialect of the generated kernels (the expert kernels are nki)")
    args = ap.parse_args(argv)
    worst = 0.0
    for tgt in args.target or ["trn2"]:
        print(f"\nattention, cost model on {tgt}, generated in the {args.dialect} dialect "
              "(modeled estimates, not measurements)\n")
        hdr = (f"{'case':<32} {'ours us':>9} {'expert us':>10} {'ratio':>7} "
               f"{'HBM MB ours/expert':>19}  busy T/V/S/DMA % ours | expert")
        print(hdr)
        print("-" * len(hdr))
        for label, spec_file, expert, shapes in CASES:
            ours, _ = _run(_generated(spec_file, tgt, args.dialect), shapes, tgt)
            ref, _ = _run(sim.load(EXPERT, expert), shapes, tgt)
            ratio = ours.latency_us / ref.latency_us
            worst = max(worst, ratio)
            mb = f"{ours.hbm_bytes / 1e6:.1f}/{ref.hbm_bytes / 1e6:.1f}"
            print(f"{label:<32} {ours.latency_us:>9.1f} {ref.latency_us:>10.1f} {ratio:>7.3f} "
                  f"{mb:>19}  {_busy(ours)} | {_busy(ref)}")
    print(f"\nworst generated / expert: {worst:.3f} (target <= {TARGET_RATIO}: "
          f"{'met' if worst <= TARGET_RATIO else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
