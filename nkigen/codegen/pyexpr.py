"""Print sympy expressions of generated variables as Python source.

Stage: render (helper). Input: integer or real sympy expressions whose symbols are validated
generated identifiers; output: deterministic Python expression text (``//`` for floor division,
``min``/``max`` for Min/Max, exact ``repr`` for floats, ``math.inf`` for infinities).
"""

from __future__ import annotations

import sympy

from nkigen.codegen.names import checked

MEMO_LIMIT = 8192    # remembered printings before the memo is emptied
_MEMO: dict[sympy.Basic, str] = {}


def py(e: sympy.Expr | int | float) -> str:
    """Python source for ``e``; raises ValueError on anything outside the supported subset.
    Remembered per expression (sympy expressions compare structurally: type, value and
    symbol assumptions), since a kernel prints the same index expressions many times."""
    x = e if isinstance(e, sympy.Basic) else sympy.sympify(e)
    hit = _MEMO.get(x)
    if hit is None:
        if len(_MEMO) >= MEMO_LIMIT:
            _MEMO.clear()
        hit = _MEMO[x] = _p(x, 0)
    return hit


# precedence: 0 = expression, 1 = additive operand, 2 = multiplicative operand, 3 = atom
def _wrap(s: str, mine: int, ctx: int) -> str:
    return f"({s})" if mine < ctx else s


def _p(e: sympy.Expr, ctx: int) -> str:
    if e.is_Integer:
        v = int(e)
        return _wrap(str(v), 1 if v < 0 else 3, ctx)
    if e.is_Rational:
        return _wrap(f"{e.p} / {e.q}", 2, ctx)
    if e.is_Float:
        fv = float(e)
        return _wrap(repr(fv), 1 if fv < 0 else 3, ctx)
    if e.is_Symbol:
        return checked(e.name, "generated variable")
    if e is sympy.S.Infinity or e is sympy.S.NegativeInfinity:
        # an IEEE infinity (the identity of max/min, the pad of argmax): Python's math.inf,
        # a float evaluated at trace time like math.pi (NKI values include "32-bit IEEE
        # floating-point values": SH nki/get-started/nki-language-guide.rst "NKI Values")
        return "math.inf" if e is sympy.S.Infinity else _wrap("-math.inf", 1, ctx)
    if isinstance(e, sympy.floor):
        num, den = e.args[0].as_numer_denom()
        return _wrap(f"{_p(num, 2)} // {_p(den, 3)}", 1, ctx)   # never a bare factor
    if isinstance(e, sympy.ceiling):
        num, den = e.args[0].as_numer_denom()
        return _wrap(f"-(-{_p(num, 3)} // {_p(den, 3)})", 1, ctx)
    if isinstance(e, (sympy.Min, sympy.Max)):
        fn = "min" if isinstance(e, sympy.Min) else "max"
        args = sorted(e.args, key=sympy.default_sort_key)
        return f"{fn}({', '.join(_p(a, 0) for a in args)})"
    if isinstance(e, sympy.Mod):
        return _wrap(f"{_p(e.args[0], 2)} % {_p(e.args[1], 3)}", 1, ctx)
    if e.is_Add:
        terms = sympy.Add.make_args(e)
        # positive terms first (symbols before numbers), then negatives
        terms = sorted(terms, key=lambda t: (t.as_coeff_Mul()[0].is_negative, t.is_Number,
                                             sympy.default_sort_key(t)))
        out = ""
        for i, t in enumerate(terms):
            c, rest = t.as_coeff_Mul()
            if c.is_negative:
                body = _p(-t, 2)
                out += f" - {body}" if i else f"-{body}"
            else:
                body = _p(t, 1)
                out += f" + {body}" if i else body
        return _wrap(out, 1, ctx)
    if e.is_Mul:
        c, rest = e.as_coeff_Mul()
        if c.is_negative:
            return _wrap(f"-{_p(-e, 2)}", 1, ctx)
        num, den = [], []
        for f in sympy.Mul.make_args(e):
            if f.is_Pow and f.exp.is_negative:
                den.append(f.base if f.exp == -1 else sympy.Pow(f.base, -f.exp))
            elif f.is_Rational and not f.is_Integer:
                if f.p != 1:
                    num.append(sympy.Integer(f.p))
                den.append(sympy.Integer(f.q))
            else:
                num.append(f)
        # one factor order whether or not sympy evaluated the product: numbers first, then
        # by name (module constants, in capitals, before loop variables)
        num.sort(key=lambda f: (not f.is_Number, sympy.default_sort_key(f)))
        s = " * ".join(_p(f, 2) for f in num) if num else "1"
        for d in den:
            s += f" / {_p(d, 3)}"
        return _wrap(s, 2, ctx)
    if e.is_Pow:
        if e.exp.is_Integer and int(e.exp) > 0:
            return _wrap(f"{_p(e.base, 3)} ** {int(e.exp)}", 2, ctx)
        if e.exp.is_negative:
            return _wrap(f"1 / {_p(sympy.Pow(e.base, -e.exp), 3)}", 2, ctx)
        if e.exp == sympy.Rational(1, 2):
            return f"math.sqrt({_p(e.base, 0)})"
        if e.exp == -sympy.Rational(1, 2):
            return _wrap(f"1 / math.sqrt({_p(e.base, 0)})", 2, ctx)
    if isinstance(e, sympy.exp):
        return f"math.exp({_p(e.args[0], 0)})"
    if isinstance(e, sympy.log):
        return f"math.log({_p(e.args[0], 0)})"
    if isinstance(e, sympy.tanh):
        return f"math.tanh({_p(e.args[0], 0)})"
    if isinstance(e, sympy.erf):
        return f"math.erf({_p(e.args[0], 0)})"
    if isinstance(e, sympy.Abs):
        return f"abs({_p(e.args[0], 0)})"
    if e is sympy.pi:
        return "math.pi"
    raise ValueError(f"cannot print {e!r} as generated Python")
