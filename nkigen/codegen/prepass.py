"""Helpers of the spec-to-spec plan pre-passes (:mod:`nkigen.codegen.einsum`,
:mod:`nkigen.codegen.hoist`, :mod:`nkigen.codegen.turned`):
fresh tensor names, expression-tree substitution, the sizes and throwaway build their
decisions are taken on, and the stage notes naming the statements they add.

Stage: plan (pre-pass helpers). Expression nodes are frozen dataclasses (:mod:`nkigen.ir`).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import Any

from nkigen.analysis.sizes import eval_size_expr
from nkigen.ir import Access, IndexValue, Spec, TensorDecl


def taken_names(spec: Spec) -> set[str]:
    """Every name a new tensor must not take: tensors, sizes, params and the kernel's name."""
    return {t.name for t in spec.tensors} | {s.name for s in spec.sizes} | \
        {p.name for p in spec.params} | {spec.name}


def fresh(base: str, taken: set[str]) -> str:
    """``base``, else ``base2``, ``base3``, ... : the first name not in ``taken`` (added)."""
    name, k = base, 2
    while name in taken:
        name, k = f"{base}{k}", k + 1
    taken.add(name)
    return name


def rebuild(e: Any, visit) -> Any:
    """``e`` (an expression node) with ``visit`` applied to each node, parents first: ``visit``
    returns the node's replacement, or None to go on into its children; nodes are rebuilt only
    where something changed."""
    got = visit(e)
    if got is not None:
        return got
    if not dataclasses.is_dataclass(e) or isinstance(e, type):
        return e
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, tuple):
            nv = tuple(rebuild(x, visit) if dataclasses.is_dataclass(x) else x for x in v)
        elif dataclasses.is_dataclass(v):
            nv = rebuild(v, visit)
        else:
            continue
        if nv != v:
            changes[f.name] = nv
    return dataclasses.replace(e, **changes) if changes else e


def map_indices(e: Any, index) -> Any:
    """``e`` (an expression node) with every index expression mapped by ``index`` (a sympy
    expression to a sympy expression): the indices of its accesses, gathers' ids included,
    and the indices it reads as numbers (``IndexValue``)."""
    def mapped(x):
        if isinstance(x, Access):
            return dataclasses.replace(
                x, indices=tuple(index(i) for i in x.indices),
                indirect=tuple((k, rebuild(a, mapped)) for k, a in x.indirect))
        if isinstance(x, IndexValue):
            return dataclasses.replace(x, expr=index(x.expr))
        return None
    return rebuild(e, mapped)


def substitute(e: Any, old: Any, new: Any) -> Any:
    """``e`` (an expression node) with every sub-expression equal to ``old`` replaced by
    ``new`` (an access is compared whole: tensor, indices, gathers)."""
    return rebuild(e, lambda x: new if x == old else x if isinstance(x, Access) else None)


def split_statements(spec: Spec, split) -> Spec:
    """``spec`` with each statement that ``split`` rewrites replaced by the statements it
    returns (in order), and the temps it declares added: ``split(st)`` gives ``(temps,
    statements)`` or None to keep ``st``. The same object when no statement is split."""
    temps: list[TensorDecl] = []
    out: list = []
    for st in spec.statements:
        got = split(st)
        if got is None:
            out.append(st)
            continue
        new_temps, sts = got
        temps += new_temps
        out += sts
    if not temps:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


def noted(stages: tuple, statements: tuple, given: set[str]) -> tuple:
    """``stages`` with a note for each statement a pre-pass added (its target is not one of
    ``given``, the spec's own tensor names): the statement's text, which says why."""
    extra = tuple(st.text for st in statements if st.target not in given)
    if not extra:
        return stages
    return tuple(dataclasses.replace(s, notes=s.notes + extra) for s in stages)


def build_at(spec: Spec, target: str):
    """``(largest sizes, throwaway Build)`` for a pre-pass's decisions (the row lowering's
    placements, the elements of a tensor), or None when the largest sizes do not complete or
    the spec cannot be built (the planner then reports why, located). The largest allowed
    sizes, not the test cases: the kernel serves every allowed size, and a cliff at large
    sizes costs far more than a pre-pass's few extra DMAs at small ones."""
    from nkigen.codegen.context import Build
    from nkigen.codegen.layout import largest_sizes
    from nkigen.diagnostics import NkigenError
    from nkigen.hw import target as hw_target
    sizes = largest_sizes(spec)
    if sizes is None:
        return None
    try:
        return sizes, Build.create(spec, None, hw_target(target))
    except (KeyError, NkigenError):
        return None


def extents_at(shape: tuple, sizes: dict[str, int]) -> list[int] | None:
    """The extents of ``shape`` at ``sizes`` (:func:`nkigen.analysis.sizes.eval_size_expr`),
    or None when one of them is not an integer there."""
    dims = [eval_size_expr(d, sizes) for d in shape]
    return None if any(d is None for d in dims) else [int(d or 0) for d in dims]


def elements(t: TensorDecl, sizes: dict[str, int]) -> int:
    """The elements of ``t`` at ``sizes`` (0 when its shape is not known there)."""
    dims = extents_at(t.shape, sizes)
    return math.prod(dims) if dims is not None else 0


def first_placement(b, st):
    """The row lowering's first placement of ``st`` (:func:`nkigen.codegen.rows.placements`:
    partition index, free index, outer loops), or None when it cannot place it (the planner
    then lowers it another way or reports why)."""
    from nkigen.codegen import rows
    from nkigen.codegen.tilexpr import Unsupported
    from nkigen.diagnostics import NkigenError
    try:
        return rows.placements(b, st, st.rhs)[0]
    except (Unsupported, NkigenError, KeyError):
        return None


@lru_cache(maxsize=64)
def claims(spec: Spec, target: str, schedule) -> tuple[frozenset[int], frozenset[int]]:
    """:func:`nkigen.codegen.planner.claimed` (a whole planning of ``spec``), once per spec,
    target and schedule."""
    from nkigen.codegen.planner import claimed  # (the planner imports the pre-passes)
    return claimed(spec, target, schedule)
