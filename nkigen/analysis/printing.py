"""Stage analyze (helper): sympy expressions -> text in the spec's own notation.

Input: a size or index expression. Output: a string where ``floor(p/q)`` reads ``(p) // q`` and
``Mod(p, q)`` reads ``(p) % q`` as a spec author writes them; everything else prints as sympy
prints it.
"""

from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter


class _SpecPrinter(StrPrinter):
    def _print_floor(self, e: sympy.floor) -> str:
        p, q = sympy.fraction(sympy.together(e.args[0]))
        if q != 1 and q.is_Integer:
            num = self._print(sympy.expand(p))
            if not (p.is_Symbol or p.is_Integer):
                num = f"({num})"
            return f"{num} // {q}"
        return f"floor({self._print(e.args[0])})"

    def _print_Mod(self, e: sympy.Mod) -> str:
        a, q = e.args
        num = self._print(a)
        if not (a.is_Symbol or a.is_Integer):
            num = f"({num})"
        return f"{num} % {self._print(q)}"

    def _print_Mul(self, e: sympy.Mul) -> str:
        if not any(isinstance(a, sympy.floor) for a in e.args):
            return super()._print_Mul(e)
        c, rest = e.as_coeff_Mul()
        factors = [f"({self._print(a)})" if isinstance(a, sympy.floor)
                   else self.parenthesize(a, PRECEDENCE["Mul"]) for a in sympy.Mul.make_args(rest)]
        head = "-" if c == -1 else "" if c == 1 else f"{self._print(c)}*"
        return head + "*".join(factors)


_PRINTER = _SpecPrinter()


def expr_text(e: object) -> str:
    return _PRINTER.doprint(sympy.sympify(e))
