"""Spec names that collide with nkigen's generated names (fuzz7).

The kernel's stage helpers are module-level functions named ``_<kernel>_stage<i>``; a kernel
argument, size, param or HBM temp of that name shadowed the helper inside the kernel, and the
kernel called the tensor (``TypeError: 'Tensor' object is not callable``, an internal error).
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
name: k
doc: d
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
inputs:
  A: {shape: [M, N], dtype: float32}
  B: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
  r: {shape: [M], dtype: float32}
compute:
  - y[m, n] = A[m, n] + B[m, n]
  - r[m] = max(A[m, n], n)
"""


@pytest.mark.parametrize("a,b", [("_k_stage0", "k_stage0"), ("_k_stage1", "_k2_stage0"),
                                 ("_k_stage0_head", "b")])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_tensors_named_like_the_stage_helpers(a, b, dialect, target):
    spec = load_spec_text(SPEC.replace("A", a).replace("B", b))
    src = generate(spec, target=target, dialect=dialect)
    helpers = [ln.split("(")[0][4:] for ln in src.splitlines() if ln.startswith("def _")]
    assert helpers and not {a, b} & set(helpers), helpers
    check_case(spec, {"M": 130, "N": 70}, target=target, src=src)


def test_helper_names_are_unchanged_without_a_collision():
    src = generate(load_spec_text(SPEC.replace("A", "a").replace("B", "b")), target="trn2")
    assert "def _k_stage0(" in src
