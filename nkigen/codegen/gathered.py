"""Gathers a statement cannot place on its partitions are read into a temp first.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` before
the other pre-passes). An indexed read ``table[ids[t], d]`` is one vector-indirect DMA per tile
with one id per partition (:mod:`nkigen.codegen.gather`; SH ``nisa.dma_copy`` "Indirect
addressing", nki 0.3), so the ids must vary with the tile's partition index. Two statement
shapes can never give them that index, and were refused ("the ids of x[...] must vary with the
partition index z", fuzz10):

* the ids' index is reduced away: ``tot[z] = sum(x[b, lab[b]] * w[b], b)`` (its partitions are
  the target's, one point);
* the ids' index is the statement's scan index: ``y[t, d] = cumsum(table[ids[t], d], t)``
  (a scan runs along the free axis, :mod:`nkigen.codegen.scan`).

The rewrite reads each such access into an HBM temp of the table's dtype over the access's
indices, the ids' indices first (``g[t, d] = table[ids[t], d]``: a plain gather statement, ids
on the partitions), and the statement reads the temp. The temp holds table values unchanged,
so the spec's reference is the same; the build verifies the kernel against it as always.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from nkigen.codegen.context import extents_of
from nkigen.codegen.prepass import fresh, substitute, taken_names
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


@lru_cache(maxsize=64)
def rewrite(spec: Spec) -> Spec:
    """``spec`` with each unplaceable gather read into a temp first (see the module
    docstring); the same object when there is none."""
    try:
        ext = extents_of(spec, None)
    except KeyError:        # an undeclared tensor: Build.create reports it, located
        return spec
    taken = taken_names(spec) | set(ext)
    temps: list[TensorDecl] = []
    out: list[Statement] = []
    for st in spec.statements:
        rhs = st.rhs
        scanned = {e.index for e in walk(rhs) if isinstance(e, Scan)}
        reduced = {i for e in walk(rhs) if isinstance(e, Reduce) for i in e.indices} | \
            set(st.sum_indices)
        for a in dict.fromkeys(x for x in accesses(rhs) if x.indirect):
            if a == rhs:
                continue        # a bare gather: codegen/gather.py places it
            ids = {i for _, inner in a.indirect for i in expr_indices(inner)}
            if not ids or not ids <= (scanned | reduced) or any(i in st.lhs and i not in
                                                                 scanned for i in ids):
                continue
            order = [i for i in expr_indices(a) if i in ids]
            order += [i for i in expr_indices(a) if i not in order]
            if any(i not in ext for i in order):
                continue
            name = fresh(f"{a.tensor}_rows", taken)
            temps.append(TensorDecl(name, Role.TEMP, tuple(ext[i] for i in order),
                                    spec.tensor(a.tensor).dtype, st.loc))
            out.append(Statement(st.position, name, tuple(order), AssignOp.ASSIGN, a, (),
                                 f"{name}[{', '.join(order)}] = the gather of statement "
                                 f"{st.position}, ids on the partitions (codegen/gathered.py)",
                                 st.loc))
            rhs = substitute(rhs, a, Access(name, tuple(index_symbol(i) for i in order),
                                            a.loc))
        out.append(st if rhs is st.rhs else dataclasses.replace(st, rhs=rhs))
    if not temps:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


__all__ = ["rewrite"]
