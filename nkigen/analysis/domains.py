"""Stage analyze (helper): tensor-free divisors and function arguments stay in their domain.

Input: a parsed spec and its :class:`~nkigen.analysis.prover.SizeDomain`. Output: one located
diagnostic per statement sub-expression that reads no tensor but depends on sizes, and that
nkigen cannot prove to be in its domain for every size the constraints allow: a divisor or a
``reciprocal`` argument must be nonzero, a ``log`` or ``rsqrt`` argument positive, a ``sqrt``
argument nonnegative. (Such a value is computed once per kernel call from the sizes, e.g.
``x[m, n] / (N - 1)``; at ``N = 1`` the kernel would divide by zero.) Values that are out of
their domain for every size (``1 / (N - N)``) are already parse errors
(:func:`nkigen.ir.scalar_value`).
"""

from __future__ import annotations

import sympy

from nkigen.analysis.diag import diag
from nkigen.analysis.printing import expr_text
from nkigen.analysis.prover import SizeDomain, prove_nonneg, prove_positive
from nkigen.diagnostics import Diagnostic
from nkigen.ir import BinOp, BinOpKind, Call, Expr, Func, Spec, scalar_value, walk

# function -> (what its argument must be, the test)
_DOMAIN = {
    Func.RECIPROCAL: "nonzero",
    Func.LOG: "positive",
    Func.RSQRT: "positive",
    Func.SQRT: "nonnegative",
}


def _holds(need: str, v: sympy.Expr, dom: SizeDomain) -> bool:
    if need == "nonzero":
        return prove_positive(v, dom) or prove_positive(-v, dom)
    if need == "positive":
        return prove_positive(v, dom)
    return prove_nonneg(v, dom).proven


def _checked(e: Expr) -> list[tuple[str, str, Expr]]:
    """(what, requirement, operand) for each domain-restricted operand in ``e``."""
    out = []
    for x in walk(e):
        if isinstance(x, BinOp) and x.op is BinOpKind.DIV:
            out.append(("divisor", "nonzero", x.rhs))
        elif isinstance(x, Call) and x.func in _DOMAIN:
            out.append((f"argument of {x.func.value}", _DOMAIN[x.func], x.args[0]))
    return out


def domain_diagnostics(spec: Spec, dom: SizeDomain) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for st in spec.statements:
        for what, need, operand in _checked(st.rhs):
            v = scalar_value(operand)
            if v is None or not v.free_symbols or _holds(need, v, dom):
                continue
            diags.append(diag(
                st.loc, f"compute[{st.position}]",
                f"cannot prove the {what} is {need} for every allowed size",
                expr_text(v),
                "constrain the sizes (e.g. a larger `min:`) so it is, or compute it from a "
                "tensor"))
    return diags
