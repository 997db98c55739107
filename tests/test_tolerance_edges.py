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
