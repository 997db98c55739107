"""Outputs with a short last dimension, written through a view that merges it into the one
before (current API).

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` after
:mod:`nkigen.codegen.flatten`). The row lowering streams the last left-hand index along the free
axis, so a statement writing ``y[M, K, c]`` with ``c`` a short constant (a stacked pair
``[.., 2]``, RGB ``[.., 3]``) moves ``c`` elements per partition per tile and loops over the
rest: ``torch.stack((a, b), dim=-1)``, ``y[m, q, r] = where(r == 0, a[m, q], b[m, q])``,
modelled 137.63 us at 130 x 77 on trn2.

Such a statement is rewritten over the view ``y_m = y.reshape((M, K * c))`` (a reshape of a
whole row-major tensor keeps its storage, no copy: SH nki/api/nki/language/__init__.py
``NkiTensor.reshape``, nki 0.3) with ``f = c * q + r``: ``q`` becomes ``f // c`` and ``r``
becomes ``f % c``. The row lowering has a tile form for each use this admits: a read of ``f //
c`` is an on-chip expansion, of ``f % c`` a period copy (:class:`nkigen.codegen.tilexpr.Compiler`),
both digits in neighbouring dimensions the flat read (:func:`nkigen.codegen.tilexpr.merge_digits`)
and a condition on them one ``affine_select`` with a two-dimensional pattern
(:mod:`nkigen.codegen.select`). Values are computed by the same instructions on the same
elements: the reference is unchanged and the build verifies the kernel against it as always.

A dimension holding both digits, ``x[m, 2 k + s]``, is the flat read ``x[m, f]`` (any multiple
``b (c q + r) + e``: ``b f + e``); one holding them reversed, ``x[m, 2 k + 1 - s]`` (the GPT-J
rotary partner: each pair swapped) or ``x[m, k, 2 - s]`` (RGB -> BGR), is read as the same
ascending run swapped on chip by strided SBUF copies
(:meth:`nkigen.codegen.tilexpr.Compiler.swapped_load`): the interleaved rotary embedding with a
``[M, K, 2]`` output, modelled 98.67 us at 127 x 64 on trn2, then 5.04 us.

Only for a plain assignment to an output no statement reads, with no reduction, scan or gather,
and every use of ``q`` and ``r`` one of those forms; not under tiling hints (they name the
statement's own indices). The classic dialect (its indices cannot take ``//`` or ``%`` of a
tile index) writes the view through a reshape too (S25 general/nki/api/nki/__init__.py
``tensor.reshape``, SDK 2.25: "no copy will occur") and has the same forms in its own spelling
(the expansion and the flat read as strided and reshaped aranges, the period copy as one
``tensor_scalar`` per residue (float32 arithmetic for a float table, a bitwise OR for an
integer one), a condition on ``q`` or ``r`` as int32 ``iota`` forms).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import sympy

from nkigen.codegen.prepass import fresh, map_indices, taken_names
from nkigen.ir import (
    Access,
    AssignOp,
    IndexValue,
    Reduce,
    Role,
    Scan,
    Spec,
    Statement,
    TensorDecl,
    accesses,
    index_symbol,
    walk,
)

SHORT = 8       # a last dimension of at most this many elements is merged


@lru_cache(maxsize=64)
def rewrite(spec: Spec, keep: bool = False) -> Spec:
    """``spec`` with each qualifying statement over a merged view of its output (see the module
    docstring); the same object when none qualifies or ``keep``."""
    if keep:
        return spec
    decls = {t.name: t for t in spec.tensors}
    read = {a.tensor for st in spec.statements for a in accesses(st.rhs)}
    taken = taken_names(spec) | {i for st in spec.statements for i in st.lhs}
    views: list[TensorDecl] = []
    out: list[Statement] = []
    for st in spec.statements:
        c = _short_tail(spec, decls, read, st)
        if c is None:
            out.append(st)
            continue
        t = decls[st.target]
        q, r = st.lhs[-2], st.lhs[-1]
        f = fresh(f"{q}_{r}", taken)
        fs = index_symbol(f)
        subs = {index_symbol(q): sympy.floor(fs / c), index_symbol(r): sympy.Mod(fs, c)}

        shape = tuple(t.shape[:-2]) + (sympy.sympify(t.shape[-2]) * c,)
        view = TensorDecl(fresh(f"{t.name}_m", taken), Role.TEMP, shape, t.dtype, t.loc,
                          view_of=t.name)
        views.append(view)
        text = (f"{view.name}[{', '.join(st.lhs[:-2] + (f,))}] = ... : {st.text}, with "
                f"{f} = {c} * {q} + {r}: the short last dimension of {t.name} merged into the "
                f"one before ({view.name}: {t.name} viewed as {len(shape)}-D; "
                "codegen/tailmerge.py)")
        qs, rs = index_symbol(q), index_symbol(r)
        rhs = map_indices(st.rhs, lambda x, subs=subs, qs=qs, rs=rs, fs=fs, c=c:
                          _merged_index(x, qs, rs, fs, c, subs))
        out.append(dataclasses.replace(st, target=view.name, lhs=st.lhs[:-2] + (f,), rhs=rhs,
                                       text=text))
    if not views:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(views), statements=tuple(out))


def _merged_index(x, qs: sympy.Symbol, rs: sympy.Symbol, fs: sympy.Symbol, c: int,
                  subs: dict) -> sympy.Expr:
    """One index expression over the merged index ``f = c q + r``: a dimension holding the
    digits as ``b (c q + r) + e`` is ``b f + e`` (the flat read ``x[m, 2 k + s]``), one holding
    them reversed, ``c q - r + e``, is ``c (f // c) - f % c + e`` (the pair read swapped,
    ``x[m, 2 k + 1 - s]``: :meth:`nkigen.codegen.tilexpr.Compiler.swapped_load`); any other
    use of ``q`` and ``r`` each alone (``q -> f // c``, ``r -> f % c``)."""
    e = sympy.expand(sympy.sympify(x))
    a, b = e.coeff(qs), e.coeff(rs)
    if b != 0 and a == c * b:
        return sympy.expand(e - a * qs - b * rs + b * fs)
    return sympy.expand(e).xreplace(subs)


def _short_tail(spec: Spec, decls: dict, read: set[str], st: Statement) -> int | None:
    """The short last extent ``c`` of ``st``'s output when ``st`` qualifies, else None."""
    t = decls.get(st.target)
    if t is None or t.role is not Role.OUTPUT or t.view_of or st.target in read or \
            st.op is not AssignOp.ASSIGN or st.sum_indices or len(st.lhs) < 3 or \
            len(t.shape) != len(st.lhs) or len(set(st.lhs)) != len(st.lhs):
        return None
    c = sympy.sympify(t.shape[-1])
    if not (c.is_Integer and 2 <= int(c) <= SHORT):
        return None
    q, r = st.lhs[-2], st.lhs[-1]
    ranged = dict(spec.ranges)
    if q in ranged or r in ranged:
        return None         # (an index with a `ranges` extent may not cover its dimension)
    if any(isinstance(x, (Reduce, Scan)) for x in walk(st.rhs)):
        return None
    qs, rs = index_symbol(q), index_symbol(r)
    for x in walk(st.rhs):
        if isinstance(x, IndexValue) and any(
                q.free_symbols & {qs, rs}
                for q in sympy.sympify(x.expr).atoms(sympy.floor, sympy.Mod)):
            return None         # (already divided: no second division)
    for a in accesses(st.rhs):
        if a.indirect or not _digits_ok(a, decls, qs, rs, int(c)):
            return None
    return int(c)


def _digits_ok(a: Access, decls: dict, qs: sympy.Symbol, rs: sympy.Symbol, c: int) -> bool:
    """Every dimension of ``a`` holding ``q`` or ``r`` is exactly ``q`` or ``r``, and ``r``
    follows ``q`` in the next dimension (the flat read) when both are there, that dimension
    ``c`` long (a dimension of ``r`` alone: the period read, any length); or one dimension
    holds both, as ``b (c q + r) + e`` (the flat read, any integer ``b``) or ``c q - r + e``
    (the digit reversed: the pair swapped), and no other dimension holds either."""
    dims = [sympy.sympify(x) for x in a.indices]
    both = [e for e in dims if {qs, rs} <= e.free_symbols]
    if both:
        if len(both) > 1 or sum(1 for e in dims if e.free_symbols & {qs, rs}) > 1:
            return False
        e = sympy.expand(both[0])
        ca, cb = e.coeff(qs), e.coeff(rs)
        rest = sympy.expand(e - ca * qs - cb * rs)
        if rest.free_symbols & {qs, rs} or not (ca.is_Integer and cb.is_Integer):
            return False
        return ca == c * cb or (ca == c and cb == -1)
    at_q = [d for d, e in enumerate(dims) if qs in e.free_symbols]
    at_r = [d for d, e in enumerate(dims) if rs in e.free_symbols]
    if len(at_q) == 1 and len(at_r) == 1 and at_r[0] == at_q[0] + 1 and \
            dims[at_q[0]] == qs and sympy.expand(dims[at_r[0]] - (c - 1 - rs)) == 0:
        # the digit reversed in its own dimension, x[m, q, c - 1 - r] (RGB -> BGR)
        t = decls.get(a.tensor)
        return t is not None and sympy.sympify(t.shape[at_r[0]]) == c
    if any(dims[d] != qs for d in at_q) or any(dims[d] != rs for d in at_r):
        return False
    if len(at_q) > 1 or len(at_r) > 1:
        return False
    if at_q and at_r:
        t = decls.get(a.tensor)
        return t is not None and at_r[0] == at_q[0] + 1 and \
            sympy.sympify(t.shape[at_r[0]]) == c
    return True
