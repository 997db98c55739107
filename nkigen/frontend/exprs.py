"""Integer expressions to sympy, via Python's ``ast`` and a whitelist (stage: parse).

Input: the text of a size expression (``"(H - R) // S + 1"``, a shape entry ``"H * 2"``) or the
``ast`` of one index expression inside a statement (``h * S + r``). Output: a sympy expression
over :func:`~nkigen.ir.size_symbol` s (and, for index expressions, affine in
:func:`~nkigen.ir.index_symbol` s); integer params are substituted by their values.

User text is never given to ``eval`` or ``sympify``: only the node types below are accepted.
Problems raise :class:`ExprError` carrying the character offset of the offending sub-expression.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy

from nkigen.frontend.names import (
    Kind,
    Namespace,
    article,
    did_you_mean,
    reserved_reason,
)
from nkigen.ir import index_symbol, is_index_name, size_symbol


class ExprError(Exception):
    """A problem at character ``offset`` of the expression's text."""

    def __init__(self, offset: int, rule: str, got: str | None = None, fix: str | None = None):
        super().__init__(rule)
        self.offset = offset
        self.node: ast.AST | None = None    # the offending sub-expression, when known
        self.rule = rule
        self.got = got
        self.fix = fix


def char_offset(text: str, node: ast.AST) -> int:
    """``ast`` column offsets count UTF-8 bytes; convert to characters."""
    col = getattr(node, "col_offset", 0)
    return len(text.encode("utf-8")[:col].decode("utf-8", "ignore"))


def src(text: str, node: ast.AST) -> str:
    return ast.get_source_segment(text, node) or ast.unparse(node)


MAX_INT64 = 2 ** 63 - 1   # integer constants of size and index expressions


def short_number(text: str) -> str:
    """A number literal as written, shortened when it is very long."""
    return repr(text) if len(text) <= 30 else f"'{text[:6]}...' ({len(text)} characters)"


MAX_DEPTH = 100   # nesting of operators and calls; later stages walk expressions recursively


def check_depth(text: str, tree: ast.AST) -> None:
    """Reject expressions nested deeper than MAX_DEPTH (measured without recursion)."""
    stack = [(tree, 0)]
    first: int | None = None
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH and isinstance(node, ast.expr):
            off = char_offset(text, node)
            first = off if first is None else min(first, off)
            continue
        stack.extend((child, depth + isinstance(child, ast.expr))
                     for child in ast.iter_child_nodes(node))
    if first is not None:
        raise ExprError(first, "expression is nested too deeply", f"more than {MAX_DEPTH} levels",
                        "split it into several statements through a temp")


def parse_eval(text: str) -> ast.expr:
    """Parse one expression, turning syntax errors into :class:`ExprError`."""
    try:
        tree = ast.parse(text, mode="eval").body
        check_depth(text, tree)
        return tree
    except SyntaxError as e:
        fix = "write an integer expression such as \"(H - R) // S + 1\""
        if len(text.split()) > 1 and all(w.isidentifier() for w in text.split()):
            fix = f"separate dimensions with commas: [{', '.join(text.split())}]"
        raise ExprError(max((e.offset or 1) - 1, 0), f"syntax error: {e.msg}", repr(text),
                        fix) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError(0, "expression is too deeply nested", None, "simplify it") from None


def has_index(e: sympy.Expr) -> bool:
    return any(is_index_name(s.name) for s in e.free_symbols)


Resolver = Callable[[ast.Name], sympy.Expr]


class _IntExpr:
    """ast -> sympy for integer expressions; ``index`` True allows (affine) index symbols."""

    def __init__(self, text: str, resolve: Resolver, index: bool):
        self.text = text
        self.resolve = resolve
        self.index = index

    def fail(self, node: ast.AST, rule: str, fix: str | None = None) -> ExprError:
        return ExprError(char_offset(self.text, node), rule, repr(src(self.text, node)), fix)

    def nonaffine(self, node: ast.AST) -> ExprError:
        e = self.fail(node, "index expression is not affine",
                      "use an integer combination of indices, integer params and sizes plus a "
                      "constant, e.g. h * S + r")
        e.node = node
        return e

    def conv(self, node: ast.expr) -> sympy.Expr:
        """Dispatch on the node type (the whitelist); anything else is an error."""
        handler = _INT_NODES.get(type(node))
        if handler is None and isinstance(node, ast.Subscript) and self.index:
            # a tensor read inside a larger index (table[ids[t] + 1, d]): an indexed read
            # takes the ids as the whole index (spec language 1.1 "indexed read") (fuzz9)
            raise self.fail(node, "a tensor read inside an index expression: an indexed read "
                            "takes the ids as the whole index of its dimension",
                            "write e.g. table[ids[t], d] and offset the ids in the input")
        if handler is None:
            raise self.fail(node, "unsupported syntax in an integer expression",
                            "use names, integers, + - * // % and parentheses")
        return handler(self, node)

    def const(self, node: ast.Constant) -> sympy.Expr:
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            if abs(node.value) > MAX_INT64:
                raise ExprError(char_offset(self.text, node), "integer constant does not fit "
                                f"in 64 bits (|value| <= {MAX_INT64})",
                                short_number(src(self.text, node)), "use a smaller integer")
            return sympy.Integer(node.value)
        if isinstance(node.value, float) and self.index:
            raise self.fail(node, "index expressions take integer coefficients only",
                            "use an integer")
        raise self.fail(node, "only integer constants are allowed here", "use an integer")

    def name(self, node: ast.Name) -> sympy.Expr:
        return self.resolve(node)

    def unary(self, node: ast.UnaryOp) -> sympy.Expr:
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise self.fail(node, "unsupported unary operator", "use unary '-' only")
        v = self.conv(node.operand)
        return -v if isinstance(node.op, ast.USub) else v

    def binop(self, node: ast.BinOp) -> sympy.Expr:
        op = _INT_OPS.get(type(node.op))
        if op is None:
            if self.index:
                raise self.nonaffine(node)
            rule, fix = _NO_INT_OPS.get(type(node.op), (
                "unsupported operator in an integer expression", "use + - * // % and parentheses"))
            raise self.fail(node, rule, fix)
        a, b = self.conv(node.left), self.conv(node.right)
        if self.index and op.divides and has_index(a) and not has_index(b):
            return self.quasi_affine(node, op, a, b)
        if self.index and not op.affine(has_index(a), has_index(b)):
            raise self.nonaffine(node)
        if op.divides and b == 0:
            raise self.fail(node.right, "division by zero", "divide by a positive number")
        out = op.apply(a, b)
        if any(abs(c) > MAX_INT64 for c in sympy.expand(out).atoms(sympy.Integer)):
            raise self.fail(node, f"integer arithmetic exceeds 64 bits (|value| <= {MAX_INT64})",
                            "use smaller constants")
        return out


    def quasi_affine(self, node: ast.BinOp, op: _IntOp, a: sympy.Expr,
                     b: sympy.Expr) -> sympy.Expr:
        """``index_expr // c`` or ``index_expr % c`` (spec language 1.1): ``c`` a positive
        integer constant (an integer literal or integer param), ``index_expr`` affine (no
        nested ``//`` or ``%``)."""
        sym = "//" if isinstance(node.op, ast.FloorDiv) else "%"
        if not (b.is_Integer and b > 0):
            raise self.fail(node.right, f"'{sym}' in an index expression divides by a positive "
                            "integer constant only",
                            "use an integer literal or an integer param, e.g. h // 4")
        if a.atoms(sympy.floor, sympy.Mod):
            raise self.fail(node, "nested '//' or '%' in an index expression",
                            "combine the divisions into one, e.g. (h // 2) // 2 -> h // 4")
        return op.apply(a, b)


@dataclass(frozen=True)
class _IntOp:
    """An integer operator: how to apply it, and when the result stays affine in the indices
    (given whether each operand involves an index)."""

    apply: Callable[[sympy.Expr, sympy.Expr], sympy.Expr]
    affine: Callable[[bool, bool], bool]
    divides: bool = False


_INT_OPS: dict[type, _IntOp] = {
    ast.Add: _IntOp(lambda a, b: a + b, lambda x, y: True),
    ast.Sub: _IntOp(lambda a, b: a - b, lambda x, y: True),
    ast.Mult: _IntOp(lambda a, b: a * b, lambda x, y: not (x and y)),
    ast.FloorDiv: _IntOp(lambda a, b: sympy.floor(a / b), lambda x, y: not (x or y), True),
    ast.Mod: _IntOp(lambda a, b: sympy.Mod(a, b), lambda x, y: not (x or y), True),
}
# operators of Python that integer expressions do not have: (rule, fix)
_NO_INT_OPS: dict[type, tuple[str, str]] = {
    ast.Div: ("'/' is not integer division", "use // (floor division)"),
    ast.Pow: ("'**' is not supported in size expressions", "write H * H"),
}
_INT_NODES: dict[type, Callable[[_IntExpr, Any], sympy.Expr]] = {
    ast.Constant: _IntExpr.const,
    ast.Name: _IntExpr.name,
    ast.UnaryOp: _IntExpr.unary,
    ast.BinOp: _IntExpr.binop,
}


def _size_or_param(name: str, ns: Namespace, node: ast.Name, text: str, where: str) -> sympy.Expr:
    off = char_offset(text, node)
    kind = ns.kind(name)
    if kind is Kind.SIZE:
        return size_symbol(name)
    if kind is Kind.PARAM:
        if name in ns.int_params:
            return sympy.Integer(ns.int_params[name])
        raise ExprError(off, f"param '{name}' is not an integer, so it cannot be used {where}",
                        repr(ns.params.get(name)), "make it an integer param")
    if kind is not None:
        raise ExprError(off, f"'{name}' is {article(kind.value)}; it cannot be used {where}",
                        repr(name), "use size names, integer params and integers")
    return _undefined(name, ns, off)


def _undefined(name: str, ns: Namespace, off: int) -> sympy.Expr:
    fix = did_you_mean(name, ns.names(Kind.SIZE, Kind.PARAM),
                       "declare it under 'sizes:' (upper-case) or 'params:'")
    raise ExprError(off, f"undefined name '{name}'", repr(name), fix)


def size_expr(text: str, ns: Namespace) -> sympy.Expr:
    """A quoted size expression (shape entry, ``value:``, ``ranges:``) to sympy."""
    node = parse_eval(text)

    def resolve(n: ast.Name) -> sympy.Expr:
        return _size_or_param(n.id, ns, n, text, "in a size expression")

    return _IntExpr(text, resolve, index=False).conv(node)


def index_expr(text: str, node: ast.expr, ns: Namespace) -> sympy.Expr:
    """One index expression of a statement (``node`` parsed from ``text``) to affine sympy."""

    def resolve(n: ast.Name) -> sympy.Expr:
        name = n.id
        kind = ns.kind(name)
        if kind is Kind.SIZE or kind is Kind.PARAM:
            return _size_or_param(name, ns, n, text, "in an index expression")
        off = char_offset(text, n)
        if kind is not None:
            raise ExprError(off, f"'{name}' is {article(kind.value)}, not an index", repr(name),
                            "index a tensor with index names, e.g. a[m, k]")
        if not is_index_name(name):
            return _undefined(name, ns, off)
        why = reserved_reason(name)
        if why is not None:
            raise ExprError(off, f"index name {why}", repr(name), f"rename it, e.g. '{name}_'")
        return index_symbol(name)

    try:
        return sympy.expand(_IntExpr(text, resolve, index=True).conv(node))
    except ExprError as e:
        if e.node is not None:
            _hint_misspelt_param(e, e.node, ns)
        raise


def _hint_misspelt_param(e: ExprError, node: ast.AST, ns: Namespace) -> None:
    """``x[o * s + r]`` with param ``S``: the product looks non-affine only because ``s`` was
    taken for an index. Point at the param it probably means."""
    declared = {n.lower(): n for n in ns.names(Kind.PARAM)}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and ns.kind(sub.id) is None and sub.id in declared:
            e.fix = (f"did you mean '{declared[sub.id]}'? ('{sub.id}' is taken as an index; "
                     "names are case-sensitive)")
            return
