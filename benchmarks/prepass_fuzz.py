"""Fuzz the plan pre-passes (codegen/einsum.py, hoist.py, turned.py) for wrong results,
internal errors and modelled-latency regressions.

Stage: benchmark (not imported by nkigen). Writes random valid specs that trigger the pre-passes
in combination (transposed reads of rank-2..4 inputs, column / middle-axis / whole-tensor /
nested / repeated reductions, sum-spelled contractions with factors, scans down the rows,
name collisions with the generated temp names, sizes 1 and ragged), then

* ``--build``: runs ``python -m nkigen build DIR -o OUT --keep-going -j 1`` for every
  ``--dialect nki|neuronxcc`` x ``--target trn2|trn1`` and lists the specs that failed;
* ``--perf``: models each spec's latency (trn2, cost-only simulation, largest test case) with
  the pre-passes and with them replaced by the identity, and lists the specs the pre-passes made
  more than 5 % slower.

Usage: ``python benchmarks/prepass_fuzz.py DIR [-n 200] [--seed 0] [--build] [--perf]``
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

FLOATS = ("float32", "bfloat16", "float16")
SIZES = (1, 2, 64, 127, 129, 300)
BIG = SIZES[2:]         # the sizes of the larger test case (--big)


def _case(rng: random.Random, names: list[str]) -> tuple[str, str]:
    batch = ("A", "B")      # leading (batch) sizes stay small: the CPU budget is modest
    small = {n: rng.choice((1, 2) if n in batch else (1, 2, 127)) for n in names}
    big = {n: rng.choice((1, 3) if n in batch else BIG) for n in names}
    fmt = lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"  # noqa: E731
    return fmt(small), fmt(big)


def _spec(name: str, rng: random.Random, sizes: list[str], inputs: dict[str, tuple[str, str]],
          outputs: dict[str, tuple[str, str]], compute: list[str],
          temps: dict[str, tuple[str, str]] | None = None, params: dict[str, float] | None = None,
          extra_out: str = "", positive: tuple[str, ...] = ()) -> str:
    small, big = _case(rng, sizes)
    lines = ["nkigen: 1", f"name: {name}", "doc: prepass fuzz", "sizes:"]
    lines += [f"  {s}: {{min: 1, max: 4096}}" for s in sizes]
    if params:
        lines.append("params:")
        lines += [f"  {k}: {v}" for k, v in params.items()]
    lines.append("inputs:")
    lines += [f"  {k}: {{shape: {s}, dtype: {d}}}" for k, (s, d) in inputs.items()]
    lines.append("outputs:")
    lines += [f"  {k}: {{shape: {s}, dtype: {d}{extra_out if k == 'y' else ''}}}"
              for k, (s, d) in outputs.items()]
    if temps:
        lines.append("temps:")
        lines += [f"  {k}: {{shape: {s}, dtype: {d}}}" for k, (s, d) in temps.items()]
    lines.append("compute:")
    lines += [f"  - {c}" for c in compute]
    lines += ["tests:", "  cases:", f"    - {small}", f"    - {big}"]
    if positive:
        lines.append("  inputs:")
        lines += [f"    {p}: {{dist: uniform, low: 0.5, high: 2.0}}" for p in positive]
    return "\n".join(lines) + "\n"


def _elementwise(rng: random.Random) -> str:
    return rng.choice([
        "{x} * 2.0 + {z}",
        "where({x} > 0.0, {x}, {z} * c)",
        "maximum({x}, {z}) * c",
        "exp({x}) - {z}",
        "{x} * v[n] + b[m]",
        "relu({x} - c) + {z} * b[m]",
        "abs({x}) + sigmoid({z})",
    ])


def gen(rng: random.Random, k: int) -> str:  # noqa: C901 (one branch per family)
    d = rng.choice(FLOATS)
    od = rng.choice(FLOATS)
    xname = rng.choice(["x", "x", "x_t", "y_t", "z"])
    fam = rng.choice(["ew2", "ew3", "ew4", "colred", "midred", "hoist", "whole", "nested",
                      "twice", "einsum", "scan", "multi", "intin"])
    name = f"f{k:03d}_{fam}"
    c = {"c": round(rng.uniform(0.1, 2.0), 2)}
    if fam in ("ew2", "intin"):
        body = _elementwise(rng).format(x=f"{xname}[n, m]", z="w[m, n]")
        ind = "int32" if fam == "intin" else d
        if fam == "intin":
            body = f"{xname}[n, m] * c + w[m, n]"
        return _spec(name, rng, ["M", "N"], {xname: ("[N, M]", ind), "w": ("[M, N]", d),
                                             "v": ("[N]", d), "b": ("[M]", d)},
                     {"y": ("[M, N]", od)}, [f"y[m, n] = {body}"], params=c)
    if fam == "ew3":
        body = _elementwise(rng).format(x=f"{xname}[a, n, m]", z="w[a, m, n]")
        return _spec(name, rng, ["A", "M", "N"], {xname: ("[A, N, M]", d),
                                                  "w": ("[A, M, N]", d), "v": ("[N]", d),
                                                  "b": ("[M]", d)},
                     {"y": ("[A, M, N]", od)}, [f"y[a, m, n] = {body}"], params=c)
    if fam == "ew4":
        return _spec(name, rng, ["A", "B", "M", "N"], {xname: ("[A, B, N, M]", d)},
                     {"y": ("[A, B, M, N]", od)},
                     [f"y[a, b, m, n] = {xname}[a, b, n, m] * c + 1.0"], params=c)
    if fam == "colred":
        op = rng.choice(["sum", "max", "min", "mean", "argmax", "argmin"])
        out = "int32" if op.startswith("arg") else od
        inner = rng.choice([f"{xname}[m, n]", f"{xname}[m, n] * w[n]",
                            f"where({xname}[m, n] > 0.0, {xname}[m, n], 0.0)"])
        return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d), "w": ("[N]", d)},
                     {"y": ("[N]", out)}, [f"y[n] = {op}({inner}, m)"])
    if fam == "midred":
        op = rng.choice(["sum", "max", "min", "mean", "argmax", "argmin"])
        out = "int32" if op.startswith("arg") else od
        return _spec(name, rng, ["B", "M", "N"], {xname: ("[B, M, N]", d)},
                     {"y": ("[B, N]", out)}, [f"y[b, n] = {op}({xname}[b, m, n], m)"])
    if fam == "hoist":
        op = rng.choice(["sum", "max", "min", "mean"])
        inner = rng.choice([f"square({xname}[j, n])", f"{xname}[j, n]", f"abs({xname}[j, n])"])
        stmt = rng.choice([
            f"y[m, n] = {xname}[m, n] * rsqrt({op}({inner}, j) * {op}({inner}, j) + 1.0)",
            f"y[m, n] = {xname}[m, n] - {op}({inner}, j)",
            f"y[m, n] = {xname}[m, n] + {op}({inner}, j) * c",
        ])
        return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)}, {"y": ("[M, N]", od)},
                     [stmt], params=c)
    if fam == "whole":
        op = rng.choice(["sum", "max", "min", "mean"])
        rank = rng.choice([1, 2])
        if rank == 1:
            return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)}, {"y": ("[M]", od)},
                         [f"y[m] = {xname}[m, 0] - {op}({xname}[i, j], i, j)"])
        return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)}, {"y": ("[M, N]", od)},
                     [f"y[m, n] = {xname}[m, n] / ({op}(abs({xname}[i, j]), i, j) + 1.0)"])
    if fam == "nested":
        return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)}, {"y": ("[M, N]", od)},
                     [rng.choice([
                         f"y[m, n] = {xname}[m, n] - mean({xname}[j, n] - max({xname}[i, n], i),"
                         " j)",
                         f"y[m, n] = {xname}[m, n] * sum(exp({xname}[j, n] - "
                         f"max({xname}[i, n], i)), j)"])])
    if fam == "twice":
        return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)},
                     {"y": ("[M, N]", od), "y_sum": ("[N]", od)},
                     [f"y[m, n] = ({xname}[m, n] - mean({xname}[j, n], j)) / "
                      f"(abs(mean({xname}[j, n], j)) + 2.0)",
                      f"y_sum[n] = sum({xname}[j, n], j) + max({xname}[j, n], j)"])
    if fam == "einsum":
        form = rng.choice(["2", "3"])
        if form == "2":
            return _spec(name, rng, ["M", "K", "N"], {"a": ("[M, K]", d), "bb": ("[K, N]", d)},
                         {"y": ("[M, N]", od)},
                         [f"y[m, n] = {rng.choice(['c * ', '', '0.5 * '])}sum(a[m, k] * "
                          "bb[k, n], k)"], params=c)
        return _spec(name, rng, ["B", "M", "D"], {"q": ("[B, M, D]", d), "kk": ("[B, M, D]", d)},
                     {"y": ("[B, M, M]", od)},
                     ["y[b, i, j] = sum(q[b, i, e] * kk[b, j, e], e) * 0.125"])
    if fam == "scan":
        kind = rng.choice(["cumsum", "rec", "rec0"])
        if kind == "cumsum":
            return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)}, {"y": ("[M, N]", od)},
                         [f"y[m, n] = cumsum({xname}[m, n] * c, m)"], params=c)
        init = ", initial: h0" if kind == "rec0" else ""
        ins = {xname: ("[M, N]", d)}
        if init:
            ins["h0"] = ("[N]", d)
        return _spec(name, rng, ["M", "N"], ins, {"y": ("[M, N]", od)},
                     [f"y[m, n] = c * y[m - 1, n] + (1 - c) * {xname}[m, n]"],
                     params={"c": round(rng.uniform(0.1, 0.9), 2)}, extra_out=init)
    if fam == "multi":
        return _spec(name, rng, ["M", "N"], {xname: ("[M, N]", d)},
                     {"y": ("[N, M]", od), "y_max": ("[M]", od)},
                     ["t[m, n] = exp(" + xname + "[m, n] * 0.5)",
                      "y[n, m] = t[m, n] * 2.0 + " + xname + "[m, n]",
                      "y_max[m] = max(t[m, n], n) - sum(" + xname + "[j, 0], j)"],
                     temps={"t": ("[M, N]", "float32")})
    raise AssertionError(fam)


def write(root: Path, n: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        p = root / f"f{k:03d}.yaml"
        p.write_text(gen(rng, k))
        out.append(p)
    return out


def build(root: Path) -> dict[str, list[str]]:
    """failed spec names per dialect/target combination (the build's manifest)."""
    failed: dict[str, list[str]] = {}
    for dialect in ("nki", "neuronxcc"):
        for target in ("trn2", "trn1"):
            out = root.parent / f"{root.name}_lib_{dialect}_{target}"
            r = subprocess.run([sys.executable, "-m", "nkigen", "build", str(root), "-o", str(out),
                                "--keep-going", "--dialect", dialect, "--target", target,
                                "-j", "1"], capture_output=True, text=True)
            (root.parent / f"{root.name}_{dialect}_{target}.log").write_text(r.stdout + r.stderr)
            bad = []
            try:
                man = json.loads((out / "manifest.json").read_text())
                for e in man.get("kernels", man.get("specs", [])):
                    if e.get("status") not in ("verified", "cached"):
                        bad.append(str(e.get("name", e)))
            except (OSError, ValueError):
                bad.append(f"(no manifest; exit {r.returncode})")
            failed[f"{dialect}/{target}"] = bad
    return failed


def perf(paths: list[Path], target: str = "trn2") -> list[tuple[str, float, float]]:
    """(spec, with pre-passes, without) modelled latency in us at the largest test case, for
    the specs the pre-passes made more than 5 % slower."""
    import numpy as np

    import nkigen.sim as sim
    from nkigen.codegen import einsum, hoist, turned
    from nkigen.frontend import load_spec_text
    from nkigen.pipeline import generate
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from codegen_check import load_source

    originals = (einsum.rewrite, hoist.rewrite, turned.rewrite)

    def latency(spec, case) -> float:  # type: ignore[no-untyped-def]
        kernel = load_source(generate(spec, target=target), spec.name)
        shapes = []
        for t in spec.inputs:
            dims = [int(eval(str(s), {}, dict(case))) for s in t.shape]  # noqa: S307
            shapes.append(sim.placeholder(tuple(dims), t.dtype.name if hasattr(t.dtype, "name")
                                          else str(t.dtype)))
        return float(sim.run(kernel, shapes, target=target, numerics=False).report.latency_us)

    worse = []
    for p in paths:
        spec = load_spec_text(p.read_text())
        case = max((dict(c) for c in spec.tests.cases),
                   key=lambda c: int(np.prod(list(c.values()))))
        try:
            einsum.rewrite, hoist.rewrite, turned.rewrite = originals
            on = latency(spec, case)
            einsum.rewrite = hoist.rewrite = (lambda s, *a, **k: s)  # type: ignore[assignment]
            turned.rewrite = lambda s, *a, **k: s  # type: ignore[assignment]
            off = latency(spec, case)
        except Exception as e:  # noqa: BLE001 (a fuzz driver: report and go on)
            print(f"  perf {p.name}: {type(e).__name__}: {str(e)[:200]}")
            continue
        finally:
            einsum.rewrite, hoist.rewrite, turned.rewrite = originals
        if on > off * 1.05:
            worse.append((p.name, on, off))
        print(f"  {p.name}: {on:.2f} us with, {off:.2f} us without", flush=True)
    return worse


def main() -> None:
    global BIG
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--big", default=",".join(map(str, BIG)),
                    help="comma-separated sizes the larger test case draws from (skewed shapes: "
                         "1,2,8,1000)")
    a = ap.parse_args()
    BIG = tuple(int(v) for v in a.big.split(","))
    paths = write(a.dir, a.n, a.seed)
    print(f"wrote {len(paths)} specs to {a.dir}")
    if a.build:
        for combo, bad in build(a.dir).items():
            print(f"{combo}: {len(bad)} failed: {' '.join(bad)}")
    if a.perf:
        worse = perf(paths)
        print(f"perf: {len(worse)} specs more than 5 % slower with the pre-passes")
        for name, on, off in worse:
            print(f"  {name}: {on:.2f} us with vs {off:.2f} us without")


if __name__ == "__main__":
    main()
