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
