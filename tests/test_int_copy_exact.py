"""Review 7 R7-3: an integer row copy is bit-exact in both dialects on both targets.

The row lowering balanced a plain copy (``y[m, n] = x[m, n]``, or the ``where``/gather results
copied into an output) between ScalarE ``activation(copy)`` and VectorE ``tensor_copy``; ScalarE
copies through float32 (S25 general/nki/api/nki/isa/__init__.py ``tensor_copy`` and
``activation``, SDK 2.25; SH nki/api/nki/isa/__init__.py ``tensor_copy``, nki 0.3), so int32
values beyond 2**24 came back rounded (classic trn1: 2**30 + 44 -> 2**30 + 256). A same-dtype
VectorE copy is bit-accurate (same docs). Boundary: 2**24 + 1 is the first int32 float32 cannot
hold; the values tested start there and reach 2**30 + 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import load_source  # noqa: E402

import nkigen.sim as sim  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SPEC = """nkigen: 1
name: icopy
doc: d
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [M, N], dtype: int32}
outputs:
  y: {shape: [M, N], dtype: int32}
compute:
  - y[m, n] = x[m, n]
tests:
  cases:
    - {M: 130, N: 300}
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("base", [2**24 + 1, 2**30 + 1])
def test_an_int32_copy_is_exact(dialect, target, base):
    spec = load_spec_text(SPEC)
    src = generate(spec, target=target, dialect=dialect)
    kernel = load_source(src, spec.name)
    x = (np.arange(130 * 300, dtype=np.int64).reshape(130, 300) * 3 + base).astype(np.int32)
    res = sim.run(kernel, [x], target=target, report=False)
    np.testing.assert_array_equal(res.outputs[0], x)
