"""The sympy -> Python printer: printed integer expressions evaluate like sympy does."""

from __future__ import annotations

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.codegen.pyexpr import py

A, B, C = (sympy.Symbol(n, integer=True, nonnegative=True) for n in ("a", "b", "c"))


@st.composite
def int_expr(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([A, B, C, sympy.Integer(draw(st.integers(-9, 9)))]))
    kind = draw(st.sampled_from(["add", "sub", "mul", "floor", "ceil", "min", "mod"]))
    x, y = draw(int_expr(depth - 1)), draw(int_expr(depth - 1))
    k = sympy.Integer(draw(st.integers(1, 7)))
    return {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
            "floor": lambda: sympy.floor(x / k), "ceil": lambda: sympy.ceiling(x / k),
            "min": lambda: sympy.Min(x, y), "mod": lambda: sympy.Mod(x, k)}[kind]()


@settings(max_examples=20, deadline=None)
@given(int_expr(), st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
def test_printed_expression_evaluates_like_sympy(e, a, b, c):
    env = {"a": a, "b": b, "c": c, "min": min, "max": max}
    want = int(e.subs({A: a, B: b, C: c}))
    assert eval(py(e), {"__builtins__": {}}, env) == want, py(e)


def test_infinities_print_as_math_inf_and_evaluate_to_ieee_infinities():
    """The identity of max/min and the argmax pad are infinities (codegen/tilexpr REDUCE_INIT,
    codegen/argext PAD): printed with the math module the kernels import (never as a finite
    stand-in, never as the bare name ``inf``), also as a float instruction operand."""
    import math

    from nkigen.codegen.render import _f32
    for e, text, want in ((sympy.S.Infinity, "math.inf", math.inf),
                          (sympy.S.NegativeInfinity, "-math.inf", -math.inf)):
        assert py(e) == text and _f32(e) == text
        assert eval(text, {"__builtins__": {}}, {"math": math}) == want
