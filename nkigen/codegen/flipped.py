"""Reversed free-axis reads (``x[m, N - 1 - n]``): a flipped copy made of contiguous rows.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` before
:mod:`nkigen.codegen.turned`). A row statement reading a rank-2 input as ``x[m, c - n]``, with
``m`` on the partitions and ``n`` on the free axis, loads its tiles with a free step of -1:
every DMA descriptor moves one element (124.12 us modelled for ``cumsum(x[m, N - 1 - n], n)``
at 130 x 300 float32 on trn2). A reversed *partition* axis costs nothing extra: each partition
still reads one contiguous row, the rows are taken in descending order (a DMA access pattern
with a negative partition step, as :mod:`nkigen.codegen.rows` emits for ``x[N - 1 - n, m]``).

The rewrite moves the reversal onto the partitions: three statements build ``x_r[m, n] =
x[m, c - n]`` from contiguous rows,

* ``x_t[n, m] = x[m, n]`` (a plain transpose, :mod:`nkigen.codegen.transpose`),
* ``x_f[n, m] = x_t[c - n, m]`` (rows read in descending order),
* ``x_r[m, n] = x_f[n, m]`` (a plain transpose),

and the statement reads ``x_r[m, n]``. Values are moved, never computed, so the reference is
unchanged; the build verifies the kernel against it as always.

Applied to rank-2 float inputs read with the partition index first and ``c - n`` second (``n``
a plain index, ``c`` free of indices) when the input holds at least
:data:`nkigen.codegen.turned.MIN_ELEMENTS` elements at the spec's largest sizes
(:func:`nkigen.codegen.layout.largest_sizes`), in ``=`` statements no whole-statement lowering
takes, a plain copy ``y[m, n] = x[m, N - 1 - n]`` included (210.43 -> 21.75 us modelled at
129 x 513 float32 on trn2).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import sympy

from nkigen.codegen.context import Build
from nkigen.codegen.prepass import (
    build_at,
    claims,
    elements,
    first_placement,
    fresh,
    substitute,
    taken_names,
)
from nkigen.ir import (
    Access,
    AssignOp,
    Role,
    Schedule,
    Spec,
    Statement,
    TensorDecl,
    accesses,
    index_symbol,
    is_index_name,
)


@lru_cache(maxsize=64)
def rewrite(spec: Spec, target: str, schedule: Schedule | None = None) -> Spec:
    """``spec`` with each qualifying reversed read taken from a flipped copy (see the module
    docstring); the same object when there is none."""
    from nkigen.codegen.turned import MIN_ELEMENTS
    got = build_at(spec, target)
    if got is None:
        return spec
    sizes, b = got
    taken = taken_names(spec)
    decls = {t.name: t for t in spec.tensors}
    made: dict[tuple, str] = {}        # (input, c, index names) -> its flipped copy
    temps: list[TensorDecl] = []
    out: list[Statement] = []
    whole: frozenset[int] | None = None
    epilogues: frozenset[int] = frozenset()
    for k, st in enumerate(spec.statements):
        found = _reversed_reads(b, st, decls, sizes, MIN_ELEMENTS)
        if found and whole is None:
            whole, epilogues = claims(spec, target, schedule or spec.schedule)
        if not found or k in (whole or ()):
            out.append(st)
            continue
        # the copy goes before the statement, or before the contraction it is the eviction
        # epilogue of (the matmul lowering takes the statement right after it)
        at = len(out) - 1 if k in epilogues else len(out)
        rhs = st.rhs
        for a, m, n, c in found:
            key = (a.tensor, c, m, n)
            name = made.get(key)
            if name is None:
                src = decls[a.tensor]
                t1, t2 = fresh(f"{a.tensor}_t", taken), fresh(f"{a.tensor}_f", taken)
                name = made[key] = fresh(f"{a.tensor}_r", taken)
                ext_n = b.extents[n]
                temps += [TensorDecl(t1, Role.TEMP, (src.shape[1], src.shape[0]), src.dtype,
                                     src.loc),
                          TensorDecl(t2, Role.TEMP, (ext_n, src.shape[0]), src.dtype, src.loc),
                          TensorDecl(name, Role.TEMP, (src.shape[0], ext_n), src.dtype,
                                     src.loc)]
                ms, ns = index_symbol(m), index_symbol(n)
                why = (f"a flipped copy of {a.tensor}, which statement {st.position} reads "
                       f"with {n} reversed (codegen/flipped.py)")
                out[at:at] = [
                    Statement(st.position, t1, (n, m), AssignOp.ASSIGN,
                              Access(a.tensor, (ms, ns), a.loc), (),
                              f"{t1}[{n}, {m}] = {a.tensor}[{m}, {n}]: step 1 of {why}", st.loc),
                    Statement(st.position, t2, (n, m), AssignOp.ASSIGN,
                              Access(t1, (c - ns, ms), a.loc), (),
                              f"{t2}[{n}, {m}] = {t1}[{c - ns}, {m}]: step 2 of {why}", st.loc),
                    Statement(st.position, name, (m, n), AssignOp.ASSIGN,
                              Access(t2, (ns, ms), a.loc), (),
                              f"{name}[{m}, {n}] = {t2}[{n}, {m}]: step 3 of {why}", st.loc)]
            rhs = substitute(rhs, a, Access(name, (index_symbol(m), index_symbol(n)), a.loc))
        out.append(dataclasses.replace(st, rhs=rhs))
    if not temps:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


def _reversed_reads(b: Build, st: Statement, decls: dict, sizes: dict[str, int],
                    least: int) -> list[tuple[Access, str, str, sympy.Expr]]:
    """``(access, m, n, c)`` for each read ``x[m, c - n]`` of a rank-2 float input with ``m``
    on the partitions and ``n`` on the free axis of the row lowering's first placement."""
    if st.op is not AssignOp.ASSIGN or len(st.lhs) != 2:
        return []
    pl = first_placement(b, st)
    if pl is None:
        return []
    got: list[tuple[Access, str, str, sympy.Expr]] = []
    for a in accesses(st.rhs):
        t = decls.get(a.tensor)
        if t is None or t.role is not Role.INPUT or len(t.shape) != 2 or a.indirect or \
                t.dtype.is_integer or any(g[0] == a for g in got):
            continue
        i0, i1 = (sympy.expand(sympy.sympify(e)) for e in a.indices)
        if not i0.is_Symbol or i0.name != pl.p or pl.f is None:
            continue
        n = index_symbol(pl.f)
        if i1.coeff(n) != -1:
            continue
        c = sympy.expand(i1 + n)
        if any(is_index_name(s.name) and s.name in b.extents for s in c.free_symbols):
            continue
        if elements(t, sizes) >= least:
            got.append((a, pl.p, pl.f, c))
    return got
