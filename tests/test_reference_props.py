"""Property tests: the reference oracle agrees with direct NumPy on random valid programs."""

from __future__ import annotations

import math

import numpy as np
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    Const,
    Func,
    Reduce,
    ReduceKind,
    Role,
    Schedule,
    SizeDecl,
    Spec,
    Statement,
    TensorDecl,
    index_symbol,
    size_symbol,
)
from nkigen.ir import Tests as IRTests
from nkigen.reference import evaluate, evaluate_all
from nkigen.testdata import make_inputs, tolerance

F32 = DType.float32
SETTINGS = settings(max_examples=25, deadline=None)


def _tensor(name, role, letters):
    return TensorDecl(name, role, tuple(size_symbol(c.upper()) for c in letters), F32)


def _access(name, letters):
    return Access(name, tuple(index_symbol(c) for c in letters))


def _spec(letters, inputs, outputs, statements):
    return Spec(
        name="prop", doc="", target=None,
        sizes=tuple(SizeDecl(c.upper()) for c in letters),
        params=(), inputs=tuple(inputs), outputs=tuple(outputs), temps=(),
        statements=tuple(statements), ranges=(), schedule=Schedule(), tests=IRTests(),
    )


@st.composite
def contractions(draw):
    pool = "ijklmn"
    n_ops = draw(st.integers(1, 3))
    operands = [
        "".join(draw(st.permutations(pool))[: draw(st.integers(1, 3))]) for _ in range(n_ops)
    ]
    used = list(dict.fromkeys("".join(operands)))
    lhs = draw(st.permutations(used))[: draw(st.integers(1, len(used)))]
    sizes = {c: draw(st.integers(1, 6)) for c in used}
    seed = draw(st.integers(0, 2**16))
    return operands, "".join(lhs), sizes, seed


@SETTINGS
@given(contractions())
def test_random_contraction_equals_einsum(case):
    operands, lhs, sizes, seed = case
    names = [f"x{i}" for i in range(len(operands))]
    rhs = _access(names[0], operands[0])
    for name, letters in zip(names[1:], operands[1:]):
        rhs = BinOp(BinOpKind.MUL, rhs, _access(name, letters))
    used = list(dict.fromkeys("".join(operands)))
    summed = tuple(c for c in used if c not in lhs)
    stmt = Statement(0, "out", tuple(lhs), AssignOp.ACCUMULATE, rhs, summed, "out += ...")
    spec = _spec(
        used,
        [_tensor(n, Role.INPUT, op) for n, op in zip(names, operands)],
        [_tensor("out", Role.OUTPUT, lhs)],
        [stmt],
    )
    rng = np.random.default_rng(seed)
    arrays = {
        n: rng.standard_normal([sizes[c] for c in op]).astype(np.float32)
        for n, op in zip(names, operands)
    }
    got = evaluate(spec, arrays, {c.upper(): v for c, v in sizes.items()})["out"]
    expect = np.einsum(
        f"{','.join(operands)}->{lhs}", *[a.astype(np.float64) for a in arrays.values()]
    )
    assert got.shape == expect.shape
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)


# ---- random element-wise expressions ---------------------------------------------------------

_UNARY = {
    Func.TANH: np.tanh,
    Func.SIGMOID: lambda v: 1 / (1 + np.exp(-v)),
    Func.RELU: lambda v: np.maximum(v, 0),
    Func.ABS: np.abs,
    Func.SQUARE: np.square,
    Func.SILU: lambda v: v / (1 + np.exp(-v)),
    Func.GELU: np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2)))),
    Func.GELU_TANH: lambda v: 0.5 * v * (1 + np.tanh(0.7978845608028654 * (v + 0.044715 * v**3))),
}
_BINARY = {
    BinOpKind.ADD: np.add,
    BinOpKind.SUB: np.subtract,
    BinOpKind.MUL: np.multiply,
}


def _leaf():
    return st.one_of(
        st.just((_access("x", "mn"), lambda x, y: x)),
        st.just((_access("y", "n"), lambda x, y: y[None, :])),
        st.floats(-2, 2, allow_nan=False, width=32).map(
            lambda c: (Const(float(c)), lambda x, y, c=float(c): np.full((1, 1), c))
        ),
    )


def _extend(children):
    unary = st.tuples(st.sampled_from(sorted(_UNARY, key=lambda f: f.value)), children).map(
        lambda t: (Call(t[0], (t[1][0],)), lambda x, y, t=t: _UNARY[t[0]](t[1][1](x, y)))
    )
    binary = st.tuples(st.sampled_from(list(_BINARY)), children, children).map(
        lambda t: (BinOp(t[0], t[1][0], t[2][0]),
                   lambda x, y, t=t: _BINARY[t[0]](t[1][1](x, y), t[2][1](x, y)))
    )
    safe_div = st.tuples(children, children).map(
        lambda t: (
            BinOp(BinOpKind.DIV, t[0][0],
                  BinOp(BinOpKind.ADD, Const(1.0), Call(Func.ABS, (t[1][0],)))),
            lambda x, y, t=t: t[0][1](x, y) / (1 + np.abs(t[1][1](x, y))),
        )
    )
    two_arg = st.tuples(st.sampled_from([Func.MAXIMUM, Func.MINIMUM]), children, children).map(
        lambda t: (Call(t[0], (t[1][0], t[2][0])),
                   lambda x, y, t=t: (np.maximum if t[0] is Func.MAXIMUM else np.minimum)(
                       t[1][1](x, y), t[2][1](x, y)))
    )
    return st.one_of(unary, binary, safe_div, two_arg)


expressions = st.recursive(_leaf(), _extend, max_leaves=6)


@SETTINGS
@given(expressions, st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**16))
def test_random_elementwise_expression_equals_numpy(expr, m, n, seed):
    ir, fn = expr
    spec = _spec(
        "mn",
        [_tensor("x", Role.INPUT, "mn"), _tensor("y", Role.INPUT, "n")],
        [_tensor("out", Role.OUTPUT, "mn")],
        [Statement(0, "out", ("m", "n"), AssignOp.ASSIGN, ir, (), "out = ...")],
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n)).astype(np.float32).astype(np.float64)
    y = rng.standard_normal(n).astype(np.float32).astype(np.float64)
    got = evaluate(spec, {"x": x, "y": y})["out"]
    expect = F32.round(np.broadcast_to(fn(x, y), (m, n)))
    # one float32 ulp of slack: operation order inside gelu/sigmoid may differ
    np.testing.assert_allclose(got, expect, rtol=3e-7, atol=1e-30)


_NP_REDUCE = {
    ReduceKind.SUM: np.sum, ReduceKind.MAX: np.max, ReduceKind.MIN: np.min,
    ReduceKind.MEAN: np.mean,
}


@SETTINGS
@given(
    st.sampled_from([k for k in ReduceKind if not k.is_arg]),     # argmax: test_lang_v11
    st.lists(st.integers(1, 6), min_size=3, max_size=3),
    st.sets(st.sampled_from("ijk"), min_size=1, max_size=2),
    st.integers(0, 2**16),
)
def test_random_reduction_equals_numpy(kind, dims, reduced, seed):
    keep = tuple(c for c in "ijk" if c not in reduced)
    body = BinOp(BinOpKind.MUL, _access("x", "ijk"), Const(2.0))
    spec = _spec(
        "ijk",
        [_tensor("x", Role.INPUT, "ijk")],
        [_tensor("out", Role.OUTPUT, keep)],
        [Statement(0, "out", keep, AssignOp.ASSIGN,
                   Reduce(kind, body, tuple(sorted(reduced))), (), "out = red(...)")],
    )
    x = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    got = evaluate(spec, {"x": x})["out"]
    axes = tuple("ijk".index(c) for c in sorted(reduced))
    expect = _NP_REDUCE[kind](2.0 * x.astype(np.float64), axis=axes)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 5),
       st.integers(0, 2**16))
def test_random_strided_window_equals_loop(o_size, r_size, stride, offset, seed):
    """y[o] = sum(x[o * stride + r + offset] * w[r], r) against a Python loop."""
    o, r = index_symbol("o"), index_symbol("r")
    h = (o_size - 1) * stride + r_size + offset
    body = BinOp(BinOpKind.MUL, Access("x", (o * stride + r + offset,)), _access("w", "r"))
    spec = Spec(
        name="win", doc="", target=None,
        sizes=(SizeDecl("H"), SizeDecl("R"), SizeDecl("O")),
        params=(),
        inputs=(_tensor("x", Role.INPUT, "h"), _tensor("w", Role.INPUT, "r")),
        outputs=(_tensor("y", Role.OUTPUT, "o"),), temps=(),
        statements=(Statement(0, "y", ("o",), AssignOp.ASSIGN,
                              Reduce(ReduceKind.SUM, body, ("r",)), (), "y = sum"),),
        ranges=(("r", sympy.Integer(r_size)),), schedule=Schedule(), tests=IRTests(),
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(h).astype(np.float32)
    w = rng.standard_normal(r_size).astype(np.float32)
    got = evaluate(spec, {"x": x, "w": w}, {"H": h, "R": r_size, "O": o_size})["y"]
    expect = [sum(float(x[i * stride + j + offset]) * float(w[j]) for j in range(r_size))
              for i in range(o_size)]
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(contractions(), st.sampled_from([DType.float32, DType.bfloat16, DType.float16]))
def test_fp32_emulation_of_random_contraction_is_within_tolerance(case, out_dtype):
    """The derived tolerance admits an fp32 engine with the spec's storage dtypes."""
    operands, lhs, sizes, seed = case
    names = [f"x{i}" for i in range(len(operands))]
    rhs = _access(names[0], operands[0])
    for name, letters in zip(names[1:], operands[1:]):
        rhs = BinOp(BinOpKind.MUL, rhs, _access(name, letters))
    used = list(dict.fromkeys("".join(operands)))
    summed = tuple(c for c in used if c not in lhs)
    out = TensorDecl("out", Role.OUTPUT, tuple(size_symbol(c.upper()) for c in lhs), out_dtype)
    spec = _spec(
        used,
        [_tensor(n, Role.INPUT, op) for n, op in zip(names, operands)],
        [out],
        [Statement(0, "out", tuple(lhs), AssignOp.ACCUMULATE, rhs, summed, "out += ...")],
    )
    case_sizes = {c.upper(): v for c, v in sizes.items()}
    inputs = make_inputs(spec, case_sizes, seed=seed)
    ref = evaluate(spec, inputs, case_sizes)
    emu = evaluate_all(spec, inputs, case_sizes, compute_dtype=np.float32)
    rtol, atol = tolerance(spec, case_sizes, ref)
    np.testing.assert_allclose(emu["out"], ref["out"], rtol=rtol, atol=atol)
