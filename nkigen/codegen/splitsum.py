"""A reduction over several indices into a target none of them varies: row reductions first.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` after
:mod:`nkigen.codegen.einsum`). ``t[z] += x[m, n]`` (or ``t[z] = sum(x[m, n], m, n)``, ``max``,
``min``, ``mean``) reduces everything into a target whose indices the body does not read. The
row lowering puts the target's index on the partitions, so the whole reduction ran on one
partition, one row of ``x`` per step: 198.88 us modelled at 129 x 513 float32 on trn2
(fuzz7), against 5.60 us for the same sum written as row sums first,
``r[m] = sum(x[m, n], n)`` then ``t[z] += r[m]``.

The rewrite is that spelling: the reduced index read in the outermost dimension of the body's
accesses (``m``) keeps the rows on the partitions,

* ``x_red[m] = red(body, other indices)`` (a float32 temp, one value per row), then
* ``t[lhs] = red(x_red[m], m)`` (``+=`` for a sum written with ``+=``),

with ``red`` the statement's reduction (``mean`` of equal-length row means is the mean). Sum,
max, min and mean are associative up to float rounding, which the tolerance covers like any
other summation order; the float64 reference is computed from the spec as written.

Applied to the first statement writing its target whose right-hand side is one such reduction
(no factor around it) over at least two indices, none of the target's indices read anywhere in
the body (accesses or index conditions), and the split-off index a plain index of some access.
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen.codegen.prepass import fresh, taken_names
from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    IndexValue,
    Reduce,
    ReduceKind,
    Role,
    Spec,
    Statement,
    TensorDecl,
    accesses,
    index_symbol,
    walk,
)

_SPLIT = (ReduceKind.SUM, ReduceKind.MAX, ReduceKind.MIN, ReduceKind.MEAN)


def rewrite(spec: Spec) -> Spec:
    """``spec`` with each qualifying several-index reduction split (see the module
    docstring); the same object when there is none."""
    taken = taken_names(spec)
    decls = {t.name: t for t in spec.tensors}
    written: set[str] = set()
    temps: list[TensorDecl] = []
    out: list[Statement] = []
    for st in spec.statements:
        first = st.target not in written
        written.add(st.target)
        while first and (got := _split(st, decls)) is not None:
            red, body, j, rest, shape = got
            name = fresh(f"{st.target}_red", taken)
            decl = TensorDecl(name, Role.TEMP, shape, DType.float32, st.loc)
            temps.append(decl)
            decls[name] = decl
            inner = Reduce(red, body, (j,))
            why = f"row reductions first (codegen/splitsum.py) of statement {st.position}"
            out.append(Statement(st.position, name, rest, AssignOp.ASSIGN, inner, (),
                                 f"{name}[{', '.join(rest)}] = {red.value}(..., {j}): {why}",
                                 st.loc))
            part = Access(name, tuple(index_symbol(i) for i in rest))
            if st.op is AssignOp.ACCUMULATE:
                st = dataclasses.replace(st, rhs=part, sum_indices=rest)
            else:
                st = dataclasses.replace(st, rhs=Reduce(red, part, rest))
        out.append(st)
    if not temps:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


def _split(st: Statement, decls: dict[str, TensorDecl]):
    """``(reduction, body, inner index, outer indices, their extents)`` when ``st``
    qualifies."""
    if st.op is AssignOp.ACCUMULATE:
        red, body, over = ReduceKind.SUM, st.rhs, st.sum_indices
    elif isinstance(st.rhs, Reduce) and st.rhs.op in _SPLIT:
        red, body, over = st.rhs.op, st.rhs.body, st.rhs.indices
    else:
        return None
    if len(over) < 2 or any(isinstance(x, Reduce) for x in walk(body)):
        return None
    read: set[str] = set()
    for x in walk(body):
        exprs = x.indices if isinstance(x, Access) else \
            (x.expr,) if isinstance(x, IndexValue) else ()
        read |= {s.name for e in exprs for s in sympy.sympify(e).free_symbols}
    if read & set(st.lhs) or not set(over) <= read:
        return None
    extents: dict[str, sympy.Expr] = {}
    last: dict[str, int] = {}
    for a in accesses(body):
        if a.indirect or a.tensor not in decls:
            return None
        for d, e in enumerate(a.indices):
            e = sympy.sympify(e)
            if e.is_Symbol and e.name in over:
                extents.setdefault(e.name, decls[a.tensor].shape[d])
                if d == len(a.indices) - 1:
                    last[e.name] = last.get(e.name, 0) + 1
    if set(extents) != set(over):
        return None     # an index read only inside an affine expression: its extent unknown
    j = max(over, key=lambda i: (last.get(i, 0), -over.index(i)))
    # the temp's dimensions in the order the body reads them (x[b, m, n] -> x_red[b, m]),
    # so its rows are the body's rows whatever order the reduction names them in
    rest = tuple(i for i in extents if i != j)
    return red, body, j, rest, tuple(extents[i] for i in rest)
