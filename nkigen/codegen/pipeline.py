"""Software pipelining of streamed loads: issue iteration i+1's HBM loads before iteration i's
compute and stores.

Stage: plan (Loop -> nodes). The DMA queues run their transfers in order, so a loop whose body
is ``load; compute; store`` serialises: the next load waits behind this iteration's store, which
waits for the compute. :func:`prefetch` rewrites such a loop as::

    <loads of iteration 0>
    for i in sequential_range(n):      # iteration i uses tiles loaded by iteration i-1
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
from nkigen.codegen.symcache import xreplace


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


def _is_reduction(n) -> bool:
    return isinstance(n, P.TensorReduce) or (isinstance(n, P.Activation)
                                             and n.reduce_res is not None)


def _is_column(n) -> bool:
    """Nodes that only touch [P, 1] columns (statistics): cheap, part of stage 1."""
    if isinstance(n, P.Alloc):
        return len(n.shape) == 2 and n.shape[1] == 1
    if isinstance(n, P.Let):
        return True
    dst = getattr(n, "dst", None)
    if isinstance(dst, P.Ref) and dst.dims and isinstance(dst.dims[-1], P.Slice):
        return dst.dims[-1].size == 1
    return False


def prefetch(loop: P.Loop, namer: Namer, hbm: set[str], skew: bool = True) -> list:
    """Skew ``loop`` by one iteration: its loads, and when the body computes row statistics
    (reductions) first, that whole statistics stage too, run for iteration i+1 ahead of
    iteration i's remaining work. Engines execute in program order, so this lets iteration
    i+1's reductions overlap iteration i's element-wise tail and stores."""
    body = list(loop.body)
    lets = []
    for n in body:
        if not isinstance(n, P.Let):
            break
        lets.append(n)
    rest = body[len(lets):]
    local = {n.name for n in rest if isinstance(n, (P.Let, P.Alloc))}
    allocs = {n.name: n for n in rest if isinstance(n, P.Alloc) and n.mem is P.Mem.SBUF}
    written = _dma_targets(rest)
    # stage 1: everything up to the last reduction and the column math right after it
    cut = 0
    red = [i for i, n in enumerate(rest) if _is_reduction(n)] if skew else []
    if red:
        cut = red[-1] + 1
        while cut < len(rest) and _is_column(rest[cut]):
            cut += 1
        head = rest[:cut]
        stores = _dma_targets([n for n in head
                               if not (isinstance(n, P.Dma) and n.src.name in hbm)]) & hbm
        ap_store = any(isinstance(n, P.Dma) and isinstance(n.dst, P.ApRef) for n in head)
        raw = any(isinstance(n, P.Dma) and n.src.name in written for n in head)
        if stores or ap_store or raw:   # stage 1 must not store, nor read what is stored
            cut = 0
    stage1 = list(rest[:cut])
    s1_ids = {id(n) for n in stage1}
    head_local = {n.name for n in stage1 if isinstance(n, (P.Let, P.Alloc))}
    from nkigen.codegen.plan_ext import GatherDma
    moved: set[str] = set()
    for n in rest[cut:]:
        if isinstance(n, P.Dma) and isinstance(n.dst, P.Ref) and n.dst.name in allocs \
                and n.src.name in hbm and n.src.name not in written \
                and not (_syms(n) & (local - head_local)):
            stage1 += [allocs[n.dst.name], n]
            s1_ids |= {id(allocs[n.dst.name]), id(n)}
            moved.add(n.dst.name)
        elif isinstance(n, GatherDma) and n.dst.name in allocs and n.ids.name in moved \
                and n.table in hbm and n.table not in written \
                and not (_syms(n) & (local - head_local)):
            # an indirect gather whose ids column is itself prefetched: issued one tile ahead
            # with it, so the gather's DMA latency overlaps this tile's store (review4 F4)
            stage1 += [allocs[n.dst.name], n]
            s1_ids |= {id(allocs[n.dst.name]), id(n)}
            moved.add(n.dst.name)
    if not stage1:
        return [loop]
    stage1.sort(key=lambda n: next(i for i, m in enumerate(rest) if m is n))
    var = sympy.Symbol(loop.var, integer=True, nonnegative=True)

    def shifted(offset: sympy.Expr) -> list:
        # the tile index is bound first and every copied Let and node reads it by name: the
        # prologue and the prefetch are then the same nodes up to renaming, which the renderer
        # writes once as a helper function (render.ahead)
        ren = {x.name: namer.fresh(f"{x.name}_n") for x in lets}
        idx = namer.fresh(f"{loop.var}_n")
        sub = {sympy.Symbol(k, integer=True, nonnegative=True):
               sympy.Symbol(v, integer=True, nonnegative=True) for k, v in ren.items()}
        sub[var] = sympy.Symbol(idx, integer=True, nonnegative=True)
        out: list = [P.Let(idx, offset)]
        out += [P.Let(ren[x.name], xreplace(sympy.sympify(x.value), sub)) for x in lets]
        out += [_map(n, lambda e: xreplace(e, sub), lambda nm: nm) for n in stage1]
        return out

    made_all = [n.name for n in stage1 if isinstance(n, P.Alloc)]
    later = set().union(*(P.names_used(n) for n in rest if id(n) not in s1_ids))
    dead = tuple(nm for nm in made_all if nm not in later)
    pro = shifted(sympy.Integer(0)) + ([P.Release(dead)] if dead else [])
    nxt = shifted(var + 1) + ([P.Release(dead)] if dead else [])
    made = [nm for nm in made_all if nm in later]
    cur = {nm: namer.fresh(f"{nm}_c") for nm in made}
    new_body: list = list(lets)
    new_body += [P.Let(cur[nm], sympy.Symbol(nm)) for nm in made]
    # the next iteration's tiles are allocated before the guard, not inside it: a tensor
    # created inside an if body cannot be used after it (S25 general/nki/api/nki.errors.rst
    # err_local_variable_used_out_of_scope)
    lets_n = {x.name for x in nxt if isinstance(x, P.Let)}
    early = [x for x in nxt if isinstance(x, P.Alloc) and not (_syms(x) & lets_n)]
    early_ids = {id(x) for x in early}
    new_body += early
    new_body.append(P.If(var + 1, loop.count, tuple(x for x in nxt if id(x) not in early_ids),
                         (), P.Cmp.LT))
    for n in rest:
        if id(n) in s1_ids:
            continue
        new_body.append(_map(n, lambda e: e, lambda nm: cur.get(nm, nm)))
    if made:
        new_body.append(P.Release(tuple(cur[nm] for nm in made)))
    # the rewritten loop carries the prefetched tiles from one iteration to the next, so its
    # iterations are no longer independent: it becomes a sequential loop
    return [*pro, P.Loop(loop.var, loop.count, P.LoopKind.SEQUENTIAL, tuple(new_body))]
