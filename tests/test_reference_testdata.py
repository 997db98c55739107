"""Tests of nkigen.testdata: generated inputs, tolerances and cases."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from nkigen.frontend import load_spec_text
from nkigen.reference import evaluate, evaluate_all
from nkigen.testdata import cases, longest_reduction, make_inputs, tolerance

HEAD = "nkigen: 1\nname: k\n"


def spec_text(body: str):
    return load_spec_text(HEAD + body)


MATMUL = """
sizes:
  M: {multiple_of: 4}
  K: {min: 1}
  N: {min: 1, max: 64}
inputs:
  a: {shape: [M, K], dtype: %(in)s}
  b: {shape: [K, N], dtype: %(in)s}
outputs:
  c: {shape: [M, N], dtype: %(out)s}
compute:
  - c[m, n] += a[m, k] * b[k, n]
"""


def matmul(in_dtype="float32", out_dtype="float32", extra=""):
    return spec_text(MATMUL % {"in": in_dtype, "out": out_dtype} + extra)


CASE = {"M": 8, "K": 32, "N": 5}


def test_inputs_are_deterministic_and_typed():
    spec = matmul("bfloat16")
    x1, x2 = make_inputs(spec, CASE), make_inputs(spec, CASE)
    assert list(x1) == ["a", "b"]
    assert x1["a"].dtype == np.dtype(ml_dtypes.bfloat16)
    assert x1["a"].shape == (8, 32) and x1["b"].shape == (32, 5)
    for k in x1:
        np.testing.assert_array_equal(x1[k].astype(np.float64), x2[k].astype(np.float64))
    assert not np.array_equal(x1["a"][:, :5].astype(float), x1["b"][:8].astype(float))
    x3 = make_inputs(spec, CASE, seed=1)
    assert not np.array_equal(x1["a"].astype(float), x3["a"].astype(float))


def test_seed_from_spec_and_streams_are_per_input_name():
    spec = matmul(extra="tests:\n  seed: 7\n")
    np.testing.assert_array_equal(make_inputs(spec, CASE)["a"], make_inputs(matmul(), CASE,
                                                                             seed=7)["a"])
    # renaming b does not change a's data; a's data only depends on (seed, "a")
    other = spec_text((MATMUL % {"in": "float32", "out": "float32"}).replace("b[", "w[")
                      .replace("  b:", "  w:"))
    np.testing.assert_array_equal(make_inputs(other, CASE)["a"], make_inputs(matmul(), CASE)["a"])


def test_distributions_follow_tests_inputs():
    spec = spec_text("""
sizes:
  N: {min: 1}
inputs:
  u: {shape: [N], dtype: float32}
  g: {shape: [N], dtype: float32}
  d: {shape: [N], dtype: float32}
outputs:
  y: {shape: [N], dtype: float32}
compute:
  - y[n] = log(u[n]) + g[n] + d[n]
tests:
  inputs:
    u: {dist: uniform, low: 0.5, high: 2.0}
    g: {dist: normal, mean: 3.0, std: 0.5}
""")
    x = make_inputs(spec, {"N": 20000})
    assert x["u"].min() >= 0.5 and x["u"].max() <= 2.0
    assert abs(x["g"].mean() - 3.0) < 0.02 and abs(x["g"].std() - 0.5) < 0.02
    assert abs(x["d"].mean()) < 0.03 and abs(x["d"].std() - 1.0) < 0.03
    assert np.isfinite(evaluate(spec, x)["y"]).all()


def test_fp8_inputs_stay_finite():
    spec = matmul("float8_e4m3", extra="tests:\n  inputs:\n    a: {dist: normal, std: 1000}\n")
    x = make_inputs(spec, CASE)
    assert x["a"].dtype == np.dtype(ml_dtypes.float8_e4m3)
    assert np.isfinite(x["a"].astype(np.float64)).all()


def test_explicit_tolerance_wins_and_halves_are_derived():
    spec = matmul(extra="tests:\n  tolerance: {rtol: 0.25, atol: 0.5}\n")
    assert tolerance(spec, CASE) == (0.25, 0.5)
    half = matmul(extra="tests:\n  tolerance: {rtol: 0.25}\n")
    rtol, atol = tolerance(half, CASE)
    assert rtol == 0.25 and 0 < atol < 0.01


def test_derived_tolerance_orders():
    f32, bf16 = tolerance(matmul(), CASE), tolerance(matmul("float32", "bfloat16"), CASE)
    assert f32[0] < 1e-4 and bf16[0] > 1e-2
    # bf16 inputs with an fp32 result: input rounding is shared, so the tolerance stays fp32
    assert tolerance(matmul("bfloat16"), CASE)[0] == f32[0]
    # longer reductions get more slack
    assert tolerance(matmul(), dict(CASE, K=2048))[0] > f32[0]
    assert longest_reduction(matmul(), dict(CASE, K=2048)) == 2048


def test_fp32_emulation_passes_and_a_wrong_result_fails():
    spec = matmul(out_dtype="bfloat16")
    case = {"M": 16, "K": 1024, "N": 64}
    x = make_inputs(spec, case)
    ref = evaluate(spec, x, case)["c"]
    emu = evaluate_all(spec, x, case, compute_dtype=np.float32)["c"]
    rtol, atol = tolerance(spec, case)
    np.testing.assert_allclose(emu, ref, rtol=rtol, atol=atol)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ref * 1.05, ref, rtol=rtol, atol=atol)


def test_cases_from_spec_or_fallback():
    spec = matmul(extra="tests:\n  cases:\n    - {M: 4, K: 3, N: 2}\n")
    assert cases(spec) == [{"K": 3, "M": 4, "N": 2}]
    found = cases(matmul())
    assert found
    for c in found:
        assert c["M"] % 4 == 0 and 1 <= c["N"] <= 64 and c["K"] >= 1
        assert np.isfinite(evaluate(matmul(), make_inputs(matmul(), c), c)["c"]).all()
