"""Reductions that do not depend on the partition index: computed once, not once per row.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` before
:mod:`nkigen.codegen.turned`). A row statement of rank 1 or 2 has its first left-hand index on
the partitions (:mod:`nkigen.codegen.rows`). A reduction inside it whose free indices leave that
index out, as in the column normalisation ``y[m, n] = x[m, n] * rsqrt(sum(square(x[j, n]), j))``,
has the same value on every partition, yet the row lowering evaluates it for every row ``m``
(M times the work, and its reads ``x[j, n]`` one element per descriptor): 57.1 ms modelled at
M = 256, N = 300 float32 on trn2.

The rewrite gives each such reduction a float32 HBM temp over its free indices, written by a
statement of its own just before (``t[n] = sum(square(x[j, n]), j)``, which the planner lowers
like any row statement, reading ``x`` through a turned copy where
:mod:`nkigen.codegen.turned` applies), and the statement reads ``t[n]`` instead (a broadcast
along the partitions). The value is the same reduction; the kernel rounds it to float32 once, as
the fused form did in its accumulator, and the build verifies the kernel against the spec's
reference as always.

Applied to ``sum``, ``max``, ``min`` and ``mean`` reductions (an ``argmax``/``argmin`` keeps its
own lowering) that are not inside another reduction, with at least one free index, in ``=``
statements of rank 1 or 2 without a scan. The same reduction written twice in one statement
shares one temp.

Applied only where it pays at the spec's largest allowed sizes
(:func:`nkigen.codegen.layout.largest_sizes`; the kernel serves them all, and a reduction
recomputed per row at large sizes costs far more than the extra stage at small ones): the
hoisted form adds a stage (two for a whole-tensor reduction) with its own DMA fixed costs,
which a few rows of redundant work do not repay. With P the partition index's extent and R the
elements the reduction reads per row (the product of its free and reduced extents), both at
those sizes:

* a reduction with free indices is hoisted when P >= :data:`MIN_ROWS` (3) or
  (P - 1) * R >= :data:`MIN_REDUNDANT` (512): with one row it is computed once anyway;
* a whole-tensor reduction is hoisted when P * R >= :data:`MIN_WHOLE` (1024) or its last
  reduced index runs along the last (contiguous) dimension of every tensor it reads with an
  extent of at least :data:`MIN_WHOLE_INNER` (16); when every tensor it reads is a vector at
  those sizes (one dimension over 1, indexed by the only reduced index or not by the last of
  several: the row lowering reads it as one contiguous run per partition), only when
  P * R >= :data:`MIN_WHOLE_COLUMN` (65536).

The break-evens are the cost model's (trn2, float32; found by benchmarks/prepass_fuzz.py):
``y[m, n] = x[m, n] - max(x[j, n], j)`` at M = 1, N = 1000 was 11.63 us hoisted against 10.90
us not, at M = 2, N = 64 3.61 against 3.08 us, at M = 3 even, at M = 4 better; the whole-tensor
``x[m, n] / (max(abs(x[i, j]), i, j) + 1.0)`` at 8 x 8 was 5.39 against 4.36 us, at 16 x 4 5.39
against 5.78 us, at 200 x 1 7.58 against 7.19 us and at 256 x 1 8.00 against 8.27 us; the
column ``y[m] = x[m, 0] - sum(x[j, 0], j)`` at M = 16, N = 2 4.19 against 2.73 us, at M = 64,
N = 2 6.50 against 13.75 us, at M = 129, N = 1 3.97 against 3.65 us.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

import sympy

from nkigen.analysis.sizes import eval_size_expr
from nkigen.codegen.context import extents_of
from nkigen.codegen.layout import largest_sizes
from nkigen.codegen.prepass import fresh, substitute, taken_names
from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    Reduce,
    Role,
    Scan,
    Spec,
    Statement,
    TensorDecl,
    accesses,
    expr_indices,
    index_symbol,
    walk,
)

MIN_ROWS = 3                # partition extent from which a hoist always pays
MIN_REDUNDANT = 512         # else: redundant elements (P - 1) * R from which it pays
MIN_WHOLE = 1024            # whole-tensor: P * R from which it pays
MIN_WHOLE_INNER = 16        # whole-tensor: last reduced extent from which it pays
MIN_WHOLE_COLUMN = 65536    # whole-tensor with last reduced extent 1: P * R from which it pays


@lru_cache(maxsize=64)
def rewrite(spec: Spec) -> Spec:
    """``spec`` with every qualifying reduction hoisted (see the module docstring); the same
    object when there is none."""
    try:
        ext = extents_of(spec, None)
    except KeyError:        # an undeclared tensor: Build.create reports it, located
        return spec
    taken = taken_names(spec) | set(ext)
    sizes = largest_sizes(spec)
    ints = {t.name for t in spec.tensors if t.dtype.is_integer}
    temps: list[TensorDecl] = []
    out: list[Statement] = []
    for st in spec.statements:
        found = [r for r in _hoistable(st, ints)
                 if (expr_indices(r, free=True) or sympy.sympify(ext.get(st.lhs[0], 0)) != 1)
                 and _pays(spec, r, st.lhs[0], ext, sizes)]
        if not found or any(i not in ext for r in found for i in expr_indices(r, free=True)):
            out.append(st)
            continue
        rhs = st.rhs
        for r in found:
            free = [i for i in st.lhs if i in expr_indices(r, free=True)]
            name = fresh(f"{st.target}_{r.op.value}", taken)
            why = (f"the {r.op.value} reduction of statement {st.position}, computed once (it "
                   f"does not depend on {st.lhs[0]}; codegen/hoist.py)")
            if free:
                temps.append(TensorDecl(name, Role.TEMP, tuple(ext[i] for i in free),
                                        DType.float32, st.loc))
                out.append(Statement(st.position, name, tuple(free), AssignOp.ASSIGN, r, (),
                                     f"{name}[{', '.join(free)}] = {why}", st.loc))
                rhs = substitute(rhs, r, Access(name, tuple(index_symbol(i) for i in free)))
                continue
            # a whole-tensor reduction: one value, kept in a [1] temp and read as name[0];
            # reduced row by row first (the same reduction over the first index of the rest)
            z = fresh("z", taken)
            temps.append(TensorDecl(name, Role.TEMP, (sympy.Integer(1),), DType.float32,
                                    st.loc))
            total: Any = r
            if len(r.indices) > 1:
                row = fresh(f"{name}_rows", taken)
                i0, rest = r.indices[0], r.indices[1:]
                temps.append(TensorDecl(row, Role.TEMP, (ext[i0],), DType.float32, st.loc))
                out.append(Statement(st.position, row, (i0,), AssignOp.ASSIGN,
                                     Reduce(r.op, r.body, rest), (),
                                     f"{row}[{i0}] = per-{i0} part of {why}", st.loc))
                total = Reduce(r.op, Access(row, (index_symbol(i0),)), (i0,))
            out.append(Statement(st.position, name, (z,), AssignOp.ASSIGN, total, (),
                                 f"{name}[{z}] = {why}", st.loc))
            rhs = substitute(rhs, r, Access(name, (sympy.Integer(0),)))
        out.append(dataclasses.replace(st, rhs=rhs))
    if not temps:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


def _hoistable(st: Statement, ints: set[str]) -> list[Reduce]:
    """The outermost reductions of ``st`` that leave out its partition index and read no
    integer tensor (``ints``: their exact arithmetic is not a float32 temp's)."""
    if st.op is not AssignOp.ASSIGN or len(st.lhs) not in (1, 2) or \
            any(isinstance(e, Scan) for e in walk(st.rhs)):
        return []
    part = st.lhs[0]
    got: list[Reduce] = []

    def visit(e: Any) -> None:
        if isinstance(e, Reduce):
            free = expr_indices(e, free=True)
            if not e.op.is_arg and part not in free and _splittable(e, free) and \
                    all(i in st.lhs for i in free) and e not in got and \
                    not any(isinstance(a, Access) and (a.tensor == st.target or a.tensor in ints)
                            for a in walk(e)):
                got.append(e)
            return              # an inner reduction goes with its outer one
        if dataclasses.is_dataclass(e) and not isinstance(e, type):
            for f in dataclasses.fields(e):
                v = getattr(e, f.name)
                for x in (v if isinstance(v, tuple) else (v,)):
                    if dataclasses.is_dataclass(x):
                        visit(x)
    visit(st.rhs)
    return got


def _pays(spec: Spec, r: Reduce, part: str, ext: dict[str, Any],
          sizes: dict[str, int] | None) -> bool:
    """Whether hoisting ``r`` out of a statement with partition index ``part`` pays at the
    largest allowed ``sizes`` (the module docstring's thresholds); True when a size is not
    known there."""
    if sizes is None:
        return True
    free = expr_indices(r, free=True)

    def at(i: str) -> int | None:
        return eval_size_expr(sympy.sympify(ext[i]), sizes) if i in ext else None

    p, dims = at(part), [at(i) for i in (*free, *r.indices)]
    if p is None or any(d is None for d in dims):
        return True
    per_row = 1
    for d in dims:
        per_row *= int(d or 1)
    if free:
        return p >= MIN_ROWS or (p - 1) * per_row >= MIN_REDUNDANT
    shapes = {t.name: t.shape for t in spec.tensors}
    reads = [a for a in accesses(r.body) if a.tensor in shapes]
    last = index_symbol(r.indices[-1])
    at_sizes = {a.tensor: [eval_size_expr(sympy.sympify(d), sizes) for d in shapes[a.tensor]]
                for a in reads}

    def vector(a: Access) -> bool:
        big = [k for k, d in enumerate(at_sizes[a.tensor]) if d != 1]
        return len(big) <= 1 and (len(r.indices) == 1 or
                                  not big or sympy.sympify(a.indices[big[0]]) != last)

    if reads and all(vector(a) for a in reads):
        # every tensor it reads is a vector at these sizes, read as one contiguous run
        return p * per_row >= MIN_WHOLE_COLUMN
    inner = min((at_sizes[a.tensor][-1] or 0) if sympy.sympify(a.indices[-1]) == last else 0
                for a in reads) if reads else 0
    return p * per_row >= MIN_WHOLE or inner >= MIN_WHOLE_INNER


def _splittable(r: Reduce, free: tuple[str, ...]) -> bool:
    """A reduction with free indices is hoisted as it is; a whole-tensor one is split into a
    per-row reduction over its first index and the reduction of those (sum of sums, max of
    maxes, mean of equal-length means), which needs its first index to index a tensor
    dimension directly (it becomes the row temp's left-hand index)."""
    if free:
        return True
    i0 = r.indices[0]
    return any(sympy.sympify(e) == index_symbol(i0) for a in accesses(r.body) for e in a.indices)
