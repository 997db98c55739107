"""Contraction operands that are element-wise functions of tensors are computed once, first.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` after
:mod:`nkigen.codegen.einsum`). The matmul lowering (:mod:`nkigen.codegen.matmul`) takes a
``+=`` product of two tensor accesses (:func:`nkigen.analysis.contraction.match`). A model
author also writes the operands as functions, ``c[m, n] += relu(2 * a[m, k] - 0.5) * b[k, n]``
(an activation of one operand) or the Gram matrix of centred data
``g[i, j] += (x[k, i] - mu[i]) * (x[k, j] - mu[j])``; those fell to the row lowering, which
evaluates the operand expression again for every output element: 3,322 us modelled at
M = K = N = 512 float32 on trn2 against 34 us for the same math spelled with a temp
``ar[m, k] = relu(...)`` first (fuzz9), and 325 us against 8 us for the Gram matrix at
K = 130, N = 129.

The rewrite gives each such factor (one that reads tensors but is not a bare access, holds no
reduction, scan or gather and does not read the statement's target) a float32 HBM temp over
its indices, written by an ``=`` statement of its own just before, in the index order of the
factor's widest access (so the temp has that tensor's layout), and the contraction reads the
temp instead. Applied only when the rewritten statement is a TensorE contraction
(:func:`~nkigen.analysis.contraction.match`); anything else keeps its own lowering. The value
is the same sum; the temp rounds each operand element to float32 once, as the row lowering
did in its tiles, and the build verifies the kernel against the spec's reference as always.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from nkigen.analysis.contraction import match
from nkigen.codegen.context import extents_of
from nkigen.codegen.prepass import fresh, split_statements, taken_names
from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Expr,
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


@lru_cache(maxsize=64)
def rewrite(spec: Spec) -> Spec:
    """``spec`` with the function operands of each qualifying contraction computed into temps
    first (see the module docstring); the same object when there is none."""
    try:
        ext = extents_of(spec, None)
    except KeyError:        # an undeclared tensor: Build.create reports it, located
        return spec
    names = set(ext)
    taken = taken_names(spec) | names

    def split(st: Statement) -> tuple[list[TensorDecl], list[Statement]] | None:
        got = _split(spec, st, names, ext, taken)
        return None if got is None else (got[0], [*got[1], got[2]])

    return split_statements(spec, split)


def _factors(e: Expr) -> list[Expr]:
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        return _factors(e.lhs) + _factors(e.rhs)
    return [e]


def _product(fs: list[Expr]) -> Expr:
    e = fs[0]
    for f in fs[1:]:
        e = BinOp(BinOpKind.MUL, e, f)
    return e


def _split(spec: Spec, st: Statement, names: set[str], ext: dict, taken: set[str]
           ) -> tuple[list[TensorDecl], list[Statement], Statement] | None:
    """(temps, their statements, the rewritten contraction) for ``st``, or None."""
    if st.op is not AssignOp.ACCUMULATE or not st.sum_indices or match(names, st) is not None:
        return None
    fs = _factors(st.rhs)
    temps: list[TensorDecl] = []
    pre: list[Statement] = []
    new_fs: list[Expr] = []
    trial = set(taken)
    for f in fs:
        accs = accesses(f)
        if isinstance(f, Access) or not accs:
            new_fs.append(f)
            continue
        if any(isinstance(x, (Reduce, Scan)) for x in walk(f)) or any(
                a.indirect or a.tensor == st.target for a in accs):
            return None
        widest = max(accs, key=lambda a: len(expr_indices(a)))
        order = list(expr_indices(widest))
        order += [i for i in expr_indices(f) if i not in order]
        if not order or any(i not in ext for i in order):
            return None
        name = fresh(f"{st.target}_operand", trial)
        temps.append(TensorDecl(name, Role.TEMP, tuple(ext[i] for i in order), DType.float32,
                                st.loc))
        pre.append(Statement(st.position, name, tuple(order), AssignOp.ASSIGN, f, (),
                             f"{name}[{', '.join(order)}] = an operand of statement "
                             f"{st.position}, computed once (codegen/operands.py)", st.loc))
        new_fs.append(Access(name, tuple(index_symbol(i) for i in order)))
    if not temps:
        return None
    new = dataclasses.replace(st, rhs=_product(new_fs))
    if match(names, new) is None:
        return None
    taken |= {t.name for t in temps}
    return temps, pre, new


__all__ = ["rewrite"]
