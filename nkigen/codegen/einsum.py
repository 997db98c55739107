"""Contractions written as ``= sum(a * b, k)`` take the matmul lowering of ``+= a * b``.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` first).
The spec language gives a contraction two spellings: ``s[b, i, j] += q[b, i, d] * k[b, j, d]``
(the einsum rule) and ``s[b, i, j] = sum(q[b, i, d] * k[b, j, d], d)``. The planner's matmul
lowering (:mod:`nkigen.codegen.matmul`) matched only the first; the second fell to the row
lowering, a reduction per output element with element-wise reads: 1,213.01 us modelled for
B = 2, S = 256, D = 64 bf16 on trn2, against 8.55 us for the ``+=`` spelling.

The rewrite: an ``=`` statement whose right-hand side is ``sum(body, k...)``, optionally times a
factor that reads no tensor (``scale * sum(...)``), becomes ``+= factor * body`` when

* it is the first statement writing its target (``+=`` starts from zero only then: spec
  language "Statements"),
* the reduction's indices are exactly the body's indices missing from the left-hand side (the
  einsum rule sums over those), and
* the result is a TensorE contraction (:func:`nkigen.analysis.contraction.match`, or after
  :mod:`nkigen.codegen.operands` copies an operand or turns a batch-last target) or another
  whole-statement lowering takes it (a matrix-vector product, :mod:`nkigen.codegen.matvec`:
  31.08 -> 16.03 us for ``y[m] = sum(a[m, n] * x[n], n)`` at 1000 x 700 bf16); anything else
  keeps its own lowering.

Both spellings mean the same sum (spec language "Meaning"); the float64 reference is computed
from the spec as written, and the build verifies the kernel against it.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from nkigen.analysis.contraction import match
from nkigen.codegen import operands
from nkigen.codegen.context import extents_of
from nkigen.codegen.prepass import claims, fresh, split_statements, substitute, taken_names
from nkigen.diagnostics import NkigenError
from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Expr,
    Reduce,
    ReduceKind,
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


@lru_cache(maxsize=64)
def rewrite(spec: Spec, target: str = "trn2") -> Spec:
    """``spec`` with each qualifying ``= sum(...)`` contraction spelled ``+=``; the same
    object when there is none."""
    try:
        names = set(extents_of(spec, None))
    except KeyError:        # an undeclared tensor: Build.create reports it, located
        return spec
    written: set[str] = set()
    out: list[Statement] = list(spec.statements)
    changed = False
    for i, st in enumerate(spec.statements):
        new = None if st.target in written else _as_accumulate(st)
        written.add(st.target)
        if new is None:
            continue
        if match(names, new) is None and not operands.takes(spec, new, True) and \
                not _taken_whole(spec, out, i, new, target):
            continue
        out[i] = new
        changed = True
    spec = dataclasses.replace(spec, statements=tuple(out)) if changed else spec
    return _inner_sums(spec, names)


def _inner_sums(spec: Spec, names: set[str]) -> Spec:
    """``spec`` with each contraction inside an element-wise ``=`` right-hand side
    (``c[m, n] = sigmoid(sum(a[m, k] * b[k, n], k))``, ``y = x - 0.5 * sum(...)``) computed
    first into a float32 temp by its own ``+=`` statement, which the matmul lowering takes;
    the statement then reads the temp. Only where that ``+=`` is a TensorE contraction
    (:func:`~nkigen.analysis.contraction.match`), the sum's indices are exactly its body's
    indices missing from the left-hand side (the einsum rule), its free indices are
    left-hand indices, and its body reads neither the statement's target nor a reduction or
    scan. The row lowering computed such a sum once per output element: 2,238.40 us modelled
    for the sigmoid at M 256, K 384, N 520 bf16 on trn2 (fuzz13's note). The temp holds the
    float32 sum the PSUM accumulation gives; the reference is the spec as written and the build
    verifies the kernel against it."""
    ext = extents_of(spec, None)
    taken = taken_names(spec) | set(ext)

    def split(st: Statement) -> tuple[list[TensorDecl], list[Statement]] | None:
        got = _inner_sum(st, names, ext, taken)
        return None if got is None else ([got[0]], [got[1], got[2]])

    return split_statements(spec, split)


def _inner_sum(st: Statement, names: set[str], ext: dict, taken: set[str]
               ) -> tuple[TensorDecl, Statement, Statement] | None:
    if st.op is not AssignOp.ASSIGN or isinstance(st.rhs, Reduce):
        return None
    sums = [x for x in walk(st.rhs) if isinstance(x, Reduce)]
    if len(sums) != 1 or sums[0].op is not ReduceKind.SUM:
        return None
    r = sums[0]
    if any(isinstance(x, (Reduce, Scan)) for x in walk(r.body) if x is not r.body) or \
            isinstance(r.body, (Reduce, Scan)) or \
            any(a.tensor == st.target or a.indirect for a in accesses(r.body)):
        return None
    body_ix = expr_indices(r.body)
    free = [i for i in st.lhs if i in body_ix]
    extra = tuple(i for i in body_ix if i not in st.lhs)
    if set(extra) != set(r.indices) or len(extra) != len(r.indices) or not free or \
            any(i not in ext for i in free):
        return None
    name = fresh(f"{st.target}_sum", set(taken))
    pre = Statement(st.position, name, tuple(free), AssignOp.ACCUMULATE, r.body, extra,
                    f"{name}[{', '.join(free)}] += the contraction inside statement "
                    f"{st.position} (codegen/einsum.py)", st.loc)
    if match(names | {name}, pre) is None:
        return None
    taken.add(name)
    temp = TensorDecl(name, Role.TEMP, tuple(ext[i] for i in free), DType.float32, st.loc)
    read = Access(name, tuple(index_symbol(i) for i in free))
    return temp, pre, dataclasses.replace(st, rhs=substitute(st.rhs, r, read))


def _taken_whole(spec: Spec, sts: list[Statement], i: int, new: Statement, target: str) -> bool:
    """Whether a whole-statement lowering other than the matmul one (a matrix-vector product,
    a column sum) takes ``new`` in place of ``sts[i]`` where the planner would reach it (not
    inside the row group of an earlier statement: :func:`nkigen.codegen.prepass.claims`)."""
    trial = dataclasses.replace(spec, statements=(*sts[:i], new, *sts[i + 1:]))
    try:
        taken, _ = claims(trial, target, spec.schedule)
    except (KeyError, NkigenError):     # the planner reports it, located
        return False
    return i in taken


def _split(e: Expr) -> tuple[Reduce | None, Expr | None]:
    """``(sum, factor)`` for ``sum(...)``, ``factor * sum(...)`` or ``sum(...) * factor``."""
    if isinstance(e, Reduce):
        return e, None
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        for r, f in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
            if isinstance(r, Reduce) and not accesses(f) and \
                    not any(isinstance(x, Reduce) for x in walk(f)):
                return r, f
    return None, None


def _as_accumulate(st: Statement) -> Statement | None:
    if st.op is not AssignOp.ASSIGN:
        return None
    r, factor = _split(st.rhs)
    if r is None or r.op is not ReduceKind.SUM:
        return None
    body = r.body if factor is None else BinOp(BinOpKind.MUL, factor, r.body)
    extra = tuple(i for i in expr_indices(body) if i not in st.lhs)
    if set(extra) != set(r.indices) or len(extra) != len(r.indices):
        return None
    return dataclasses.replace(st, op=AssignOp.ACCUMULATE, rhs=body, sum_indices=extra)
