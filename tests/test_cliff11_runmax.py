"""A running max / min spelled as a triangular reduction takes the scan lowering
(codegen/runmax.py): one ``tensor_tensor_scan`` with ``op0 = op1 = maximum`` (or ``minimum``) per
row tile, the fill value applied to every column but the last. Before, every output element was
a masked reduction over the whole row: fuzz9's f9_prefix_max_tri at M 1024, N 512 modelled
9,665.13 us on trn2 (nki).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import assert_matches_reference, load_source  # noqa: E402

from nkigen import hw  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

# the two cross combinations run in the slow tier (README test command under 4 minutes)
ALL4 = [("nki", "trn2"), pytest.param("nki", "trn1", marks=pytest.mark.slow),
        pytest.param("neuronxcc", "trn2", marks=pytest.mark.slow), ("neuronxcc", "trn1")]

PMAX_TRI = """nkigen: 1
name: pmax
doc: prefix max along a row as a triangular max reduction
sizes: {M: {min: 1, max: 1024}, N: {min: 1, max: 512}}
inputs: {x: {shape: [M, N], dtype: DT}}
outputs: {y: {shape: [M, N], dtype: DT}}
ranges: {k: N}
compute:
  - y[m, n] = RHS
"""
MAX_LE = "max(where(k <= n, x[m, k], -30000.0), k)"
FORMS = [MAX_LE, "max(where(k < n + 1, x[m, k], -30000.0), k)",
         "max(where(n >= k, x[m, k], -5.0), k)", "max(where(k > n, -30000.0, x[m, k]), k)",
         "min(where(k <= n, x[m, k], 30000.0), k)", "min(where(k <= n, x[m, k], 0.5), k)"]


def spec_text(rhs: str = MAX_LE, dt: str = "float32") -> str:
    return PMAX_TRI.replace("RHS", rhs).replace("DT", dt)


def run_case(text: str, sizes: dict[str, int], dialect: str, target: str, inputs=None):
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    kernel = load_source(src, spec.name)
    inputs = inputs if inputs is not None else make_inputs(spec, sizes)
    out = sim.simulate(kernel, target)(*inputs.values())
    assert_matches_reference(spec, sizes, (out,), inputs=inputs)
    return src, np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("rhs", FORMS)
@pytest.mark.parametrize("sizes", [{"M": 1, "N": 1}, {"M": 130, "N": 129}, {"M": 3, "N": 2}])
def test_running_extreme_takes_the_scan_and_verifies(dialect, target, rhs, sizes):
    src, _ = run_case(spec_text(rhs), sizes, dialect, target)
    op = "maximum" if rhs.startswith("max") else "minimum"
    assert f"op0=nl.{op}, op1=nl.{op}" in src, src


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_the_fill_value_reaches_every_column_but_the_last(dialect, target):
    # rows far below the fill value: the reference gives the fill at n < N - 1 and the row's
    # own max at the last column; the kernel must agree
    sizes = {"M": 5, "N": 7}
    x = np.full((5, 7), -40000.0, dtype=np.float32)
    x[:, 3] = -35000.0
    _, got = run_case(spec_text(), sizes, dialect, target, inputs={"x": x})
    assert np.all(got[:, :-1] == -30000.0) and np.all(got[:, -1] == -35000.0), got


def test_bfloat16_rows_verify():
    src, _ = run_case(spec_text(dt="bfloat16"), {"M": 130, "N": 129}, "nki", "trn2")
    assert "op0=nl.maximum" in src


@pytest.mark.parametrize("rhs", ["max(where(k < n, x[m, k], -30000.0), k)",
                                 "max(where(k <= n + 1, x[m, k], -30000.0), k)",
                                 "sum(where(k <= n, x[m, k], 0.0), k)"])
def test_other_triangles_keep_the_row_lowering(rhs):
    # strictly lower (k < n) and shifted triangles, and sums, are not running extremes
    src, _ = run_case(spec_text(rhs), {"M": 130, "N": 33}, "nki", "trn2")
    assert "op0=nl.maximum, op1=nl.maximum" not in src


@pytest.mark.parametrize("dialect,target", ALL4)
def test_prefix_max_estimate_is_near_its_bytes(dialect, target):
    # 9,665.13 us (nki/trn2) before at M 1024, N 512; now 23.70 us. Bound: 4 x (bytes / HBM
    # bandwidth + 2 us)
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(spec_text())
    sizes = {"M": 1024, "N": 512}
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    inputs = make_inputs(spec, sizes)
    ph = [sim.placeholder(inputs[t.name].shape, t.dtype.value) for t in spec.inputs]
    got = sim.run(kernel, ph, target=target, numerics=False).report.latency_us
    bound = 4 * (2 * 4 * 1024 * 512 / hw.TARGETS[target].hbm_gbps_per_core / 1e3 + 2.0)
    assert got < bound, (got, bound)


BATCHED_RUNNING_MIN = """nkigen: 1
name: v_rmax3d
doc: running min along the last axis of a 3-D tensor, batched
sizes: {B: {min: 1, max: 4}, M: {min: 1, max: 300}, N: {min: 1, max: 256}}
inputs: {x: {shape: [B, M, N], dtype: float32}}
outputs: {y: {shape: [B, M, N], dtype: bfloat16}}
ranges: {k: N}
compute:
  - y[b, m, n] = min(where(n >= k, x[b, m, k], 100), k)
tests: {cases: [{B: 1, M: 1, N: 1}, {B: 3, M: 130, N: 65}]}
"""


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
@pytest.mark.parametrize("sizes", [{"B": 1, "M": 1, "N": 1}, {"B": 3, "M": 130, "N": 65}])
def test_batched_running_min_verifies(dialect, target, sizes):
    got = run_case(BATCHED_RUNNING_MIN, sizes, dialect, target)
    src = got[0] if isinstance(got, tuple) else got   # (source, outputs) in the runmax file
    assert 'op0=nl.minimum, op1=nl.minimum' in src, src
