"""Tests of the float64 reference oracle (nkigen.reference) on hand-built spec IR."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import sympy

from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    Const,
    Func,
    Param,
    ParamRef,
    Reduce,
    ReduceKind,
    Role,
    Schedule,
    SizeDecl,
    SizeRef,
    Spec,
    Statement,
    TensorDecl,
    index_symbol,
    size_symbol,
)
from nkigen.ir import (
    Tests as IRTests,
)
from nkigen.reference import evaluate, evaluate_all, index_extents, resolve_sizes

F32 = DType.float32
BF16 = DType.bfloat16


# ---- a tiny IR builder (the frontend is tested elsewhere) --------------------------------------

def _dim(d):
    if isinstance(d, int):
        return sympy.Integer(d)
    if isinstance(d, str):
        return sympy.sympify(d, locals={n: size_symbol(n) for n in "ABCDHKMNORSWX"})
    return d


def T(name, role, shape, dtype=F32):
    return TensorDecl(name, role, tuple(_dim(d) for d in shape), dtype)


def A(tensor, *idx):
    """Access; each index is an index name or a sympy expression."""
    return Access(tensor, tuple(index_symbol(i) if isinstance(i, str) else i for i in idx))


def mul(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = BinOp(BinOpKind.MUL, out, x)
    return out


def add(a, b):
    return BinOp(BinOpKind.ADD, a, b)


def sub(a, b):
    return BinOp(BinOpKind.SUB, a, b)


def div(a, b):
    return BinOp(BinOpKind.DIV, a, b)


def S(pos, target, lhs, op, rhs, sum_indices=()):
    return Statement(pos, target, tuple(lhs), AssignOp(op), rhs, tuple(sum_indices), f"s{pos}")


def make_spec(sizes, inputs, outputs, statements, temps=(), params=(), ranges=()):
    return Spec(
        name="t", doc="", target=None,
        sizes=tuple(s if isinstance(s, SizeDecl) else SizeDecl(s) for s in sizes),
        params=tuple(params),
        inputs=tuple(inputs), outputs=tuple(outputs), temps=tuple(temps),
        statements=tuple(statements),
        ranges=tuple((k, _dim(v)) for k, v in ranges),
        schedule=Schedule(), tests=IRTests(),
    )


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- contractions --------------------------------------------------------------------------

def matmul_spec(adt=F32, out=F32):
    return make_spec(
        ["M", "K", "N"],
        [T("a", Role.INPUT, ["M", "K"], adt), T("b", Role.INPUT, ["K", "N"], adt)],
        [T("c", Role.OUTPUT, ["M", "N"], out)],
        [S(0, "c", "mn", "+=", mul(A("a", "m", "k"), A("b", "k", "n")), "k")],
    )


def test_matmul_matches_numpy_and_binds_sizes_from_inputs():
    a, b = rnd(5, 7), rnd(7, 3, seed=1)
    out = evaluate(matmul_spec(), {"a": a, "b": b})
    a32 = a.astype(np.float32).astype(np.float64)
    b32 = b.astype(np.float32).astype(np.float64)
    expect = (a32 @ b32).astype(np.float32).astype(np.float64)
    assert list(out) == ["c"]
    assert out["c"].dtype == np.float64
    np.testing.assert_array_equal(out["c"], expect)


def test_bf16_inputs_and_output_are_rounded():
    a, b = rnd(4, 6), rnd(6, 5, seed=1)
    out = evaluate(matmul_spec(BF16, BF16), {"a": a, "b": b})["c"]
    ar, br = BF16.round(a), BF16.round(b)
    np.testing.assert_array_equal(out, BF16.round(ar @ br))
    # the result is exactly representable in bfloat16 and differs from unrounded math
    assert np.array_equal(out.astype(ml_dtypes.bfloat16).astype(np.float64), out)
    assert not np.array_equal(out, a @ b)


def test_ml_dtypes_inputs_accepted():
    a = rnd(3, 4).astype(ml_dtypes.bfloat16)
    b = rnd(4, 2).astype(ml_dtypes.bfloat16)
    out = evaluate(matmul_spec(BF16, F32), {"a": a, "b": b})["c"]
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_accumulate_onto_written_target_and_temp_rounding():
    # acc = a @ b (bf16 temp); acc += a @ b again; c = acc
    body = mul(A("a", "m", "k"), A("b", "k", "n"))
    spec = make_spec(
        ["M", "K", "N"],
        [T("a", Role.INPUT, ["M", "K"]), T("b", Role.INPUT, ["K", "N"])],
        [T("c", Role.OUTPUT, ["M", "N"])],
        [S(0, "acc", "mn", "+=", body, "k"), S(1, "acc", "mn", "+=", body, "k"),
         S(2, "c", "mn", "=", A("acc", "m", "n"))],
        temps=[T("acc", Role.TEMP, ["M", "N"], BF16)],
    )
    a, b = rnd(3, 4), rnd(4, 5, seed=2)
    a, b = F32.round(a), F32.round(b)
    allv = evaluate_all(spec, {"a": a, "b": b})
    first = BF16.round(a @ b)
    np.testing.assert_array_equal(allv["acc"], BF16.round(first + a @ b))
    np.testing.assert_array_equal(allv["c"], allv["acc"])
    assert list(allv) == ["a", "b", "c", "acc"]


def test_transposed_and_batched_contraction():
    spec = make_spec(
        ["B", "M", "K", "N"],
        [T("a", Role.INPUT, ["B", "K", "M"]), T("b", Role.INPUT, ["B", "N", "K"])],
        [T("c", Role.OUTPUT, ["B", "M", "N"])],
        [S(0, "c", "bmn", "+=", mul(A("a", "b", "k", "m"), A("b", "b", "n", "k")), "k")],
    )
    a, b = rnd(2, 4, 3), rnd(2, 5, 4, seed=3)
    out = evaluate(spec, {"a": a, "b": b})["c"]
    expect = np.einsum("bkm,bnk->bmn", F32.round(a), F32.round(b))
    np.testing.assert_allclose(out, expect, rtol=1e-6)


# ---- element-wise, params, sizes, reductions ------------------------------------------------

def test_bias_gelu_with_param_and_size_ref():
    spec = make_spec(
        ["M", "N"],
        [T("x", Role.INPUT, ["M", "N"]), T("bias", Role.INPUT, ["N"])],
        [T("y", Role.OUTPUT, ["M", "N"])],
        [S(0, "y", "mn", "=", Call(Func.GELU, (add(
            mul(ParamRef("alpha", 0.5), A("x", "m", "n")),
            div(A("bias", "n"), SizeRef("N"))),)))],
        params=[Param("alpha", 0.5)],
    )
    x, bias = F32.round(rnd(3, 4)), F32.round(rnd(4, seed=1))
    y = evaluate(spec, {"x": x, "bias": bias})["y"]
    z = 0.5 * x + bias / 4
    expect = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(z)
    np.testing.assert_array_equal(y, F32.round(expect))


def softmax_spec(out=F32):
    x = A("x", "m", "n")
    return make_spec(
        ["M", "N"],
        [T("x", Role.INPUT, ["M", "N"])],
        [T("y", Role.OUTPUT, ["M", "N"], out)],
        [S(0, "mx", "m", "=", Reduce(ReduceKind.MAX, x, ("n",))),
         S(1, "e", "mn", "=", Call(Func.EXP, (sub(x, A("mx", "m")),))),
         S(2, "s", "m", "=", Reduce(ReduceKind.SUM, A("e", "m", "n"), ("n",))),
         S(3, "y", "mn", "=", div(A("e", "m", "n"), A("s", "m")))],
        temps=[T("mx", Role.TEMP, ["M"]), T("e", Role.TEMP, ["M", "N"]),
               T("s", Role.TEMP, ["M"])],
    )


def test_softmax_rows_sum_to_one():
    y = evaluate(softmax_spec(), {"x": 10 * rnd(6, 33)})["y"]
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    assert (y >= 0).all()


def test_mean_min_and_reduction_over_absent_index():
    x = A("x", "m", "n")
    spec = make_spec(
        ["M", "N"],
        [T("x", Role.INPUT, ["M", "N"])],
        [T("mu", Role.OUTPUT, ["M"]), T("lo", Role.OUTPUT, ["N"]), T("cnt", Role.OUTPUT, ["M"])],
        [S(0, "mu", "m", "=", Reduce(ReduceKind.MEAN, x, ("n",))),
         S(1, "lo", "n", "=", Reduce(ReduceKind.MIN, x, ("m",))),
         # sum over j (extent from ranges) of a value that does not depend on j: J * value
         S(2, "cnt", "m", "=", Reduce(ReduceKind.SUM, A("mu", "m"), ("j",)))],
        ranges=[("j", 5)],
    )
    xv = F32.round(rnd(4, 5))
    out = evaluate(spec, {"x": xv})
    np.testing.assert_allclose(out["mu"], xv.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(out["lo"], xv.min(axis=0))
    np.testing.assert_allclose(out["cnt"], 5 * out["mu"], rtol=1e-6)
    assert list(out) == ["mu", "lo", "cnt"]


def test_index_without_extent_rejected():
    spec = make_spec(["N"], [T("x", Role.INPUT, ["N"])], [T("y", Role.OUTPUT, ["N"])],
                     [S(0, "y", "n", "=", Reduce(ReduceKind.SUM, A("x", "n"), ("j",)))])
    with pytest.raises(ValueError, match="no range"):
        evaluate(spec, {"x": rnd(3)})


def test_column_sum_accumulate_and_broadcast_assignment():
    spec = make_spec(
        ["M", "N"],
        [T("x", Role.INPUT, ["M", "N"]), T("v", Role.INPUT, ["N"])],
        [T("col", Role.OUTPUT, ["N"]), T("rep", Role.OUTPUT, ["M", "N"])],
        [S(0, "col", "n", "+=", A("x", "m", "n"), "m"),
         S(1, "rep", "mn", "=", add(A("v", "n"), Const(1.0)))],
    )
    xv, vv = F32.round(rnd(3, 4)), F32.round(rnd(4, seed=5))
    out = evaluate(spec, {"x": xv, "v": vv})
    np.testing.assert_allclose(out["col"], xv.sum(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(out["rep"], np.broadcast_to(F32.round(vv + 1), (3, 4)))


# ---- affine indices, ranges, derived sizes -------------------------------------------------------

def conv1d_spec():
    o, r, s = index_symbol("o"), index_symbol("r"), 2   # stride param S=2, substituted
    return make_spec(
        ["C", "H", "R", "F", SizeDecl("O", value=sympy.floor((size_symbol("H") - size_symbol("R"))
                                                           / s) + 1)],
        [T("x", Role.INPUT, ["C", "H"]), T("w", Role.INPUT, ["F", "C", "R"])],
        [T("y", Role.OUTPUT, ["F", "O"])],
        [S(0, "y", "fo", "+=", mul(A("x", "c", o * s + r), A("w", "f", "c", "r")), "cr")],
        params=[Param("S", 2)],
        ranges=[("r", "R")],
    )


def test_conv1d_strided_matches_loop():
    spec = conv1d_spec()
    x, w = F32.round(rnd(3, 11)), F32.round(rnd(4, 3, 3, seed=1))
    sizes = resolve_sizes(spec, {"C": 3, "H": 11, "R": 3, "F": 4})
    assert sizes["O"] == 5
    y = evaluate(spec, {"x": x, "w": w}, {"C": 3, "H": 11, "R": 3, "F": 4})["y"]
    expect = np.zeros((4, 5))
    for f in range(4):
        for o in range(5):
            expect[f, o] = sum(x[c, 2 * o + r] * w[f, c, r] for c in range(3) for r in range(3))
    np.testing.assert_allclose(y, expect, rtol=1e-6)
    ext = index_extents(spec, spec.statements[0], sizes)
    assert ext == {"f": 4, "o": 5, "c": 3, "r": 3}
    # sizes bound from the input shapes give the same result
    np.testing.assert_array_equal(evaluate(spec, {"x": x, "w": w})["y"], y)


def test_derived_size_is_not_bound_from_an_input_shape():
    o, r = index_symbol("o"), index_symbol("r")
    spec = make_spec(
        ["W", SizeDecl("R", value=sympy.Integer(3)), SizeDecl("O", value=size_symbol("W") - 2)],
        [T("x", Role.INPUT, ["W"]), T("w", Role.INPUT, ["R"])],
        [T("y", Role.OUTPUT, ["O"])],
        [S(0, "y", "o", "+=", mul(A("x", o + r), A("w", "r")), "r")],
    )
    x = F32.round(rnd(9))
    y = evaluate(spec, {"x": x, "w": np.ones(3)})["y"]
    np.testing.assert_allclose(y, [x[i:i + 3].sum() for i in range(7)], rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        evaluate(spec, {"x": x, "w": np.ones(4)})


def test_maxpool_window_and_derived_size_mismatch_rejected():
    o, r = index_symbol("o"), index_symbol("r")
    spec = make_spec(
        ["W", SizeDecl("O", value=size_symbol("W") - 2)],
        [T("x", Role.INPUT, ["W"])],
        [T("y", Role.OUTPUT, ["O"])],
        [S(0, "y", "o", "=", Reduce(ReduceKind.MAX, A("x", o + r), ("r",)))],
        ranges=[("r", 3)],
    )
    x = F32.round(rnd(9))
    y = evaluate(spec, {"x": x})["y"]
    np.testing.assert_array_equal(y, [x[i:i + 3].max() for i in range(7)])
    with pytest.raises(ValueError, match="derived size O"):
        evaluate(spec, {"x": x}, {"W": 9, "O": 6})


def test_out_of_bounds_access_is_reported():
    o, r = index_symbol("o"), index_symbol("r")
    spec = make_spec(
        ["W"],
        [T("x", Role.INPUT, ["W"])],
        [T("y", Role.OUTPUT, ["W"])],
        [S(0, "y", "o", "=", Reduce(ReduceKind.MAX, A("x", o + r), ("r",)))],
        ranges=[("r", 3)],
    )
    with pytest.raises(IndexError, match="outside"):
        evaluate(spec, {"x": rnd(5)})


def test_shape_mismatch_and_missing_input_rejected():
    with pytest.raises(ValueError, match="shape"):
        evaluate(matmul_spec(), {"a": rnd(2, 3), "b": rnd(3, 4)}, {"M": 2, "K": 3, "N": 5})
    with pytest.raises(KeyError, match="missing"):
        evaluate(matmul_spec(), {"a": rnd(2, 3)})


def test_shape_expression_size_is_solved_from_input():
    spec = make_spec(
        ["H"],
        [T("x", Role.INPUT, ["H * 2"])],
        [T("y", Role.OUTPUT, ["H * 2"])],
        [S(0, "y", "h", "=", Call(Func.ABS, (A("x", "h"),)))],
    )
    assert resolve_sizes(spec, None, {"x": np.zeros(8)}) == {"H": 4}


@pytest.mark.parametrize(
    ("func", "fn"),
    [
        (Func.EXP, np.exp), (Func.TANH, np.tanh), (Func.ABS, np.abs), (Func.SQUARE, np.square),
        (Func.RELU, lambda v: np.maximum(v, 0)),
        (Func.SIGMOID, lambda v: 1 / (1 + np.exp(-v))),
        (Func.SILU, lambda v: v / (1 + np.exp(-v))),
        (Func.GELU_TANH, lambda v: 0.5 * v * (1 + np.tanh(
            math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))),
        (Func.LOG, lambda v: np.log(np.abs(v) + 0.5)),
        (Func.SQRT, lambda v: np.sqrt(np.abs(v) + 0.5)),
        (Func.RSQRT, lambda v: 1 / np.sqrt(np.abs(v) + 0.5)),
        (Func.RECIPROCAL, lambda v: 1 / (np.abs(v) + 0.5)),
    ],
)
def test_unary_functions(func, fn):
    positive = func in (Func.LOG, Func.SQRT, Func.RSQRT, Func.RECIPROCAL)
    arg = A("x", "n")
    if positive:
        arg = add(Call(Func.ABS, (arg,)), Const(0.5))
    spec = make_spec(["N"], [T("x", Role.INPUT, ["N"])], [T("y", Role.OUTPUT, ["N"])],
                     [S(0, "y", "n", "=", Call(func, (arg,)))])
    x = F32.round(np.linspace(-30, 30, 61))
    y = evaluate(spec, {"x": x})["y"]
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, F32.round(fn(x)), rtol=2e-7, atol=1e-30)


def test_maximum_minimum_two_args():
    spec = make_spec(
        ["N"], [T("x", Role.INPUT, ["N"]), T("z", Role.INPUT, ["N"])],
        [T("hi", Role.OUTPUT, ["N"]), T("lo", Role.OUTPUT, ["N"])],
        [S(0, "hi", "n", "=", Call(Func.MAXIMUM, (A("x", "n"), A("z", "n")))),
         S(1, "lo", "n", "=", Call(Func.MINIMUM, (A("x", "n"), Const(0.0))))],
    )
    x, z = F32.round(rnd(7)), F32.round(rnd(7, seed=9))
    out = evaluate(spec, {"x": x, "z": z})
    np.testing.assert_array_equal(out["hi"], np.maximum(x, z))
    np.testing.assert_array_equal(out["lo"], np.minimum(x, 0))


def test_reversed_constant_and_diagonal_indices():
    n = index_symbol("n")
    spec = make_spec(
        ["N"],
        [T("x", Role.INPUT, ["N"]), T("m", Role.INPUT, ["N", "N"])],
        [T("rev", Role.OUTPUT, ["N"]), T("first", Role.OUTPUT, ["N"]),
         T("diag", Role.OUTPUT, ["N"])],
        [S(0, "rev", "n", "=", A("x", size_symbol("N") - 1 - n)),
         S(1, "first", "n", "=", add(A("x", sympy.Integer(0)), A("m", "n", sympy.Integer(1)))),
         S(2, "diag", "n", "=", A("m", "n", "n"))],
    )
    x, m = F32.round(rnd(5)), F32.round(rnd(5, 5, seed=4))
    out = evaluate(spec, {"x": x, "m": m})
    np.testing.assert_array_equal(out["rev"], x[::-1])
    np.testing.assert_array_equal(out["first"], F32.round(x[0] + m[:, 1]))
    np.testing.assert_array_equal(out["diag"], np.diag(m))


def test_float32_compute_mode_differs_only_by_rounding():
    a, b = rnd(8, 300), rnd(300, 6, seed=1)
    exact = evaluate(matmul_spec(), {"a": a, "b": b})["c"]
    emu = evaluate_all(matmul_spec(), {"a": a, "b": b}, compute_dtype=np.float32)["c"]
    assert emu.dtype == np.float64
    np.testing.assert_allclose(emu, exact, rtol=1e-4, atol=1e-4)


def test_registries_cover_every_kind():
    from typing import get_args

    from nkigen import reference
    from nkigen.ir import Expr

    assert set(reference.FUNCS) == set(Func)
    assert set(reference.REDUCERS) == set(ReduceKind)
    assert set(reference.BINOPS) == set(BinOpKind)
    assert set(reference._EVALUATORS) == set(get_args(Expr))


def test_einsum_rule_is_derived_and_checked_against_the_ir():
    body = mul(A("a", "m", "k"), A("b", "k", "n"))
    spec = make_spec(
        ["M", "K", "N"],
        [T("a", Role.INPUT, ["M", "K"]), T("b", Role.INPUT, ["K", "N"])],
        [T("c", Role.OUTPUT, ["M", "N"])],
        [S(0, "c", "mn", "+=", body, ())],   # the IR forgot to sum over k
    )
    with pytest.raises(ValueError, match="einsum rule"):
        evaluate(spec, {"a": rnd(2, 3), "b": rnd(3, 4)})
    # an index bound by a reduction call is not summed by the einsum rule
    nested = make_spec(
        ["M", "K"],
        [T("a", Role.INPUT, ["M", "K"])],
        [T("c", Role.OUTPUT, ["K"])],
        [S(0, "c", "k", "+=", mul(A("a", "m", "k"),
                                  Reduce(ReduceKind.MAX, A("a", "m", "j"), ("j",))), "m")],
        ranges=[("j", "K")],
    )
    a = F32.round(rnd(3, 4))
    expect = (a * a.max(axis=1, keepdims=True)).sum(axis=0)
    np.testing.assert_allclose(evaluate(nested, {"a": a})["c"], expect, rtol=1e-6)
