"""Stage: library (branch coverage). Generated kernel source -> its trace-time size branches.

Input: the source of a generated kernel (either dialect), its kernel function's name and the
spec's size names. Output: the :class:`Branch` es of the source, each an ``if``/``elif`` or a
conditional expression whose test depends on sizes and constants only (the planner's fused-or-
split choice ``if 26 * D + 28 < 202335:``, a multi-block form ``if 0 < -(-N // BLOCK_N) - 1:``,
...), with for each of its two outcomes the condition over the sizes under which the kernel
reaches it; and :func:`reaches`, which tells which outcomes a size assignment takes.

How: the source is parsed with :mod:`ast` (never executed). The walk starts at the kernel
function and follows its calls into the module's helper functions (each call site on its own,
with its arguments), keeping for every name what it is bound to: a size of the spec (the kernel
binds them from the input shapes), a module-level constant (an integer, or ``nl.tile_size.X``
read from the simulator's API layer of the dialect, the values the kernel runs with), a
trace-time value computed from those only (``nfc = -(-D // FREE_TILE)``: substituted), or
anything else (a tile, a loop index: the name is not a size value). A test made of size values
and constants only is a branch; its body is reached when every enclosing branch took the outcome
leading to it and every enclosing loop whose count is a size value runs at least once (a loop
or an ``if`` on anything else is transparent: its body counts as reached). That transparency
over-approximates reaching; in the kernels of the shipped specs (both dialects, both targets)
the size branches it applies to are under loops over a partial tile (``range(-(-rsz //
TILE_P))``, at least one iteration at every legal size) or are unreachable anyway (classic
attention's ``0 < ndt - 1`` in a helper also called under ``if 0 < -(-rsz // TILE_P) - 1``,
with ``rsz`` a partial block; ``D <= 128`` there).

Evaluation (:func:`evaluate`) walks the expression tree itself over a whitelist of nodes
(integer and float constants, + - * / // % **, unary - + not, comparisons, and/or, conditional
expressions, ``min``/``max``/``abs``): no ``eval`` of any text.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_DEPTH = 32        # nested helper calls followed (generated kernels use 2)
MAX_POW_EXP = 64      # ``a ** b`` refused for b over this (a size test never needs more)


class NotSizeValue(Exception):
    """An expression that is not made of sizes and constants (or cannot be evaluated)."""


_BIN: dict[type, Callable] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Div: operator.truediv,
}
_CMP: dict[type, Callable] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_FUNCS: dict[str, Callable] = {"min": min, "max": max, "abs": abs}


def evaluate(e: ast.expr, env: Mapping[str, int]) -> int | float | bool:
    """The value of a whitelisted size expression at the sizes ``env``; raises
    :class:`NotSizeValue` for a node outside the whitelist, an unknown name, or an arithmetic
    error (division by zero, a huge power)."""
    try:
        return _ev(e, env)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as why:
        raise NotSizeValue(f"{type(why).__name__}: {why}") from None


def _ev(e: ast.expr, env: Mapping[str, int]):
    if isinstance(e, ast.Constant) and type(e.value) in (int, float, bool):
        return e.value
    if isinstance(e, ast.Name):
        if e.id not in env:
            raise NotSizeValue(f"unknown size {e.id}")
        return env[e.id]
    if isinstance(e, ast.BinOp):
        a, b = _ev(e.left, env), _ev(e.right, env)
        if isinstance(e.op, ast.Pow):
            if not isinstance(b, (int, float)) or abs(b) > MAX_POW_EXP:
                raise NotSizeValue(f"exponent {b} over {MAX_POW_EXP}")
            return a ** b
        fn = _BIN.get(type(e.op))
        if fn is None:
            raise NotSizeValue(f"operator {type(e.op).__name__}")
        return fn(a, b)
    if isinstance(e, ast.UnaryOp):
        v = _ev(e.operand, env)
        if isinstance(e.op, ast.USub):
            return -v
        if isinstance(e.op, ast.UAdd):
            return +v
        if isinstance(e.op, ast.Not):
            return not v
        raise NotSizeValue(f"operator {type(e.op).__name__}")
    if isinstance(e, ast.Compare):
        left = _ev(e.left, env)
        for op, right_e in zip(e.ops, e.comparators):
            fn = _CMP.get(type(op))
            if fn is None:
                raise NotSizeValue(f"comparison {type(op).__name__}")
            right = _ev(right_e, env)
            if not fn(left, right):
                return False
            left = right
        return True
    if isinstance(e, ast.BoolOp):
        if isinstance(e.op, ast.And):
            v = True
            for x in e.values:
                v = _ev(x, env)
                if not v:
                    return v
            return v
        v = False
        for x in e.values:
            v = _ev(x, env)
            if v:
                return v
        return v
    if isinstance(e, ast.IfExp):
        return _ev(e.body, env) if _ev(e.test, env) else _ev(e.orelse, env)
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in _FUNCS \
            and not e.keywords and e.args:
        return _FUNCS[e.func.id](*(_ev(a, env) for a in e.args))
    raise NotSizeValue(f"{type(e).__name__} is not a size expression")


# ---- the walk ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Guard:
    """One condition on the way to a branch: ``test`` evaluates truthy iff ``outcome``."""

    test: ast.expr
    outcome: bool


@dataclass(frozen=True)
class Branch:
    """A trace-time branch on sizes: kernel line and column of its test, the test as printed in
    the kernel and with every name substituted down to sizes and constants, and per way of
    reaching it (a helper called from several places) the guards on the way."""

    line: int
    col: int
    kind: str                                # "if" | "ifexp"
    text: str                                # the test as the kernel prints it
    sizes_text: str                          # the test over sizes and constants
    tests: tuple[ast.expr, ...]              # per context: the substituted test
    paths: tuple[tuple[Guard, ...], ...]     # per context: the guards on the way

    @property
    def key(self) -> tuple[int, int]:
        return (self.line, self.col)


def outcome_name(branch: Branch, outcome: bool) -> str:
    """``then``/``else`` for an ``if``, ``if-arm``/``else-arm`` for a conditional expression."""
    if branch.kind == "ifexp":
        return "if-arm" if outcome else "else-arm"
    return "then" if outcome else "else"


def reaches(branch: Branch, outcome: bool, env: Mapping[str, int]) -> bool:
    """True when the kernel at sizes ``env`` (free and derived) reaches ``branch`` and takes
    ``outcome`` there in some context; an expression that cannot be evaluated at ``env`` counts
    as not reaching (the kernel would fail there, or the walk cannot tell)."""
    for test, path in zip(branch.tests, branch.paths):
        try:
            if all(bool(evaluate(g.test, env)) == g.outcome for g in path) and \
                    bool(evaluate(test, env)) == outcome:
                return True
        except NotSizeValue:
            continue
    return False


def conjuncts(branch: Branch, outcome: bool) -> list[list[Guard]]:
    """Per context, the conditions that must all hold to reach ``outcome`` (for searching)."""
    return [list(path) + [Guard(test, outcome)]
            for test, path in zip(branch.tests, branch.paths)]


_NOT = object()   # a name bound to something that is not a size value


def tile_size_values(dialect: str) -> dict[str, int]:
    """``nl.tile_size`` constants of the simulator's API layer for ``dialect`` (class-level
    integers only: the per-target properties are not read)."""
    if dialect == "neuronxcc":
        from nkigen.sim.classic.language import _ClassicTileSize as cls
    else:
        from nkigen.sim.nki.language import _TileSize as cls  # type: ignore[assignment]
    return {k: v for k, v in vars(cls).items()
            if not k.startswith("_") and isinstance(v, int) and not isinstance(v, bool)}


_RANGES = {"range", "affine_range", "sequential_range", "static_range"}


class _Walker:
    def __init__(self, tree: ast.Module, sizes: set[str], tile_sizes: dict[str, int]):
        self.sizes = sizes
        self.tile_sizes = tile_sizes
        self.funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self.consts: dict[str, ast.expr | object] = {}
        for n in tree.body:
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and \
                    isinstance(n.targets[0], ast.Name):
                name = n.targets[0].id
                try:
                    val = self.subst(n.value, {})
                    self.consts[name] = ast.Constant(evaluate(val, {}))
                except NotSizeValue:
                    self.consts[name] = _NOT
        self.found: dict[tuple[int, int], tuple[ast.expr, str, list, list]] = {}

    # -- names -> size expressions
    def subst(self, e: ast.expr, scope: Mapping[str, object]) -> ast.expr:
        """``e`` with every name replaced by its size value; raises NotSizeValue."""
        if isinstance(e, ast.Name):
            if e.id in scope:
                v = scope[e.id]
            elif e.id in self.consts:
                v = self.consts[e.id]
            else:
                raise NotSizeValue(e.id)
            if v is _NOT:
                raise NotSizeValue(e.id)
            assert isinstance(v, ast.expr)
            return v
        if isinstance(e, ast.Attribute):
            if isinstance(e.value, ast.Attribute) and e.value.attr == "tile_size" and \
                    e.attr in self.tile_sizes:
                return ast.Constant(self.tile_sizes[e.attr])
            raise NotSizeValue(ast.unparse(e))
        if isinstance(e, ast.Constant):
            if type(e.value) in (int, float, bool):
                return ast.Constant(e.value)
            raise NotSizeValue(repr(e.value))
        if isinstance(e, ast.Call):
            if not (isinstance(e.func, ast.Name) and e.func.id in _FUNCS and not e.keywords
                    and e.args and e.func.id not in scope):
                raise NotSizeValue("call")
            return ast.Call(ast.Name(e.func.id, ast.Load()),
                            [self.subst(a, scope) for a in e.args], [])
        if isinstance(e, ast.BinOp) and (type(e.op) in _BIN or isinstance(e.op, ast.Pow)):
            return ast.BinOp(self.subst(e.left, scope), e.op, self.subst(e.right, scope))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd, ast.Not)):
            return ast.UnaryOp(e.op, self.subst(e.operand, scope))
        if isinstance(e, ast.Compare) and all(type(o) in _CMP for o in e.ops):
            return ast.Compare(self.subst(e.left, scope), e.ops,
                               [self.subst(c, scope) for c in e.comparators])
        if isinstance(e, ast.BoolOp):
            return ast.BoolOp(e.op, [self.subst(v, scope) for v in e.values])
        if isinstance(e, ast.IfExp):
            return ast.IfExp(self.subst(e.test, scope), self.subst(e.body, scope),
                             self.subst(e.orelse, scope))
        raise NotSizeValue(type(e).__name__)

    def size_value(self, e: ast.expr, scope: Mapping[str, object]) -> ast.expr | None:
        try:
            return self.subst(e, scope)
        except NotSizeValue:
            return None

    @staticmethod
    def _mentions_size(e: ast.expr) -> bool:
        return any(isinstance(n, ast.Name) for n in ast.walk(e))

    # -- statements
    def function(self, fn: ast.FunctionDef, scope: dict[str, object], path: list[Guard],
                 depth: int, kernel: bool) -> None:
        if depth > MAX_DEPTH:
            return
        counts: dict[str, int] = {}
        for n in ast.walk(fn):
            targets: list[ast.expr] = []
            if isinstance(n, ast.Assign):
                targets = list(n.targets)
            elif isinstance(n, (ast.AugAssign, ast.AnnAssign, ast.For)):
                targets = [n.target]
            elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                targets = [n.optional_vars]
            elif isinstance(n, ast.NamedExpr):
                targets = [n.target]
            for t in targets:
                for x in ast.walk(t):
                    if isinstance(x, ast.Name) and isinstance(x.ctx, ast.Store):
                        counts[x.id] = counts.get(x.id, 0) + (
                            2 if not isinstance(n, ast.Assign) else 1)
        for name, c in counts.items():
            if name in scope and c:   # a parameter rebound in the body
                scope[name] = _NOT
        self.block(fn.body, scope, path, depth, kernel, counts)

    def block(self, body: list[ast.stmt], scope: dict[str, object], path: list[Guard],
              depth: int, kernel: bool, counts: dict[str, int]) -> None:
        for st in body:
            self.stmt(st, scope, path, depth, kernel, counts)

    def stmt(self, st: ast.stmt, scope: dict[str, object], path: list[Guard], depth: int,
             kernel: bool, counts: dict[str, int]) -> None:
        if isinstance(st, ast.If):
            self.exprs(st.test, scope, path, depth)
            test = self.size_value(st.test, scope)
            if test is not None and self._mentions_size(test):
                self.record(st.test, test, "if", path)
                self.block(st.body, scope, path + [Guard(test, True)], depth, kernel, counts)
                self.block(st.orelse, scope, path + [Guard(test, False)], depth, kernel, counts)
            else:
                self.block(st.body, scope, path, depth, kernel, counts)
                self.block(st.orelse, scope, path, depth, kernel, counts)
            return
        if isinstance(st, ast.For):
            self.exprs(st.iter, scope, path, depth)
            inner = path + self._loop_guard(st.iter, scope)
            self.block(st.body, scope, inner, depth, kernel, counts)
            self.block(st.orelse, scope, path, depth, kernel, counts)
            return
        if isinstance(st, (ast.While, ast.With, ast.Try)):
            for field in ("test", "items"):
                v = getattr(st, field, None)
                if isinstance(v, ast.expr):
                    self.exprs(v, scope, path, depth)
            for field in ("body", "orelse", "finalbody"):
                self.block(getattr(st, field, []), scope, path, depth, kernel, counts)
            for h in getattr(st, "handlers", []):
                self.block(h.body, scope, path, depth, kernel, counts)
            return
        for e in ast.iter_child_nodes(st):
            if isinstance(e, ast.expr):
                self.exprs(e, scope, path, depth)
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and \
                isinstance(st.targets[0], ast.Name):
            name = st.targets[0].id
            if kernel and name in self.sizes:
                scope[name] = ast.Name(name, ast.Load())     # the kernel binds its sizes
            elif counts.get(name, 0) == 1:
                v = self.size_value(st.value, scope)
                scope[name] = _NOT if v is None else v
            else:
                scope[name] = _NOT
        else:
            for n in ast.walk(st):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    scope[n.id] = _NOT

    def _loop_guard(self, it: ast.expr, scope: Mapping[str, object]) -> list[Guard]:
        """``count > 0`` for ``range(count)``-like loops whose count is a size value."""
        if not (isinstance(it, ast.Call) and not it.keywords and 1 <= len(it.args) <= 2):
            return []
        f = it.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
            else ""
        if fname not in _RANGES:
            return []
        args = [self.size_value(a, scope) for a in it.args]
        if any(a is None for a in args):
            return []
        lo, hi = (ast.Constant(0), args[0]) if len(args) == 1 else (args[0], args[1])
        assert lo is not None and hi is not None
        if not self._mentions_size(hi) and not self._mentions_size(lo):
            return []
        return [Guard(ast.Compare(lo, [ast.Lt()], [hi]), True)]

    def exprs(self, e: ast.expr, scope: dict[str, object], path: list[Guard],
              depth: int) -> None:
        """Conditional expressions and calls of module functions inside ``e``."""
        if isinstance(e, ast.IfExp):
            self.exprs(e.test, scope, path, depth)
            test = self.size_value(e.test, scope)
            if test is not None and self._mentions_size(test):
                self.record(e.test, test, "ifexp", path)
                self.exprs(e.body, scope, path + [Guard(test, True)], depth)
                self.exprs(e.orelse, scope, path + [Guard(test, False)], depth)
            else:
                self.exprs(e.body, scope, path, depth)
                self.exprs(e.orelse, scope, path, depth)
            return
        if isinstance(e, ast.Lambda):
            return
        for c in ast.iter_child_nodes(e):
            if isinstance(c, ast.expr):
                self.exprs(c, scope, path, depth)
            elif isinstance(c, ast.keyword):
                self.exprs(c.value, scope, path, depth)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and \
                e.func.id in self.funcs and e.func.id not in scope:
            self.call(self.funcs[e.func.id], e, scope, path, depth)

    def call(self, fn: ast.FunctionDef, call: ast.Call, scope: Mapping[str, object],
             path: list[Guard], depth: int) -> None:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        inner: dict[str, object] = {p: _NOT for p in params}
        inner.update({a.arg: _NOT for a in fn.args.kwonlyargs})
        for p, a in zip(params, call.args):
            if isinstance(a, ast.Starred):
                break
            v = self.size_value(a, scope)
            inner[p] = _NOT if v is None else v
        for kw in call.keywords:
            if kw.arg is not None and kw.arg in inner:
                v = self.size_value(kw.value, scope)
                inner[kw.arg] = _NOT if v is None else v
        self.function(fn, inner, path, depth + 1, kernel=False)

    def record(self, orig: ast.expr, test: ast.expr, kind: str, path: list[Guard]) -> None:
        key = (orig.lineno, orig.col_offset)
        hit = self.found.get(key)
        if hit is None:
            hit = self.found[key] = (orig, kind, [], [])
        for t, p in zip(hit[2], hit[3]):
            if ast.dump(t) == ast.dump(test) and [(ast.dump(g.test), g.outcome) for g in p] \
                    == [(ast.dump(g.test), g.outcome) for g in path]:
                return      # the same context twice (a helper called twice alike)
        hit[2].append(test)
        hit[3].append(tuple(path))


def find_branches(source: str, kernel: str, sizes: set[str] | frozenset[str],
                  dialect: str = "nki") -> tuple[Branch, ...]:
    """The trace-time size branches of ``source`` reached from function ``kernel``, in source
    order; () when the source does not parse or has no such function."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    w = _Walker(tree, set(sizes), tile_size_values(dialect))
    fn = w.funcs.get(kernel)
    if fn is None:
        return ()
    scope: dict[str, object] = {a.arg: _NOT for a in fn.args.posonlyargs + fn.args.args +
                                fn.args.kwonlyargs}
    w.function(fn, scope, [], 0, kernel=True)
    out = []
    for (line, col), (orig, kind, tests, paths) in sorted(w.found.items()):
        texts = {ast.unparse(t) for t in tests}
        out.append(Branch(line, col, kind, ast.unparse(orig),
                          " | ".join(sorted(texts)), tuple(tests), tuple(paths)))
    return tuple(out)

