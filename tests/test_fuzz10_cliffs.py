"""Performance cliffs found by the fuzz10 campaign: a spec modelled 10x or more slower than the
same math in another dtype or spelling. Each test pins the modelled latency (cost model, numerics
off) against the fast form; the numbers are checked in tests/test_fuzz10_lowering.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import load_source  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


def latency(text: str, sizes: dict[str, int], dialect: str, target: str) -> float:
    """Modelled latency (us) of the spec's kernel at ``sizes``, numerics off."""
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    inputs = make_inputs(spec, sizes)
    ph = [sim.placeholder(inputs[t.name].shape, t.dtype.value) for t in spec.inputs]
    return sim.run(kernel, ph, target=target, numerics=False).report.latency_us


SCAN_ROWS = """nkigen: 1
name: scan_rows
doc: running sum down the rows
sizes: {M: {min: 1, max: 1024}, N: {min: 1, max: 1024}}
inputs: {q: {shape: [M, N], dtype: DT}}
outputs: {y: {shape: [M, N], dtype: DT}}
compute:
  - y[m, n] = cumsum(q[m, n], m)
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_an_int32_scan_down_the_rows_costs_what_a_float32_one_does(dialect, target):
    # 5,924.69 us (trn2) / 5,239.06 us (trn1) before: integers were not turned, so each DMA
    # descriptor moved one element; now 110.54 / 291.21 us, the float32 kernel's
    sizes = {"M": 1024, "N": 1024}
    i32 = latency(SCAN_ROWS.replace("DT", "int32"), sizes, dialect, target)
    f32 = latency(SCAN_ROWS.replace("DT", "float32"), sizes, dialect, target)
    # classic trn2: integer tiles turn on the DMA transpose unit, not TensorE (an S25 TensorE
    # transpose is a matmul, float data only: review 12 R12-1), 187.51 vs 110.97 us
    bound = 1.8 if (dialect, target) == ("neuronxcc", "trn2") else 1.1
    assert i32 <= bound * f32, (i32, f32)


SCAN_MID = """nkigen: 1
name: scan_mid
doc: running sum over the middle axis of a 3-D tensor
sizes: {B: {min: 1, max: 16}, M: {min: 1, max: 512}, N: {min: 1, max: 512}}
inputs: {x: {shape: [B, M, N], dtype: float32}}
outputs: {y: {shape: [B, M, N], dtype: float32}}
compute:
  - y[b, m, n] = cumsum(x[b, m, n], m)
tests: {cases: [{B: 1, M: 1, N: 1}, {B: 3, M: 129, N: 33}]}
"""
TRANSPOSE3 = """nkigen: 1
name: transpose3
doc: batched transpose of the last two axes
sizes: {B: {min: 1, max: 16}, M: {min: 1, max: 512}, N: {min: 1, max: 512}}
inputs: {x: {shape: [B, M, N], dtype: float32}}
outputs: {y: {shape: [B, N, M], dtype: float32}}
compute:
  - y[b, n, m] = x[b, m, n]
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_scan_over_the_middle_axis_costs_a_few_transposes(dialect, target):
    # 24,603.64 us (trn2) / 22,131.79 us (trn1) at 16 x 512 x 512 before: only rank-2 scans
    # down the rows were turned, so x was read and y written one element per descriptor, and
    # the scan put the 16-row batch on the partitions with n a loop of 512; now x is turned,
    # the scan runs on y_t[b, n, m] rows with n on the partitions (codegen/layout.py's fewest
    # row tiles), and y is its batched transpose: 496.68 / 1,158.57 us (trn1's turns run on
    # VectorE in 32 x 32 pieces), at most 3 batched transposes and the scan
    from codegen_check import check_case

    sizes = {"B": 16, "M": 512, "N": 512}
    scan = latency(SCAN_MID, sizes, dialect, target)
    turn = latency(TRANSPOSE3, sizes, dialect, target)
    assert scan <= 3.5 * turn, (scan, turn)
    spec = load_spec_text(SCAN_MID)
    for case in ({"B": 1, "M": 1, "N": 1}, {"B": 3, "M": 129, "N": 33}):
        check_case(spec, case, target=target,
                   src=generate(spec, target=target, dialect=dialect))
