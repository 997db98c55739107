"""One name per trace-time value: repeated identical ``Let`` computations collapsed.

Stage: render (a stage's plan nodes -> plan nodes, both dialects, before the classic mask pass).
Lowerings build their index arithmetic independently (e.g. the two operand loads of a matmul
block each compute ``k0 + 128 * kt``); once merged into one loop body the kernel would compute
the same offset twice under two names. This pass drops a ``Let`` whose value an earlier ``Let``
of the same scope already holds, and reads the earlier name instead.

Python scoping rules it respects (the generated helpers are plain functions, one flat scope):
a value is reused only while neither its name nor any name it reads has been rebound; a loop
body only reuses outer values none of whose names the body (re)binds anywhere, since its later
iterations would see the rebinding; a value bound inside an ``if`` or a loop body is not
visible after it.
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.symcache import names, xreplace


def rename(node, ren: dict[str, str], binders: bool = False):
    """``node`` with the scalar names of ``ren`` replaced in expressions (tensor names of views
    never take part); with ``binders`` also the names ``Let`` nodes and loops bind."""
    if not ren:
        return node
    if isinstance(node, sympy.Basic):
        sub = {s: sympy.Symbol(ren[s.name], **s.assumptions0)
               for s in node.free_symbols if isinstance(s, sympy.Symbol) and s.name in ren}
        return xreplace(node, sub) if sub else node
    if isinstance(node, tuple):
        return tuple(rename(x, ren, binders) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        kw = {f.name: rename(getattr(node, f.name), ren, binders)
              for f in dataclasses.fields(node)}
        if binders and isinstance(node, P.Let):
            kw["name"] = ren.get(node.name, node.name)
        elif binders and isinstance(node, P.Loop):
            kw["var"] = ren.get(node.var, node.var)
        return dataclasses.replace(node, **kw)
    return node


def _names(e) -> frozenset[str]:
    return names(e)


def _count(nodes, acc: dict[str, int]) -> dict[str, int]:
    for n in nodes:
        if isinstance(n, (P.Let, P.Alloc)):
            acc[n.name] = acc.get(n.name, 0) + 1
        elif isinstance(n, P.Loop):
            acc[n.var] = acc.get(n.var, 0) + 1
            _count(n.body, acc)
        elif isinstance(n, P.If):
            _count(n.then, acc)
            _count(n.orelse, acc)
    return acc


def collapse(nodes: tuple) -> tuple:
    """``nodes`` (one function's body) with every repeated ``Let`` value read from its first
    name. Only names bound exactly once take part, so a renamed read can never see a later
    rebinding."""
    once = {k for k, c in _count(nodes, {}).items() if c == 1}
    ren: dict[str, str] = {}
    body = _collapse(nodes, {}, ren, once)
    return rename(body, ren)


def _collapse(nodes: tuple, avail: dict, ren: dict[str, str], once: set[str]) -> tuple:
    avail = dict(avail)                  # value -> the name holding it (this scope)
    out: list = []
    for n in nodes:
        if isinstance(n, P.Let):
            v = rename(sympy.sympify(n.value), ren)
            have = avail.get(v)
            if have is not None and n.name in once:
                ren[n.name] = have       # dropped: later reads use the first name
                continue
            _kill(avail, {n.name})
            # only computations: a number or a plain name bound twice (two loop origins that
            # happen to start at 0, a tile alias) names two different things
            if n.name in once and not v.is_Atom and n.name not in _names(v):
                avail[v] = n.name
            out.append(n)
        elif isinstance(n, P.Loop):
            rebound = P.bound_names(n.body) | {n.var}
            inner = dict(avail)
            _kill(inner, rebound)
            out.append(dataclasses.replace(n, body=_collapse(n.body, inner, ren, once)))
            _kill(avail, rebound)
        elif isinstance(n, P.If):
            out.append(dataclasses.replace(n, then=_collapse(n.then, avail, ren, once),
                                           orelse=_collapse(n.orelse, avail, ren, once)))
            _kill(avail, P.bound_names(n.then) | P.bound_names(n.orelse))
        else:
            if isinstance(n, P.Alloc):
                _kill(avail, {n.name})
            out.append(n)
    return tuple(out)


def _kill(avail: dict, names: set[str]) -> None:
    """Forget values held by, or computed from, a rebound name."""
    for v, nm in list(avail.items()):
        if nm in names or _names(v) & names:
            del avail[v]
