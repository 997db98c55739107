"""Benchmark: modeled performance of nkigen-generated kernels (cost model, not measurements).

Stage: benchmark (spec -> generate -> simulate cost-only -> cost model -> table). Target trn1
unless ``--target``; bf16 placeholders, numerics off.

* matmul [4096 x 8192] @ [8192 x 8192] with the left operand stored contraction-major
  ``a[k, m]`` (lhsT [8192, 4096]), tiles {m:128, n:512, k:128}, block {m:16, n:2, k:8}:
  latency and TensorE HFU (target >= 85 %), side by side with the tutorial's fully blocked kernel
  (benchmarks/kernels/matmul_tutorial.py) run in the same model; also with ``order: [n, k, m]``
  (the tutorial's loop order: the same HBM bytes as the tutorial);
* the same product with the row-major left operand ``a[m, k]`` (needs a transpose);
* softmax, layernorm and rmsnorm at [4096, 8192] bf16: modeled latency vs the memory roofline
  (HBM bytes / per-core HBM bandwidth), MBU (target >= 60 %); layernorm and rmsnorm side by side
  with kernels of the tutorials' structure (benchmarks/kernels/row_tutorials.py) in the same
  model (target: generated / tutorial <= 1.0). The SDK has no standalone softmax tutorial.

    python benchmarks/bench_codegen_perf.py [--target trn1] [--quick] [--rows]

``--quick`` runs the matmuls at [1024 x 2048] @ [2048 x 2048] (seconds instead of minutes);
``--rows`` runs the row kernels only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import types
from pathlib import Path

from nkigen import sim
from nkigen.analysis import analyze
from nkigen.codegen import plan_kernel, render
from nkigen.frontend import load_spec
from nkigen.hw import target as hw_target
from nkigen.sim import cost

TUTORIAL = Path(__file__).parent / "kernels" / "matmul_tutorial.py"
ROW_TUTORIALS = Path(__file__).parent / "kernels" / "row_tutorials.py"

MATMUL = """
nkigen: 1
name: {name}
sizes: {{M: {{multiple_of: 128, max: 4096}}, K: {{multiple_of: 128}}, N: {{multiple_of: 512}}}}
inputs:
  a: {{shape: {ashape}, dtype: bfloat16}}
  b: {{shape: [K, N], dtype: bfloat16}}
outputs:
  c: {{shape: [M, N], dtype: bfloat16}}
compute:
  - c[m, n] += {aacc} * b[k, n]
schedule:
  tiles: {{m: 128, n: 512, k: 128}}
{blocks}"""

SOFTMAX = """
nkigen: 1
name: softmax_bench
sizes: {M: {}, N: {max: 8192}}
inputs: {x: {shape: [M, N], dtype: bfloat16}}
outputs: {y: {shape: [M, N], dtype: bfloat16}}
temps: {mx: {shape: [M], dtype: float32}, e: {shape: [M, N], dtype: float32},
        s: {shape: [M], dtype: float32}}
compute:
  - mx[m] = max(x[m, n], n)
  - e[m, n] = exp(x[m, n] - mx[m])
  - s[m] = sum(e[m, n], n)
  - y[m, n] = e[m, n] / s[m]
"""

LAYERNORM = """
nkigen: 1
name: layernorm_bench
sizes: {M: {}, N: {max: 8192}}
params: {eps: 1.0e-5}
inputs: {x: {shape: [M, N], dtype: bfloat16}, g: {shape: [N], dtype: bfloat16},
         b: {shape: [N], dtype: bfloat16}}
outputs: {y: {shape: [M, N], dtype: bfloat16}}
temps: {mu: {shape: [M], dtype: float32}, var: {shape: [M], dtype: float32}}
compute:
  - mu[m] = mean(x[m, n], n)
  - var[m] = mean(square(x[m, n] - mu[m]), n)
  - y[m, n] = (x[m, n] - mu[m]) * rsqrt(var[m] + eps) * g[n] + b[n]
"""

RMSNORM = """
nkigen: 1
name: rmsnorm_bench
sizes: {M: {}, N: {max: 8192}}
params: {eps: 1.0e-6}
inputs: {x: {shape: [M, N], dtype: bfloat16}, g: {shape: [N], dtype: bfloat16}}
outputs: {y: {shape: [M, N], dtype: bfloat16}}
temps: {r: {shape: [M], dtype: float32}}
compute:
  - r[m] = rsqrt(mean(square(x[m, n]), n) + eps)
  - y[m, n] = x[m, n] * r[m] * g[n]
"""


def _kernel(yaml_text: str, name: str, target: str):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"{name}.yaml"
        p.write_text(yaml_text)
        spec = load_spec(p)
    src = render(plan_kernel(spec, analyze(spec, target=target), target))
    mod = types.ModuleType(f"_bench_{name}")
    with sim.installed():
        exec(compile(src, f"<{name}>", "exec"), mod.__dict__)
    return getattr(mod, name)


def _run(kernel, shapes, target: str):
    t0 = time.perf_counter()
    args = [sim.placeholder(s, "bfloat16") for s in shapes]
    res = sim.run(kernel, args, target=target, numerics=False)
    rep = res.report if res.report is not None else cost.estimate(res.instrs, target)
    return rep, time.perf_counter() - t0


def _busy(rep) -> str:
    b = getattr(rep, "engine_busy", {}) or {}
    keys = ("tensor", "vector", "scalar", "dma")
    return "/".join(f"{100 * float(b.get(k, 0.0)):.0f}" for k in keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="trn1")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", action="store_true", help="row kernels only (no matmuls)")
    args = ap.parse_args(argv)
    tgt = args.target
    if args.rows:
        return _rows(tgt)
    M, K, N = (1024, 2048, 2048) if args.quick else (4096, 8192, 8192)
    print(f"nkigen generated kernels, cost model on {tgt} (modeled estimates, not measurements)")
    print(f"matmul [{M} x {K}] @ [{K} x {N}] bf16, tiles m128 n512 k128, block m16 n2 k8\n")
    hdr = f"{'kernel':<34} {'ms':>9} {'HFU %':>7} {'wall s':>7}  busy T/V/S/DMA %"
    print(hdr)
    print("-" * len(hdr))
    rows = {}
    # order [n, k, m]: the tutorial's loop order (each b block loaded once per n block); its
    # accumulator spans all of M, so the block factors are left to nkigen (fit SBUF)
    blocks = "  block: {m: 16, n: 2, k: 8}\n"
    tut_order = "  order: [n, k, m]\n"
    cases = [
        ("generated, a[k, m] (lhsT)", "mm_kmajor", "[K, M]", "a[k, m]", [(K, M), (K, N)],
         blocks),
        ("  same, order [n, k, m]", "mm_korder", "[K, M]", "a[k, m]", [(K, M), (K, N)],
         tut_order),
        ("generated, a[m, k] (transpose)", "mm_mmajor", "[M, K]", "a[m, k]", [(M, K), (K, N)],
         blocks),
    ]
    for label, name, ashape, aacc, shapes, sched in cases:
        kern = _kernel(MATMUL.format(name=name, ashape=ashape, aacc=aacc, blocks=sched),
                       name, tgt)
        rep, wall = _run(kern, shapes, tgt)
        rows[name] = rep
        print(f"{label:<34} {rep.latency_us / 1e3:>9.3f} {100 * rep.hfu:>7.2f} {wall:>7.1f}  "
              f"{_busy(rep)}  {rep.hbm_bytes / 1e6:.0f} MB")
    tut = sim.load(TUTORIAL, "matmul_fully_blocked")
    rep, wall = _run(tut, [(K, M), (K, N)], tgt)
    rows["tutorial"] = rep
    print(f"{'tutorial fully blocked (same model)':<34} {rep.latency_us / 1e3:>9.3f} "
          f"{100 * rep.hfu:>7.2f} {wall:>7.1f}  {_busy(rep)}  {rep.hbm_bytes / 1e6:.0f} MB")
    g, t, tr = rows["mm_kmajor"], rows["tutorial"], rows["mm_mmajor"]
    print(f"\ngenerated / tutorial latency: {g.latency_us / t.latency_us:.4f} "
          f"(<= 1.0 means no slower); HFU target 85 %: "
          f"{'met' if g.hfu >= 0.85 else 'NOT met'}")
    print(f"row-major a[m, k] / lhsT latency: {tr.latency_us / g.latency_us:.3f}")
    o = rows["mm_korder"]
    print(f"order [n, k, m] / tutorial: latency {o.latency_us / t.latency_us:.4f}, HBM bytes "
          f"{o.hbm_bytes / t.hbm_bytes:.3f} (default order: {g.hbm_bytes / t.hbm_bytes:.3f})")
    return _rows(tgt)


def _rows(tgt: str) -> int:
    hbm = hw_target(tgt).hbm_gbps_per_core
    RM, RN = 4096, 8192
    print(f"\nrow kernels [{RM} x {RN}] bf16 (roofline = HBM bytes / {hbm:.0f} GB/s)\n")
    hdr = (f"{'kernel':<12} {'ms':>8} {'roofline ms':>12} {'MBU %':>7} {'wall s':>7}  "
           "busy T/V/S/DMA %")
    print(hdr)
    print("-" * len(hdr))
    for name, text, shapes in (("softmax", SOFTMAX, [(RM, RN)]),
                               ("layernorm", LAYERNORM, [(RM, RN), (RN,), (RN,)]),
                               ("rmsnorm", RMSNORM, [(RM, RN), (RN,)])):
        kern = _kernel(text, f"{name}_bench", tgt)
        rep, wall = _run(kern, shapes, tgt)
        nbytes = sum(2 * _prod(s) for s in shapes) + 2 * RM * RN
        roof = nbytes / hbm / 1e6
        print(f"{name:<12} {rep.latency_us / 1e3:>8.3f} {roof:>12.3f} {100 * rep.mbu:>7.2f} "
              f"{wall:>7.1f}  {_busy(rep)}")
        if name in ("layernorm", "rmsnorm"):
            tut = sim.load(ROW_TUTORIALS, f"{name}_tutorial")
            trep, twall = _run(tut, shapes, tgt)
            label = "  tutorial"
            print(f"{label:<12} {trep.latency_us / 1e3:>8.3f} {roof:>12.3f} "
                  f"{100 * trep.mbu:>7.2f} {twall:>7.1f}  {_busy(trep)}")
            ratio = rep.latency_us / trep.latency_us
            print(f"  generated / tutorial: {ratio:.3f} "
                  f"({'met' if ratio <= 1.0 else 'NOT met'}: target <= 1.0)")
    return 0


def _prod(s) -> int:
    out = 1
    for x in s:
        out *= x
    return out


if __name__ == "__main__":
    raise SystemExit(main())
