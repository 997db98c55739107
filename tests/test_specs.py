"""The shipped kernel library specs/: every spec loads, every case evaluates in the reference,
the derived tolerances pass an fp32-engine emulation and catch seeded bugs, and independent
NumPy computations agree with the reference on the kernels whose meaning is well known."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest

from nkigen.dtypes import DType
from nkigen.frontend import load_spec
from nkigen.reference import evaluate, evaluate_all, resolve_sizes, shape_of
from nkigen.testdata import cases, make_inputs, tolerance

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
SPEC_FILES = sorted(SPEC_DIR.glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../nkigen/schema/kernel.schema.json"
MAX_ELEMENTS = 300_000


@functools.cache
def load(path: Path):
    """Each spec is parsed once per session (Spec is frozen, so sharing it is safe)."""
    return load_spec(path)


def spec_named(name: str):
    return load(SPEC_DIR / f"{name}.yaml")


def f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def within(got: np.ndarray, ref: np.ndarray, tol: tuple[float, float]) -> bool:
    rtol, atol = tol
    return bool(np.all(np.abs(got - ref) <= atol + rtol * np.abs(ref)))


def test_library_size_and_unique_names():
    assert len(SPEC_FILES) >= 22
    names = [load(p).name for p in SPEC_FILES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_loads_and_every_case_evaluates(path: Path):
    assert path.read_text().splitlines()[0] == MODELINE
    spec = load(path)
    assert spec.name == path.stem
    assert spec.doc
    assert spec.tests.cases, "every shipped spec lists its own test cases"
    for case in cases(spec):
        sizes = resolve_sizes(spec, case)
        env = {**spec.param_values(), **sizes}
        for t in spec.tensors:
            assert math.prod(shape_of(t, env)) <= MAX_ELEMENTS, (t.name, case)
        inputs = make_inputs(spec, case)
        ref = evaluate(spec, inputs, case)
        assert list(ref) == [t.name for t in spec.outputs]
        for name, value in ref.items():
            assert np.isfinite(value).all(), (name, case)
        # an fp32-engine emulation of the same program stays well inside the tolerance
        emulated = evaluate_all(spec, inputs, case, compute_dtype=np.float32)
        tol = tolerance(spec, case, ref)
        rtol, atol = tol
        for name, value in ref.items():
            err = np.abs(emulated[name] - value) / (atol + rtol * np.abs(value))
            assert err.max() <= 0.5, (name, case, float(err.max()))


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_passes_nkigen_check(path: Path):
    """load + parse + analyze (extents, bounds proofs, schedule hints): what `nkigen check` runs."""
    from nkigen.pipeline import check

    spec, analysis = check(path)
    assert spec.name == path.stem
    assert analysis is not None


def test_some_cases_are_ragged():
    """Several specs exercise sizes that are not multiples of the 128-partition tile."""
    ragged = {
        load(p).name for p in SPEC_FILES
        for c in cases(load(p)) if any(v % 128 for v in c.values())
    }
    assert len(ragged) >= 8


# ---- independent numeric checks -------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("matmul_f32", lambda x: x["a"] @ x["b"]),
        ("matmul_bf16", lambda x: x["a"] @ x["b"]),
        ("matmul_at", lambda x: x["a"].T @ x["b"]),
        ("matmul_bt", lambda x: x["a"] @ x["b"].T),
        ("bmm", lambda x: np.matmul(x["x"], x["y"])),
        ("matmul_2k", lambda x: np.tensordot(x["a"], x["b"], axes=([1, 2], [0, 1]))),
        ("matmul_fp8", lambda x: 0.0625 * (x["a"] @ x["b"])),
        ("col_sum", lambda x: x["x"].sum(axis=0)),
        ("row_sum", lambda x: x["x"].sum(axis=1)),
        ("row_mean", lambda x: x["x"].mean(axis=1)),
        ("row_max", lambda x: x["x"].max(axis=1)),
        ("add", lambda x: x["x"] + x["y"]),
    ],
)
def test_linear_kernels_match_numpy(name, formula):
    spec = spec_named(name)
    out_dtype = spec.outputs[0].dtype
    for case in cases(spec):
        inputs = make_inputs(spec, case)
        got = next(iter(evaluate(spec, inputs, case).values()))
        expect = out_dtype.round(formula({k: f64(v) for k, v in inputs.items()}))
        # identical up to float64 summation order, then one output ulp at most
        np.testing.assert_allclose(got, expect, rtol=2 * out_dtype.eps, atol=1e-9)


def test_softmax_and_attention_rows_sum_to_one():
    for name, out in (("softmax", "y"), ("attention_probs", "p")):
        spec = spec_named(name)
        for case in cases(spec):
            y = evaluate(spec, make_inputs(spec, case), case)[out]
            np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
            assert (y >= 0).all()


def test_attention_probs_matches_numpy_softmax():
    spec = spec_named("attention_probs")
    case = cases(spec)[1]
    x = {k: f64(v) for k, v in make_inputs(spec, case).items()}
    s = 0.125 * (x["q"] @ x["k"].T)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    expect = e / e.sum(axis=1, keepdims=True)
    got = evaluate(spec, make_inputs(spec, case), case)["p"]
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-9)


def test_log_softmax_exponentiates_to_probabilities():
    spec = spec_named("log_softmax")
    for case in cases(spec):
        y = evaluate(spec, make_inputs(spec, case), case)["y"]
        assert (y <= 1e-6).all()
        np.testing.assert_allclose(np.exp(y).sum(axis=1), 1.0, rtol=1e-5)


def test_layernorm_normalises_rows():
    spec = spec_named("layernorm")
    for case in cases(spec):
        x = make_inputs(spec, case)
        y = evaluate(spec, x, case)["y"]
        z = (y - f64(x["beta"])) / f64(x["gamma"])
        np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-5)
        np.testing.assert_allclose(z.var(axis=1), 1.0, rtol=1e-3)


def test_rmsnorm_family_matches_formula():
    for name in ("rmsnorm", "residual_rmsnorm"):
        spec = spec_named(name)
        case = cases(spec)[-1]
        x = {k: f64(v) for k, v in make_inputs(spec, case).items()}
        h = x["x"] + x.get("r", 0.0)
        h = DType.bfloat16.round(h) if name == "residual_rmsnorm" else h
        ms = DType.float32.round(np.mean(h * h, axis=1, keepdims=True))
        expect = DType.bfloat16.round(h / np.sqrt(ms + 1e-6) * x["w"])
        out = evaluate(spec, make_inputs(spec, case), case)
        np.testing.assert_allclose(out["y"], expect, rtol=2 * DType.bfloat16.eps)
        if name == "residual_rmsnorm":
            np.testing.assert_array_equal(out["h"], h)


def test_swiglu_and_gelu_epilogues_match_formula():
    spec = spec_named("swiglu")
    case = cases(spec)[0]
    x = {k: f64(v) for k, v in make_inputs(spec, case).items()}
    g, u = x["x"] @ x["wg"], x["x"] @ x["wu"]
    expect = DType.bfloat16.round(g / (1 + np.exp(-g)) * u)
    got = evaluate(spec, make_inputs(spec, case), case)["h"]
    np.testing.assert_allclose(got, expect, rtol=2 * DType.bfloat16.eps, atol=1e-3)

    spec = spec_named("matmul_bias_gelu")
    case = cases(spec)[1]
    x = {k: f64(v) for k, v in make_inputs(spec, case).items()}
    z = 0.5 * (x["a"] @ x["b"]) + x["bias"]
    erf = np.vectorize(math.erf)
    expect = DType.bfloat16.round(0.5 * z * (1 + erf(z / math.sqrt(2))))
    got = evaluate(spec, make_inputs(spec, case), case)["c"]
    np.testing.assert_allclose(got, expect, rtol=2 * DType.bfloat16.eps, atol=1e-3)


def test_conv1d_matches_hand_loop():
    spec = spec_named("conv1d")
    case = cases(spec)[1]
    x = make_inputs(spec, case)
    xv, w = f64(x["x"]), f64(x["w"])
    c_size, h = xv.shape
    f_size, _, r_size = w.shape
    o_size = (h - r_size) // 2 + 1
    expect = np.zeros((f_size, o_size))
    for o in range(o_size):
        for r in range(r_size):
            expect[:, o] += w[:, :, r] @ xv[:, o * 2 + r]
    got = evaluate(spec, x, case)["y"]
    assert got.shape == (f_size, o_size)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


def test_maxpool1d_matches_hand_loop():
    spec = spec_named("maxpool1d")
    case = cases(spec)[1]
    x = make_inputs(spec, case)
    xv = f64(x["x"])
    o_size = (xv.shape[1] - 3) // 2 + 1
    expect = np.stack([xv[:, 2 * o:2 * o + 3].max(axis=1) for o in range(o_size)], axis=1)
    np.testing.assert_array_equal(evaluate(spec, x, case)["y"], expect)


# ---- the tolerances catch real bugs ---------------------------------------------------------

def test_tolerance_catches_missing_bias():
    spec = spec_named("matmul_bias_gelu")
    case = cases(spec)[0]
    x = make_inputs(spec, case)
    ref = evaluate(spec, x, case)
    tol = tolerance(spec, case, ref)
    no_bias = dict(x, bias=np.zeros_like(x["bias"]))
    assert within(ref["c"], ref["c"], tol)
    assert not within(evaluate(spec, no_bias, case)["c"], ref["c"], tol)


def test_tolerance_catches_wrong_transpose():
    spec = spec_named("matmul_f32")
    case = {"M": 128, "K": 128, "N": 128}
    x = make_inputs(spec, case)
    ref = evaluate(spec, x, case)
    wrong = evaluate(spec, dict(x, b=np.ascontiguousarray(x["b"].T)), case)
    assert not within(wrong["c"], ref["c"], tolerance(spec, case, ref))


def test_tolerance_catches_dropped_partial_tile():
    """A softmax whose row sum forgets the ragged last column tile (700 = 512 + 188)."""
    spec = spec_named("softmax")
    case = {"M": 200, "N": 700}
    x = make_inputs(spec, case)
    ref = evaluate(spec, x, case)
    e = evaluate_all(spec, x, case)["e"]
    wrong = e / e[:, :512].sum(axis=1, keepdims=True)
    assert not within(wrong, ref["y"], tolerance(spec, case, ref))


def test_tolerance_catches_wrong_scale_in_bf16_kernel():
    spec = spec_named("mlp_gelu_tanh")
    case = cases(spec)[0]
    x = make_inputs(spec, case)
    ref = evaluate(spec, x, case)
    scaled = dict(x, w=(f64(x["w"]) * 1.1).astype(x["w"].dtype))
    assert not within(evaluate(spec, scaled, case)["y"], ref["y"], tolerance(spec, case, ref))
