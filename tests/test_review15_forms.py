"""Review 15 (docs/review-kernels-15.md): the fixes, each pinned on both sides.

R15-1: an element-wise copy of integer data into the same dtype (``write_into``: a gathered
int32 row written to its output tile) had no engine. In a classic kernel the compiler then
picks the engine, ScalarE among them, and ScalarE on NeuronCore-v2 copies through float32
(S25 general/nki/api/nki/isa/__init__.py tensor_copy), so an int32 beyond 2**24 could round on
trn1 while the simulator copied it bit for bit. The copy now names VectorE (bit-accurate for
equal dtypes), and the simulator refuses the engine-less form (conformance row
isa.tensor_copy.classic_int_no_engine).

R15-2: the plane lowering (codegen/planes.py, review 13 R13-6) put a per-channel column into the
activation's bias for ``f(x + b[c])`` also when ``f`` is the reciprocal on trn1, whose
reciprocal activation takes no bias (S25 general/nki/api/nki.api.shared.rst and SH
nki/api/nki.api.shared.rst, note under "Engine Selection"): the simulator refused the kernel
(isa.activation.reciprocal_bias_v2). The sum is now computed first there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.sim.errors import SimError  # noqa: E402

ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]

GATHER = """nkigen: 1
name: int_gather
sizes:
  T: {{min: 1, max: 500}}
  V: {{min: 1, max: 500}}
  D: {{min: 1, max: 100}}
inputs:
  ids: {{shape: [T], dtype: int32}}
  table: {{shape: [V, D], dtype: {dt}}}
outputs:
  out: {{shape: [T, D], dtype: {dt}}}
compute:
  - out[t, d] = table[ids[t], d]
tests:
  cases:
    - {{T: 1, V: 1, D: 1}}
  inputs:
    ids: {{dist: integers, low: 0, high: "V - 1"}}
    table: {{dist: integers, low: {lo}, high: {hi}}}
"""
BIG = GATHER.format(dt="int32", lo=-2000000000, hi=2000000000)
SIZES = [{"T": 1, "V": 1, "D": 1}, {"T": 129, "V": 77, "D": 99}]


def _copies(src: str) -> list[str]:
    return [ln for ln in src.splitlines() if "tensor_copy(" in ln]


@pytest.mark.parametrize("dialect,target", ALL4)
def test_an_int32_row_copy_names_vectore_and_is_exact_past_2_24(dialect, target):
    spec = load_spec_text(BIG)
    src = generate(spec, target=target, dialect=dialect)
    assert all("engine=" in ln for ln in _copies(src)), _copies(src)
    for sizes in SIZES:
        check_case(spec, sizes, target=target, src=src)


def test_the_simulator_refuses_the_engine_less_int32_copy_on_trn1():
    # the kernel before the fix: the same copy with no engine; classic trn1 is refused,
    # located at the copy; classic trn2 (no float32 path named there) runs it
    spec = load_spec_text(BIG)
    for target, refused in (("trn1", True), ("trn2", False)):
        src = generate(spec, target=target, dialect="neuronxcc")
        (line,) = [ln for ln in _copies(src) if "engine=nisa.vector_engine" in ln]
        old = src.replace(line, line.replace(", engine=nisa.vector_engine", ""))
        assert old != src
        if not refused:
            check_case(spec, SIZES[1], target=target, src=old)
            continue
        with pytest.raises(SimError, match="copy of int32 data with no engine given") as ei:
            check_case(spec, SIZES[1], target=target, src=old)
        d = ei.value.diagnostics[0]
        row = old.splitlines().index(line.replace(", engine=nisa.vector_engine", "")) + 1
        assert d.loc is not None and d.loc.line == row
        assert "engine=nisa.vector_engine" in (d.fix or "")


def test_a_float_row_copy_keeps_the_compilers_choice():
    # the boundary of the fix: float32 data (exact through float32 on every engine) keeps the
    # planner's choice (here a ScalarE activation copy), no engine is forced on it
    spec = load_spec_text(GATHER.format(dt="float32", lo=-9, hi=9).replace(
        "{dist: integers, low: -9, high: 9}", "{dist: normal}"))
    src = generate(spec, target="trn1", dialect="neuronxcc")
    writes = [ln for ln in src.splitlines() if re.match(r"\s*out1\[", ln)]
    assert writes and not any("vector_engine" in ln for ln in writes), writes
    check_case(spec, SIZES[1], target="trn1", src=src)


PLANE_RECIP = """nkigen: 1
name: plane_recip
sizes:
  C: {min: 1, max: 256}
  H: {min: 1, max: 64}
  W: {min: 1, max: 64}
inputs:
  x: {shape: [C, 2 * H, 2 * W], dtype: float32}
  b: {shape: [C], dtype: float32}
outputs:
  y: {shape: [C, H, W], dtype: float32}
compute:
  - y[c, h, w] = reciprocal(x[c, 2 * h, 2 * w] + x[c, 2 * h + 1, 2 * w + 1] + b[c])
tests:
  inputs:
    x: {dist: uniform, low: 1.0, high: 2.0}
    b: {dist: uniform, low: 1.0, high: 2.0}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_plane_reciprocal_takes_its_channel_bias_only_from_neuroncore_v3(dialect, target):
    spec = load_spec_text(PLANE_RECIP)
    src = generate(spec, target=target, dialect=dialect)
    recips = [ln for ln in src.splitlines() if "op=nl.reciprocal" in ln]
    assert recips
    # trn1: no bias on the reciprocal activation; trn2 keeps the free bias (the boundary)
    assert all(("bias=" in ln) == (target == "trn2") for ln in recips), recips
    for sizes in ({"C": 1, "H": 1, "W": 1}, {"C": 130, "H": 5, "W": 7}):
        check_case(spec, sizes, target=target, src=src)
