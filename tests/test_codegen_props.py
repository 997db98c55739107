"""Property tests: random contraction and element-wise specs (random index names, ranks,
operand layouts, ragged sizes) generate kernels that match the reference in the simulator."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nkigen.frontend import load_spec

sys.path.insert(0, str(Path(__file__).parent))
from codegen_check import check_case  # noqa: E402

NAMES = ["i", "j", "k", "m", "n", "p", "q", "r", "s", "t"]
SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _load(text: str):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "prop.yaml"
        p.write_text(text)
        return load_spec(p)


@st.composite
def contraction(draw):
    idx = draw(st.permutations(NAMES))
    m, n, k = idx[0], idx[1], idx[2]
    batch = idx[3] if draw(st.booleans()) else None
    size = {m: "SM", n: "SN", k: "SK", **({batch: "SB"} if batch else {})}
    a_dims = [m, k] if draw(st.booleans()) else [k, m]
    b_dims = [k, n] if draw(st.booleans()) else [n, k]
    if batch:
        a_dims, b_dims = [batch] + a_dims, [batch] + b_dims
    c_dims = ([batch] if batch else []) + [m, n]
    dt = draw(st.sampled_from(["float32", "bfloat16"]))
    vals = {"SM": draw(st.integers(1, 200)), "SN": draw(st.integers(1, 600)),
            "SK": draw(st.integers(1, 300)), "SB": draw(st.integers(1, 3))}
    shape = lambda ds: "[" + ", ".join(size[d] for d in ds) + "]"  # noqa: E731
    acc = lambda t, ds: f"{t}[{', '.join(ds)}]"  # noqa: E731
    sizes = sorted(set(size.values()))
    text = f"""
nkigen: 1
name: prop_mm
sizes: {{{', '.join(f'{s}: {{}}' for s in sizes)}}}
inputs:
  a: {{shape: {shape(a_dims)}, dtype: {dt}}}
  b: {{shape: {shape(b_dims)}, dtype: {dt}}}
outputs:
  c: {{shape: {shape(c_dims)}, dtype: float32}}
compute:
  - {acc('c', c_dims)} += {acc('a', a_dims)} * {acc('b', b_dims)}
"""
    return text, {s: vals[s] for s in sizes}


@SETTINGS
@given(contraction())
def test_random_contractions_match_reference(case):
    text, sizes = case
    spec = _load(text)
    check_case(spec, sizes, target="trn2")


FUNCS = ["exp", "tanh", "sigmoid", "relu", "gelu", "silu", "square", "abs"]


@st.composite
def elementwise(draw):
    idx = draw(st.permutations(NAMES))
    i, j = idx[0], idx[1]
    f = draw(st.sampled_from(FUNCS))
    other = draw(st.sampled_from(["row", "col", "full", "const"]))
    op = draw(st.sampled_from(["+", "-", "*"]))
    dt = draw(st.sampled_from(["float32", "bfloat16"]))
    operand = {"row": f"v[{j}]", "col": f"u[{i}]", "full": f"w[{i}, {j}]", "const": "0.75"}[other]
    extra = {"row": "  v: {shape: [SJ], dtype: float32}\n",
             "col": "  u: {shape: [SI], dtype: float32}\n",
             "full": f"  w: {{shape: [SI, SJ], dtype: {dt}}}\n", "const": ""}[other]
    reduce = draw(st.booleans())
    if reduce:
        out = "  y: {shape: [SI], dtype: float32}\n"
        stmt = f"y[{i}] = sum({f}(x[{i}, {j}] {op} {operand}), {j}) * 0.5"
    else:
        out = f"  y: {{shape: [SI, SJ], dtype: {dt}}}\n"
        stmt = f"y[{i}, {j}] = {f}(x[{i}, {j}] {op} {operand}) * 2"
    text = f"""
nkigen: 1
name: prop_ew
sizes: {{SI: {{}}, SJ: {{}}}}
inputs:
  x: {{shape: [SI, SJ], dtype: {dt}}}
{extra}outputs:
{out}compute:
  - {stmt}
"""
    return text, {"SI": draw(st.integers(1, 300)), "SJ": draw(st.integers(1, 3000))}


@SETTINGS
@given(elementwise())
def test_random_elementwise_match_reference(case):
    text, sizes = case
    spec = _load(text)
    check_case(spec, sizes, target="trn2")


LEAVES = ["x[i, j]", "v[j]", "u[i]", "w[j, i]", "0.5", "2.0", "alpha"]
FUNCS2 = FUNCS + ["gelu_tanh"]


@st.composite
def expr_tree(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(LEAVES))
    k = draw(st.sampled_from(["bin", "bin", "fn", "neg", "max"]))
    a = draw(expr_tree(depth - 1))
    if k == "fn":
        return f"{draw(st.sampled_from(FUNCS2))}({a})"
    if k == "neg":
        return f"-({a})"
    b = draw(expr_tree(depth - 1))
    if k == "max":
        return f"{draw(st.sampled_from(['maximum', 'minimum']))}({a}, {b})"
    return f"({a} {draw(st.sampled_from(['+', '-', '*']))} {b})"


@st.composite
def expression_spec(draw):
    e = draw(expr_tree())
    if "x[i, j]" not in e:
        e = f"({e}) + x[i, j]"
    red = draw(st.sampled_from([None, "sum", "max", "mean", "col"]))
    dt = draw(st.sampled_from(["float32", "bfloat16"]))
    if red is None:
        out, stmt = f"y: {{shape: [I, J], dtype: {dt}}}", f"y[i, j] = {e}"
    elif red == "col":
        out, stmt = "y: {shape: [J], dtype: float32}", f"y[j] = sum({e}, i)"
    else:
        out, stmt = "y: {shape: [I], dtype: float32}", f"y[i] = {red}({e}, j)"
    temps, stmts = "", f"  - {stmt}\n"
    if red is None and draw(st.booleans()):       # a fused pair with an on-chip temp
        temps = "temps: {t: {shape: [I, J], dtype: float32}}\n"
        stmts = (f"  - {stmt.replace('y[i, j]', 't[i, j]')}\n"
                 "  - y[i, j] = t[i, j] * 3 - sum(t[i, k], k) / J\n")
    text = f"""
nkigen: 1
name: prop_tree
sizes: {{I: {{}}, J: {{}}}}
params: {{alpha: 0.25}}
inputs:
  x: {{shape: [I, J], dtype: {dt}}}
  v: {{shape: [J], dtype: float32}}
  u: {{shape: [I], dtype: float32}}
  w: {{shape: [J, I], dtype: float32}}
outputs:
  {out}
{temps}compute:
{stmts}tests:
  inputs:
    x: {{dist: uniform, low: -1, high: 1}}
    v: {{dist: uniform, low: -1, high: 1}}
    u: {{dist: uniform, low: -1, high: 1}}
    w: {{dist: uniform, low: -1, high: 1}}
"""
    return text, {"I": draw(st.integers(1, 260)), "J": draw(st.integers(1, 700))}


@SETTINGS
@given(expression_spec())
def test_random_expression_trees_match_reference(case):
    import numpy as np
    from hypothesis import assume

    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs
    text, sizes = case
    spec = _load(text)
    ref = evaluate(spec, make_inputs(spec, sizes), sizes)["y"]
    assume(float(np.sqrt(np.mean(np.square(ref)))) > 1e-3)   # all-cancelling outputs: no
    check_case(spec, sizes, target="trn2")                       # meaningful tolerance


EPILOGUES = [None, "gelu(acc[m, n] + bias[n])", "acc[m, n] * rs[m] + 1",
             "relu(alpha * acc[m, n] - bias[n]) * rs[m]", "maximum(acc[m, n], bias[n])",
             "exp(acc[m, n] * 0.01) + acc[m, n]"]


@st.composite
def matmul_epilogue(draw):
    a = draw(st.sampled_from(["a[m, k]", "a[k, m]"]))
    b = draw(st.sampled_from(["b[k, n]", "b[n, k]"]))
    ash = "[M, K]" if a == "a[m, k]" else "[K, M]"
    bsh = "[K, N]" if b == "b[k, n]" else "[N, K]"
    scale = draw(st.sampled_from(["", "0.5 * ", "alpha * "]))
    epi = draw(st.sampled_from(EPILOGUES))
    dt = draw(st.sampled_from(["float32", "bfloat16"]))
    odt = draw(st.sampled_from(["float32", "bfloat16"]))
    sched = draw(st.sampled_from([
        "", "schedule:\n  tiles: {m: 64, n: 256, k: 64}\n  block: {m: 2, n: 3, k: 2}\n",
        "schedule:\n  block: {m: 1, n: 1, k: 1}\n"]))
    if epi is None:
        temps, stmts = "", f"  - c[m, n] += {scale}{a} * {b}\n"
    else:
        temps = "temps:\n  acc: {shape: [M, N], dtype: float32}\n"
        stmts = f"  - acc[m, n] += {scale}{a} * {b}\n  - c[m, n] = {epi}\n"
    text = f"""
nkigen: 1
name: prop_mm_epi
sizes: {{M: {{}}, K: {{}}, N: {{}}}}
params: {{alpha: 0.75}}
inputs:
  a: {{shape: {ash}, dtype: {dt}}}
  b: {{shape: {bsh}, dtype: {dt}}}
  bias: {{shape: [N], dtype: float32}}
  rs: {{shape: [M], dtype: float32}}
outputs:
  c: {{shape: [M, N], dtype: {odt}}}
{temps}compute:
{stmts}{sched}"""
    sizes = {"M": draw(st.integers(1, 300)), "K": draw(st.integers(1, 300)),
             "N": draw(st.integers(1, 1100))}
    return text, sizes, draw(st.sampled_from(["trn1", "trn2"]))


@SETTINGS
@given(matmul_epilogue())
def test_random_matmul_epilogues_and_schedules_match_reference(case):
    from nkigen.codegen import plan_kernel, render
    text, sizes, target = case
    spec = _load(text)
    src = render(plan_kernel(spec, None, target))   # hints here are legal for the kernel
    check_case(spec, sizes, target=target, src=src)


@st.composite
def statement_chain(draw):
    """2-5 statements over [N, N] / [N] temps, each reading the previous one (plain,
    transposed, broadcast or reduced) plus random earlier tensors: exercises fusion, on-chip
    temps and the fused / statement-by-statement fallback."""
    avail = [("x", 2), ("v", 1)]
    temps, stmts = [], []
    n = draw(st.integers(2, 5))
    for s in range(n):
        last = s == n - 1
        rank = 2 if last else draw(st.sampled_from([1, 2]))
        srcs = [avail[-1]] + [draw(st.sampled_from(avail)) for _ in range(draw(st.integers(0, 2)))]
        terms = []
        for name, r in srcs:
            if r == 2 and rank == 2:
                terms.append(f"{name}[{draw(st.sampled_from(['i, j', 'j, i']))}]")
            elif r == 2:
                terms.append(f"{draw(st.sampled_from(['sum', 'max', 'mean']))}({name}[i, k], k)")
            else:
                terms.append(f"{name}[{draw(st.sampled_from(['i', 'j']))}]" if rank == 2
                             else f"{name}[i]")
        f = draw(st.sampled_from(["", "exp", "tanh", "square"]))
        e = " + ".join(terms) if not f else f"{f}(({' - '.join(terms)}) * 0.1)"
        name = "y" if last else f"t{s}"
        stmts.append(f"{name}[i, j] = {e}" if rank == 2 else f"{name}[i] = {e}")
        if not last:
            temps.append((name, rank))
            avail.append((name, rank))
    text = ("nkigen: 1\nname: prop_chain\nsizes: {N: {}}\n"
            "inputs: {x: {shape: [N, N], dtype: float32}, v: {shape: [N], dtype: float32}}\n"
            "outputs: {y: {shape: [N, N], dtype: float32}}\ntemps:\n"
            + "".join(f"  {t}: {{shape: {'[N, N]' if r == 2 else '[N]'}, dtype: float32}}\n"
                      for t, r in temps)
            + "compute:\n" + "".join(f"  - {s}\n" for s in stmts)
            + "tests:\n  inputs:\n    x: {dist: uniform, low: -1, high: 1}\n"
              "    v: {dist: uniform, low: -1, high: 1}\n")
    return text, {"N": draw(st.integers(1, 300))}, draw(st.sampled_from(["trn1", "trn2"]))


@SETTINGS
@given(statement_chain())
def test_random_statement_chains_match_reference(case):
    import numpy as np
    from hypothesis import assume

    from nkigen.codegen import plan_kernel, render
    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs
    text, sizes, target = case
    spec = _load(text)
    ref = evaluate(spec, make_inputs(spec, sizes), sizes)["y"]
    assume(bool(np.all(np.isfinite(ref))) and float(np.sqrt(np.mean(np.square(ref)))) > 1e-3)
    check_case(spec, sizes, target=target, src=render(plan_kernel(spec, None, target)))


@st.composite
def windows_and_batches(draw):
    """3-D element-wise and reductions with a batch loop, strided windows (pooling, conv1d)
    and a contraction over two indices (one on the partitions, one a scalar loop)."""
    kind = draw(st.sampled_from(["ew3", "red3", "pool", "conv", "mm2k"]))
    S = draw(st.integers(1, 3))
    R = draw(st.integers(1, 3))
    if kind == "ew3":
        body = draw(st.sampled_from(["x[b, i, j] * v[j] + u[b, i]", "exp(x[b, i, j] - u[b, i])",
                                     "x[b, i, j] + w[b, j, i]"]))
        text = ("nkigen: 1\nname: prop_w\nsizes: {B: {}, I: {}, J: {}}\ninputs:\n"
                "  x: {shape: [B, I, J], dtype: float32}\n  v: {shape: [J], dtype: float32}\n"
                "  u: {shape: [B, I], dtype: float32}\n  w: {shape: [B, J, I], dtype: float32}\n"
                "outputs: {y: {shape: [B, I, J], dtype: float32}}\n"
                f"compute:\n  - y[b, i, j] = {body}\n")
        sizes = {"B": draw(st.integers(1, 3)), "I": draw(st.integers(1, 200)),
                 "J": draw(st.integers(1, 300))}
    elif kind == "red3":
        red = draw(st.sampled_from(["sum", "max", "mean"]))
        ax = draw(st.sampled_from(["j", "i"]))
        out, lhs = ("[B, I]", "y[b, i]") if ax == "j" else ("[B, J]", "y[b, j]")
        text = ("nkigen: 1\nname: prop_w\nsizes: {B: {}, I: {}, J: {}}\n"
                "inputs: {x: {shape: [B, I, J], dtype: float32}}\n"
                f"outputs: {{y: {{shape: {out}, dtype: float32}}}}\n"
                f"compute:\n  - {lhs} = {red}(x[b, i, j] * 2, {ax})\n")
        sizes = {"B": draw(st.integers(1, 3)), "I": draw(st.integers(1, 200)),
                 "J": draw(st.integers(1, 300))}
    elif kind == "pool":
        red = draw(st.sampled_from(["max", "sum", "mean"]))
        text = (f"nkigen: 1\nname: prop_w\nsizes:\n  C: {{}}\n  H: {{min: {R}}}\n"
                f"  O: {{value: \"(H - {R}) // {S} + 1\"}}\n"
                "inputs: {x: {shape: [C, H], dtype: float32}}\n"
                f"outputs: {{y: {{shape: [C, O], dtype: float32}}}}\nranges: {{r: {R}}}\n"
                f"compute:\n  - y[c, o] = {red}(x[c, o * {S} + r], r)\n")
        sizes = {"C": draw(st.integers(1, 200)), "H": draw(st.integers(R, 400))}
    elif kind == "conv":
        text = (f"nkigen: 1\nname: prop_w\nsizes:\n  C: {{}}\n  F: {{}}\n  H: {{min: {R}}}\n"
                f"  O: {{value: \"(H - {R}) // {S} + 1\"}}\n"
                f"inputs:\n  x: {{shape: [C, H], dtype: float32}}\n"
                f"  w: {{shape: [F, C, {R}], dtype: float32}}\n"
                f"outputs: {{y: {{shape: [F, O], dtype: float32}}}}\nranges: {{r: {R}}}\n"
                f"compute:\n  - y[f, o] += w[f, c, r] * x[c, o * {S} + r]\n")
        sizes = {"C": draw(st.integers(1, 150)), "F": draw(st.integers(1, 150)),
                 "H": draw(st.integers(R, 600))}
    else:
        text = ("nkigen: 1\nname: prop_w\nsizes: {M: {}, K: {}, L: {}, N: {}}\ninputs:\n"
                "  a: {shape: [M, K, L], dtype: bfloat16}\n"
                "  b: {shape: [K, L, N], dtype: bfloat16}\n"
                "outputs: {c: {shape: [M, N], dtype: float32}}\n"
                "compute:\n  - c[m, n] += a[m, k, l] * b[k, l, n]\n")
        sizes = {"M": draw(st.integers(1, 150)), "K": draw(st.integers(1, 140)),
                 "L": draw(st.integers(1, 3)), "N": draw(st.integers(1, 600))}
    return text, sizes, draw(st.sampled_from(["trn1", "trn2"]))


@SETTINGS
@given(windows_and_batches())
def test_random_windows_batches_and_multi_contractions_match_reference(case):
    from nkigen.codegen import plan_kernel, render
    text, sizes, target = case
    spec = _load(text)
    check_case(spec, sizes, target=target, src=render(plan_kernel(spec, None, target)))
