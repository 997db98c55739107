"""Software pipelining of streamed loads: issue iteration i+1's HBM loads before iteration i's
compute and stores.

Stage: plan (Loop -> nodes). The DMA queues run their transfers in order, so a loop whose body
is ``load; compute; store`` serialises: the next load waits behind this iteration's store, which
waits for the compute. :func:`prefetch` rewrites such a loop as::

    <loads of iteration 0>
    for i in range(n):
        cur = nxt                      # one alias per prefetched tile
        if i + 1 < n:
            <loads of iteration i+1 into fresh tiles>
        <compute and stores on cur>

Only loads whose addresses depend on nothing but the loop variable, the loop's leading ``Let``
bindings and names bound outside the loop are moved.
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.names import Namer


def _map(node, fn_expr, fn_name):
    """Rebuild a plan node (recursively) with expressions and tensor names mapped."""
    if isinstance(node, sympy.Basic):
        return fn_expr(node)
    if isinstance(node, tuple):
        return tuple(_map(x, fn_expr, fn_name) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        kw = {}
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if f.name == "name" and isinstance(node, (P.Ref, P.ApRef)):
                kw[f.name] = fn_name(v)
            else:
                kw[f.name] = _map(v, fn_expr, fn_name)
        return dataclasses.replace(node, **kw)
    return node


def _syms(node) -> set[str]:
    out: set[str] = set()

    def fe(e):
        out.update(s.name for s in e.free_symbols)
        return e
    _map(node, fe, lambda n: n)
    return out


def _dma_targets(nodes) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        if isinstance(n, (P.Dma, P.DmaTranspose)):
            out.add(n.dst.name)
        elif isinstance(n, P.Loop):
            out |= _dma_targets(n.body)
        elif isinstance(n, P.If):
            out |= _dma_targets(n.then) | _dma_targets(n.orelse)
    return out


def prefetch(loop: P.Loop, namer: Namer, hbm: set[str]) -> list:
    body = list(loop.body)
    lets = []
    for n in body:
        if not isinstance(n, P.Let):
            break
        lets.append(n)
    local = {n.name for n in body if isinstance(n, (P.Let, P.Alloc))} - {x.name for x in lets}
    allocs = {n.name: n for n in body if isinstance(n, P.Alloc) and n.mem is P.Mem.SBUF}
    written = _dma_targets(body)
    loads: list[tuple[P.Alloc, P.Dma]] = []
    for n in body:
        if isinstance(n, P.Dma) and isinstance(n.dst, P.Ref) and n.dst.name in allocs \
                and n.src.name in hbm and n.src.name not in written and not (_syms(n) & local):
            loads.append((allocs[n.dst.name], n))
    if not loads:
        return [loop]
    moved = {id(a) for a, _ in loads} | {id(d) for _, d in loads}
    var = sympy.Symbol(loop.var, integer=True, nonnegative=True)

    def shifted(offset: sympy.Expr) -> tuple[list, dict]:
        ren = {x.name: namer.fresh(f"{x.name}_n") for x in lets}
        sub = {sympy.Symbol(k, integer=True, nonnegative=True):
               sympy.Symbol(v, integer=True, nonnegative=True) for k, v in ren.items()}
        sub[var] = offset
        out = [P.Let(ren[x.name], sympy.sympify(x.value).xreplace(sub)) for x in lets]
        for a, d in loads:
            out.append(a)
            out.append(_map(d, lambda e: e.xreplace(sub), lambda n: n))
        return out, sub

    pro, _ = shifted(sympy.Integer(0))
    nxt, _ = shifted(var + 1)
    cur = {a.name: namer.fresh(f"{a.name}_c") for a, _ in loads}
    new_body: list = list(lets)
    for a, _ in loads:
        new_body.append(P.Let(cur[a.name], sympy.Symbol(a.name)))
    new_body.append(P.If(var + 1, loop.count, tuple(nxt), (), P.Cmp.LT))
    for n in body[len(lets):]:
        if id(n) in moved:
            continue
        new_body.append(_map(n, lambda e: e, lambda nm: cur.get(nm, nm)))
    new_body.append(P.Release(tuple(cur[a.name] for a, _ in loads)))
    return [*pro, P.Loop(loop.var, loop.count, loop.kind, tuple(new_body))]
