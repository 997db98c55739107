"""The derived tolerance's magnitude (nkigen/testdata.py ``finite_rms``), pinned where the
mutation benchmark (benchmarks/mutate.py, helper kill10) found it unpinned: an output that
overflows to inf or holds NaN must not make ``atol`` infinite, which would pass any kernel."""

from __future__ import annotations

import math

import numpy as np

from nkigen.testdata import finite_rms


def test_finite_rms_skips_inf_and_nan():
    assert finite_rms(np.array([3.0, 4.0, np.inf, -np.inf, np.nan])) == math.sqrt(12.5)
    assert finite_rms(np.array([np.inf, np.nan])) == 1.0       # nothing finite: unit scale
    assert finite_rms(np.zeros(4)) == 0.0
    # values whose squares overflow float64: scaled by the largest first
    assert math.isclose(finite_rms(np.full(10, 1e300)), 1e300, rel_tol=1e-12)


SCAN = """nkigen: 1
name: sc
doc: d
sizes:
  M: {min: 1, max: 64}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = cumsum(x[m, n], n)
tests:
  cases:
    - {M: 3, N: 300}
"""


def test_a_scan_is_a_reduction_of_its_length_in_the_tolerance():
    # the last element of a cumsum along n sums N terms: the fp32 summation allowance
    # (ACC_FACTOR eps sqrt(L)) grows with N as for sum()
    from nkigen.frontend import load_spec_text
    from nkigen.testdata import ACC_FACTOR, ENGINE_EPS, STORE_FLIPS, longest_reduction, tolerance
    spec = load_spec_text(SCAN)
    assert longest_reduction(spec, {"M": 3, "N": 300}) == 300
    rtol, _ = tolerance(spec, {"M": 3, "N": 300})
    want = STORE_FLIPS * ENGINE_EPS + ACC_FACTOR * ENGINE_EPS * math.sqrt(300)
    assert math.isclose(rtol, want, rel_tol=1e-12), (rtol, want)
