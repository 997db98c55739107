"""The head of a software-pipelined loop written once, as a helper function.

Stage: render (a stage's plan nodes -> plan nodes + helper definitions). :func:`pipeline.prefetch`
issues a loop's loads (and row statistics) one tile ahead: once for tile 0 before the loop (the
prologue) and once for tile ``i + 1`` under ``if i + 1 < n`` inside it. Both copies bind the tile
index first (``Let(t, 0)`` / ``Let(t, i + 1)``) and are otherwise the same nodes up to the names
of their ``Let`` bindings. This pass checks exactly that, then replaces both copies by a
:class:`Call` of one helper whose body is the shared nodes (with the loop's own names: the tile
index parameter is the loop variable), so the kernel states the per-tile work once. The
instruction stream is unchanged: the helper issues the same instructions at the same points.

The tiles the head writes are allocated by the caller before each call (as before: a tile created
inside an ``if`` cannot be used after it, S25 general/nki/api/nki.errors.rst
err_local_variable_used_out_of_scope) and passed in with every other name the head reads.
A loop whose copies differ in anything else keeps the duplicated form.

The same holds for a classic loop peeled by the mask pass (classic_mask.Peeled: its full
iterations in the loop, its last one after it with a trace-time index): its one iteration body
becomes a helper called once per loop iteration and once for the last iteration, the values
that differ (the index, the ragged sizes, the last-iteration flag) passed as arguments.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.classic_mask import FlagIf, Masked, Peeled
from nkigen.codegen.cse import rename


@dataclass(frozen=True)
class Call:
    """``fn(*args, index, *extra)``: run a pipelined loop's head for one tile, or one
    iteration of a peeled loop (``extra``: its ragged sizes, then its last-iteration flag, a
    Python bool)."""

    fn: str
    args: tuple[str, ...]
    index: sympy.Expr
    extra: tuple = ()
    keys: tuple[str, ...] = ()       # the parameter names of ``extra`` (constant naming)


@dataclass(frozen=True)
class Helper:
    name: str
    params: tuple[str, ...]
    body: tuple
    var: str
    extra: tuple[str, ...] = ()      # parameters after the index (a peeled loop's values)
    peeled: bool = False             # one iteration of a peeled loop, not a pipeline head
    kind: str = ""                   # the peeled loop's kind (its nl.* range name)


def _strip(nodes) -> list:
    return [n for n in nodes if not isinstance(n, (P.Release, P.Alloc))]


def _ordered_names(node, out: dict[str, None]) -> None:
    """Names a node reads, in a deterministic order of first appearance."""
    if isinstance(node, (P.Ref, P.ApRef)):
        out.setdefault(node.name)
    if isinstance(node, Call):            # a nested helper's call reads its arguments
        for a in node.args:
            out.setdefault(a)
    if isinstance(node, FlagIf):          # a peeled loop's last-iteration flag
        out.setdefault(node.flag)
    if isinstance(node, Masked) and node.mask:    # a classic mask= predicate's names
        for x in ast.walk(ast.parse(node.mask, mode="eval")):
            if isinstance(x, ast.Name) and x.id != "nl":
                out.setdefault(x.id)
    if isinstance(node, sympy.Basic):
        for s in sorted(node.free_symbols, key=lambda s: s.name):
            out.setdefault(s.name)
    elif isinstance(node, tuple):
        for x in node:
            _ordered_names(x, out)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            _ordered_names(getattr(node, f.name), out)
        for k in getattr(node, "NAME_FIELDS", ()):
            out.setdefault(getattr(node, k))




def _head_of(loop: P.Loop) -> tuple[int, P.If, dict[str, str]] | None:
    """The prefetch ``if`` of a pipelined loop, its position, and the renaming that maps the
    copy's Let names to the loop's own (tile index -> loop variable)."""
    var = sympy.Symbol(loop.var, integer=True, nonnegative=True)
    lets = []
    for n in loop.body:
        if not isinstance(n, P.Let):
            break
        lets.append(n)
    for i, n in enumerate(loop.body):
        if isinstance(n, P.If) and n.cmp is P.Cmp.LT and not n.orelse \
                and sympy.expand(n.lhs - var - 1) == 0 and n.rhs == loop.count:
            if any(isinstance(x, P.Alloc) for x in n.then):
                return None
            body = _strip(n.then)
            if not body or not isinstance(body[0], P.Let) \
                    or sympy.expand(body[0].value - var - 1) != 0:
                return None
            ren = {body[0].name: loop.var}
            # the copy's Lets are the loop's leading Lets (its tile origin and sizes), renamed
            for a, b in zip(lets, body[1:]):
                if not isinstance(b, P.Let) or rename(sympy.sympify(b.value), ren) != a.value:
                    break
                ren[b.name] = a.name
            return i, n, ren
    return None


def extract(nodes: tuple, base: str, taken: set[str], helpers: list[Helper],
            order: tuple[str, ...] = ()) -> tuple:
    """``nodes`` with each pipelined loop's prologue and prefetch replaced by calls of a helper
    (appended to ``helpers``; its name starts with ``base`` and avoids ``taken``)."""
    out: list = []
    for n in nodes:
        if isinstance(n, Peeled):
            n = dataclasses.replace(n, body=extract(n.body, base, taken, helpers, order))
            out.extend(_iteration(n, base, taken, helpers, order))
            continue
        if isinstance(n, P.Loop):
            n = dataclasses.replace(n, body=extract(n.body, base, taken, helpers, order))
            found = _head_of(n)
            if found is not None:
                done = _collapse(out, n, found, base, taken, helpers, order)
                if done is not None:
                    out[:] = done[0]
                    out.append(done[1])
                    continue
        elif isinstance(n, P.If):
            n = dataclasses.replace(n, then=extract(n.then, base, taken, helpers, order),
                                    orelse=extract(n.orelse, base, taken, helpers, order))
        out.append(n)
    return tuple(out)


def _params(template: tuple, own: set[str], order: tuple[str, ...]) -> tuple[str, ...]:
    """The names ``template`` reads that it does not bind (nor are in ``own``): the stage's
    own arguments first (kernel tensors, sizes), in its order; then the rest (tiles, outer
    indices) in order of first appearance."""
    local = P.bound_names(template) | own
    seen: dict[str, None] = {}
    _ordered_names(template, seen)
    return tuple(sorted((nm for nm in seen if nm not in local),
                        key=lambda nm: (0, order.index(nm)) if nm in order else (1, 0)))


def _fresh(name: str, taken: set[str]) -> str:
    k, out = 1, name
    while out in taken:
        k += 1
        out = f"{name}{k}"
    taken.add(out)
    return out


def _iteration(loop: Peeled, base: str, taken: set[str], helpers: list[Helper],
               order: tuple[str, ...]) -> list:
    """A peeled loop as a helper holding its iteration body, called in the loop over the
    full iterations (the body's values of its ``params``, flag False) and once after it for
    the last iteration (the ``last`` Lets bind the index and the values; flag True)."""
    values = {n.name: n.value for n in loop.body
              if isinstance(n, P.Let) and n.name in loop.params}
    body = tuple(n for n in loop.body if not (isinstance(n, P.Let) and n.name in values))
    extra = tuple(loop.params) + ((loop.flag,) if loop.flag else ())
    params = _params(body, {loop.var, *extra}, order)
    name = _fresh(f"{base}_{loop.var}", taken)
    helpers.append(Helper(name, params, body, loop.var, extra, peeled=True,
                          kind=loop.kind.value))
    flag = (False,) if loop.flag else ()
    index = sympy.Symbol(loop.var, integer=True, nonnegative=True)
    full = Call(name, params, index, tuple(values[p] for p in loop.params) + flag, extra)
    after = Call(name, params, index,
                 tuple(sympy.Symbol(p, integer=True, positive=True) for p in loop.params)
                 + ((True,) if loop.flag else ()), extra)
    # (the loop body is a helper call: a render-stage node, as in _collapse)
    calls: tuple = (full,)
    return [*_full_loop(P.Loop(loop.var, loop.count, loop.kind, calls)), *loop.last, after]


def _full_loop(loop: P.Loop) -> list:
    """The loop over a peeled loop's full iterations (``count`` = the trip count - 1), never a
    zero-trip NKI loop: no documented kernel runs ``nl.affine_range(0)`` /
    ``nl.sequential_range(0)`` (S25 general/nki/api/nki/language/__init__.py affine_range /
    sequential_range say nothing of an empty range, and the classic front end traces a loop body
    once). A count known here is dropped when it is 0; a count of input sizes (a Python int at
    trace time) is guarded by ``if 0 < count:``, the trace-time ``if`` of the S25 sd_attention
    example (``if use_causal_mask:``)."""
    count = sympy.sympify(loop.count)
    if count.is_Integer:
        return [loop] if int(count) > 0 else []
    return [P.If(sympy.Integer(0), count, (loop,), cmp=P.Cmp.LT)]


def _collapse(before: list, loop: P.Loop, found, base: str, taken: set[str],
              helpers: list[Helper], order: tuple[str, ...]):
    pos, guard, ren = found
    then = _strip(guard.then)
    template = rename(tuple(then[1:]), ren, binders=True)
    size = len(then)
    # the prologue: the last nodes before the loop whose non-Alloc/Release part is `then`
    for start in range(len(before) - 1, -1, -1):
        span = before[start:]
        core = _strip(span)
        if len(core) < size:
            continue
        if len(core) > size:
            return None
        first = core[0]
        if not (isinstance(first, P.Let) and sympy.sympify(first.value) == 0):
            return None
        pren = {first.name: loop.var}
        pren.update((b.name, t.name) for b, t in zip(core[1:], template)
                    if isinstance(b, P.Let) and isinstance(t, P.Let))
        if rename(tuple(core[1:]), pren, binders=True) != template:
            return None
        break
    else:
        return None
    params = _params(template, {loop.var}, order)
    name = _fresh(f"{base}_head", taken)
    helpers.append(Helper(name, params, template, loop.var))
    allocs = [x for x in span if isinstance(x, (P.Alloc, P.Release))]
    pro = before[:start] + allocs + [Call(name, params, sympy.Integer(0))]
    body = list(loop.body)
    body[pos] = dataclasses.replace(guard, then=(Call(name, params, then[0].value),))
    return pro, dataclasses.replace(loop, body=tuple(body))
