"""Kernel prologue: bind sizes from input shapes, compute derived sizes, list constraint checks.

Stage: plan (Spec -> SizeBind / derived / SizeCheck parts of the KernelPlan). A free size is
bound from the first input dimension that is exactly that size, else from a dimension that is
linear in it (``2 * H`` -> ``H = dim // 2``, with the shape check catching odd values).
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.names import checked
from nkigen.diagnostics import error
from nkigen.ir import Spec, size_symbol


def binds(spec: Spec) -> tuple[P.SizeBind, ...]:
    out: list[P.SizeBind] = []
    done: set[str] = set()
    for s in spec.free_sizes:
        sym = size_symbol(s.name)
        for t in spec.inputs:
            for d, e in enumerate(t.shape):
                if sympy.sympify(e) == sym:
                    out.append(P.SizeBind(checked(s.name, "size"), checked(t.name, "tensor"), d))
                    done.add(s.name)
                    break
            if s.name in done:
                break
    pending = [s for s in spec.free_sizes if s.name not in done]
    progress = True
    from nkigen.analysis.sizes import input_dims  # derived sizes by their definitions (1.1)
    while pending and progress:
        progress = False
        for s in list(pending):
            sym = size_symbol(s.name)
            for t in spec.inputs:
                for d, e in enumerate(input_dims(spec, t)):
                    e = sympy.expand(sympy.sympify(e))
                    if sym not in e.free_symbols:
                        continue
                    coef = e.coeff(sym)
                    rest = sympy.expand(e - coef * sym)
                    others = {x.name for x in rest.free_symbols}
                    if coef.is_Integer and int(coef) > 0 and others <= done \
                            and sym not in rest.free_symbols:
                        out.append(P.SizeBind(checked(s.name, "size"), checked(t.name, "tensor"),
                                              d, int(coef), rest))
                        done.add(s.name)
                        pending.remove(s)
                        progress = True
                        break
                if s.name in done:
                    break
    if pending:
        s = pending[0]
        raise error(s.loc, f"sizes.{s.name}", "size cannot be bound from any input shape",
                    s.name, "use it as a whole dimension of an input, or give it a value")
    return tuple(out)


def derived(spec: Spec, analysis: object | None) -> tuple[tuple[str, sympy.Expr], ...]:
    decl = {s.name: s for s in spec.sizes if s.derived}
    order: list[str] = list(getattr(analysis, "derived_order", ()) or ())
    if not order:
        left = dict(decl)
        while left:
            for n, s in sorted(left.items()):
                deps = {x.name for x in sympy.sympify(s.value).free_symbols}
                if not deps & set(left):
                    order.append(n)
                    del left[n]
                    break
            else:
                n = sorted(left)[0]
                raise error(decl[n].loc, f"sizes.{n}.value", "derived sizes depend on each other",
                            n)
    return tuple((checked(n, "size"), sympy.sympify(decl[n].value)) for n in order)


def checks(spec: Spec) -> tuple[P.SizeCheck, ...]:
    out: list[P.SizeCheck] = []
    for s in spec.sizes:
        n = checked(s.name, "size")
        if s.multiple_of is not None and s.multiple_of > 1:
            out.append(P.SizeCheck(n, P.Rule.MULTIPLE_OF, int(s.multiple_of)))
        out.append(P.SizeCheck(n, P.Rule.MIN, int(s.min)))
        if s.max is not None:
            out.append(P.SizeCheck(n, P.Rule.MAX, int(s.max)))
    return tuple(out)
