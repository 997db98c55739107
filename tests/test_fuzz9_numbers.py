"""Wrong numbers found by the fuzz9 campaign (the build's verification refused the kernel).

Classic dialect: a matmul operand tile with a ragged partition bound is zeroed whole before it
is written, so the full-size contraction adds zeros past the bound. The zeroing was issued
before every write of the tile, also before an in-place one that reads it
(``diff = square(diff)``), which then squared zeros: ``var[t] = sum(square(x[d, t] - mu[t]),
d)`` (a layernorm over the partition axis) came out 0 at D = 5 and lost the last row's term at
D = 129.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

VAR = """nkigen: 1
name: colvar
doc: d
sizes:
  D: {min: 1, max: 1024}
  T: {min: 1, max: 4096}
inputs:
  x: {shape: [D, T], dtype: float32}
  mu: {shape: [T], dtype: float32}
outputs:
  var: {shape: [T], dtype: float32}
compute:
  - var[t] = sum(FN(x[d, t] - mu[t]), d)
"""


@pytest.mark.parametrize("fn", ["square", "exp"])
@pytest.mark.parametrize("sizes", [{"D": 5, "T": 3}, {"D": 128, "T": 7}, {"D": 129, "T": 200},
                                   {"D": 2, "T": 513}])
@pytest.mark.parametrize("dialect,target", [("neuronxcc", "trn1"), ("nki", "trn2")])
def test_an_in_place_write_of_a_padded_contraction_tile_keeps_its_values(fn, sizes, dialect,
                                                                           target):
    # exp(0) = 1: the padded lanes must stay out of the sum too (the masked write leaves them)
    spec = load_spec_text(VAR.replace("FN", fn))
    src = generate(spec, target=target, dialect=dialect)
    check_case(spec, sizes, target=target, src=src)
