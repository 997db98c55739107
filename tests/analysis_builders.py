"""Test helper: build Spec IR by hand (independent of the YAML front end)."""

from __future__ import annotations

import re

import sympy

from nkigen.diagnostics import Loc
from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Param,
    Role,
    Schedule,
    SizeDecl,
    Spec,
    Statement,
    TensorDecl,
    Tests,
    index_symbol,
    size_symbol,
)

F32 = DType.float32
BF16 = DType.bfloat16


def sym(expr: str) -> sympy.Expr:
    """Parse a size/index expression: upper-case names are sizes, lower-case are indices."""
    names: dict[str, object] = {"floor": sympy.floor, "ceiling": sympy.ceiling}
    for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr):
        if n not in names:
            names[n] = size_symbol(n) if n[0].isupper() else index_symbol(n)
    return sympy.sympify(expr, locals=names)


def acc(tensor: str, *idx: str, line: int = 0) -> Access:
    return Access(tensor, tuple(sym(i) for i in idx), Loc("t.yaml", line, 3) if line else None)


def mul(a, b):
    return BinOp(BinOpKind.MUL, a, b)


def tensor(name: str, role: Role, *shape, dtype=F32) -> TensorDecl:
    return TensorDecl(name, role, tuple(sym(str(s)) for s in shape), dtype, Loc("t.yaml", 2, 3))


def stmt(pos: int, target: str, lhs: tuple[str, ...], rhs, op=AssignOp.ASSIGN,
         sums: tuple[str, ...] = (), text: str = "") -> Statement:
    return Statement(pos, target, lhs, op, rhs, sums, text or f"stmt{pos}",
                     Loc("t.yaml", 20 + pos, 5))


def size(name: str, line: int = 5, **kw) -> SizeDecl:
    if "value" in kw and kw["value"] is not None:
        kw["value"] = sym(str(kw["value"]))
    return SizeDecl(name, loc=Loc("t.yaml", line, 3), **kw)


def spec(sizes, inputs, outputs, statements, temps=(), params=(), ranges=(), schedule=None,
         cases=(), target=None, locs=()) -> Spec:
    return Spec(
        name="k", doc="", target=target, sizes=tuple(sizes), params=tuple(params),
        inputs=tuple(inputs), outputs=tuple(outputs), temps=tuple(temps),
        statements=tuple(statements),
        ranges=tuple((n, sym(v)) for n, v in ranges),
        schedule=schedule or Schedule(),
        tests=Tests(cases=tuple(tuple(sorted(c.items())) for c in cases)),
        path="t.yaml", loc=Loc("t.yaml", 1, 1), locs=tuple(locs),
    )


def matmul(M=None, K=None, N=None, schedule=None, cases=(), b_shape=("K", "N")) -> Spec:
    I, O = Role.INPUT, Role.OUTPUT
    return spec(
        [size("M", 3, **(M or {})), size("K", 4, **(K or {})), size("N", 5, **(N or {}))],
        [tensor("a", I, "M", "K", dtype=BF16), tensor("b", I, *b_shape, dtype=BF16)],
        [tensor("c", O, "M", "N")],
        [stmt(0, "c", ("m", "n"), mul(acc("a", "m", "k", line=20), acc("b", "k", "n", line=20)),
              AssignOp.ACCUMULATE, ("k",), "c[m, n] += a[m, k] * b[k, n]")],
        schedule=schedule, cases=cases)


def conv1d(stride=2, x_extra="", ranges=(("r", "R"),), out_value=None, r_max=None) -> Spec:
    I, O = Role.INPUT, Role.OUTPUT
    value = out_value or f"floor((H - R) / {stride}) + 1"
    return spec(
        [size("H", 3), size("R", 4, max=r_max) if r_max else size("R", 4),
         size("O", 5, value=value)],
        [tensor("x", I, "H"), tensor("w", I, "R")],
        [tensor("y", O, "O")],
        [stmt(0, "y", ("o",), mul(acc("x", f"o * {stride} + r{x_extra}", line=20),
                                  acc("w", "r", line=20)),
              AssignOp.ACCUMULATE, ("r",), f"y[o] += x[o * {stride} + r{x_extra}] * w[r]")],
        params=(Param("S", stride),), ranges=ranges)
