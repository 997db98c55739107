"""Memoised sympy ``Min`` / ``Max`` construction for the planner's index arithmetic.

Stage: plan and render (helpers of every lowering and of the passes that rename or shift plan
expressions). Building ``Min(T, X - T * i)`` runs sympy's local-zero search
(``MinMaxBase._find_localzeros``: pairwise ``is_ge`` through ``factor_terms`` / ``gcd_terms``),
some milliseconds per call, and ``Expr.xreplace`` rebuilds every ``Min`` / ``Max`` whose
arguments change the same way. A tuning run plans the same few tile-remainder expressions for
every candidate schedule, and a library build plans each spec's candidates in one process, so
one process builds the same ``Min`` again and again.

:func:`Min`, :func:`Max` and :func:`xreplace` return exactly what ``sympy.Min``, ``sympy.Max``
and ``expr.xreplace`` return: sympy expressions are immutable, compare structurally (type,
value, precision and symbol assumptions included: ``Float(1.0) != Integer(1)``) and a
``Min`` / ``Max`` of given arguments evaluates deterministically, so a remembered result is
the same value. The memo is bounded (:data:`MEMO_LIMIT`, emptied when full) and is bypassed
inside ``sympy.evaluate(False)``. :func:`substitute` (``subs`` with a dict of sympy objects)
and :func:`names` (free-symbol names) are remembered the same way: the HBM views substitute
the same loop offsets, and the render passes ask for the same expressions' names, per node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy
from sympy.core.parameters import global_parameters

MEMO_LIMIT = 8192    # remembered Min/Max constructions before the memo is emptied

_MEMO: dict[tuple, sympy.Basic] = {}
_LATTICE = (sympy.Min, sympy.Max)


def _build(func: Any, args: tuple) -> Any:
    """``func(*args)`` for ``func`` sympy.Min or sympy.Max, remembered per argument tuple."""
    args = tuple(a if isinstance(a, sympy.Basic) else sympy.sympify(a) for a in args)
    if not global_parameters.evaluate:
        return func(*args)
    key = (func, args)
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    if len(_MEMO) >= MEMO_LIMIT:
        _MEMO.clear()
    value = _MEMO[key] = func(*args)
    return value


def Min(*args: Any) -> Any:
    """``sympy.Min(*args)``, memoised."""
    return _build(sympy.Min, args)


def Max(*args: Any) -> Any:
    """``sympy.Max(*args)``, memoised."""
    return _build(sympy.Max, args)


def xreplace(expr: Any, rule: Mapping) -> Any:
    """``expr.xreplace(rule)``: the same walk as sympy's ``Basic._xreplace`` (a node found in
    ``rule`` is replaced whole; otherwise a node is rebuilt from its arguments when one of
    them changed), with ``Min`` / ``Max`` nodes rebuilt through the memo."""
    return _xreplace(expr, rule)[0] if rule else expr


def _xreplace(node: Any, rule: Mapping) -> tuple[Any, bool]:
    if node in rule:
        return rule[node], True
    args = []
    changed = False
    for a in node.args:
        if isinstance(a, sympy.Basic):
            new, ch = _xreplace(a, rule)
        elif getattr(a, "_xreplace", None) is not None:
            new, ch = a._xreplace(rule)
        else:
            new, ch = a, False
        args.append(new)
        changed |= ch
    if not changed:
        return node, False
    func = node.func
    if func in _LATTICE:
        return _build(func, tuple(args)), True
    return func(*args), True


_NAMES: dict[Any, frozenset[str]] = {}


def names(expr: Any) -> frozenset[str]:
    """The names of ``expr``'s free symbols (``expr`` sympified), remembered per expression:
    sympy walks the whole tree for ``free_symbols`` on every call, and the render passes ask
    for the same index expressions' names once per node they visit."""
    e = expr if isinstance(expr, sympy.Basic) else sympy.sympify(expr)
    hit = _NAMES.get(e)
    if hit is not None:
        return hit
    if len(_NAMES) >= MEMO_LIMIT:
        _NAMES.clear()
    value = _NAMES[e] = frozenset(s.name for s in e.free_symbols)
    return value


_SUBS: dict[tuple, Any] = {}


def substitute(expr: Any, mapping: Mapping) -> Any:
    """``sympify(expr).subs(mapping)`` for a dict of sympy keys and values, remembered per
    (expression, set of pairs): sympy orders an unordered mapping's pairs canonically itself,
    so the result depends on the pairs only. A mapping holding anything but sympy objects
    (strings, Python numbers: ``1`` and ``1.0`` are equal keys) is not remembered."""
    e = expr if isinstance(expr, sympy.Basic) else sympy.sympify(expr)
    if not global_parameters.evaluate or not all(
            isinstance(k, sympy.Basic) and isinstance(v, sympy.Basic)
            for k, v in mapping.items()):
        return e.subs(mapping)
    key = (e, frozenset(mapping.items()))
    hit = _SUBS.get(key)
    if hit is not None:
        return hit
    if len(_SUBS) >= MEMO_LIMIT:
        _SUBS.clear()
    value = _SUBS[key] = e.subs(mapping)
    return value
