"""Valid specs of the fuzz15 campaign (corpus /tmp/fuzz15: transformer, LLM, vision and SSM
kernels) that built a wrong kernel or failed. Each test generates the minimal spec in the four
dialect/target combinations and checks the kernel against the float64 reference in the
simulator; limits are pinned at their boundaries.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]

ADAM = """nkigen: 1
name: adam_moments
sizes:
  M: {min: 1, max: 65536}
  N: {min: 1, max: 8192}
inputs:
  g: {shape: [M, N], dtype: float32}
  m1: {shape: [M, N], dtype: float32}
outputs:
  mn: {shape: [M, N], dtype: float32}
  wn: {shape: [M, N], dtype: float32}
compute:
  - mn[m, n] = 0.9 * m1[m, n] + 0.1 * g[m, n]
  - wn[m, n] = mn[m, n] * 2.0
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_an_output_read_by_a_later_flat_statement_is_still_stored(dialect, target):
    # the current API runs an all-element-wise spec over flat views (codegen/flatten.py,
    # mn_f = mn.reshape(...)), temps of the rewritten spec; the fused row pass kept every
    # temp a later statement reads on chip, so the output mn (read by wn's statement) was
    # never stored: NaN in the simulator (the AdamW update, moments then weights)
    spec = load_spec_text(ADAM)
    src = generate(spec, target=target, dialect=dialect)
    assert "mn" in src.split("def adam_moments(")[0].split("_stage0(")[1].split(")")[0] \
        or dialect == "neuronxcc"
    for sizes in ({"M": 1, "N": 1}, {"M": 129, "N": 513}):
        check_case(spec, sizes, target=target, src=src)


MOE = """nkigen: 1
name: moe_gathered_weight
sizes:
  T: {{min: 1, max: 256}}
  E: {{min: 1, max: 8}}
  K: {{min: 1, max: 256}}
  N: {{min: 1, max: 256}}
inputs:
  x: {{shape: [T, K], dtype: float32}}
  eid: {{shape: [T], dtype: int32}}
  w: {{shape: [E, K, N], dtype: float32}}
outputs:
  y: {{shape: [T, N], dtype: float32}}
compute:
  - {stmt}
tests:
  inputs:
    eid: {{dist: integers, low: 0, high: "E - 1"}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("stmt", ["y[t, n] = sum(x[t, k] * w[eid[t], k, n], k)",
                                  "y[t, n] += x[t, k] * w[eid[t], k, n]"])
def test_a_contraction_with_a_gathered_operand_is_not_a_matmul_of_row_zero(
        dialect, target, stmt):
    # a gathered access keeps the placeholder 0 in its indexed dimension (nkigen.ir.Access);
    # the TensorE contraction matcher took w[eid[t], k, n] as w[0, k, n] (600 of 800 outputs
    # wrong). A contraction with a gathered operand is now left to the row lowering, which
    # gathers per partition
    spec = load_spec_text(MOE.format(stmt=stmt))
    src = generate(spec, target=target, dialect=dialect)
    assert "nc_matmul" not in src
    for sizes in ({"T": 1, "E": 1, "K": 1, "N": 1}, {"T": 130, "E": 3, "K": 129, "N": 40}):
        check_case(spec, sizes, target=target, src=src)
