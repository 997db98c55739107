"""Spec language 1.1: index arithmetic, comparisons and where, integer dtypes, indexed reads,
argmax/argmin, scans, runtime scalars and test distributions.

Each construct is checked against an independent NumPy formulation of its meaning (hypothesis
properties on the float64 reference), and every shipped 1.1 spec is built and verified in the
simulator in both dialects (the build compares the kernel with the reference on every case).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.diagnostics import NkigenError
from nkigen.dtypes import DType
from nkigen.frontend import load_spec, load_spec_text
from nkigen.ir import CmpOp, Compare, IndexValue, Scan, Where
from nkigen.reference import evaluate
from nkigen.testdata import make_inputs

SPECS = Path(__file__).resolve().parent.parent / "specs"
SHIPPED_11 = ["causal_scores", "gqa_scores", "rope_half", "sgd_step", "matmul_int8_dequant",
              "avgpool2_rows", "ema_rows", "leaky_relu_where",
              "cumsum_rows", "mamba_scan", "row_argmax", "embedding_lookup",
              "cross_entropy_labels"]


def spec2(stmt: str, extra_inputs: str = "", out_dtype: str = "float32",
          x_shape: str = "[M, N]", out_shape: str = "[M, N]", sizes: str = "") -> str:
    return f"""\
nkigen: 1
name: k
sizes:
  M: {{min: 1, max: 64}}
  N: {{min: 1, max: 64}}
{sizes}inputs:
  x: {{shape: {x_shape}, dtype: float32}}
{extra_inputs}outputs:
  y: {{shape: {out_shape}, dtype: {out_dtype}}}
compute:
  - {stmt}
"""


def ref(text: str, inputs: dict, sizes: dict) -> np.ndarray:
    s = load_spec_text(text)
    return evaluate(s, inputs, sizes)["y"]


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


dims = st.integers(min_value=1, max_value=9)


# ---- index arithmetic ------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=dims, n=dims, seed=st.integers(0, 2**16))
def test_reversed_index_is_a_flip(m, n, seed):
    x = f32(np.random.default_rng(seed).normal(size=(m, n)))
    y = ref(spec2("y[m, n] = x[m, N - 1 - n]"), {"x": x}, {"M": m, "N": n})
    np.testing.assert_array_equal(y, x[:, ::-1])


@settings(max_examples=25, deadline=None)
@given(k=st.integers(2, 6), g=st.integers(1, 4), n=dims, seed=st.integers(0, 2**16))
def test_floor_division_and_modulo_pick_numpy_rows(k, g, n, seed):
    text = f"""\
nkigen: 1
name: k
sizes:
  K: {{min: 2, max: 64}}
  H: {{value: "K * {g}"}}
  N: {{min: 1, max: 64}}
inputs:
  x: {{shape: [K, N], dtype: float32}}
outputs:
  y: {{shape: [H, N], dtype: float32}}
compute:
  - y[h, n] = x[h // {g}, n] + 10.0 * x[(H - 1 - h) // {g}, n] + 100.0 * x[h % 2, n]
"""
    x = f32(np.random.default_rng(seed).integers(-3, 4, size=(k, n)))
    h = np.arange(k * g)
    want = x[h // g] + 10.0 * x[(k * g - 1 - h) // g] + 100.0 * x[h % 2]
    np.testing.assert_array_equal(ref(text, {"x": x}, {"K": k, "N": n}), f32(want))


def test_floor_division_bounds_are_proven_at_the_boundary():
    # x has K rows and is read at h // 2 for h < H: in bounds exactly when H <= 2 * K
    ok = """\
nkigen: 1
name: k
sizes:
  K: {min: 1, max: 64}
  H: {value: "2 * K"}
inputs:
  x: {shape: [K], dtype: float32}
outputs:
  y: {shape: [H], dtype: float32}
compute:
  - y[h] = x[h // 2]
"""
    from nkigen.analysis import analyze
    analyze(load_spec_text(ok))                                    # last legal: H = 2 * K
    bad = ok.replace('H: {value: "2 * K"}', 'H: {value: "2 * K + 1"}')   # first illegal
    with pytest.raises(NkigenError) as ei:
        analyze(load_spec_text(bad))
    assert "cannot prove floor(h/2) <= K - 1" in str(ei.value)


# ---- comparisons and where -------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=dims, n=dims, seed=st.integers(0, 2**16))
def test_causal_where_is_numpy_tril(m, n, seed):
    x = f32(np.random.default_rng(seed).normal(size=(m, n)))
    y = ref(spec2("y[m, n] = where(n <= m, x[m, n], -30000.0)"), {"x": x}, {"M": m, "N": n})
    rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
    np.testing.assert_array_equal(y, np.where(cols <= rows, x, np.float32(-30000.0)))


@pytest.mark.parametrize("op,fn", [("<", np.less), ("<=", np.less_equal), ("==", np.equal),
                                   ("!=", np.not_equal), (">=", np.greater_equal),
                                   (">", np.greater)])
def test_every_comparison_is_one_or_zero(op, fn):
    x = f32(np.arange(12).reshape(3, 4) - 5)
    y = ref(spec2(f"y[m, n] = x[m, n] {op} 0.0"), {"x": x}, {"M": 3, "N": 4})
    np.testing.assert_array_equal(y, fn(x, 0).astype(np.float64))
    yi = ref(spec2(f"y[m, n] = (n {op} m) * x[m, n]"), {"x": x}, {"M": 3, "N": 4})
    r, c = np.arange(3)[:, None], np.arange(4)[None, :]
    np.testing.assert_array_equal(yi, fn(c, r) * x)


def test_comparison_ir_keeps_index_operands():
    s = load_spec_text(spec2("y[m, n] = where(n == N - 1, x[m, n], 0.0)"))
    w = s.statements[0].rhs
    assert isinstance(w, Where) and isinstance(w.cond, Compare) and w.cond.op is CmpOp.EQ
    assert isinstance(w.cond.lhs, IndexValue)            # N - 1 alone is a size value
    x = f32(np.arange(6).reshape(2, 3) + 1)
    got = evaluate(s, {"x": x}, {"M": 2, "N": 3})["y"]
    np.testing.assert_array_equal(got, [[0, 0, 3], [0, 0, 6]])


# ---- integer dtypes ---------------------------------------------------------------------------

def test_integer_rounding_is_half_even_and_saturating():
    got = DType.int8.round(np.array([0.5, 1.5, -2.5, 127.4, 200.0, -300.0, np.nan]))
    np.testing.assert_array_equal(got, [0.0, 2.0, -2.0, 127.0, 127.0, -128.0, 0.0])
    np.testing.assert_array_equal(DType.uint8.round(np.array([-1.0, 255.0, 256.0])),
                                  [0.0, 255.0, 255.0])
    last, first_over = 2.0**31 - 1, 2.0**31
    np.testing.assert_array_equal(DType.int32.round(np.array([last, first_over])), [last, last])


def test_int8_dequant_matmul_matches_numpy():
    spec = load_spec(SPECS / "matmul_int8_dequant.yaml")
    case = {"M": 128, "K": 128, "N": 100}
    x = make_inputs(spec, case)
    assert x["wq"].dtype == np.int8 and np.abs(x["wq"]).max() <= 127
    got = evaluate(spec, x, case)["y"]
    want = (x["x"].astype(np.float64) @ x["wq"].astype(np.float64)).astype(np.float32) \
        * x["ws"].astype(np.float64)
    np.testing.assert_allclose(got, DType.bfloat16.round(want), rtol=2 * DType.bfloat16.eps)


# ---- scans -------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=dims, n=dims, seed=st.integers(0, 2**16))
def test_cumsum_is_numpy_cumsum(m, n, seed):
    x = f32(np.random.default_rng(seed).integers(-4, 5, size=(m, n)))
    y = ref(spec2("y[m, n] = cumsum(x[m, n], n)"), {"x": x}, {"M": m, "N": n})
    np.testing.assert_array_equal(y, np.cumsum(x.astype(np.float64), axis=1))


@settings(max_examples=25, deadline=None)
@given(m=dims, n=dims, seed=st.integers(0, 2**16))
def test_linear_recurrence_is_the_loop(m, n, seed):
    rng = np.random.default_rng(seed)
    x = f32(rng.integers(-3, 4, size=(m, n)))
    a = f32(rng.integers(-2, 3, size=(m, n)) / 2)
    text = spec2("y[m, n] = a[m, n] * y[m, n - 1] + x[m, n]",
                 extra_inputs="  a: {shape: [M, N], dtype: float32}\n")
    got = ref(text, {"x": x, "a": a}, {"M": m, "N": n})
    h, want = np.zeros(m), np.zeros((m, n))
    for t in range(n):
        h = a[:, t] * h + x[:, t]
        want[:, t] = h
    np.testing.assert_array_equal(got, f32(want))
    s = load_spec_text(text)
    assert isinstance(s.statements[0].rhs, Scan) and s.statements[0].rhs.index == "n"


# ---- argmax / argmin -------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=dims, n=dims, seed=st.integers(0, 2**16))
def test_argmax_and_argmin_take_the_first_extreme(m, n, seed):
    x = f32(np.random.default_rng(seed).integers(-2, 3, size=(m, n)))    # many ties
    for fn, np_fn in (("argmax", np.argmax), ("argmin", np.argmin)):
        y = ref(spec2(f"y[m] = {fn}(x[m, n], n)", out_dtype="int32", out_shape="[M]"),
                {"x": x}, {"M": m, "N": n})
        np.testing.assert_array_equal(y, np_fn(x, axis=1))


# ---- indexed reads -----------------------------------------------------------------------------

GATHER = """\
nkigen: 1
name: k
sizes:
  T: {min: 1, max: 64}
  V: {min: 1, max: 64}
  D: {min: 1, max: 64}
inputs:
  ids: {shape: [T], dtype: int32}
  table: {shape: [V, D], dtype: float32}
outputs:
  y: {shape: [T, D], dtype: float32}
compute:
  - y[t, d] = table[ids[t], d]
"""


@settings(max_examples=25, deadline=None)
@given(t=dims, v=dims, d=dims, seed=st.integers(0, 2**16))
def test_gather_is_numpy_take_and_out_of_range_ids_raise(t, v, d, seed):
    rng = np.random.default_rng(seed)
    table = f32(rng.normal(size=(v, d)))
    ids = rng.integers(0, v, size=t).astype(np.int32)
    sizes = {"T": t, "V": v, "D": d}
    np.testing.assert_array_equal(ref(GATHER, {"ids": ids, "table": table}, sizes), table[ids])
    for bad in (v, -1):                       # first id past each end
        ids2 = ids.copy()
        ids2[0] = bad
        with pytest.raises(IndexError, match="outside"):
            ref(GATHER, {"ids": ids2, "table": table}, sizes)


# ---- runtime scalars ---------------------------------------------------------------------------

def test_runtime_scalar_scales_by_its_value():
    spec = load_spec(SPECS / "sgd_step.yaml")
    case = {"M": 3, "N": 4}
    x = make_inputs(spec, case)
    got = evaluate(spec, x, case)["w_new"]
    want = x["w"].astype(np.float64) - x["lr"][0] * x["g"].astype(np.float64)
    np.testing.assert_allclose(got, f32(want), rtol=1e-6)


# ---- test distributions ------------------------------------------------------------------------

def dist_spec(dist: str, dtype: str = "float32", stmt: str = "y[m, n] = x[m, n]") -> str:
    return spec2(stmt).replace("dtype: float32}\noutputs", f"dtype: {dtype}}}\noutputs", 1) + \
        f"tests:\n  cases: [{{M: 5, N: 7}}]\n  inputs:\n    x: {dist}\n"


def test_distributions_draw_what_they_say():
    case = {"M": 5, "N": 7}
    onehot = make_inputs(load_spec_text(dist_spec("{dist: onehot}")), case)["x"]
    assert set(np.unique(onehot)) <= {0.0, 1.0} and (onehot.sum(axis=1) == 1).all()
    ar = make_inputs(load_spec_text(dist_spec("{dist: arange}")), case)["x"]
    np.testing.assert_array_equal(ar, np.arange(35).reshape(5, 7))
    causal = make_inputs(load_spec_text(dist_spec("{dist: causal}")), case)["x"]
    np.testing.assert_array_equal(causal, np.tril(np.ones((5, 7))))
    ints = make_inputs(load_spec_text(dist_spec('{dist: integers, low: 2, high: "N - 1"}')),
                       case)["x"]
    assert ints.min() >= 2 and ints.max() <= 6 and (ints == np.round(ints)).all()
    pos = make_inputs(load_spec_text(dist_spec("{dist: positive, low: 0.5, high: 0.75}")),
                      case)["x"]
    assert pos.min() >= 0.5 and pos.max() <= 0.75


def test_default_inputs_respect_dtypes_and_function_domains():
    case = {"M": 5, "N": 7}
    logs = make_inputs(load_spec_text(spec2("y[m, n] = log(x[m, n])")), case)["x"]
    assert logs.min() > 0
    plain = make_inputs(load_spec_text(spec2("y[m, n] = x[m, n]")), case)["x"]
    assert plain.min() < 0                               # N(0, 1) stays the default elsewhere
    text = spec2("y[m, n] = x[m, n] * 2.0").replace("dtype: float32}\noutputs",
                                                     "dtype: uint8}\noutputs", 1)
    u8 = make_inputs(load_spec_text(text), case)["x"]
    assert u8.dtype == np.uint8 and u8.max() <= 16


# ---- shipped specs, simulated in both dialects -----------------------------------------------

@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name", SHIPPED_11)
@pytest.mark.slow
def test_shipped_11_spec_builds_and_matches_reference(name, dialect, tmp_path, capsys):
    code, out, err = run(capsys, "build", str(SPECS / f"{name}.yaml"), "-o",
                         str(tmp_path / "lib"), "--dialect", dialect)
    assert code == 0, out + err
    assert f"{name}" in out and "1 built" in out


LOG_SPEC = """\
nkigen: 1
name: logx
sizes:
  M: {min: 1, max: 256}
inputs:
  x: {shape: [M], dtype: float32}
outputs:
  y: {shape: [M], dtype: float32}
compute:
  - y[m] = log(x[m])
tests:
  cases: [{M: 5}]
  inputs:
    x: {dist: normal, mean: 0.0, std: 1.0}
"""


@pytest.mark.parametrize("declared", [False, True])
def test_build_fails_on_undeclared_nonfinite_reference(declared, tmp_path, capsys):
    p = tmp_path / "logx.yaml"
    p.write_text(LOG_SPEC + ("  nonfinite: true\n" if declared else ""))
    code, out, err = run(capsys, "build", str(p), "-o", str(tmp_path / "lib"))
    if declared:
        assert code == 0, out + err
    else:
        assert code == 1 and "reference output 'y' is not finite" in err
        assert f"{p}:12:11:" in err


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_kernel_gather_with_an_out_of_range_id_raises(dialect):
    from codegen_check import load_source

    from nkigen import sim
    from nkigen.codegen import generate
    spec = load_spec(SPECS / "embedding_lookup.yaml")
    kern = load_source(generate(spec, dialect=dialect), spec.name)
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    ids = np.array([3, 0, 2], dtype=np.int32)                 # last legal id: V - 1 = 3
    np.testing.assert_array_equal(sim.simulate(kern)(ids, table), table[ids])
    bad = np.array([3, 4, 2], dtype=np.int32)                 # first illegal id: V = 4
    with pytest.raises(Exception, match="out of bounds"):
        sim.simulate(kern)(bad, table)


REVERSED = """\
nkigen: 1
name: rev
sizes:
  M: {min: 1, max: 4096}
  N: {min: 2, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[M - 1 - m, N - 1 - n] * 2.0 + x[m, n % 2]
tests:
  cases:
    - {M: 1, N: 2}
    - {M: 130, N: 70}
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_reversed_partition_and_free_indices_and_modulo_lower(dialect, tmp_path, capsys):
    """`1 - t`-style indices used to pass check and fail in gen: now simulated and verified."""
    p = tmp_path / "rev.yaml"
    p.write_text(REVERSED)
    code, out, err = run(capsys, "build", str(p), "-o", str(tmp_path / "lib"), "--dialect",
                         dialect)
    assert code == 0, out + err


@pytest.mark.parametrize("bmax, ok", [(131072, True), (131073, False)])
def test_label_gather_index_stays_int32(tmp_path, capsys, bmax, ok):
    """The gathered flat row index b * C + label is added in int32 on GpSimd (fuzz15; it was
    float32 on VectorE, 2**24 elements): the lowering accepts a table of at most 2**31
    elements for every allowed size (B * C with C <= 16384: B <= 131072) and refuses the
    first size over it with a located error."""
    from nkigen.cli import main
    src = (Path(__file__).parent.parent / "specs" / "cross_entropy_labels.yaml").read_text()
    spec = tmp_path / "ce.yaml"
    spec.write_text(src.replace("B: {min: 1, max: 131072}", f"B: {{min: 1, max: {bmax}}}"))
    code = main(["gen", str(spec), "-o", str(tmp_path / "k.py")])
    err = capsys.readouterr().err
    if ok:
        assert code == 0, err
    else:
        assert code == 1 and f"{spec}:" in err and "2147483648" in err, err


SAFE_LOG = """\
nkigen: 1
name: safe_log
sizes:
  M: {min: 1, max: 256}
  N: {min: 1, max: 512}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = where(x[m, n] > 0.0, log(x[m, n]), 0.0)
tests:
  cases: [{M: 3, N: 5}]
  inputs:
    x: {dist: uniform, low: 0.5, high: 2.0}
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_value_where_never_lets_the_branch_not_taken_through(dialect):
    """where() on a value condition is a predicated copy (S25/SH tensor_copy_predicated), not
    cond * a + (1 - cond) * b: an inf or NaN in the branch not taken (0 * inf = NaN) must not
    reach the result, as in the float64 reference (np.where)."""
    from codegen_check import load_source

    from nkigen import sim
    from nkigen.codegen import generate
    spec = load_spec(SPECS / "leaky_relu_where.yaml")
    kern = load_source(generate(spec, dialect=dialect), spec.name)
    x = np.array([[np.inf, -np.inf, 2.0, -3.0, 0.0, np.nan, 1e30, -1e30]] * 3, np.float32)
    y, pos = sim.simulate(kern)(x)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(y, np.where(x > 0.0, x, np.float32(0.01) * x))
        np.testing.assert_array_equal(pos, (x >= 0.0).astype(np.float32))
    # the branch not taken is log of a non-positive number (invalid on ScalarE): never selected
    spec = load_spec_text(SAFE_LOG)
    kern = load_source(generate(spec, dialect=dialect), spec.name)
    x = np.array([[4.0, -1.0, 0.0, 1.0, -np.inf]] * 3, np.float32)
    got = sim.simulate(kern)(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(x > 0.0, np.log(np.where(x > 0.0, x, 1.0)), 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.isfinite(got).all()


WHERE_FORMS = """\
nkigen: 1
name: where_forms
sizes:
  M: {min: 1, max: 256}
  N: {min: 1, max: 512}
inputs:
  x: {shape: [M, N], dtype: float32}
  v: {shape: [M], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
  z: {shape: [M, N], dtype: bfloat16}
compute:
  - y[m, n] = where(v[m] > 0.0, x[m, n], 2.0)
  - z[m, n] = where(x[m, n] < 0.5, 1.0, x[m, n] * 3.0)
tests:
  cases: [{M: 130, N: 7}]
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_value_where_forms_build(dialect, tmp_path, capsys):
    """A column condition on row values (the predicate broadcast into a uint8 row) and a
    constant true branch (reverse_pred) both lower and verify."""
    p = tmp_path / "where_forms.yaml"
    p.write_text(WHERE_FORMS)
    code, out, err = run(capsys, "build", str(p), "-o", str(tmp_path / "lib"), "--dialect",
                         dialect)
    assert code == 0, out + err
    src = (tmp_path / "lib" / "kernels" / "where_forms.py").read_text()
    assert src.count("tensor_copy_predicated(") == 2 and "reverse_pred=True" in src
