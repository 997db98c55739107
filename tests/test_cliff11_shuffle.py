"""Copies that interleave short digits into output rows (pixel shuffle) take the shuffle
lowering (codegen/shuffle.py): contiguous runs of the input loaded per digit value, written into
whole output rows on chip through a stepped view, one contiguous store per row block. Before, the
row lowering streamed the output's last index (two elements) per tile: fuzz10's 5-D pixel
shuffle at C = H = W = 64 modelled 6,160.76 us (trn2) for 8.4 MB, 245x its bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import assert_matches_reference, load_source  # noqa: E402

from nkigen import hw  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

# the two cross combinations run in the slow tier (README test command under 4 minutes)
ALL4 = [("nki", "trn2"), pytest.param("nki", "trn1", marks=pytest.mark.slow),
        pytest.param("neuronxcc", "trn2", marks=pytest.mark.slow), ("neuronxcc", "trn1")]

PS5 = """nkigen: 1
name: ps5
doc: pixel shuffle with mixed output dims
sizes: {C: {min: 1, max: 64}, H: {min: 1, max: 64}, W: {min: 1, max: 64}, C4: {value: "4 * C"}}
inputs: {x: {shape: [C4, H, W], dtype: DT}}
outputs: {y: {shape: [C, H, 2, W, 2], dtype: DT}}
compute:
  - y[c, h, a, w, b] = x[4 * c + 2 * a + b, h, w]
"""
# no index between the partition and the interleaved one: rows of one h each
PS4 = """nkigen: 1
name: ps4
doc: interleave K planes along the last axis
sizes: {H: {min: 1, max: 300}, W: {min: 1, max: 64}}
inputs: {x: {shape: [K, H, W], dtype: float32}}
outputs: {y: {shape: [H, W, K], dtype: float32}}
compute:
  - y[h, w, b] = x[b, h, w]
"""


def run_case(text: str, sizes: dict[str, int], dialect: str, target: str) -> str:
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    kernel = load_source(src, spec.name)
    inputs = make_inputs(spec, sizes)
    out = sim.simulate(kernel, target)(*inputs.values())
    assert_matches_reference(spec, sizes, (out,), inputs=inputs)
    return src


def latency(text: str, sizes: dict[str, int], dialect: str, target: str) -> float:
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    inputs = make_inputs(spec, sizes)
    ph = [sim.placeholder(inputs[t.name].shape, t.dtype.value) for t in spec.inputs]
    return sim.run(kernel, ph, target=target, numerics=False).report.latency_us


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("dt", ["float32", "bfloat16"])
@pytest.mark.parametrize("sizes", [{"C": 1, "H": 1, "W": 1}, {"C": 3, "H": 5, "W": 7},
                                   {"C": 64, "H": 33, "W": 64}])
def test_pixel_shuffle_takes_the_shuffle_form_and_verifies(dialect, target, dt, sizes):
    src = run_case(PS5.replace("DT", dt), sizes, dialect, target)
    assert "y_rows" in src, src


@pytest.mark.parametrize("dialect,target", ALL4)
def test_pixel_shuffle_estimate_is_near_its_bytes(dialect, target):
    # before / after with the cost model of 6059d2c: 6,901.27 -> 29.67 us (nki/trn2),
    # 4,839.93 -> 25.70 (nki/trn1), 5,382.64 -> 29.67 (neuronxcc/trn2), 5,097.62 -> 25.70
    # (neuronxcc/trn1). Bound: 2 x (bytes / HBM bandwidth + 2 us)
    nbytes = 2 * 4 * 256 * 64 * 64
    bound = 2 * (nbytes / hw.TARGETS[target].hbm_gbps_per_core / 1e3 + 2.0)
    got = latency(PS5.replace("DT", "float32"), {"C": 64, "H": 64, "W": 64}, dialect, target)
    assert got < bound, (got, bound)


@pytest.mark.parametrize("dialect,target,k,taken", [
    ("nki", "trn2", 8, True), ("neuronxcc", "trn1", 8, True), ("nki", "trn2", 9, False),
    ("nki", "trn1", 9, False)])
def test_short_digits_end_at_eight_values(dialect, target, k, taken):
    # SHORT = 8: a last dimension of 8 planes is interleaved on chip; 9 is a long index, the
    # statement is no longer a digit interleave and the row lowering keeps it (the classic
    # row lowering of the 9-plane form fails in the simulator on main as well: a reported
    # finding, not this lowering's)
    text = PS4.replace("K", str(k))
    src = run_case(text, {"H": 130, "W": 5}, dialect, target)
    assert ("y_rows" in src) is taken


def test_contiguous_output_runs_keep_the_row_lowering():
    # w is contiguous in y (the short digit comes before it): nothing to interleave
    text = """nkigen: 1
name: planes_split
doc: split channels into pairs
sizes: {C: {min: 1, max: 64}, H: {min: 1, max: 64}, W: {min: 1, max: 64}, C2: {value: "2 * C"}}
inputs: {x: {shape: [C2, H, W], dtype: float32}}
outputs: {y: {shape: [C, 2, H, W], dtype: float32}}
compute:
  - y[c, a, h, w] = x[2 * c + a, h, w]
"""
    src = run_case(text, {"C": 3, "H": 5, "W": 7}, "nki", "trn2")
    assert "y_rows" not in src


def test_a_computed_value_is_not_a_shuffle():
    text = PS5.replace("DT", "float32").replace("x[4 * c + 2 * a + b, h, w]",
                                                "2.0 * x[4 * c + 2 * a + b, h, w]")
    src = run_case(text, {"C": 3, "H": 5, "W": 7}, "nki", "trn2")
    assert "y_rows" not in src


BF16_SHUFFLE_BY_THREE = """nkigen: 1
name: v_ps3
doc: pixel shuffle by 3
sizes: {C: {min: 1, max: 16}, H: {min: 1, max: 40}, W: {min: 1, max: 40}, C9: {value: "9 * C"}}
inputs: {x: {shape: [C9, H, W], dtype: bfloat16}}
outputs: {y: {shape: [C, H, 3, W, 3], dtype: bfloat16}}
compute:
  - y[c, h, a, w, b] = x[9 * c + 3 * a + b, h, w]
tests: {cases: [{C: 1, H: 1, W: 1}, {C: 3, H: 7, W: 5}, {C: 16, H: 40, W: 33}]}
"""


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
@pytest.mark.parametrize("sizes", [{"C": 1, "H": 1, "W": 1}, {"C": 3, "H": 7, "W": 5},
                                   {"C": 16, "H": 40, "W": 33}])
def test_bf16_shuffle_by_three_verifies(dialect, target, sizes):
    got = run_case(BF16_SHUFFLE_BY_THREE, sizes, dialect, target)
    src = got[0] if isinstance(got, tuple) else got   # (source, outputs) in the runmax file
    assert 'y_rows' in src, src
