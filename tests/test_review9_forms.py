"""Review 9 (docs/review-kernels-9.md): generated classic forms fixed after the review.

R9-8: a read whose rows step by ``c >= 2`` (``z[2 * m, n]``, ``w[3 * m + 1]``,
``z[2 * m + 1, 1, n]``) was printed in the classic dialect as the flattened 1-D view indexed by
one expression carrying both the partition and the free ``nl.arange`` (review 8 R8-6: shown by
no classic document). It is now the per-axis view, the partition index tile stepping by ``c``
(S25 general/nki/programming_model.rst "Tensor" and "Advanced Tensor Indexing", SDK 2.25).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SPEC = """nkigen: 1
name: strided
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [M, N], dtype: float32}
  w: {shape: ["3 * M"], dtype: float32}
  z: {shape: ["2 * M", N], dtype: float32}
  v: {shape: ["2 * M", 2, N], dtype: bfloat16}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 130, N: 300}
"""


@pytest.mark.parametrize("statement,form", [
    ("y[m, n] = z[2 * m, n]", "z[2 * p0 + 2 * i_p, f0 + i_f]"),
    ("y[m, n] = x[m, n] * w[3 * m + 1]",
     "w.reshape((w.shape[0], 1))[3 * p0 + 1 + 3 * i_p, i_col]"),
    ("y[m, n] = v[2 * m + 1, 1, n]",
     "v.reshape((v.shape[0] * v.shape[1], v.shape[2]))[4 * p0 + 3 + 4 * i_p, f0 + i_f]"),
])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_rows_read_with_a_step_take_one_arange_per_axis(statement, form, target):
    spec = load_spec_text(SPEC.replace("STATEMENT", statement))
    src = generate(spec, target=target, dialect="neuronxcc")
    assert form in src and "math.prod" not in src
    for sizes in ({"M": 130, "N": 300}, {"M": 1, "N": 1}):
        check_case(spec, sizes, target=target, src=src)


def test_a_step_one_row_read_keeps_its_plain_form():
    # the boundary: a row step of 1 (c = 1) is the view the classic pass already printed
    spec = load_spec_text(SPEC.replace("STATEMENT", "y[m, n] = x[m, n] * w[m + 1]"))
    src = generate(spec, dialect="neuronxcc")
    assert "w.reshape((w.shape[0], 1))[p0 + 1 + i_p, i_col]" in src
    check_case(spec, {"M": 130, "N": 300}, src=src)
