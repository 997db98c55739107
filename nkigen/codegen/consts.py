"""Tile sizes and block factors read by name: the numbers of a stage's index arithmetic become
the module-level constants its lowering declared (``plan.Const``).

Stage: render (a stage's plan nodes + its constants -> plan nodes; the module header lines).
Runs last on the plan (after the classic mask pass, whose analysis needs the numbers), so every
earlier pass sees plain integers and the instruction stream is unchanged: only the spelling of
the numbers changes.

Where a number is read as a constant (anywhere else it stays a number): a factor of a term
(``128 * pt``), an argument of ``min``/``max``, a divisor (``-(-M // 128)``), a whole slice
size or shape entry, an access-pattern count, and an additive constant next to a term already
read with that constant (``TILE_P * pt + TILE_P``). Two constants of one value (the matmul's
128-row stationary and contraction tiles) are told apart by their owners: the generated names
in the same term first (``128 * kt`` is the contraction tile), then the name the node binds or
the tile it addresses; else the first declared constant of that value that is not
``owned_only``.

The classic mask pass prints its ``mask=`` predicates as Python text; their number tokens are
read the same way (:meth:`Namer.mask`), and a number it or an unrolled loop folded
(``c0 = 1024``, ``N - 1024``) that no constant equals reads as a multiple of one
(``2 * BANK``, :meth:`Namer.multiple`).
"""

from __future__ import annotations

import dataclasses
import re

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.ahead import Call
from nkigen.codegen.classic_mask import Masked
from nkigen.codegen.pyexpr import py


class Namer:
    """The constants of one stage and how to read a number in a context."""

    def __init__(self, consts: list[P.Const], names: dict[str, str]) -> None:
        self.by_value: dict[int, list[P.Const]] = {}
        for c in consts:
            self.by_value.setdefault(c.value, []).append(c)
        self.names = names                       # declared name -> module-level name
        # (expression, context names, bare) -> its reading: a stage's nodes read the same
        # index expressions many times, and a reading depends on these three only
        self._read: dict[tuple, sympy.Basic] = {}

    def pick(self, v: int, term: set[str], node: set[str]) -> sympy.Symbol | None:
        cands = self.by_value.get(v)
        if not cands or v in (0, 1):
            return None
        for ctx in (term, node):
            hit = [c for c in cands if set(c.owners) & ctx]
            if hit:
                return self._sym(hit[0])
        free = [c for c in cands if not c.owned_only]
        return self._sym(free[0]) if free else None

    def _sym(self, c: P.Const) -> sympy.Symbol:
        return sympy.Symbol(self.names[c.name], integer=True, positive=True)

    # ---- expressions ---------------------------------------------------------------------
    def expr(self, e, node: set[str], bare: bool = True):
        """``e`` with its tile numbers read by name; ``bare``: a whole-number ``e`` counts."""
        e = sympy.sympify(e)
        key = (e, frozenset(node), bare)
        hit = self._read.get(key)
        if hit is None:
            hit = self._read[key] = self._expr(e, node, bare)
        return hit

    def _expr(self, e, node: set[str], bare: bool):
        if e.is_Integer:
            s = self.pick(int(e), set(), node) if bare and e > 0 else None
            return s if s is not None else e
        if e.is_Atom:
            return e
        if isinstance(e, (sympy.Min, sympy.Max)):
            return type(e)(*(self.expr(a, node) for a in e.args), evaluate=False)
        if isinstance(e, (sympy.ceiling, sympy.floor)):
            num, den = e.args[0].as_numer_denom()
            # a whole-number numerator is a size split into parts (``512 // wb``)
            return type(e)(sympy.Mul(self.expr(num, node, num.is_Integer),
                                     sympy.Pow(self.expr(den, node), -1, evaluate=False),
                                     evaluate=False), evaluate=False)
        if isinstance(e, sympy.Mod):
            return sympy.Mod(self.expr(e.args[0], node, False), self.expr(e.args[1], node),
                             evaluate=False)
        if e.is_Add:
            terms = [self.term(t, node) for t in sympy.Add.make_args(e)]
            used = {int(c): sym for _, (c, sym) in terms if sym is not None}
            out = []
            for t, _ in terms:
                if t.is_Integer and abs(int(t)) in used:
                    s = used[abs(int(t))]
                    out.append(s if t > 0 else -s)
                else:
                    out.append(t)
            return sympy.Add(*out, evaluate=False)
        if e.is_Mul:
            return self.term(e, node)[0]
        return e

    def term(self, t, node: set[str]):
        """One product ``c * rest``: (rewritten term, (c, the constant read for c or None))."""
        t = sympy.sympify(t)
        if t.is_Integer:
            return t, (t, None)
        c, rest = t.as_coeff_Mul()
        syms = {s.name for s in rest.free_symbols}
        facs = sympy.Mul.make_args(rest)         # no factor is itself a product
        rest2 = sympy.Mul(*(self.expr(f, node, False) for f in facs), evaluate=False) \
            if len(facs) > 1 else self.expr(rest, node, False)
        if c.is_Integer and abs(int(c)) > 1:
            s = self.pick(abs(int(c)), syms, node)
            if s is not None:
                sign = -1 if c < 0 else 1
                new = sympy.Mul(s, rest2, evaluate=False)
                return (-new if sign < 0 else new), (abs(int(c)), s)
        if c.is_Rational and not c.is_Integer and c.p == 1:
            s = self.pick(int(c.q), syms, node)
            if s is not None:
                return sympy.Mul(rest2, sympy.Pow(s, -1, evaluate=False), evaluate=False), \
                    (0, None)
        return (sympy.Mul(c, rest2, evaluate=False) if c != 1 else rest2), (0, None)

    # ---- nodes ---------------------------------------------------------------------------
    def dim(self, d: P.Dim, node: set[str]) -> P.Dim:
        if isinstance(d, P.Index):
            return P.Index(self.expr(d.at, node, False))
        # a size is read with the names of its start too (``kl0:kl0 + 2048``: kl0's block)
        start = sympy.sympify(d.start)
        return P.Slice(self.expr(start, node, False),
                       self.expr(d.size, node | {x.name for x in start.free_symbols}),
                       self.expr(d.step, node, False))

    def ref(self, r, node: set[str]):
        ctx = node | {r.name}
        if isinstance(r, P.Ref):
            # replace, not P.Ref(...): a classic_index.LaneRef stays one; a ViewRef's
            # broadcast extents are counts, like an ApRef's pattern counts
            kw: dict = {"dims": tuple(self.dim(d, ctx) for d in r.dims)}
            bcast = getattr(r, "bcast", ())
            if bcast:
                kw["bcast"] = tuple(self.expr(n, ctx) for n in bcast)
            return dataclasses.replace(r, **kw)
        if isinstance(r, P.ApRef):
            return P.ApRef(r.name, self.expr(r.offset, ctx, False),
                           tuple((self.expr(s, ctx, False), self.expr(n, ctx))
                                 for s, n in r.pattern))
        return r                                 # Scalar operands keep their values

    def node(self, n):
        if isinstance(n, Masked):
            # replace, not Masked(...): a Pad keeps its engine (classic_mask.Pad, GpSimd)
            return dataclasses.replace(n, node=self.node(n.node), mask=self.mask(n.mask))
        if isinstance(n, P.Let):
            v = sympy.sympify(n.value)
            if v.is_Integer:                     # an unrolled offset (``c0 = 1024``)
                m = self.multiple(int(v), {n.name}, owned=True)
                return P.Let(n.name, m) if m is not None else n
            return P.Let(n.name, self.expr(n.value, {n.name}, False))
        if isinstance(n, P.Alloc):
            if n.mem in (P.Mem.HBM, P.Mem.SHARED_HBM) and not n.view_of:
                return n
            return dataclasses.replace(n, shape=tuple(self.expr(s, {n.name}) for s in n.shape))
        if isinstance(n, P.Loop):
            return dataclasses.replace(n, count=self.expr(n.count, {n.var}, False),
                                       body=self.nodes(n.body))
        if isinstance(n, P.If):
            ctx = {s.name for s in (sympy.sympify(n.lhs).free_symbols
                                    | sympy.sympify(n.rhs).free_symbols)}
            # a loop's trip-count guard (``if 0 < count:``, ahead._full_loop): the count's
            # numbers are the guarded loop's
            ctx |= {x.var for x in n.then if isinstance(x, P.Loop)
                    and sympy.sympify(x.count) == sympy.sympify(n.rhs)}
            # a size compared with its full tile (``if ldsz < TILE_P``): the tile by name
            tile = n.cmp is P.Cmp.LT and sympy.sympify(n.lhs).is_Symbol
            return dataclasses.replace(n, lhs=self.expr(n.lhs, ctx, False),
                                       rhs=self.expr(n.rhs, ctx, tile),
                                       then=self.nodes(n.then), orelse=self.nodes(n.orelse))
        if isinstance(n, Call):                  # a helper call's index and values
            return dataclasses.replace(n, index=self.expr(n.index, set(), False), extra=tuple(
                x if isinstance(x, bool) else self.expr(x, {k}) for x, k in zip(n.extra, n.keys)))
        if isinstance(n, (P.Comment, P.Release)) or not dataclasses.is_dataclass(n) \
                or isinstance(n, type):
            return n
        kw = {}
        for f in dataclasses.fields(n):
            x = getattr(n, f.name)
            if isinstance(x, (P.Ref, P.ApRef)):
                kw[f.name] = self.ref(x, set())
            elif f.name in _EXTENTS:
                kw[f.name] = self.expr(x, set())
        return dataclasses.replace(n, **kw) if kw else n

    def nodes(self, nodes) -> tuple:
        return tuple(self.node(n) for n in nodes)

    def multiple(self, v: int, ctx: set[str], owned: bool = False):
        """``v`` as a constant or a whole multiple ``k * C`` of one (the largest that divides
        it) of the constants owned by ``ctx`` (``owned``) or of any not ``owned_only`` one;
        None when there is none (0 and 1 stay numbers). The numbers an unrolled loop or the
        classic mask pass folded (``c0 = 2 * BANK``, ``N - 2 * BANK``)."""
        if v <= 1:
            return None
        s = self.pick(v, set(), ctx)
        if s is not None and (not owned or any(set(c.owners) & ctx
                                               for c in self.by_value[v])):
            return s
        fits = [c for cs in self.by_value.values() for c in cs
                if v % c.value == 0 and c.value > 1
                and (set(c.owners) & ctx if owned else not c.owned_only)]
        if not fits:
            return None
        c = max(fits, key=lambda c: c.value)
        k = v // c.value
        return self._sym(c) if k == 1 else sympy.Mul(sympy.Integer(k), self._sym(c),
                                                     evaluate=False)

    def mask(self, text: str) -> str:
        """A classic ``mask=`` predicate (Python source the mask pass printed from the same
        integer expressions): each number read as above, a factor by the name it multiplies
        (``128 * rt``), any other (an ``nl.arange`` extent, a divisor, a bound) as a bare
        number; the other names of its comparison (``kb``, ``K``) are the node's names. A
        name replaces a number token, so the predicate's value is unchanged."""
        def part(text: str) -> str:
            node = set(re.findall(r"[A-Za-z_]\w*", text))      # the comparison's names

            def one(m: re.Match) -> str:
                name = m.group(1) or m.group(4)
                s = self.pick(int(m.group(2)), {name} if name else set(), node)
                a, b = m.start(2) - m.start(0), m.end(2) - m.start(0)
                if s is not None:
                    return m.group(0)[:a] + s.name + m.group(0)[b:]
                k = None if name else self.multiple(int(m.group(2)), node)
                if k is None:
                    return m.group(0)
                # a product replaces a lone term: parenthesised after an operator that binds
                # tighter than + (``x // (2 * BANK)``)
                before = text[:m.start(0)].rstrip()
                word = py(k) if k.is_Symbol or not before.endswith(("*", "/", "%")) \
                    else f"({py(k)})"
                return m.group(0)[:a] + word + m.group(0)[b:]
            return _MASK_NUM.sub(one, text)
        return " & ".join(part(t) for t in text.split(" & "))


# the extent fields of the plan_ext nodes (an nl.arange / access-pattern count: a whole size)
_EXTENTS = frozenset({"psz", "fsz", "fcount"})

# a number token of a mask, with the name it multiplies on either side (``128 * rt``,
# ``rt * 128``): group 2 the number, group 1 / 4 the name
_MASK_NUM = re.compile(r"(?<![\w.])(?:([A-Za-z_]\w*) \* )?(\d+)(?:( \* )([A-Za-z_]\w*))?"
                       r"(?![\w.])")


def module_names(consts: tuple[tuple[int, P.Const], ...],
                 taken: frozenset[str] | set[str] = frozenset()
                 ) -> tuple[list[P.Const], dict[int, dict[str, str]]]:
    """The module-level constants (deduplicated across stages; a name reused for another
    value, or one the kernel already uses (a spec size, tensor or parameter, a generated
    name), gets a numeric suffix) and, per stage, declared name -> module name."""
    out: list[P.Const] = []
    seen: dict[str, P.Const] = {}
    per: dict[int, dict[str, str]] = {}
    for stage, c in consts:
        m = per.setdefault(stage, {})
        name, k = c.name, 1
        while name in taken or (name in seen and (
                seen[name].value, seen[name].tile_size, seen[name].expr) != (
                c.value, c.tile_size, _expr(c.expr, m))):
            k += 1
            name = f"{c.name}_{k}"
        m[c.name] = name
        if name not in seen:
            seen[name] = dataclasses.replace(c, name=name, expr=_expr(c.expr, m))
            out.append(seen[name])
    return out, per


def _expr(text: str | None, names: dict[str, str]) -> str | None:
    if text is None:
        return None
    return re.sub(r"\b[A-Z][A-Z_0-9]*\b", lambda m: names.get(m.group(0), m.group(0)), text)
