"""Every tolerance pinned at its boundary (issue 17): the build's pass/fail rule, the default
tolerance formula of nkigen.testdata (storage flips, summation slack, transcendental allowance),
the generated suite's rtol/atol; and goldens proven to hold the reference, not the kernel output.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_build_fakes import FAKE, fake_evaluate, fake_load, spec_text
from test_build_suite import run_suite

from nkigen.frontend import load_spec_text
from nkigen.library import golden
from nkigen.library.build import BuildOptions, build
from nkigen.library.unit import mismatches
from nkigen.testdata import tolerance

EPS32 = 2.0**-23
EPS_BF16 = 2.0**-7

# ---- the element rule: |got - want| <= atol + rtol * |want| ----------------------------------


@pytest.mark.parametrize("want", [1.0, -1.0, 3.0])
def test_mismatch_rule_at_its_boundary(want):
    rtol, atol = 2.0**-10, 2.0**-12          # exact in binary: the bound is exact too
    bound = atol + rtol * abs(want)
    for sign in (1, -1):
        edge = want + sign * bound
        over = np.nextafter(edge, sign * np.inf)
        under = np.nextafter(edge, -sign * np.inf)
        bad, err = mismatches(np.array([edge, under, over]), np.full(3, want), rtol, atol)
        assert bad.tolist() == [False, False, True], (sign, err)
    # the relative part scales with the reference, not with the kernel's value
    bad, _ = mismatches(np.array([want + 2 * bound]), np.array([want]), rtol, atol)
    assert bad.all()


def test_mismatch_rule_zero_tolerance_is_exact():
    bad, _ = mismatches(np.array([1.0, np.nextafter(1.0, 2.0)]), np.ones(2), 0.0, 0.0)
    assert bad.tolist() == [False, True]


# ---- the default tolerance formula (nkigen.testdata.tolerance) ----------------------------------

HEAD = "nkigen: 1\nname: k\n"
MATMUL = HEAD + """\
sizes:
  M: {multiple_of: 4}
  K: {min: 1}
  N: {min: 1, max: 64}
inputs:
  a: {shape: [M, K], dtype: float32}
  b: {shape: [K, N], dtype: float32}
outputs:
  c: {shape: [M, N], dtype: %s}
compute:
  - c[m, n] += a[m, k] * b[k, n]
"""
ELEMENTWISE = HEAD + """\
sizes:
  N: {min: 1}
inputs:
  a: {shape: [N, N], dtype: float32}
outputs:
  c: {shape: [N, N], dtype: float32}
compute:
  - c[m, n] = %s(a[m, n])
"""


def _rms(a) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a, np.float64)))))


@pytest.mark.parametrize(("out", "eps_s"), [("float32", EPS32), ("bfloat16", EPS_BF16)])
def test_default_tolerance_formula_matmul(out, eps_s):
    # rtol = 4 eps_storage + 8 eps_fp32 sqrt(L); atol = rms * (4 eps_temp + 8 eps_fp32 sqrt(L))
    spec = load_spec_text(MATMUL % out)
    sizes = {"M": 8, "K": 32, "N": 5}
    ref = {"c": np.linspace(-3.0, 5.0, 40).reshape(8, 5)}
    rtol, atol = tolerance(spec, sizes, ref)
    engine = 8 * EPS32 * math.sqrt(32)
    assert rtol == pytest.approx(4 * eps_s + engine, rel=1e-12)
    assert atol == pytest.approx(_rms(ref["c"]) * (4 * EPS32 + engine), rel=1e-12)


@pytest.mark.parametrize(("func", "allowance"), [
    ("exp", 2.0**-16), ("tanh", 2.0**-16), ("sigmoid", 2.0**-16),
    ("sqrt", 2.0**-18), ("reciprocal", 2.0**-18), ("relu", 0.0), ("abs", 0.0),
])
def test_transcendental_allowance(func, allowance):
    spec = load_spec_text(ELEMENTWISE % func)
    ref = {"c": np.full((4, 4), 2.0)}
    rtol, atol = tolerance(spec, {"N": 4}, ref)
    assert rtol == pytest.approx(4 * EPS32 + 8 * EPS32 + allowance, rel=1e-12)
    assert atol == pytest.approx(2.0 * (4 * EPS32 + 8 * EPS32 + allowance), rel=1e-12)


def test_given_tolerance_wins():
    spec = load_spec_text(ELEMENTWISE % "exp" + "tests:\n  tolerance: {rtol: 0.125, atol: 0.25}\n")
    assert tolerance(spec, {"N": 4}, {"c": np.ones((4, 4))}) == (0.125, 0.25)


# ---- the build applies the tolerance: just within passes, just beyond fails -------------------

ATOL = 2.0**-10


def _tol_stage(spec, sizes):
    return (0.0, ATOL)


def _build_one(tmp_path: Path, name: str, **kw):
    specs = tmp_path / f"specs-{name}"
    specs.mkdir()
    (specs / f"{name}.yaml").write_text(spec_text(name, **kw))
    out = tmp_path / f"lib-{name}"
    return build(BuildOptions((str(specs),), str(out)), replace(FAKE, tolerance=_tol_stage)), out


def test_build_tolerance_boundary(tmp_path):
    # the fake kernel adds `bug` to every element (float32 rounding of y ~ 1e-7 on top)
    ok, _ = _build_one(tmp_path, "within", bug=0.75 * ATOL)
    assert ok.ok, ok.failed
    bad, out = _build_one(tmp_path, "beyond", bug=1.25 * ATOL)
    assert not bad.ok and not out.exists()
    (diag,) = bad.failed[0].diagnostics
    assert "differs from the float64 reference" in diag and f"atol={ATOL:g}" in diag


def test_goldens_hold_the_reference_not_the_kernel_output(tmp_path):
    rep, out = _build_one(tmp_path, "offby", bug=0.5 * ATOL)    # wrong, but within tolerance
    assert rep.ok
    spec = fake_load(tmp_path / "specs-offby" / "offby.yaml")
    for n in (8, 16):
        inputs, outputs = golden.load(out / "golden" / "offby" / f"N{n}.npz")
        want = fake_evaluate(spec, inputs, {"N": n})["y"]
        np.testing.assert_array_equal(outputs["y"], want)          # exactly the reference
        kernel_y = (inputs["x"].astype(np.float64) * 2.0 + 0.5 * ATOL).astype(np.float32)
        assert not np.array_equal(outputs["y"], kernel_y.astype(np.float64))


def test_kernel_accepting_invalid_sizes_fails_the_build(tmp_path):
    rep, out = _build_one(tmp_path, "lax", lax=1)
    assert not rep.ok and not out.exists()
    (diag,) = rep.failed[0].diagnostics
    assert "kernel accepted invalid sizes N=6" in diag
    rep, out = _build_one(tmp_path, "strict")
    assert rep.ok

    (entry,) = json.loads((out / "manifest.json").read_text())["kernels"]
    assert entry["invalid_cases"] == [{"sizes": {"N": 6}, "message":
                                       "size N = 6 must be a multiple of 4",
                                       "shapes": {"x": [6]}}]


# ---- the generated suite: its tolerance and a golden missing an output -----------------------

def test_generated_suite_tolerance_boundary_and_missing_output(tmp_path):
    rep, lib = _build_one(tmp_path, "g", cases=(4, 8, 16))
    assert rep.ok
    rtol_atol = {c["name"]: (c["rtol"], c["atol"])
                 for c in json.loads((lib / "manifest.json").read_text())
                 ["kernels"][0]["cases"]}

    def rewrite(case: str, how: str) -> None:
        path = lib / "golden" / "g" / f"{case}.npz"
        inputs, outputs = golden.load(path)
        arrays = {f"input.{k}": v for k, v in inputs.items()}
        y = outputs["y"].copy()
        rtol, atol = rtol_atol[case]
        if how != "missing":
            i = int(np.argmax(y))                      # a positive element
            # the suite passes when |kernel - golden| <= atol + rtol * |golden|
            c = (atol + rtol * y[i]) / (1 - rtol)
            y[i] += 0.97 * c if how == "within" else 1.03 * c
            arrays["output.y"] = y
        path.write_bytes(golden.npz_bytes(arrays))

    assert rtol_atol["N8"] == (0.0, ATOL)
    rewrite("N4", "missing")
    rewrite("N8", "within")
    rewrite("N16", "beyond")
    r = run_suite(lib, tmp_path, plugin=True)
    assert r.returncode == 1, r.stdout
    assert "test_g.py::test_matches_reference[N4]" in r.stdout, r.stdout
    assert "test_g.py::test_matches_reference[N16]" in r.stdout, r.stdout
    assert "test_matches_reference[N8]" not in r.stdout, r.stdout
    assert "2 failed, 2 passed" in r.stdout, r.stdout


def test_where_fill_literals_do_not_set_the_atol():
    """A ``where`` arm's literal (causal_scores' -30000 mask fill, a param, a negated one) is
    stored, not computed: atol scales with the computed elements only. With the fill counted the
    atol was ~0.24 for scores of order 1 and a kernel whose scores were truncated to integers
    still verified; now the same 1e-3 error on a computed score fails, while the fill itself
    compares exactly."""
    from nkigen.frontend import load_spec
    from nkigen.testdata import computed, evaluate, fills, make_inputs

    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / "causal_scores.yaml")
    sizes = {"M": 128, "N": 128}
    ref = evaluate(spec, make_inputs(spec, sizes), sizes)["s"]
    assert fills(spec, "s") == {-30000.0}
    scores = computed(spec, "s", ref)
    assert scores.size == 128 * 129 // 2                 # the n <= m triangle
    rtol, atol = tolerance(spec, sizes)
    rms = float(np.sqrt(np.mean(np.square(scores))))
    assert atol == pytest.approx((4 * EPS32 + 8 * EPS32 * math.sqrt(128)) * rms, rel=1e-6)
    assert atol < 1e-4
    got = ref.copy()
    got[5, 3] += 1e-3                                     # one computed score off by 1e-3
    assert mismatches(got, ref, rtol, atol)[0].sum() == 1
    spec_p = load_spec_text(
        "nkigen: 1\nname: p\nsizes: {N: {min: 1}}\nparams: {big: 5.0e4}\n"
        "inputs: {x: {shape: [N], dtype: float32}}\noutputs: {y: {shape: [N], dtype: float32}}\n"
        "compute:\n  - y[n] = where(x[n] > 0, x[n], -big)\n")
    assert fills(spec_p, "y") == {-5.0e4}
