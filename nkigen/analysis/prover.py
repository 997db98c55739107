"""Stage analyze (helper): prove ``expr >= 0`` for every size assignment a spec allows.

Input: a sympy expression over size symbols (free or derived) and a :class:`SizeDomain` built
from the size declarations. Output: a :class:`Verdict` (proven or not, with the steps as text).

The test is sound and deliberately simple, built from linear steps only (no ``simplify``/``solve``):

1. derived sizes are replaced by their definitions over free sizes;
2. each ``floor(p/q)`` / ``ceiling(p/q)`` whose coefficient has a provable sign is replaced by
   the bound that can only make the expression smaller (``(p-q+1)/q <= floor(p/q) <= p/q``);
3. the result, a fraction with a provably positive denominator, has its numerator written in
   shifted variables ``s = m*(ceil(min/m) + u)``, ``u >= 0``; all coefficients >= 0 proves it;
4. failing that, one linear consequence ``h >= 0`` of the constraints (a max, a derived size's
   min) is used to eliminate a variable through a slack ``t = h >= 0``, and step 3 is retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import sympy

from nkigen.analysis.printing import expr_text

_FLOORS = (sympy.floor, sympy.ceiling)


@dataclass(frozen=True)
class SizeDomain:
    """The allowed sizes: free sizes with (multiple, min, max); derived ones by definition."""

    free: tuple[tuple[sympy.Symbol, int, int, int | None], ...]
    derived: tuple[tuple[sympy.Symbol, sympy.Expr], ...]   # definitions over free sizes only
    hypotheses: tuple[sympy.Expr, ...] = ()                 # linear in free sizes, each >= 0

    @cached_property
    def derived_map(self) -> dict[sympy.Symbol, sympy.Expr]:
        return dict(self.derived)

    @cached_property
    def free_map(self) -> dict[sympy.Symbol, tuple[int, int, int | None]]:
        return {s: (m, lo, hi) for s, m, lo, hi in self.free}

    @cached_property
    def multiples(self) -> dict[sympy.Symbol, int]:
        return {s: m for s, m, _, _ in self.free if m > 1}

    def resolve(self, e: sympy.Expr) -> sympy.Expr:
        """``e`` with every derived size replaced by its definition over free sizes, and every
        ``floor``/``ceiling``/``Mod`` that a size's ``multiple_of`` makes exact replaced by its
        value (``floor((H - 1) / 2)`` is ``H/2 - 1`` when ``H`` is a multiple of 2)."""
        e = sympy.sympify(e)
        if self.derived:
            e = e.xreplace(self.derived_map)
        return self._exact_floors(e) if self.multiples else e

    def _exact_floors(self, e: sympy.Expr) -> sympy.Expr:
        """Each floor-like atom rewritten with ``S = m * q`` (``q`` a positive integer) for the
        sizes ``S`` declared ``multiple_of: m``; kept when it is then floor-free (an identity
        for every allowed size), else left as it was."""
        reps: dict = {}
        for f in e.atoms(*_FLOORS, sympy.Mod):
            syms = f.free_symbols & self.multiples.keys()
            if not syms:
                continue
            qs = {s: sympy.Dummy(f"{s}_q", integer=True, positive=True) for s in syms}
            g = f.xreplace({s: self.multiples[s] * q for s, q in qs.items()})
            if g.atoms(*_FLOORS, sympy.Mod):
                continue
            reps[f] = g.xreplace({q: s / self.multiples[s] for s, q in qs.items()})
        return e.xreplace(reps) if reps else e


@dataclass(frozen=True)
class Verdict:
    proven: bool
    steps: tuple[str, ...] = ()


def prove_nonneg(e: sympy.Expr, dom: SizeDomain) -> Verdict:
    """Is ``e >= 0`` for all allowed sizes? Sound: True only with a proof."""
    return _prove(sympy.sympify(e), dom)


def prove_equal(a: sympy.Expr, b: sympy.Expr, dom: SizeDomain) -> bool:
    """``a == b`` for all allowed sizes: the difference expands to 0 (after resolving derived
    sizes), or is provably both >= 0 and <= 0."""
    d = sympy.expand(sympy.sympify(a) - sympy.sympify(b))
    if d == 0:
        return True
    d = sympy.expand(dom.resolve(d))
    if d == 0:
        return True
    return _prove(d, dom).proven and _prove(-d, dom).proven


def sign_of(e: sympy.Expr, dom: SizeDomain) -> int | None:
    """+1 if provably >= 0, -1 if provably <= 0 (and not 0), None when unknown."""
    e = sympy.sympify(e)
    if e.is_number:
        return 1 if e >= 0 else -1
    if _prove(e, dom).proven:
        return 1
    if _prove(-e, dom).proven:
        return -1
    return None


@lru_cache(maxsize=4096)
def _prove(e: sympy.Expr, dom: SizeDomain) -> Verdict:
    if e.is_number:
        return Verdict(bool(e >= 0), (f"{e} >= 0",) if e >= 0 else ())
    steps: list[str] = []
    r = dom.resolve(e)
    if r != e:
        steps.append(f"derived sizes substituted: {expr_text(sympy.expand(r))} >= 0")
    m = merge_floors(r)
    if m != r:
        steps.append(f"floor(x + k) = floor(x) + k for integers k: {expr_text(m)} >= 0")
        r = m
    ex = exact_floor(r, dom)
    if ex is not None:
        got = _prove(ex, dom)
        if got.proven:
            return Verdict(True, tuple(steps) + (
                f"one floor/ceiling of integers beside an integer: the same as "
                f"{expr_text(ex)} >= 0",) + got.steps)
    notes: list[str] = []
    low = drop_floors(r, dom, lower=True, notes=notes)
    if low is None:
        return Verdict(False, tuple(steps))
    if low != r:
        steps.append(f"using {', '.join(notes)}: {sympy.expand(low)} >= 0")
    num, den = sympy.fraction(sympy.together(low))
    den = sympy.expand(den)
    if not _orthant(den, dom, strict=True):
        if _orthant(-den, dom, strict=True):
            num = -num
        else:
            return Verdict(False, tuple(steps))
    num = sympy.expand(num)
    if _orthant(num, dom):
        steps.append(_certificate_text(num, dom))
        return Verdict(True, tuple(steps))
    for h in dom.hypotheses:
        for var, coef in _linear_vars(h):
            t = sympy.Dummy(f"t_{var}", integer=True, nonnegative=True)
            sub = (t - (h - coef * var)) / coef
            n2 = sympy.expand(sympy.fraction(sympy.together(num.xreplace({var: sub})))[0])
            if _orthant(n2, dom, slack=(t,)):
                shown = n2.xreplace({t: sympy.Symbol("t")})
                steps.append(f"using {h} >= 0 (slack t = {h}): {shown} >= 0 for t >= 0")
                return Verdict(True, tuple(steps))
    return Verdict(False, tuple(steps))


def merge_floors(e: sympy.Expr) -> sympy.Expr:
    """``e`` with two floors (or two ceilings) whose arguments differ by an integer ``k``
    written as one: ``floor(x + k) = floor(x) + k`` for every real ``x`` (an identity, so the
    result equals ``e`` everywhere). ``floor((N + 1) / 2) - 1 - floor((N - 1) / 2)`` is 0."""
    e = sympy.expand(e)
    for _ in range(8):
        atoms = sorted(e.atoms(*_FLOORS), key=str)
        for i, f in enumerate(atoms):
            g = next((g for g in atoms[i + 1:] if type(g) is type(f)
                      and sympy.expand(f.args[0] - g.args[0]).is_Integer), None)
            if g is not None:
                e = sympy.expand(e.xreplace({f: g + sympy.expand(f.args[0] - g.args[0])}))
                break
        else:
            return e
    return e


def exact_floor(e: sympy.Expr, dom: SizeDomain) -> sympy.Expr | None:
    """A floor-free expression that is >= 0 exactly when ``e`` is, for ``e = +-f + b`` with
    ``f`` the one ``floor(p / q)`` or ``ceiling(p / q)`` of ``e`` (``p``, ``q`` integer
    polynomials, ``q`` provably positive) and ``b`` an integer polynomial; else None. For an
    integer ``b``: ``floor(x) >= -b`` iff ``x >= -b``; ``floor(x) <= b`` iff ``x < b + 1``;
    ``ceiling(x) >= -b`` iff ``x > -b - 1``; ``ceiling(x) <= b`` iff ``x <= b`` (then times
    ``q``, and ``p < n`` as ``p <= n - 1`` for integers). :func:`drop_floors` bounds a floor
    by its argument, which is weaker by up to ``(q - 1) / q``: ``204 - floor((M - 1) / 5)``
    at ``M <= 1024`` holds, but ``204 - (M - 1) / 5`` does not."""
    atoms = list(e.atoms(*_FLOORS))
    if len(atoms) != 1:
        return None
    f = atoms[0]
    z = sympy.Dummy("z")
    ez = sympy.expand(e.xreplace({f: z}))
    a, b = ez.coeff(z, 1), ez.coeff(z, 0)
    if sympy.expand(ez - a * z - b) != 0 or a not in (1, -1) or b.has(z) or \
            not _integer_poly(b):
        return None
    p, q = sympy.fraction(sympy.together(f.args[0]))
    p, q = sympy.expand(p), sympy.expand(q)
    if not (_integer_poly(p) and _integer_poly(q)) or not _orthant(q, dom, strict=True):
        return None
    if isinstance(f, sympy.floor):
        return sympy.expand(p + q * b if a == 1 else q * (b + 1) - p - 1)
    return sympy.expand(p + q * (b + 1) - 1 if a == 1 else q * b - p)


def drop_floors(e: sympy.Expr, dom: SizeDomain, lower: bool,
                notes: list[str] | None = None) -> sympy.Expr | None:
    """A floor-free expression that is <= e (``lower``) or >= e everywhere; None if the sign of
    a floor's coefficient cannot be proven. ``notes`` collects the bounds used."""
    for _ in range(16):
        atoms = [a for a in e.atoms(*_FLOORS) if not a.args[0].atoms(*_FLOORS)]
        if not atoms:
            return e
        f = min(atoms, key=str)
        z = sympy.Dummy("z")
        ez = sympy.expand(e.xreplace({f: z}))
        if any(a.has(z) for a in ez.atoms(*_FLOORS)):
            return None
        a, b = ez.coeff(z, 1), ez.coeff(z, 0)
        if sympy.expand(ez - a * z - b) != 0:
            return None     # not linear in the floor
        if a == 0:
            e = b
            continue
        s = sign_of(a, dom)
        if s is None:
            return None
        p, q = sympy.fraction(sympy.together(f.args[0]))
        if not _orthant(sympy.expand(q), dom, strict=True):
            return None
        x = f.args[0]
        if _integer_poly(p) and _integer_poly(q):   # integers p, q > 0: tighter by 1/q
            slack = (q - 1) / q
        else:                                       # any real x: x - 1 < floor(x) <= x
            slack = sympy.Integer(1)
        if isinstance(f, sympy.floor):
            lo, hi = x - slack, x
        else:
            lo, hi = x, x + slack
        use_lo = (s > 0) == lower
        if notes is not None:
            bound = lo if use_lo else hi
            notes.append(f"{expr_text(f)} {'>=' if use_lo else '<='} {expr_text(bound)}")
        e = a * (lo if use_lo else hi) + b
    return None


def _shift(dom: SizeDomain, syms, slack=()) -> tuple[dict, list] | None:
    subs: dict = {}
    gens: list = []
    for s in sorted(syms, key=str):
        if s in slack:
            gens.append(s)
            continue
        info = dom.free_map.get(s)
        if info is None:
            return None
        m, lo, _ = info
        u = sympy.Dummy(f"u_{s}", integer=True, nonnegative=True)
        subs[s] = m * (-(-lo // m) + u)
        gens.append(u)
    return subs, gens


def _orthant(e: sympy.Expr, dom: SizeDomain, strict: bool = False, slack=()) -> bool:
    """All coefficients of ``e`` in the shifted nonnegative variables are >= 0 (and, if
    ``strict``, the constant term is > 0)."""
    e = sympy.expand(e)
    if e.is_number:
        return bool(e > 0) if strict else bool(e >= 0)
    sh = _shift(dom, e.free_symbols, slack)
    if sh is None:
        return False
    subs, gens = sh
    p = sympy.expand(e.xreplace(subs))
    try:
        poly = sympy.Poly(p, *gens)
    except sympy.PolynomialError:
        return False
    const = sympy.Integer(0)
    for monom, c in poly.terms():
        if not c.is_number or c < 0:
            return False
        if not any(monom):
            const = c
    return bool(const > 0) if strict else True


def _integer_poly(e: sympy.Expr) -> bool:
    e = sympy.expand(e)
    if e.is_number:
        return bool(e.is_integer)
    try:
        return all(c.is_integer for c in sympy.Poly(e, *sorted(e.free_symbols, key=str)).coeffs())
    except sympy.PolynomialError:
        return False


def _linear_vars(h: sympy.Expr):
    h = sympy.expand(h)
    for v in sorted(h.free_symbols, key=str):
        c = h.coeff(v, 1)
        if c.is_number and c != 0 and not (h - c * v).has(v):
            yield v, c


def _certificate_text(num: sympy.Expr, dom: SizeDomain) -> str:
    parts = []
    for s in sorted(num.free_symbols, key=str):
        info = dom.free_map.get(s)
        if info:
            m, lo, _ = info
            k0 = -(-lo // m)
            parts.append(f"{s} = {m}*({k0} + u)" if m > 1 else f"{s} = {lo} + u")
    how = f" with {', '.join(parts)}, u >= 0" if parts else ""
    return f"{num} >= 0: nonnegative coefficients{how}"


def hypotheses_from(dom: SizeDomain, extra: list[sympy.Expr]) -> tuple[sympy.Expr, ...]:
    """Linear consequences ``h >= 0`` of constraints ``c >= 0`` (floors relaxed upward)."""
    out: list[sympy.Expr] = []
    for c in extra:
        up = drop_floors(dom.resolve(c), dom, lower=False)
        if up is None:
            continue
        num, den = sympy.fraction(sympy.together(up))
        if not (den.is_number and den > 0):
            continue
        num = sympy.expand(num)
        if num.is_number:
            continue
        try:
            if sympy.Poly(num, *sorted(num.free_symbols, key=str)).total_degree() != 1:
                continue
        except sympy.PolynomialError:
            continue
        out.append(num)
    return tuple(out)


def prove_positive(e: sympy.Expr, dom: SizeDomain) -> bool:
    """Is ``e > 0`` for all allowed sizes? Sound: True only with a proof (floors bounded from
    below, then a fraction whose numerator and denominator are both strictly positive)."""
    e = sympy.sympify(e)
    if e.is_number:
        return bool(e.is_extended_real and e > 0)
    low = drop_floors(dom.resolve(e), dom, lower=True)
    if low is None:
        return False
    num, den = sympy.fraction(sympy.together(low))
    num, den = sympy.expand(num), sympy.expand(den)
    return ((_orthant(num, dom, strict=True) and _orthant(den, dom, strict=True))
            or (_orthant(-num, dom, strict=True) and _orthant(-den, dom, strict=True)))
