"""Review 11 (docs/review-kernels-11.md): the ``+ k`` after a divided tile index
(codegen/select._divided_operand) is an arithmetic ``tensor_scalar`` operand.

* R11-1: SH nki/api/nki/isa/__init__.py ``tensor_scalar`` (nki 0.3): with arithmetic operators
  "the operand0 and operand1 (if used) must be float32", so the constant is written as a float.
* R11-2: in the classic dialect a ``k`` that holds an ``nl.affine_range`` index (a batch
  index, ``n // 64 <= m // 64 + b``) has no trace-time value (S25 static_range: only
  ``static_range`` unrolls while tracing; S25 tensor_scalar: scalars are compile-time
  constants; review 10 R10-6): it is written on chip with GpSimd ``iota`` into a float32
  column and added as a ``(P, 1)`` tile operand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402
from test_periodic_conditions import BLOCK  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

BATCHED = """nkigen: 1
name: bblock
doc: d
sizes:
  B: {min: 1, max: 8}
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
inputs:
  a: {shape: [B, M, N], dtype: float32}
outputs:
  y: {shape: [B, M, N], dtype: float32}
compute:
  - y[b, m, n] = where(n // 64 <= m // 64 + b, a[b, m, n], -30000.0)
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_a_constant_k_is_a_float_operand(dialect):
    src = generate(load_spec_text(BLOCK), target="trn2", dialect=dialect)
    assert "op0=nl.add, operand0=1.0" in src and "op0=nl.add, operand0=1," not in src


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_a_classic_loop_index_k_is_written_on_chip(target):
    spec = load_spec_text(BATCHED)
    src = generate(spec, target=target, dialect="neuronxcc")
    assert "operand0=i_b" not in src and "float(i_b" not in src
    assert "nisa.iota(i_b + 0 * nl.arange(TILE_P)[:, None]" in src
    for sizes in ({"B": 3, "M": 130, "N": 140}, {"B": 2, "M": 1, "N": 1}):
        check_case(spec, sizes, target=target, src=src)


def test_the_current_api_keeps_the_trace_time_k():
    spec = load_spec_text(BATCHED)
    src = generate(spec, target="trn2")
    assert "op0=nl.add, operand0=float(i_b)" in src     # range() indices are Python ints
    check_case(spec, {"B": 3, "M": 130, "N": 140}, target="trn2", src=src)
