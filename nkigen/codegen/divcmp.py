"""Index comparisons through a floor division become affine comparisons.

Stage: plan (pre-pass, Spec -> Spec, run first by :func:`nkigen.codegen.planner.plan_kernel`).
A condition such as ``where((n - 1) // 2 >= 0, x[m, n], 0.0)`` or ``n // 4 < m`` (spec language
1.1: comparisons of index expressions, floor division by constants) compares ``floor(a / c)``
with an integer. For an integer ``k`` and a constant ``c > 0`` that is the same as comparing
``a`` itself with a multiple of ``c``:

====================  ==========================
``a // c >= k``       ``a >= c * k``
``a // c > k``        ``a >= c * k + c``
``a // c <= k``       ``a <= c * k + c - 1``
``a // c < k``        ``a <= c * k - 1``
====================  ==========================

(``floor(a / c) >= k`` holds exactly when ``a / c >= k``, since ``k`` is an integer.) The
rewritten condition is affine in the indices, so it takes the tile forms every affine condition
has (one GpSimd ``affine_select`` or ``iota`` per tile, :mod:`nkigen.codegen.select`, in both
dialects) instead of a column loop whose classic mask would divide a loop index (a mask side
must be affine: S25 general/nki/api/nki.api.shared.rst "NKI API Masking", SDK 2.25; the
simulator's rule ``mask.sequential-index``).

Rewritten: index-only comparisons ``<``, ``<=``, ``>=``, ``>`` whose difference of sides is
``+-floor(a / c) + r`` with ``a`` and ``r`` integer-valued and free of further divisions
(``r`` may hold indices, sizes and integer constants; another side read as a float constant
must be an integer). ``==`` and ``!=`` are the two bounds ``c * k <= a <= c * k + c - 1`` as
nested ``where`` (:func:`band`), unless the divided expression is the statement's last index
alone (its residue form is faster). The reference evaluates the spec as written; the build
verifies the kernel against it as always.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache

import sympy

from nkigen.codegen.prepass import rebuild
from nkigen.ir import CmpOp, Compare, Const, IndexValue, Spec, Where, division_parts, index_symbol

# ``floor(a / c) OP k`` as ``a OP' c * k + d``: OP -> (OP', d as a function of c)
_FORMS: dict[CmpOp, tuple[CmpOp, Callable[[int], int]]] = {
    CmpOp.GE: (CmpOp.GE, lambda c: 0),
    CmpOp.GT: (CmpOp.GE, lambda c: c),
    CmpOp.LE: (CmpOp.LE, lambda c: c - 1),
    CmpOp.LT: (CmpOp.LE, lambda c: -1),
}
_FLIP: dict[CmpOp, CmpOp] = {CmpOp.GE: CmpOp.LE, CmpOp.GT: CmpOp.LT, CmpOp.LE: CmpOp.GE,
                             CmpOp.LT: CmpOp.GT}


def _integer_affine(e: sympy.Expr) -> bool:
    """True when ``e`` is a sum of integer multiples of symbols (indices, sizes) and an integer:
    no division, no product of symbols."""
    e = sympy.expand(e)
    if e.atoms(sympy.floor, sympy.ceiling, sympy.Mod):
        return False
    try:
        poly = sympy.Poly(e, *sorted(e.free_symbols, key=str)) if e.free_symbols else None
    except sympy.PolynomialError:
        return False
    if poly is None:
        return bool(e.is_Integer)
    return poly.total_degree() <= 1 and all(c.is_Integer for c in poly.coeffs())


def _side(e: object) -> sympy.Expr | None:
    if isinstance(e, IndexValue):
        return sympy.sympify(e.expr)
    if isinstance(e, Const) and float(e.value).is_integer():
        return sympy.Integer(int(e.value))
    return None


def affine(cmp: Compare) -> Compare | None:
    """``cmp`` without its floor division (see the module docstring), or None."""
    if cmp.op not in _FORMS:
        return None
    lhs, rhs = _side(cmp.lhs), _side(cmp.rhs)
    if lhs is None or rhs is None:
        return None
    d = sympy.expand(lhs - rhs)
    floors = list(d.atoms(sympy.floor))
    if len(floors) != 1 or d.atoms(sympy.Mod, sympy.ceiling):
        return None
    q = floors[0]
    s = d.coeff(q)
    rest = sympy.expand(d - s * q)
    if s not in (1, -1) or rest.has(q) or not _integer_affine(rest):
        return None
    num, den = division_parts(q)
    if not (den.is_Integer and int(den) > 0) or not _integer_affine(num):
        return None
    # s * q + rest OP 0  ->  q OP' k
    op, k = (cmp.op, -rest) if s == 1 else (_FLIP[cmp.op], rest)
    new_op, delta = _FORMS[op]
    c = int(den)
    bound = sympy.expand(c * k + delta(c))
    right = Const(float(bound)) if bound.is_Integer else IndexValue(bound)
    return Compare(new_op, IndexValue(sympy.expand(num)), right)


def band(cmp: Compare, keep: sympy.Symbol | None = None) -> tuple[Compare, Compare] | None:
    """``floor(a / c) == k`` (or ``!=``) as the pair of affine bounds ``(a >= c * k,
    a <= c * k + c - 1)`` that hold together exactly when it holds; or None. None too when
    ``a`` is ``keep`` itself (the statement's last index, which goes on the free axis): the
    per-residue ``iota`` of :func:`nkigen.codegen.select._residue_operand` computes ``f // c``
    there in one pass (2.67 us for ``where(n // 3 == m, ...)`` at 130 x 300 on trn2, against
    3.58 us for the two bounds)."""
    if cmp.op not in (CmpOp.EQ, CmpOp.NE):
        return None
    if keep is not None:
        d = sympy.expand(sympy.sympify(getattr(cmp.lhs, "expr", 0)) -
                         sympy.sympify(getattr(cmp.rhs, "expr", 0)))
        if any(division_parts(q)[0] == keep for q in d.atoms(sympy.floor)):
            return None
    ge = affine(Compare(CmpOp.GE, cmp.lhs, cmp.rhs))
    le = affine(Compare(CmpOp.LE, cmp.lhs, cmp.rhs))
    return (ge, le) if ge is not None and le is not None else None


@lru_cache(maxsize=64)
def rewrite(spec: Spec) -> Spec:
    """``spec`` with every qualifying comparison rewritten; the same object when none is. An
    ``==`` / ``!=`` through a floor division becomes two nested ``where`` on its affine bounds
    (:func:`band`): ``where(ge, where(le, a, b), b)`` (``!=``: ``a`` and ``b`` swapped), the
    form of a band condition; as a number it is ``where(ge, where(le, 1, 0), 0)``."""
    keep: sympy.Symbol | None = None

    def visit(x: object) -> object | None:
        if isinstance(x, Where) and isinstance(x.cond, Compare):
            pair = band(x.cond, keep)
            if pair is not None:
                a, b = rebuild(x.a, visit), rebuild(x.b, visit)
                if x.cond.op is CmpOp.NE:
                    a, b = b, a
                return Where(pair[0], Where(pair[1], a, b), b)
        if isinstance(x, Compare):
            pair = band(x, keep)
            if pair is not None:
                one, zero = Const(1.0), Const(0.0)
                if x.op is CmpOp.NE:
                    one, zero = zero, one
                return Where(pair[0], Where(pair[1], one, zero), zero)
            return affine(x) or x
        return None

    statements = []
    for st in spec.statements:
        keep = index_symbol(st.lhs[-1]) if st.lhs else None
        statements.append(rebuild(st, visit))
    if tuple(statements) == spec.statements:
        return spec
    return dataclasses.replace(spec, statements=tuple(statements))
