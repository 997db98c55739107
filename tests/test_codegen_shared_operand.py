"""Contractions reading one operand share its load and transpose, and their products stay on
chip (issue 14: swiglu loaded and transposed x twice and sent g through HBM in fp32)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkigen.codegen import generate, plan_kernel
from nkigen.frontend import load_spec
from tests.codegen_check import check_case

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_swiglu_loads_x_once_and_keeps_g_and_u_on_chip(target, dialect):
    spec = load_spec(SPECS / "swiglu.yaml")
    src = generate(spec, target=target, dialect=dialect)
    x_reads = [ln for ln in src.splitlines() if "src=x[" in ln or "(x[" in ln]
    assert len(x_reads) == 1, x_reads              # one load (+ transpose) of x per block
    hbm = [ln.strip() for ln in src.splitlines() if "shared_hbm" in ln and "=" in ln]
    assert len(hbm) == 1 and hbm[0].startswith("h = "), hbm     # no HBM temp for g or u
    assert src.count("nc_matmul(") == 2
    (stage,) = plan_kernel(spec, None, target).stages
    assert stage.statements == (0, 1, 2)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("sizes", [{"M": 128, "D": 256, "F": 512}, {"M": 128, "D": 128, "F": 600},
                                   {"M": 256, "D": 640, "F": 1100}])
def test_swiglu_matches_reference(sizes, dialect):
    spec = load_spec(SPECS / "swiglu.yaml")
    check_case(spec, sizes, src=generate(spec, target="trn2", dialect=dialect))


TWO = """nkigen: 1
name: two
sizes: {{M: {{multiple_of: 128}}, D: {{multiple_of: 128}}, F: {{max: 4096}}}}
inputs: {{x: {{shape: [M, D], dtype: bfloat16}}, a: {{shape: [D, F], dtype: bfloat16}},
         b: {{shape: [D, F], dtype: bfloat16}}{extra}}}
outputs: {{h: {{shape: [M, F], dtype: float32}}}}
temps: {{g: {{shape: [M, F], dtype: float32}}, u: {{shape: [M, F], dtype: float32}}}}
compute:
  - g[m, f] += x[m, d] * a[d, f]
  - u[m, f] += {second}
  - h[m, f] = {epi}
"""


@pytest.mark.parametrize("second,epi,shared", [
    ("x[m, d] * b[d, f]", "g[m, f] - 2.0 * u[m, f]", True),
    ("0.5 * x[m, d] * b[d, f]", "g[m, f] * u[m, f]", True),          # a trace-time factor
    ("y[m, d] * b[d, f]", "g[m, f] * u[m, f]", False),   # another stationary operand
])
def test_sibling_contractions(tmp_path, second, epi, shared):
    p = tmp_path / "two.yaml"
    extra = ", y: {shape: [M, D], dtype: bfloat16}" if "y[" in second else ""
    p.write_text(TWO.format(second=second, epi=epi, extra=extra))
    spec = load_spec(p)
    stages = plan_kernel(spec, None, "trn2").stages
    assert (stages[0].statements == (0, 1, 2)) is shared
    check_case(spec, {"M": 128, "D": 256, "F": 300}, src=generate(spec, target="trn2"))
