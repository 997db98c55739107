"""A reduction over several indices into a target with few points: row reductions first.

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

The same holds for a target whose indices the body does read when they give fewer points than
one partition tile at the largest allowed sizes (``r[b] = max(x[b, m, n], n, m)`` with
``B <= 64``: 144.83 -> 14.64 us modelled at 3 x 129 x 130 bf16 on trn2): the temp keeps them,
``r_red[b, m] = max(x[b, m, n], n)``, then ``r[b] = max(r_red[b, m], m)``.

Applied to the first statement writing its target whose right-hand side is one such reduction
(no factor around it) over at least two indices, each index of the temp a plain index of some
access; the split-off (inner) index is the one read as the last, contiguous, dimension most
often, and the split repeats until one reduced index is left.
"""

from __future__ import annotations

import dataclasses
import math

import sympy

from nkigen.codegen.prepass import extents_at, fresh, taken_names
from nkigen.dtypes import DType
from nkigen.hw import PMAX
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
    from nkigen.codegen.layout import largest_sizes
    taken = taken_names(spec)
    decls = {t.name: t for t in spec.tensors}
    largest = largest_sizes(spec)
    written: set[str] = set()
    temps: list[TensorDecl] = []
    out: list[Statement] = []
    for st in spec.statements:
        first = st.target not in written
        written.add(st.target)
        while first and (got := _split(st, decls, largest)) is not None:
            red, body, j, rest, kept, shape = got
            name = fresh(f"{st.target}_red", taken)
            decl = TensorDecl(name, Role.TEMP, shape, DType.float32, st.loc)
            temps.append(decl)
            decls[name] = decl
            inner = Reduce(red, body, (j,))
            why = f"row reductions first (codegen/splitsum.py) of statement {st.position}"
            out.append(Statement(st.position, name, kept, AssignOp.ASSIGN, inner, (),
                                 f"{name}[{', '.join(kept)}] = {red.value}(..., {j}): {why}",
                                 st.loc))
            part = Access(name, tuple(index_symbol(i) for i in kept))
            if st.op is AssignOp.ACCUMULATE:
                st = dataclasses.replace(st, rhs=part, sum_indices=rest)
            else:
                st = dataclasses.replace(st, rhs=Reduce(red, part, rest))
        out.append(st)
    if not temps:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


def _split(st: Statement, decls: dict[str, TensorDecl], largest: dict[str, int] | None):
    """``(reduction, body, inner index, outer reduced indices, the temp's indices, their
    extents)`` when ``st`` qualifies."""
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
    if not set(over) <= read:
        return None
    kept_lhs = [i for i in st.lhs if i in read]
    extents: dict[str, sympy.Expr] = {}
    last: dict[str, int] = {}
    for a in accesses(body):
        if a.indirect or a.tensor not in decls:
            return None
        for d, e in enumerate(a.indices):
            e = sympy.sympify(e)
            if e.is_Symbol and (e.name in over or e.name in kept_lhs):
                extents.setdefault(e.name, decls[a.tensor].shape[d])
                if d == len(a.indices) - 1 and e.name in over:
                    last[e.name] = last.get(e.name, 0) + 1
    if set(extents) != set(over) | set(kept_lhs):
        return None     # an index read only inside an affine expression: its extent unknown
    if kept_lhs and not _few_rows(st, decls, kept_lhs, largest):
        return None
    j = max(over, key=lambda i: (last.get(i, 0), -over.index(i)))
    # the temp's dimensions in the order the body reads them (x[b, m, n] -> x_red[b, m]),
    # so its rows are the body's rows whatever order the reduction names them in
    kept = tuple(i for i in extents if i != j)
    rest = tuple(i for i in kept if i in over)
    return red, body, j, rest, kept, tuple(extents[i] for i in kept)


def _few_rows(st: Statement, decls: dict[str, TensorDecl], kept: list[str],
              largest: dict[str, int] | None) -> bool:
    """Whether the target's points the body reads number fewer than one partition tile at
    the largest allowed sizes: its row lowering would then leave most partitions idle while
    it loops over the reduction (``r[b] = max(x[b, m, n], n, m)`` with ``B <= 64``: 144.83
    us modelled at 3 x 129 x 130, 14.64 us split, fuzz7), where the split puts the body's rows
    on the partitions. A target with a partition tile of rows keeps its one pass."""
    if largest is None:
        return False
    shape = decls[st.target].shape
    dims = extents_at(tuple(shape[st.lhs.index(i)] for i in kept), largest)
    return dims is not None and math.prod(dims) < PMAX
