"""``= sum(a * b, k)`` contractions take the matmul lowering (nkigen/codegen/einsum.py).

The spelling ``s[b, i, j] = sum(q[b, i, d] * k[b, j, d], d)`` used to fall to the row lowering:
1,213.01 us modelled at B = 2, S = 256, D = 64 bf16 on trn2, against 8.55 us for the ``+=``
spelling of the same contraction.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.codegen import einsum, plan_kernel  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.ir import AssignOp  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SCORES = """nkigen: 1
name: scores
doc: d
sizes:
  B: {min: 1, max: 8}
  S: {min: 1, max: 1024}
  D: {min: 1, max: 128}
inputs:
  q: {shape: [B, S, D], dtype: bfloat16}
  k: {shape: [B, S, D], dtype: bfloat16}
outputs:
  s: {shape: [B, S, S], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {B: 2, S: 130, D: 64}
"""
SUM = "s[b, i, j] = sum(q[b, i, d] * k[b, j, d], d)"
SCALED = "s[b, i, j] = 0.125 * sum(q[b, i, d] * k[b, j, d], d)"
ACC = "s[b, i, j] += q[b, i, d] * k[b, j, d]"


def _op(statement: str) -> AssignOp:
    return einsum.rewrite(load_spec_text(SCORES.replace("STATEMENT", statement))) \
        .statements[0].op


def _strategies(statement: str) -> list[str]:
    plan = plan_kernel(load_spec_text(SCORES.replace("STATEMENT", statement)), None)
    return [s.strategy for s in plan.stages]


@pytest.mark.parametrize("statement", [SUM, SCALED, SCALED.replace(
    "0.125 * sum(q[b, i, d] * k[b, j, d], d)", "sum(q[b, i, d] * k[b, j, d], d) * 0.125")])
def test_sum_spelling_is_a_contraction(statement):
    assert _op(statement) is AssignOp.ACCUMULATE
    assert _strategies(statement) == _strategies(ACC) == ["matmul"]


def test_a_sum_of_a_function_operand_is_a_contraction_as_its_accumulate_spelling():
    # not a product of two accesses, but codegen/operands.py computes exp(q) into a temp
    # first for the '+=' spelling; the '=' spelling takes that path too (fuzz17)
    st = "s[b, i, j] = sum(exp(q[b, i, d]) * k[b, j, d], d)"
    assert _op(st) is AssignOp.ACCUMULATE
    assert _strategies(st) == _strategies(st.replace("] = sum(", "] += ").replace(", d)", ""))
    assert _strategies(st)[-1] == "matmul"


@pytest.mark.parametrize("statement", [
    "s[b, i, j] = max(q[b, i, d] * k[b, j, d], d)",         # not a sum
    "s[b, i, j] = sum(q[b, i, d] * k[b, j, d] * q[b, j, d], d)",   # three factors
])
def test_other_sums_keep_their_lowering(statement):
    assert _op(statement) is AssignOp.ASSIGN


def test_a_sum_inside_more_than_a_scale_is_computed_first():
    # einsum._inner_sums: the contraction goes to a float32 temp by its own '+=' (the matmul
    # lowering), and the statement keeps its '=' reading the temp
    spec = einsum.rewrite(load_spec_text(SCORES.replace(
        "STATEMENT", "s[b, i, j] = sum(q[b, i, d] * k[b, j, d], d) + 1.0")))
    assert [(st.target, st.op) for st in spec.statements] == \
        [("s_sum", AssignOp.ACCUMULATE), ("s", AssignOp.ASSIGN)]


def test_a_later_write_keeps_its_assignment():
    text = SCORES.replace("  - STATEMENT", f"  - s[b, i, j] = q[b, i, 0] * 0.0 + k[b, j, 0]\n"
                          f"  - {SUM}")
    spec = einsum.rewrite(load_spec_text(text))
    assert [s.op for s in spec.statements] == [AssignOp.ASSIGN, AssignOp.ASSIGN]


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_sum_spelling_kernels_match_the_reference(dialect, target):
    spec = load_spec_text(SCORES.replace("STATEMENT", SCALED))
    check_case(spec, {"B": 2, "S": 130, "D": 64}, target=target,
               src=generate(spec, target=target, dialect=dialect))


MATVEC = """nkigen: 1
name: mv
doc: d
sizes:
  M: {min: 1, max: 8192}
  N: {min: 1, max: 8192}
inputs:
  a: {shape: [M, N], dtype: bfloat16}
  x: {shape: [N], dtype: bfloat16}
outputs:
  y: {shape: [M], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 1000, N: 700}
"""


def test_a_sum_spelled_matrix_vector_product_takes_the_matvec_lowering():
    # not a TensorE contraction, but matvec.py takes its '+=' spelling: 31.08 -> 16.03 us
    summed = load_spec_text(MATVEC.replace("STATEMENT", "y[m] = sum(a[m, n] * x[n], n)"))
    acc = load_spec_text(MATVEC.replace("STATEMENT", "y[m] += a[m, n] * x[n]"))
    assert einsum.rewrite(summed).statements[0].op is AssignOp.ACCUMULATE
    assert [s.strategy for s in plan_kernel(summed, None).stages] == \
        [s.strategy for s in plan_kernel(acc, None).stages]
    check_case(summed, {"M": 130, "N": 70}, src=generate(summed, target="trn2"))
    # a row reduction nothing else takes keeps its '=' spelling
    other = load_spec_text(MATVEC.replace("STATEMENT", "y[m] = sum(exp(a[m, n]) * x[n], n)"))
    assert einsum.rewrite(other) is other
