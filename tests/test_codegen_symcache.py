"""The planner's memoised sympy helpers (codegen.symcache, pyexpr.py's memo) return exactly what
sympy and an unmemoised printer return, whatever was remembered before."""

from __future__ import annotations

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.codegen import pyexpr, symcache
from nkigen.codegen.pyexpr import py
from nkigen.codegen.symcache import Max, Min, names, xreplace

A, B, C = (sympy.Symbol(n, integer=True, nonnegative=True) for n in ("a", "b", "c"))
K = sympy.Symbol("K", integer=True, positive=True)
X = sympy.Symbol("x")          # no assumptions: another symbol than an integer x


@st.composite
def index_expr(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([A, B, C, K, sympy.Integer(draw(st.integers(-9, 200)))]))
    kind = draw(st.sampled_from(["add", "sub", "mul", "ceil", "min", "max"]))
    x, y = draw(index_expr(depth - 1)), draw(index_expr(depth - 1))
    k = sympy.Integer(draw(st.sampled_from([1, 2, 128, 512])))
    return {"add": lambda: x + y, "sub": lambda: x - k * y, "mul": lambda: k * x,
            "ceil": lambda: sympy.ceiling(x / k), "min": lambda: sympy.Min(x, y),
            "max": lambda: sympy.Max(x, y)}[kind]()


def _same(a, b) -> bool:
    """Structurally identical: equal, and the same tree (argument order included)."""
    return a == b and sympy.srepr(a) == sympy.srepr(b)


@settings(max_examples=40, deadline=None)
@given(index_expr(), index_expr())
def test_min_max_are_sympys(x, y):
    for _ in range(2):                      # the first call builds, the second remembers
        assert _same(Min(x, y), sympy.Min(x, y))
        assert _same(Max(x, y), sympy.Max(x, y))
        assert _same(Min(128, K - 128 * x), sympy.Min(128, K - 128 * x))


@settings(max_examples=40, deadline=None)
@given(index_expr(), st.sampled_from([A, B, C]), index_expr())
def test_xreplace_is_sympys(e, old, new):
    for rule in ({old: new}, {old: C + 1}, {A: B, B: A}, {}):
        for _ in range(2):
            assert _same(xreplace(e, rule), e.xreplace(rule))


def test_xreplace_rebuilds_a_min_that_now_simplifies():
    e = sympy.Min(128, K - 128 * A)
    assert xreplace(e, {K: 128 * A + 64}) == 64 == e.xreplace({K: 128 * A + 64})
    assert xreplace(e, {}) is e
    assert xreplace(e, {B: C}) is e         # nothing to replace: the same object


def test_numbers_of_other_types_are_other_keys():
    # Integer(1) and Float(1.0) hash alike but differ: neither may answer for the other
    assert Min(X, 1).args == sympy.Min(X, 1).args
    f = Min(X, 1.0)
    assert _same(f, sympy.Min(X, 1.0)) and any(a.is_Float for a in f.args)
    assert not any(a.is_Float for a in Min(X, 1).args)
    # two precisions of one float are two keys too
    low, high = Max(X, sympy.Float(2.0, 3)), Max(X, sympy.Float(2.0, 15))
    assert _same(low, sympy.Max(X, sympy.Float(2.0, 3)))
    assert _same(high, sympy.Max(X, sympy.Float(2.0, 15)))
    assert {a._prec for a in low.args if a.is_Float} != {a._prec for a in high.args if a.is_Float}
    assert py(1) == "1" and py(1.0) == "1.0" and py(1) == "1"
    assert py(sympy.Integer(2)) == "2" and py(sympy.Float(2.0)) == "2.0"


def test_unevaluated_min_is_not_remembered():
    with sympy.evaluate(False):
        raw, want = Min(A, A + 1), sympy.Min(A, A + 1)
    assert isinstance(raw, sympy.Min) and _same(raw, want)
    assert Min(A, A + 1) == A == sympy.Min(A, A + 1)
    with sympy.evaluate(False):             # not answered from the evaluated memo either
        assert isinstance(Min(A, A + 1), sympy.Min)


def test_min_memo_is_emptied_at_its_limit(monkeypatch):
    monkeypatch.setattr(symcache, "MEMO_LIMIT", 3)
    monkeypatch.setattr(symcache, "_MEMO", {})
    for i in range(3):                      # the last entry that fits
        Min(K, 10 + i)
    assert len(symcache._MEMO) == 3
    Min(K, 20)                              # the first one over: emptied, then stored
    assert len(symcache._MEMO) == 1
    assert _same(Min(K, 10), sympy.Min(K, 10))


def test_names_are_the_free_symbols_names(monkeypatch):
    e = Min(128, K - 128 * A) + B
    assert names(e) == {"K", "a", "b"} == {s.name for s in e.free_symbols}
    assert names(e) == {"K", "a", "b"}      # remembered
    assert names(3) == frozenset()
    monkeypatch.setattr(symcache, "MEMO_LIMIT", 2)
    monkeypatch.setattr(symcache, "_NAMES", {})
    names(A)
    names(B)
    assert len(symcache._NAMES) == 2
    names(C)
    assert len(symcache._NAMES) == 1 and names(C) == {"c"}


def test_printer_memo_is_emptied_at_its_limit(monkeypatch):
    monkeypatch.setattr(pyexpr, "MEMO_LIMIT", 2)
    monkeypatch.setattr(pyexpr, "_MEMO", {})
    assert py(A + 1) == "a + 1"
    assert py(128 * B) == "128 * b"
    assert len(pyexpr._MEMO) == 2
    assert py(C) == "c"
    assert len(pyexpr._MEMO) == 1
    assert py(A + 1) == "a + 1"
