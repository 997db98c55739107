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

import sympy

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

    written: set[str] = set()

    def split(st: Statement) -> tuple[list[TensorDecl], list[Statement]] | None:
        first = st.target not in written
        written.add(st.target)
        got = _split(spec, st, names, ext, taken)
        if got is None:
            got = ([], [], st)
        turned = _batch_first(got[2], first, names, ext, taken)
        if turned is not None:
            return [*got[0], turned[0]], [*got[1], *turned[1]]
        return None if not got[0] else (got[0], [*got[1], got[2]])

    return split_statements(spec, split)


def takes(spec: Spec, st: Statement, first: bool) -> bool:
    """Whether this pre-pass makes the ``+=`` statement ``st`` (the first writing its target
    when ``first``) a TensorE contraction: :mod:`nkigen.codegen.einsum` then spells an
    ``= sum(...)`` statement ``+=`` for it too (fuzz17: ``c[m, n, b] = sum(a[b, m, k] *
    w[b, k, n], k)``)."""
    try:
        ext = extents_of(spec, None)
    except KeyError:
        return False
    names = set(ext)
    taken = taken_names(spec) | names
    got = _split(spec, st, names, ext, taken)
    if got is not None:
        return True
    return _batch_first(st, first, names, ext, taken) is not None


def _batch_first(st: Statement, first: bool, names: set[str], ext: dict, taken: set[str]
                 ) -> tuple[TensorDecl, list[Statement]] | None:
    """A contraction whose target's last index is a batch index (one both operands read, so
    no TensorE moving index), ``c[m, n, b] += a[b, m, k] * w[b, k, n]`` (fuzz17): (a float32
    temp with the batch indices first, ``[t[b, m, n] += a[b, m, k] * w[b, k, n], c[m, n, b] =
    t[b, m, n]]``), the first a contraction the matcher takes (batch indices become the
    matmul's outer loops) and the second a copy; or None. Only for the first statement writing
    the target (``+=`` starts from zero only then) and a product of two accesses. The row
    lowering computed such a statement one output element per partition: 6,949.23 us modelled
    at B 3, M 129, K 70, N 65 float32 on trn2, against 44.22 us through the temp. The temp
    holds the float32 sum the PSUM accumulation gives (as :mod:`nkigen.codegen.einsum` does)."""
    if not first or st.op is not AssignOp.ACCUMULATE or not st.sum_indices or \
            match(names, st) is not None:
        return None
    accs = accesses(st.rhs)
    if len(accs) != 2 or any(a.indirect or a.tensor == st.target for a in accs) or \
            any(isinstance(x, (Reduce, Scan)) for x in walk(st.rhs)):
        return None
    both = set(expr_indices(accs[0])) & set(expr_indices(accs[1]))
    if st.lhs[-1] not in both or any(i not in ext for i in st.lhs):
        return None
    order = tuple([i for i in st.lhs if i in both] + [i for i in st.lhs if i not in both])
    name = fresh(f"{st.target}_batch_first", set(taken))
    acc = dataclasses.replace(st, target=name, lhs=order,
                              text=f"{name}[{', '.join(order)}] += statement {st.position} "
                                   "with its batch indices first (codegen/operands.py)")
    if match(names | {name}, acc) is None:
        return None
    taken.add(name)
    temp = TensorDecl(name, Role.TEMP, tuple(ext[i] for i in order), DType.float32, st.loc)
    copy = Statement(st.position, st.target, st.lhs, AssignOp.ASSIGN,
                     Access(name, tuple(index_symbol(i) for i in order)), (),
                     f"{st.target}[{', '.join(st.lhs)}] = {name}[{', '.join(order)}]: statement "
                     f"{st.position}'s result in its own layout (codegen/operands.py)", st.loc)
    return temp, [acc, copy]


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
        if isinstance(f, Access):
            got = _copied(st, f, spec.tensor(f.tensor).dtype, ext, trial)
            if got is None:
                new_fs.append(f)
                continue
            temps.append(got[0])
            pre.append(got[1])
            new_fs.append(got[2])
            continue
        if not accs:
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


def _copied(st: Statement, a: Access, dtype: DType, ext: dict, trial: set[str]
            ) -> tuple[TensorDecl, Statement, Access] | None:
    """A bare operand read at an affine function of one index per dimension that is not the
    index itself, ``a[m, k + 1]``, ``a[m, 2 * k + 1]`` or ``a[m, K - 1 - k]`` (fuzz17): (its
    copy ``a_k[m, k] = a[m, 2 * k + 1]`` in ``a``'s dtype, an exact copy the row lowering
    reads with a strided, offset or on-chip reversed load, the copy's statement, the access
    of the copy), or None for a plain access, one with a dimension of several indices (a
    convolution window ``x[c, o + r]``, which the matcher takes itself), a divided index, a
    gather or the statement's own target. The contraction matcher needs the contraction index
    plain in both operands (:func:`nkigen.analysis.contraction.match`), so such a read fell to
    the partition-reduce lowering, one ``ones^T @ rows`` per output row: 78.69 us modelled at
    M 130, K 129, N 70 float32 on trn2, against 4.36 us through the copy."""
    if a.indirect or a.tensor == st.target:
        return None
    order: list[str] = []
    plain = True
    for e in a.indices:
        e = sympy.sympify(e)
        ids = [i for i in ext if index_symbol(i) in e.free_symbols]
        if len(ids) != 1 or ids[0] in order or e.atoms(sympy.floor, sympy.Mod):
            return None
        co = sympy.expand(e).coeff(index_symbol(ids[0]))
        if not co.is_Integer or co == 0:
            return None
        order.append(ids[0])
        plain = plain and e == index_symbol(ids[0])
    if plain:
        return None
    name = fresh(f"{a.tensor}_{st.target}", trial)
    t = TensorDecl(name, Role.TEMP, tuple(ext[i] for i in order), dtype, st.loc)
    copy = Statement(st.position, name, tuple(order), AssignOp.ASSIGN, a, (),
                     f"{name}[{', '.join(order)}] = an operand of statement {st.position} "
                     "read at shifted, strided or reversed indices, copied once "
                     "(codegen/operands.py)", st.loc)
    return t, copy, Access(name, tuple(index_symbol(i) for i in order))


__all__ = ["rewrite"]
