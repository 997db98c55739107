"""A column sum over a short index beside a looped target index takes the grouped form
(codegen/colreduce.py ``_grouped``): ``G = 128 // J`` values of the looped index share one tile
and a 0/1 block selector sums each group's ``J`` partitions on TensorE. mamba_scan's
``y[c, t] = sum(h[c, s, t] * Cm[s, t], s)`` looped over ``c`` with 16 partitions busy: 3,371.03 us
modelled at C 1024, S 16, T 1024 (nki/trn2), 2,355 us of it in 2,048 VectorE products of 16 rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import assert_matches_reference, load_source  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

# the two cross combinations run in the slow tier (README test command under 4 minutes)
ALL4 = [("nki", "trn2"), pytest.param("nki", "trn1", marks=pytest.mark.slow),
        pytest.param("neuronxcc", "trn2", marks=pytest.mark.slow), ("neuronxcc", "trn1")]
SPECS = Path(__file__).resolve().parents[1] / "specs"
MAMBA = (SPECS / "mamba_scan.yaml").read_text()
BIG = {"C": 1024, "S": 16, "T": 1024}

GROUPED = """nkigen: 1
name: gsum
doc: weighted sum over a short middle index
sizes: {C: {min: 1, max: 1024}, J: {min: 1, max: JMAX}, T: {min: 1, max: 2048}}
inputs: {h: {shape: [C, J, T], dtype: float32}, w: {shape: [J, T], dtype: float32}}
outputs: {y: {shape: [C, T], dtype: float32}}
compute:
  - y[c, t] = OP(h[c, j, t] * w[j, t], j)
"""


def run_case(text: str, sizes: dict[str, int], dialect: str, target: str) -> str:
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    kernel = load_source(src, spec.name)
    inputs = make_inputs(spec, sizes)
    out = sim.simulate(kernel, target)(*inputs.values())
    if len(spec.outputs) == 1:
        out = (out,)
    assert_matches_reference(spec, sizes, out, inputs=inputs)
    return src


def report(text: str, sizes: dict[str, int], dialect: str, target: str):
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    inputs = make_inputs(spec, sizes)
    ph = [sim.placeholder(inputs[t.name].shape, t.dtype.value) for t in spec.inputs]
    return sim.run(kernel, ph, target=target, numerics=False).report


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("sizes", [{"C": 1, "S": 1, "T": 1}, {"C": 130, "S": 4, "T": 200},
                                   {"C": 19, "S": 7, "T": 513}, {"C": 9, "S": 16, "T": 40}])
def test_mamba_scan_grouped_sum_verifies(dialect, target, sizes):
    src = run_case(MAMBA, sizes, dialect, target)
    assert "is_stationary_onezero=True" in src and "sel[" in src, src


@pytest.mark.parametrize("dialect,target,before", [
    ("nki", "trn2", 3371.03), ("nki", "trn1", 2891.13), ("neuronxcc", "trn2", 3371.03),
    ("neuronxcc", "trn1", 3786.39)])
def test_mamba_scan_at_c1024_s16_t1024_is_no_longer_bound_by_16_row_products(
        dialect, target, before):
    # after (cost model of 6059d2c): 1,500.25 / 1,271.72 / 1,461.69 / 1,243.34 us; the scan
    # stage (one exp, two products and one tensor_tensor_scan of 128 x 1024 per (s, c tile),
    # its loads redone per s) is what remains
    rep = report(MAMBA, BIG, dialect, target)
    assert rep.latency_us < 0.6 * before, rep.latency_us


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
@pytest.mark.parametrize("jmax,grouped", [(32, True), (33, False)])
def test_grouping_needs_a_reduced_index_of_at_most_32(dialect, target, jmax, grouped):
    # GROUP_J_MAX = 128 // 4: with J up to 32 at least 4 groups share a tile
    text = GROUPED.replace("JMAX", str(jmax)).replace("OP", "sum")
    src = run_case(text, {"C": 37, "J": jmax, "T": 130}, dialect, target)
    assert ("sel[" in src) is grouped


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_grouped_mean_scales_by_the_reduced_extent(dialect, target):
    text = GROUPED.replace("JMAX", "16").replace("OP", "mean")
    src = run_case(text, {"C": 67, "J": 5, "T": 600}, dialect, target)
    assert "sel[" in src


THREE_READS_AND_A_MEAN = """nkigen: 1
name: v_gsum
doc: grouped column sums, three reads
sizes: {C: {min: 1, max: 600}, J: {min: 1, max: 8}, T: {min: 1, max: 1500}}
inputs:
  h: {shape: [C, J, T], dtype: float32}
  w: {shape: [J, T], dtype: float32}
  g: {shape: [C, J, T], dtype: float32}
outputs: {y: {shape: [C, T], dtype: float32}, z: {shape: [C, T], dtype: float32}}
compute:
  - y[c, t] = sum(h[c, j, t] * w[j, t] * g[c, j, t], j)
  - z[c, t] = mean(g[c, j, t], j)
tests: {cases: [{C: 1, J: 1, T: 1}, {C: 37, J: 5, T: 700}, {C: 130, J: 8, T: 513}]}
"""


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
@pytest.mark.parametrize("sizes", [{"C": 1, "J": 1, "T": 1}, {"C": 37, "J": 5, "T": 700},
                                   {"C": 130, "J": 8, "T": 513}])
def test_three_reads_and_a_mean_verifies(dialect, target, sizes):
    got = run_case(THREE_READS_AND_A_MEAN, sizes, dialect, target)
    src = got[0] if isinstance(got, tuple) else got   # (source, outputs) in the runmax file
    assert 'sel[' in src, src
