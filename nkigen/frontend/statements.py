"""Compute statements to IR (stage: parse).

Input: the text of one ``compute`` item (``acc[m, n] += a[m, k] * b[k, n]``) and the spec's
:class:`~nkigen.frontend.names.Namespace`. Output: a frozen :class:`~nkigen.ir.Statement`.

The text is parsed by Python's ``ast`` (it is Python expression syntax) and then walked with a
whitelist: tensor accesses, numbers, params, sizes, ``+ - * /``, unary minus, the element-wise
functions and the reductions of the spec language. Everything else is an error located at the
offending sub-expression (:class:`~nkigen.frontend.exprs.ExprError` carries its offset).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy

from nkigen.frontend.exprs import (
    ExprError,
    char_offset,
    check_depth,
    index_expr,
    short_number,
    src,
)
from nkigen.frontend.names import (
    FUNCTIONS,
    Kind,
    Namespace,
    article,
    did_you_mean,
    index_name_problem,
)
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    CmpOp,
    Compare,
    Const,
    Expr,
    Func,
    IndexValue,
    Neg,
    ParamRef,
    Reduce,
    ReduceKind,
    Scan,
    SizeRef,
    Statement,
    Where,
    accesses,
    index_symbol,
    is_index_name,
    scalar_value,
)

_BINOPS: dict[type, BinOpKind] = {
    ast.Add: BinOpKind.ADD, ast.Sub: BinOpKind.SUB, ast.Mult: BinOpKind.MUL, ast.Div: BinOpKind.DIV,
}
# operator -> (rule, fix) for operators the language does not have
_NO_OPS: dict[type, tuple[str, str]] = {
    ast.Pow: ("'**' is not supported", "use square(x), sqrt(x) or x * x"),
    ast.MatMult: ("'@' is not supported",
                  "write the contraction in index notation: c[m, n] += a[m, k] * b[k, n]"),
    ast.FloorDiv: ("'//' is not supported on values", "use '/'"),
    ast.Mod: ("'%' is not supported on values", "use + - * / and the functions"),
}
_FUNCS: dict[str, Func] = {f.value: f for f in Func}
_CMPS: dict[type, CmpOp] = {
    ast.Lt: CmpOp.LT, ast.LtE: CmpOp.LE, ast.Eq: CmpOp.EQ, ast.NotEq: CmpOp.NE,
    ast.GtE: CmpOp.GE, ast.Gt: CmpOp.GT,
}
_REDUCES: dict[str, ReduceKind] = {r.value: r for r in ReduceKind}


@dataclass(frozen=True)
class Shapes:
    """What the statement parser needs to know about each tensor: rank and an example index."""

    ranks: dict[str, int]
    examples: dict[str, str]     # tensor -> "m, k" (its shape's size names, lower-cased)
    unsure: frozenset[str] = frozenset()   # tensors whose declaration is broken: rank unknown

    def rank_mismatch(self, name: str, count: int) -> bool:
        return name not in self.unsure and self.ranks[name] != count


class _Rhs:
    """Right-hand side ast -> IR, tracking free and reduction-bound indices."""

    def __init__(self, text: str, ns: Namespace, shapes: Shapes, lhs: tuple[str, ...], loc):
        self.text = text
        self.ns = ns
        self.shapes = shapes
        self.lhs = lhs
        self.loc = loc                      # offset -> Loc, for Access.loc
        self.bound: list[str] = []
        self.free: list[str] = []           # first-use order
        self.free_at: dict[str, int] = {}   # index -> offset of its first free use
        self.values: dict[int, sympy.Expr | None] = {}   # id of a sub-expression -> value

    def fail(self, node: ast.AST, rule: str, fix: str | None = None) -> ExprError:
        return ExprError(char_offset(self.text, node), rule, repr(src(self.text, node)), fix)

    def conv(self, node: ast.expr) -> Expr:
        """Dispatch on the node type (the whitelist); anything else is an error."""
        if isinstance(node, (ast.Name, ast.BinOp, ast.UnaryOp)) and self.index_only(node):
            try:
                return self.index_value(node)
            except ExprError:
                if not isinstance(node, ast.BinOp):
                    raise
                # (a product of index expressions, (m - n) * (m + n): not affine as one
                # index expression, a product of two index values as arithmetic)
        handler = _RHS_NODES.get(type(node))
        if handler is None:
            raise self.fail(node, f"unsupported syntax ({type(node).__name__.lower()})",
                            "use tensor accesses, numbers, params, sizes, + - * /, and functions")
        return handler(self, node)

    def index_only(self, node: ast.expr) -> bool:
        """Whether ``node`` is an integer expression of indices (at least one), sizes, integer
        params and integer literals under ``+ - * // %``: an index used as a number, the
        ``m - n`` of an ALiBi bias ``-(m - n) * slope[h]`` (fuzz15)."""
        has_index = False
        for n in ast.walk(node):
            if isinstance(n, ast.Name):
                kind = self.ns.kind(n.id)
                if kind is None:
                    # (a left-hand or reduction-bound index only: any other name is a typo
                    # or a summed index, reported by name())
                    if n.id not in self.lhs and n.id not in self.bound:
                        return False
                    has_index = True
                elif kind is Kind.PARAM:
                    if n.id not in self.ns.int_params:
                        return False
                elif kind is not Kind.SIZE:
                    return False
            elif isinstance(n, ast.Constant):
                if not isinstance(n.value, int) or isinstance(n.value, bool):
                    return False
            elif isinstance(n, ast.BinOp):
                if not isinstance(n.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)):
                    return False
            elif isinstance(n, ast.UnaryOp):
                if not isinstance(n.op, (ast.USub, ast.UAdd)):
                    return False
            elif not isinstance(n, (ast.operator, ast.unaryop, ast.expr_context)):
                return False
        return has_index

    def non_integer(self, node: ast.expr) -> bool:
        """Whether ``node`` holds a float literal or a float param (no index expression)."""
        return any(isinstance(n, ast.Constant) and not isinstance(n.value, int)
                   or isinstance(n, ast.Name) and self.ns.kind(n.id) is Kind.PARAM
                   and n.id not in self.ns.int_params for n in ast.walk(node))

    def index_value(self, node: ast.expr) -> Expr:
        """An index expression used as a number (spec language 1.1 comparison operands, and
        arithmetic: ``(m - n) * slope[h]``); affine like an access index."""
        e = index_expr(self.text, node, self.ns)
        for s in sorted(e.free_symbols, key=lambda s: s.name):
            if is_index_name(s.name) and s.name not in self.bound and s.name not in self.free:
                self.free.append(s.name)
                self.free_at[s.name] = char_offset(self.text, node)
        if isinstance(e, sympy.Add) and len(e.atoms(sympy.floor, sympy.Mod)) > 1:
            # (one index value per divided term, m // 3 - n % 5 + 7: each lowers as one
            # divided iota, codegen/select.py; their sum is arithmetic)
            parts = [t for t in e.args if t.atoms(sympy.floor, sympy.Mod)]
            rest = e - sympy.Add(*parts)
            vals: list[Expr] = []
            for t in parts:
                k, q = t.as_coeff_Mul()
                vals.append(IndexValue(q) if k == 1 else
                            BinOp(BinOpKind.MUL, Const(float(k)), IndexValue(q)))
            if rest != 0:
                vals.append(IndexValue(rest))
            out: Expr = vals[0]
            for v in vals[1:]:
                out = BinOp(BinOpKind.ADD, out, v)
            return out
        return IndexValue(e)

    def const(self, node: ast.Constant) -> Expr:
        v = node.value
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                f = float(v)
            except OverflowError:
                f = math.inf
            if not math.isfinite(f):
                raise ExprError(char_offset(self.text, node), "number is too large (not a finite "
                                "float64)", short_number(src(self.text, node)),
                                "use a number below 1.7e308 in magnitude")
            return Const(f)
        raise self.fail(node, "only numbers are allowed as constants", "use e.g. 0.5")

    def unary(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, ast.USub):
            return Neg(self.conv(node.operand))
        if isinstance(node.op, ast.UAdd):
            return self.conv(node.operand)
        raise self.fail(node, "unsupported unary operator", "use unary '-' only")

    def binop(self, node: ast.BinOp) -> Expr:
        kind = _BINOPS.get(type(node.op))
        if kind is None:
            rule, fix = _NO_OPS.get(type(node.op), ("unsupported operator", "use + - * /"))
            raise self.fail(node, rule, fix)
        lhs, rhs = self.conv(node.left), self.conv(node.right)
        if kind is BinOpKind.DIV:
            den = scalar_value(rhs, self.values)
            if den is not None and sympy.expand(den) == 0:
                raise ExprError(char_offset(self.text, node.right),
                                "division by zero: the divisor is 0 for every allowed size",
                                repr(src(self.text, node.right)),
                                "divide by a nonzero number or size expression")
        return self.defined(node, BinOp(kind, lhs, rhs))

    def defined(self, node: ast.expr, e: Expr) -> Expr:
        """``e`` unchanged, unless it reads no tensor and has no finite real value whatever
        the sizes (``log(0.0)``, ``sqrt(-1.0)``, ``rsqrt(N - N)``): then a located error here,
        instead of an infinity or a complex number in the kernel."""
        v = scalar_value(e, self.values)
        if v is not None and (v.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
                              or v.is_real is False):
            raise ExprError(char_offset(self.text, node),
                            "this expression reads no tensor and has no finite real value "
                            "for any allowed size", repr(src(self.text, node)),
                            "keep the arguments of log, sqrt, rsqrt and reciprocal in their "
                            "domain")
        return e

    def name(self, node: ast.Name) -> Expr:
        name = node.id
        kind = self.ns.kind(name)
        if kind is Kind.PARAM:
            return ParamRef(name, self.ns.params[name])
        if kind is Kind.SIZE:
            return SizeRef(name)
        if kind is not None:
            ex = self.shapes.examples.get(name, "i")
            raise self.fail(node, f"tensor '{name}' is used without indices",
                            f"write {name}[{ex}]")
        close = did_you_mean(name, self.ns.names())
        if close is not None or not is_index_name(name):
            raise self.fail(node, f"undefined name '{name}'",
                            close or "declare it under sizes, params, inputs, outputs or temps")
        raise self.fail(node, f"index '{name}' is used as a value but is not a left-hand "
                        "index or bound by a reduction",
                        f"use a left-hand index as a number (y[m, n] = x[m, n] * (m - n)), or "
                        f"sum over it explicitly: sum(e * {name}, {name})")

    def access(self, node: ast.Subscript) -> Access:
        if not isinstance(node.value, ast.Name):
            raise self.fail(node, "only a tensor name can be indexed", "write e.g. a[m, k]")
        name = node.value.id
        kind = self.ns.kind(name)
        if kind is None:
            raise self.fail(node.value, f"undefined tensor '{name}'",
                            did_you_mean(name, self.ns.tensors, "declare it under inputs, "
                                         "outputs or temps"))
        if not kind.is_tensor:
            raise self.fail(node.value, f"'{name}' is {article(kind.value)}; only tensors can be "
                            "indexed",
                            f"use {name} without [...]")
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        rank = self.shapes.ranks[name]
        if self.shapes.rank_mismatch(name, len(items)):
            raise self.fail(node, f"'{name}' has rank {rank} but is accessed with "
                            f"{len(items)} {'index' if len(items) == 1 else 'indices'}",
                            f"write {name}[{self.shapes.examples[name]}]")
        indices = []
        indirect: list[tuple[int, Access]] = []
        for d, item in enumerate(items):
            if isinstance(item, ast.Subscript):
                # spec language 1.1: an indexed read table[ids[t], d] (gather)
                if indirect:
                    raise self.fail(item, "an access takes at most one indexed (gathered) "
                                    "dimension", "gather along one dimension, e.g. "
                                    "table[ids[t], d]")
                inner = self.access(item)
                if inner.indirect:
                    raise self.fail(item, "nested indexed reads are not supported",
                                    "read the ids into a temp first")
                # (an integer temp too: the top-1 expert of a MoE router, idx[t] =
                # argmax(lg[t, e], e), then w[idx[t], d]; fuzz15)
                if self.ns.kind(inner.tensor) not in (Kind.INPUT, Kind.TEMP):
                    raise self.fail(item, f"'{inner.tensor}' gives the ids of an indexed read "
                                    "but is not an input or a temp",
                                    "use an integer input or temp as the ids")
                indirect.append((d, inner))
                indices.append(sympy.Integer(0))
                continue
            if isinstance(item, (ast.Slice, ast.Starred)):
                raise self.fail(item, "slices are not supported; index every dimension with "
                                "an index expression",
                                f"write {name}[{self.shapes.examples[name]}]")
            e = index_expr(self.text, item, self.ns)
            for s in sorted(e.free_symbols, key=lambda s: s.name):
                if is_index_name(s.name) and s.name not in self.bound and s.name not in self.free:
                    self.free.append(s.name)
                    self.free_at[s.name] = char_offset(self.text, item)
            indices.append(e)
        return Access(name, tuple(indices), self.loc(char_offset(self.text, node)),
                      tuple(indirect))

    def compare(self, node: ast.Compare) -> Expr:
        """``a < b`` etc. (spec language 1.1): 1.0 where it holds, else 0.0. An operand that
        names indices outside any access (``n <= m``, ``n == N - 1``) is an index expression."""
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not supported",
                            "compare two operands, e.g. where(j <= i, ...); combine conditions "
                            "by multiplying them: (j <= i) * (i < j + W)")
        op = _CMPS.get(type(node.ops[0]))
        if op is None:
            raise self.fail(node, f"unsupported comparison '{type(node.ops[0]).__name__}'",
                            "use one of < <= == != >= >")
        return Compare(op, self.cmp_operand(node.left), self.cmp_operand(node.comparators[0]))

    def cmp_operand(self, node: ast.expr) -> Expr:
        index_names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                       and self.ns.kind(n.id) is None and is_index_name(n.id)]
        tensors = any(isinstance(n, (ast.Subscript, ast.Call)) for n in ast.walk(node))
        if not index_names or tensors or self.non_integer(node):
            # (a float factor of indices, x[m, n] > 0.001 * (m - n): a value whose index
            # parts are index values, conv's index_only)
            return self.conv(node)
        e = index_expr(self.text, node, self.ns)
        for s in sorted(e.free_symbols, key=lambda s: s.name):
            if is_index_name(s.name) and s.name not in self.bound and s.name not in self.free:
                self.free.append(s.name)
                self.free_at[s.name] = char_offset(self.text, node)
        return IndexValue(e)

    def where(self, node: ast.Call) -> Expr:
        if len(node.args) != 3:
            raise self.fail(node, f"'where' takes 3 arguments, got {len(node.args)}",
                            "write where(cond, a, b), e.g. where(j <= i, s[i, j], -30000.0)")
        return self.choice(node.args[0], self.conv(node.args[1]), self.conv(node.args[2]))

    def choice(self, cond: ast.expr, a: Expr, b: Expr) -> Expr:
        """``where(cond, a, b)``; a condition combining comparisons with ``and``, ``or`` and
        ``not`` (the sliding-window mask ``n <= m and m - n < W``, fuzz15) is the nested
        ``where`` it means: ``where(c1, where(c2, a, b), b)`` for ``c1 and c2``,
        ``where(c1, a, where(c2, a, b))`` for ``c1 or c2``, ``where(c, b, a)`` for ``not c``
        (the same values as the reference's, each comparison lowered as written)."""
        if isinstance(cond, ast.BoolOp):
            first, rest = cond.values[0], cond.values[1:]
            inner = rest[0] if len(rest) == 1 else ast.copy_location(
                ast.BoolOp(op=cond.op, values=rest), rest[0])
            if isinstance(cond.op, ast.And):
                return self.choice(first, self.choice(inner, a, b), b)
            return self.choice(first, a, self.choice(inner, a, b))
        if isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not):
            return self.choice(cond.operand, b, a)
        if not isinstance(cond, ast.Compare):
            raise self.fail(cond, "the condition of 'where' must be a comparison",
                            "write e.g. where(j <= i, a, b) or where(x[m, n] > 0.0, a, b); "
                            "combine comparisons with and, or, not")
        return Where(self.conv(cond), a, b)

    def cumsum(self, node: ast.Call) -> Expr:
        """``cumsum(e, j)`` (spec language 1.1): inclusive running sum of ``e`` along ``j``,
        which stays free (a left-hand index)."""
        if len(node.args) != 2 or not isinstance(node.args[1], ast.Name):
            raise self.fail(node, "'cumsum' takes a body and one index name",
                            "write cumsum(e, j), e.g. y[m, n] = cumsum(x[m, n], n)")
        j = node.args[1].id
        if j not in self.lhs:
            raise self.fail(node.args[1], f"'cumsum' runs along '{j}', which is not an index "
                            "of the left-hand side", "scan along a left-hand index, e.g. "
                            "y[m, n] = cumsum(x[m, n], n)")
        body = self.conv(node.args[0])
        if j not in {s.name for a in accesses(body) for e in a.indices for s in e.free_symbols}:
            raise self.fail(node.args[1], f"'cumsum' runs along '{j}' but its body does not "
                            "use it", f"index a tensor in the body with '{j}'")
        return Scan(j, Const(1.0), body, Const(0.0))

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only the functions of the spec language can be called",
                            "use e.g. exp(x), maximum(a, b), sum(e, j)")
        fname = node.func.id
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"'{fname}' takes positional arguments only",
                            f"write {fname}(...) without '=' or '*'")
        if fname in _REDUCES:
            return self.reduce(node, _REDUCES[fname])
        if fname == "where":
            return self.where(node)
        if fname == "cumsum":
            return self.cumsum(node)
        func = _FUNCS.get(fname)
        if func is None:
            kind = self.ns.kind(fname)
            if kind is not None and kind.is_tensor:
                raise self.fail(node.func, f"tensor '{fname}' is indexed with [...], not called",
                                f"write {fname}[{self.shapes.examples[fname]}]")
            raise self.fail(node.func, f"unknown function '{fname}'",
                            did_you_mean(fname, FUNCTIONS,
                                         "use one of " + ", ".join(sorted(FUNCTIONS))))
        if len(node.args) != func.arity:
            want = "1 argument" if func.arity == 1 else f"{func.arity} arguments"
            raise self.fail(node, f"'{fname}' takes {want}, got {len(node.args)}",
                            f"write {fname}(x)" if func.arity == 1 else f"write {fname}(a, b)")
        return self.defined(node, Call(func, tuple(self.conv(a) for a in node.args)))

    def reduce(self, node: ast.Call, kind: ReduceKind) -> Reduce:
        fname = kind.value
        if len(node.args) < 2:
            raise self.fail(node, f"reduction '{fname}' needs a body and at least one index",
                            f"write {fname}(e, j) to reduce e over j")
        names: list[str] = []
        for arg in node.args[1:]:
            if not isinstance(arg, ast.Name):
                raise self.fail(arg, f"'{fname}' reduces over index names only",
                                f"write {fname}(e, j, k)")
            name = arg.id
            problem = index_name_problem(name, self.ns)
            if problem is not None:
                raise self.fail(arg, problem[0], problem[1])
            if name in names or name in self.bound:
                raise self.fail(arg, f"index '{name}' is bound twice", "reduce over it once")
            if name in self.lhs:
                raise self.fail(arg, f"'{fname}' reduces over '{name}', an index of the "
                                "left-hand side", f"drop '{name}' from the reduction or from "
                                "the left-hand side")
            names.append(name)
        if kind.is_arg and len(names) != 1:
            raise self.fail(node, f"'{fname}' takes one index",
                            f"write {fname}(e, j); for several indices flatten them into one")
        self.bound.extend(names)
        body = self.conv(node.args[0])
        del self.bound[len(self.bound) - len(names):]
        used = {s.name for a in accesses(body) for e in a.indices for s in e.free_symbols}
        for arg, name in zip(node.args[1:], names):
            if name not in used:
                raise self.fail(arg, f"'{fname}' reduces over '{name}' but its body does not "
                                "use it", f"index a tensor in the body with '{name}', or drop it")
        return Reduce(kind, body, tuple(names))


# the right-hand-side whitelist: ast node type -> converter
_RHS_NODES: dict[type, Callable[[_Rhs, Any], Expr]] = {
    ast.Constant: _Rhs.const,
    ast.Name: _Rhs.name,
    ast.Subscript: _Rhs.access,
    ast.UnaryOp: _Rhs.unary,
    ast.BinOp: _Rhs.binop,
    ast.Call: _Rhs.call,
    ast.Compare: _Rhs.compare,
}


def _parse(text: str) -> ast.stmt:
    try:
        mod = ast.parse(text.replace("\n", " "), mode="exec")
        check_depth(text, mod)
    except SyntaxError as e:
        off = (e.offset or 1) - 1 if (e.lineno or 1) == 1 else 0
        raise ExprError(max(off, 0), f"syntax error: {e.msg}", None,
                        "write e.g. c[m, n] += a[m, k] * b[k, n]") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError(0, "statement is too deeply nested", None, "simplify it") from None
    if len(mod.body) != 1:
        raise ExprError(0, "a compute item holds exactly one statement",
                        f"{len(mod.body)} statements", "put each statement in its own item")
    return mod.body[0]


def parse_statement(text: str, position: int, ns: Namespace, shapes: Shapes, loc) -> Statement:
    """One compute item to a Statement; ``loc(offset)`` maps a character offset to a Loc."""
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    try:
        return _statement(body, position, ns, shapes, lambda off: loc(off + lead), text)
    except ExprError as e:
        e.offset += lead
        raise


def _statement(body: str, position: int, ns: Namespace, shapes: Shapes, loc, text: str
               ) -> Statement:
    stmt = _parse(body)
    if isinstance(stmt, ast.Assign):
        if len(stmt.targets) != 1:
            raise ExprError(0, "chained assignment is not supported", None,
                            "write one statement per item")
        target, op = stmt.targets[0], AssignOp.ASSIGN
    elif isinstance(stmt, ast.AugAssign):
        if not isinstance(stmt.op, ast.Add):
            raise ExprError(char_offset(body, stmt), "only '=' and '+=' statements are supported",
                            None, "write T[i] = expr or T[i] += expr")
        target, op = stmt.target, AssignOp.ACCUMULATE
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Compare):
        raise ExprError(0, "a statement assigns with '=' or '+=', not '=='", None,
                        "write e.g. c[m, n] = a[m, n]")
    else:
        raise ExprError(0, "a statement must assign to a tensor", None,
                        "write T[i, j] = expr or T[i, j] += expr")
    tname, lhs = _lhs(body, target, ns, shapes)
    rhs_node = stmt.value
    conv = _Rhs(body, ns, shapes, lhs, loc)
    rhs = conv.conv(rhs_node)
    extra = [i for i in conv.free if i not in lhs]
    if op is AssignOp.ASSIGN and extra:
        i = extra[0]
        close = did_you_mean(i, lhs)
        fix = (f"{close} else " if close else "") + (
            f"use '+=' to sum over '{i}', reduce it with sum(e, {i}), or add it to the left-hand "
            "side")
        raise ExprError(conv.free_at[i], f"index '{i}' appears on the right but not on the left",
                        repr(i), fix)
    if op is AssignOp.ASSIGN and any(a.tensor == tname and _shifted_read(a, lhs)
                                     for a in accesses(rhs)):
        rhs = _recurrence(body, tname, lhs, rhs, op, ns, shapes)
    return Statement(position=position, target=tname, lhs=lhs, op=op, rhs=rhs,
                     sum_indices=tuple(extra) if op is AssignOp.ACCUMULATE else (),
                     text=text, loc=loc(0))


def _shifted_read(a: Access, lhs: tuple[str, ...]) -> bool:
    """``a`` reads the target at the written point shifted along exactly one left-hand index
    by a constant (``h[c, t - 1]``; ``t - 2`` too, which is then reported): a recurrence.
    Other reads of the target elsewhere keep their old meaning (rejected by the planner)."""
    want = [index_symbol(i) for i in lhs]
    if len(a.indices) != len(want):
        return False
    diffs = [sympy.expand(e - w) for e, w in zip(a.indices, want)]
    moved = [x for x in diffs if x != 0]
    return len(moved) == 1 and moved[0].is_Integer


def _recurrence(text: str, target: str, lhs: tuple[str, ...], rhs: Expr, op: AssignOp,
                ns: Namespace, shapes: Shapes) -> Expr:
    """A statement reading its own target (spec language 1.1): a first-order linear recurrence
    ``h[c, t] = a * h[c, t - 1] + b`` along one left-hand index, as a :class:`Scan`. The
    initial value (``h[c, -1]``) is 0 unless the target declares ``initial:``."""
    fix = (f"read {target} only as {target}[{', '.join(lhs)}] with one index minus 1, in a "
           f"sum a * {target}[...] + b, e.g. h[c, t] = a[c, t] * h[c, t - 1] + b[c, t]")
    selfs = [a for a in accesses(rhs) if a.tensor == target]
    first = selfs[0]
    eq = text.find("=")
    at = max(text.find(f"{target}[", eq + 1), 0)     # the self-read, for the diagnostics
    if op is not AssignOp.ASSIGN or len(selfs) != 1:
        raise ExprError(at, f"a recurrence reads {target} once, in an '=' statement",
                        f"{len(selfs)} reads" if len(selfs) != 1 else "'+='", fix)
    want = [index_symbol(i) for i in lhs]
    shifted = [d for d, (e, w) in enumerate(zip(first.indices, want)) if e != w]
    if len(shifted) != 1 or first.indices[shifted[0]] != want[shifted[0]] - 1:
        raise ExprError(at, f"{target} is read at other points than one step back along one "
                        "of its indices", f"{target}[{', '.join(str(i) for i in first.indices)}]",
                        fix)
    split = _split_linear(rhs, first)
    if split is None:
        raise ExprError(at, f"the right-hand side is not first-order linear in "
                        f"{target}[{', '.join(str(i) for i in first.indices)}]", None, fix)
    a, b = split
    index = lhs[shifted[0]]
    return Scan(index, a if a is not None else Const(0.0), b if b is not None else Const(0.0),
                _initial(ns, shapes, target, lhs, index))


def _initial(ns: Namespace, shapes: Shapes, target: str, lhs: tuple[str, ...],
             index: str) -> Expr:
    """The target's ``initial:`` (0 when absent): a number, or an input indexed by the
    left-hand indices other than the scanned one (``h0[c]`` for ``h[c, t]``)."""
    raw = ns.initial.get(target)
    if raw is None:
        return Const(0.0)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return Const(float(raw))
    rest = [i for i in lhs if i != index]
    name = str(raw)
    if ns.kind(name) is not Kind.INPUT:
        raise ExprError(0, f"initial value '{name}' of {target} is not an input", repr(name),
                        f"name an input of shape [{', '.join(i.upper() for i in rest)}] or "
                        "give a number")
    if shapes.rank_mismatch(name, len(rest)):     # it is read as name[rest...]
        raise ExprError(0, f"initial value '{name}' of {target} must have rank {len(rest)}, "
                        f"one dimension per left-hand index but the scanned '{index}'",
                        f"rank {shapes.ranks[name]}",
                        f"declare {name} with shape [{', '.join(i.upper() for i in rest)}]")
    return Access(name, tuple(index_symbol(i) for i in rest))


def _split_linear(e: Expr, x: Access) -> tuple[Expr | None, Expr | None] | None:
    """``e = A * x + B`` with A, B free of ``x``: (A, B), None for a missing part; None when
    ``e`` is not of that form."""
    if e == x:
        return Const(1.0), None
    if not any(y == x for y in accesses(e)):
        return None, e
    if isinstance(e, Neg):
        s = _split_linear(e.operand, x)
        if s is None:
            return None
        return (None if s[0] is None else Neg(s[0])), (None if s[1] is None else Neg(s[1]))
    if isinstance(e, BinOp) and e.op in (BinOpKind.ADD, BinOpKind.SUB):
        left, right = _split_linear(e.lhs, x), _split_linear(e.rhs, x)
        if left is None or right is None:
            return None
        if e.op is BinOpKind.SUB:
            right = (None if right[0] is None else Neg(right[0]),
                     None if right[1] is None else Neg(right[1]))
        if left[0] is not None and right[0] is not None:
            return None
        a = left[0] if left[0] is not None else right[0]
        bs = [v for v in (left[1], right[1]) if v is not None]
        b = bs[0] if len(bs) == 1 else (BinOp(BinOpKind.ADD, bs[0], bs[1]) if bs else None)
        return a, b
    if isinstance(e, BinOp) and e.op in (BinOpKind.MUL, BinOpKind.DIV):
        left, right = _split_linear(e.lhs, x), _split_linear(e.rhs, x)
        if left is None or right is None:
            return None
        if e.op is BinOpKind.MUL and left[0] is None and right[0] is not None:
            left, right, other = right, left, e.lhs
        else:
            other = e.rhs
        if left[0] is None or right[0] is not None:
            return None

        def scale(v: Expr | None) -> Expr | None:
            if v is None:
                return None
            if v == Const(1.0) and e.op is BinOpKind.MUL:
                return other
            return BinOp(e.op, v, other)
        return scale(left[0]), scale(left[1])
    return None


def _lhs(text: str, target: ast.expr, ns: Namespace, shapes: Shapes) -> tuple[str, tuple[str, ...]]:
    if not isinstance(target, ast.Subscript) or not isinstance(target.value, ast.Name):
        got = repr(src(text, target))
        if isinstance(target, ast.Name) and target.id in shapes.ranks:
            n = target.id
            raise ExprError(char_offset(text, target), "the left-hand side must index its tensor",
                            got, f"write {n}[{shapes.examples[n]}] = ...")
        raise ExprError(char_offset(text, target), "the left-hand side must be an indexed tensor",
                        got, "write e.g. c[m, n] = ...")
    name = target.value.id
    off = char_offset(text, target)
    kind = ns.kind(name)
    if kind is None:
        raise ExprError(off, f"undefined tensor '{name}'", repr(name),
                        did_you_mean(name, ns.tensors, "declare it under outputs or temps"))
    if kind is Kind.INPUT:
        raise ExprError(off, f"cannot write input '{name}'; inputs are read-only", repr(name),
                        "write to an output or a temp")
    if not kind.is_tensor:
        raise ExprError(off, f"cannot assign to {kind.value} '{name}'", repr(name),
                        "assign to an output or a temp")
    items = target.slice.elts if isinstance(target.slice, ast.Tuple) else [target.slice]
    lhs: list[str] = []
    for item in items:
        ioff = char_offset(text, item)
        if not isinstance(item, ast.Name):
            raise ExprError(ioff, "left-hand indices must be plain index names",
                            repr(src(text, item)), f"write {name}[{shapes.examples[name]}] and "
                            "move index arithmetic to the right-hand side")
        problem = index_name_problem(item.id, ns)
        if problem is not None:
            raise ExprError(ioff, problem[0], repr(item.id), problem[1])
        if item.id in lhs:
            raise ExprError(ioff, f"left-hand index '{item.id}' is repeated", repr(item.id),
                            "use distinct index names, e.g. c[i, j]")
        lhs.append(item.id)
    rank = shapes.ranks[name]
    if shapes.rank_mismatch(name, len(lhs)):
        raise ExprError(off, f"'{name}' has rank {rank} but the left-hand side has "
                        f"{len(lhs)} {'index' if len(lhs) == 1 else 'indices'}", None,
                        f"write {name}[{shapes.examples[name]}]")
    return name, tuple(lhs)
