"""Element-wise maps over same-shape tensors as one long vector (current API).

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` after
:mod:`nkigen.codegen.residue`). The row lowering puts a statement's rows on the partitions, so
a map over few long rows (decode-time activations ``[1, D]`` or ``[B, D]`` with small ``B``)
uses as many partitions as there are rows: ``glu``'s two statements at 3 x 16,384 float32
modelled 74.25 us on trn2, VectorE busy on 3 of 128 lanes.

When every statement of the spec is such a map (each access reads a tensor of the target's
shape at exactly the left-hand indices, or a tensor-free element such as ``s[0]``; no
reduction, scan, gather, index value or ``ranges``), the statements are rewritten over
``[prod(shape)]`` views of their tensors: ``y_f = y.reshape((M * N,))`` (a reshape of a whole
row-major tensor keeps its storage, no copy: SH nki/api/nki/language/__init__.py
``NkiTensor.reshape``, nki 0.3), ``y_f[i] = f(x_f[i])``. The rank-1 statements then run as rows
of a grid filling every partition (:mod:`nkigen.codegen.flatmap`): 74.25 -> 8.98 us for the
``glu`` case. Whole-spec only, so no statement outside the maps loses a tile kept on chip.
Values are computed by the same instructions on the same elements: the reference is unchanged
and the build verifies the kernel against it as always.

Not in the classic dialect: its rank-1 statements keep the row lowering (flatmap's access
patterns are current-API only).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import sympy

from nkigen.codegen.prepass import fresh, rebuild, taken_names
from nkigen.ir import (
    Access,
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


@lru_cache(maxsize=64)
def rewrite(spec: Spec, keep: bool = False) -> Spec:
    """``spec`` with its statements over flat views (see the module docstring); the same object
    when it does not qualify, or when ``keep`` (the classic dialect, or tiling hints that name
    the statements' own indices)."""
    if keep or not spec.statements or not all(_map(spec, st) for st in spec.statements):
        return spec
    decls = {t.name: t for t in spec.tensors}
    taken = taken_names(spec) | {i for st in spec.statements for i in st.lhs}
    views: dict[str, TensorDecl] = {}

    def view(name: str) -> str:
        v = views.get(name)
        if v is None:
            t = decls[name]
            total = sympy.Integer(1)
            for s in t.shape:
                total = total * sympy.sympify(s)
            v = views[name] = TensorDecl(fresh(f"{name}_f", taken), Role.TEMP, (total,),
                                         t.dtype, t.loc, view_of=name)
        return v.name

    out = []
    for st in spec.statements:
        flat = fresh("i_flat", taken)
        own = tuple(index_symbol(i) for i in st.lhs)

        def swap(e, own=own, flat=flat):
            if isinstance(e, Access) and tuple(sympy.sympify(x) for x in e.indices) == own:
                return Access(view(e.tensor), (index_symbol(flat),), e.loc)
            return None

        rhs = rebuild(st.rhs, swap)
        target = view(st.target)
        text = (f"{target}[{flat}] = ... : {st.text}, every tensor read and written at its "
                f"own element: one long vector over the tensors' storage ({target}: "
                f"{st.target} viewed flat; codegen/flatten.py)")
        out.append(dataclasses.replace(st, target=target, lhs=(flat,), rhs=rhs,
                                       sum_indices=(), text=text))
    return dataclasses.replace(spec, temps=spec.temps + tuple(views.values()),
                               statements=tuple(out))


def _map(spec: Spec, st: Statement) -> bool:
    """``st`` is an element-wise map of rank >= 2 over tensors of its target's shape."""
    if len(st.lhs) < 2 or st.sum_indices or any(i in dict(spec.ranges) for i in st.lhs):
        return False        # (an index with a `ranges` extent may not cover its dimension)
    if any(isinstance(x, (Reduce, Scan, IndexValue)) for x in walk(st.rhs)):
        return False
    decls = {t.name: t for t in spec.tensors}
    target = decls.get(st.target)
    if target is None or target.view_of or len(target.shape) != len(st.lhs):
        return False
    shape = tuple(sympy.sympify(s) for s in target.shape)
    own = tuple(index_symbol(i) for i in st.lhs)
    for a in accesses(st.rhs):
        t = decls.get(a.tensor)
        if t is None or a.indirect or t.view_of:
            return False
        ix = tuple(sympy.sympify(x) for x in a.indices)
        if not any(x.free_symbols & set(own) for x in ix):
            continue                # a tensor-free element (s[0]): read as it is
        if ix != own or tuple(sympy.sympify(s) for s in t.shape) != shape:
            return False
    return True
