"""Valid specs of the fuzz10 campaign that failed to build or verify. Each test generates the
spec in the dialect/target combinations that failed and checks the kernel against the float64
reference (integer outputs exactly).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


def run_exact(spec, sizes, dialect, target):
    """Simulate one case and return (kernel outputs, reference outputs) as float64 arrays."""
    import nkigen.sim as sim
    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs

    src = generate(spec, target=target, dialect=dialect)
    kernel = load_source(src, spec.name)
    inputs = make_inputs(spec, sizes)
    out = sim.simulate(kernel, target)(*inputs.values())
    if len(spec.outputs) == 1:
        out = (out,)
    ref = evaluate(spec, inputs, sizes)
    return ([np.asarray(o, dtype=np.float64) for o in out],
            [ref[t.name] for t in spec.outputs], src)


INT_WHERE = """nkigen: 1
name: int_where
doc: lower-triangular copy of {dtype} values
sizes: {{N: {{min: 1, max: 1024}}}}
inputs: {{q: {{shape: [N, N], dtype: {dtype}}}}}
outputs: {{y: {{shape: [N, N], dtype: {dtype}}}}}
compute:
  - y[m, n] = {rhs}
"""
# int32 values up to 2**24 in magnitude: the exact range docs/spec-language.md §10 promises for
# int32 arithmetic that goes through float32
INT24 = "tests:\n  inputs: {q: {dist: integers, low: -16777216, high: 16777216}}\n"


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("rhs", ["where(n <= m, q[m, n], -1)", "where(m == n, q[m, n], 0)",
                                 "where(n <= m, 5, q[m, n])"])
@pytest.mark.parametrize("n", [1, 129])
def test_an_int32_where_on_indices_is_exact_in_every_dialect(dialect, target, rhs, n):
    # the classic affine_select takes float or 8/16-bit integer tiles only (S25): the classic
    # kernel failed in the simulator
    spec = load_spec_text(INT_WHERE.format(rhs=rhs, dtype="int32") + INT24)
    got, want, src = run_exact(spec, {"N": n}, dialect, target)
    assert np.array_equal(got[0], want[0])
    if dialect == "neuronxcc":
        assert "affine_select" not in src and "tensor_copy_predicated" in src
    else:
        assert "affine_select" in src


def test_a_classic_where_on_indices_of_16_bit_values_keeps_affine_select():
    # the boundary of the rule: 2-byte tiles (bfloat16 here) still take affine_select
    spec = load_spec_text(INT_WHERE.format(rhs="where(n <= m, q[m, n], -1)", dtype="bfloat16"))
    src = generate(spec, target="trn2", dialect="neuronxcc")
    assert "affine_select" in src
    check_case(spec, {"N": 129}, target="trn2", src=src)


COLSUM = """nkigen: 1
name: int_colsum
doc: column sums of integer values
sizes: {{M: {{min: 1, max: 1024}}, N: {{min: 1, max: 1024}}}}
inputs: {{q: {{shape: [M, N], dtype: {dt}}}}}
outputs: {{s: {{shape: [N], dtype: {out}}}}}
compute:
  - s[n] = {op}(q[m, n], m)
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("dt,out,op", [("int32", "int32", "sum"), ("int8", "int32", "sum"),
                                       ("uint8", "float32", "mean"),
                                       ("float32", "float32", "sum")])
def test_a_column_sum_of_integers_feeds_tensore_float_operands(dialect, target, dt, out, op):
    # the ones column and the rows went to nc_matmul as int32/int8 tiles: TensorE takes float
    # operands only (S25/SH nc_matmul), the classic simulator refused the int32 stationary and
    # the current API's kernel memset 1.0 into an int32 tile (lint dtype.memset-value)
    from nkigen.lint.checker import lint_source

    spec = load_spec_text(COLSUM.format(dt=dt, out=out, op=op))
    for sizes in ({"M": 1, "N": 1}, {"M": 257, "N": 130}):
        got, want, src = run_exact(spec, sizes, dialect, target)
        if out == "int32":
            assert np.array_equal(got[0], want[0])
        else:
            check_case(spec, sizes, target=target, src=src)
    assert "nc_matmul" in src
    assert not list(lint_source(src, "k.py").findings)


INT_TURNED = """nkigen: 1
name: int_turned
doc: integer statements whose rows are another tensor's columns
sizes: {{M: {{min: 1, max: 1024}}, N: {{min: 1, max: 1024}}}}
inputs: {{x: {{shape: [{xs}], dtype: {dt}}}, z: {{shape: [M, N], dtype: {dt}}}}}
outputs: {{y: {{shape: [M, N], dtype: {dt}}}}}
compute:
  - y[m, n] = {rhs}
tests:
  inputs:
    x: {{dist: integers, low: {lo}, high: {hi}}}
    z: {{dist: integers, low: {lo}, high: {hi}}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("xs,rhs,dt,lo,hi", [
    # a scan down the rows of int32 (through float32: values whose sums stay below 2**24)
    ("M, N", "cumsum(x[m, n], m) + z[m, n]", "int32", -30000, 30000),
    # a transposed int32 read: a turned copy moves values exactly, any magnitude
    ("N, M", "x[n, m] + z[m, n]", "int32", -1073741824, 1073741823),
    ("N, M", "maximum(x[n, m], z[m, n])", "int8", -128, 127),
])
def test_integer_scans_down_rows_and_transposed_reads_are_turned(dialect, target, xs, rhs,
                                                                  dt, lo, hi):
    # integers were never turned (codegen/turned.py), so these read and wrote one element per
    # DMA descriptor: an int32 cumsum down 1024 x 1024 rows modelled 5,924.69 us on trn2
    # against 110.97 us for float32; codegen/transpose.py turns integers exactly (VectorE on
    # NeuronCore-v2)
    spec = load_spec_text(INT_TURNED.format(xs=xs, rhs=rhs, dt=dt, lo=lo, hi=hi))
    for sizes in ({"M": 1, "N": 1}, {"M": 129, "N": 65}):
        got, want, src = run_exact(spec, sizes, dialect, target)
        assert np.array_equal(got[0], want[0])
    assert "turned copy of x" in src


GATHER_REDUCED = """nkigen: 1
name: pick_total
doc: total of picked logits, weighted; the gather's ids index is reduced away
sizes: {B: {min: 1, max: 2048}, C: {min: 1, max: 8192}}
inputs: {x: {shape: [B, C], dtype: float32}, lab: {shape: [B], dtype: int32},
         w: {shape: [B], dtype: float32}}
outputs: {tot: {shape: [1], dtype: float32}}
compute:
  - tot[z] = sum(x[b, lab[b]] * w[b], b)
tests:
  inputs: {lab: {dist: integers, low: 0, high: "C - 1"}}
"""
GATHER_SCANNED = """nkigen: 1
name: scan_gathered
doc: running sum over tokens of gathered rows; the gather's ids index is the scan index
sizes: {T: {min: 1, max: 1024}, V: {min: 1, max: 65536}, D: {min: 1, max: 1024}}
inputs: {ids: {shape: [T], dtype: int32}, table: {shape: [V, D], dtype: float32}}
outputs: {y: {shape: [T, D], dtype: float32}}
compute:
  - y[t, d] = cumsum(table[ids[t], d], t)
tests:
  inputs: {ids: {dist: integers, low: 0, high: "V - 1"}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("text,cases", [
    (GATHER_REDUCED, [{"B": 1, "C": 1}, {"B": 257, "C": 1000}]),
    (GATHER_SCANNED, [{"T": 1, "V": 1, "D": 1}, {"T": 129, "V": 7, "D": 40}]),
])
def test_a_gather_whose_ids_cannot_lie_on_the_partitions_is_read_into_a_temp(
        dialect, target, text, cases):
    # refused before: "the ids of x[...] must vary with the partition index z" (the reduced
    # index) / "... d" (a scan runs along the free axis); codegen/gathered.py reads the gather
    # into a temp with its ids on the partitions first
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    assert "codegen/gathered.py" in src
    for sizes in cases:
        check_case(spec, sizes, target=target, src=src)


def test_a_gather_read_directly_keeps_its_form():
    # the boundary: ids on the statement's own partitions need no temp
    spec = load_spec_text(GATHER_SCANNED.replace("cumsum(table[ids[t], d], t)",
                                                 "2.0 * table[ids[t], d]"))
    assert "codegen/gathered.py" not in generate(spec, target="trn2")


def test_a_gather_placement_puts_its_ids_on_the_partitions():
    # y[t, h] = sum(table[ids[t], h, d], d) put h on the partitions and looped over t (one
    # gather per token, 12,835.77 us at T = 1024, H = 16, D = 256 on trn2); the ids' index t
    # goes there now, with h a loop and d the contiguous free axis
    import test_fuzz10_cliffs as cl

    text = """nkigen: 1
name: gather3
doc: sum of gathered rows of a 3-D table
sizes: {T: {min: 1, max: 1024}, V: {min: 1, max: 1024}, H: {min: 1, max: 16},
        D: {min: 1, max: 256}}
inputs: {ids: {shape: [T], dtype: int32}, table: {shape: [V, H, D], dtype: float32}}
outputs: {y: {shape: [T, H], dtype: float32}}
compute:
  - y[t, h] = sum(table[ids[t], h, d], d)
tests:
  inputs: {ids: {dist: integers, low: 0, high: "V - 1"}}
"""
    spec = load_spec_text(text)
    for dialect, target in ALL4:
        src = generate(spec, target=target, dialect=dialect)
        for sizes in ({"T": 1, "V": 1, "H": 1, "D": 1}, {"T": 129, "V": 10, "H": 3, "D": 65}):
            check_case(spec, sizes, target=target, src=src)
        lat = cl.latency(text, {"T": 1024, "V": 1024, "H": 16, "D": 256}, dialect, target)
        assert lat < 500.0, (dialect, target, lat)     # 387.10 us trn2, 303.74 us trn1


def test_a_temp_read_transposed_outside_a_scan_is_not_turned():
    # the boundary of codegen/turned.py's temp rule: only a turned scan turns a temp;
    # layernorm3d's mu[b, s] stays in its fused row pass
    spec = load_spec_text((Path(__file__).resolve().parents[1] / "specs" / "layernorm3d.yaml")
                          .read_text())
    src = generate(spec, target="trn2")
    assert "turned copy of mu" not in src and "turned copy of var" not in src


PIXEL_SHUFFLE = """nkigen: 1
name: pixel_shuffle
doc: pixel shuffle by 2 with the output's mixed dimensions spelled out
sizes:
  C: {min: 1, max: 256}
  H: {min: 1, max: 128}
  W: {min: 1, max: 128}
  C4: {value: "4 * C"}
inputs:
  x: {shape: [C4, H, W], dtype: float32}
outputs:
  y: {shape: [C, H, 2, W, 2], dtype: float32}
compute:
  - y[c, h, a, w, b] = x[4 * c + 2 * a + b, h, w]
tests:
  cases:
    - {C: 1, H: 1, W: 1}
    - {C: 33, H: 5, W: 6}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_the_classic_pixel_shuffle_builds(dialect, target):
    # fuzz9's open item: at its largest test case the row lowering put c on the partitions
    # and b on the free axis, and x[4c + 2a + b, h, w] indexes one dimension with both,
    # which the classic dialect has no form for ("access x[...] mixes c and b in one
    # dimension"); h and w take the tile axes now (rows._mixed_fallbacks)
    spec = load_spec_text(PIXEL_SHUFFLE)
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"C": 1, "H": 1, "W": 1}, {"C": 33, "H": 5, "W": 6}, {"C": 2, "H": 128, "W": 3}):
        got, want, _ = run_exact(spec, sizes, dialect, target)
        assert np.array_equal(got[0], want[0])
    assert "def pixel_shuffle(x)" in src
