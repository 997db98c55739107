"""Lowering of comparisons and ``where`` (spec language 1.1) onto tiles.

Stage: plan (helper of :mod:`nkigen.codegen.tilexpr`). A condition on indices only (``n <= m``,
``n == N - 1``, a band ``i - j < W`` written as nested ``where``) becomes one GpSimd
``affine_select`` per tile: the engine computes ``offset + pcoef * partition + fcoef * column``
and compares it with 0, so no mask tensor exists anywhere (SH nki/api/nki/isa/__init__.py
``affine_select``, nki 0.3; S25 general/nki/api/nki/isa/__init__.py, SDK 2.25). A comparison
used as a number is ``where(cond, 1.0, 0.0)``.

``where(c, a, b)`` with a tile ``b`` is ``select(c, a, 0) + select(not c, b, 0)`` (exact: the
branch not taken is replaced by 0, never multiplied). A condition that reads tensors is a VectorE
comparison writing a uint8 0/1 tile; ``b`` is written into the result and VectorE
``tensor_copy_predicated`` copies ``a`` over it where the condition holds, so an infinite or NaN
value in the branch not taken never reaches the result (``cond * a + (1 - cond) * b`` would
give ``0 * inf = NaN`` there).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sympy

from nkigen.analysis.printing import expr_text
from nkigen.codegen import plan as P
from nkigen.codegen.plan_ext import AffineSelect, CopyPredicated, Iota
from nkigen.codegen.tilexpr import F32, ONE, ZERO, Compiler, Kind, TileCtx, Unsupported, Val
from nkigen.dtypes import DType
from nkigen.hw import FP32_EXACT_INT
from nkigen.ir import (
    CmpOp,
    Compare,
    Const,
    Expr,
    IndexValue,
    Where,
    division_parts,
    index_only,
    index_symbol,
)

CMP_NAME: dict[CmpOp, str] = {
    CmpOp.LT: "less", CmpOp.LE: "less_equal", CmpOp.EQ: "equal", CmpOp.NE: "not_equal",
    CmpOp.GE: "greater_equal", CmpOp.GT: "greater",
}
NEGATE: dict[CmpOp, CmpOp] = {
    CmpOp.LT: CmpOp.GE, CmpOp.LE: CmpOp.GT, CmpOp.EQ: CmpOp.NE, CmpOp.NE: CmpOp.EQ,
    CmpOp.GE: CmpOp.LT, CmpOp.GT: CmpOp.LE,
}


def _side(c: Compiler, e: Expr) -> sympy.Expr:
    """An index-only comparison operand as an integer expression of generated variables."""
    if isinstance(e, IndexValue):
        return sympy.sympify(e.expr)
    v = c.scalar_of(e)
    if v is None:
        raise Unsupported("comparison operand is not an index expression")
    if v.is_number and not float(v).is_integer():
        raise Unsupported(f"comparison of indices with the non-integer {v}")
    return sympy.nsimplify(v) if v.is_number else v


def affine_condition(c: Compiler, ctx: TileCtx, cond: Compare
                     ) -> tuple[CmpOp, sympy.Expr, sympy.Expr, sympy.Expr, int | None,
                                sympy.Expr]:
    """``cond`` as ``op(offset + pcoef * i_p + fcoef * i_f, 0)`` on the current tile; or, with
    a period ``c`` (the fifth value, else None), ``op(offset + pcoef * i_p + fcoef * (i_f //
    c) + rcoef * (i_f % c), 0)`` (:func:`_periodic`)."""
    written = sympy.expand(_side(c, cond.lhs) - _side(c, cond.rhs))
    d = written
    ip, jf = sympy.Dummy("ip", integer=True), sympy.Dummy("jf", integer=True)
    jr = sympy.Dummy("jr", integer=True)
    subs = {index_symbol(k): v for k, v in ctx.env.items()}
    subs[index_symbol(ctx.p)] = ctx.p0 + ip
    period = _periodic(c, ctx, d)
    if period is not None:
        # f = f0 + c * jf + jr with f0 a multiple of c: f // c = f0 // c + jf, f % c = jr
        fsym = index_symbol(ctx.f)
        d = d.xreplace({sympy.Mod(fsym, period): jr,
                        sympy.floor(fsym / period): sympy.floor(ctx.f0 / period) + jf})
        subs[fsym] = ctx.f0 + period * jf + jr
    elif ctx.f is not None:
        subs[index_symbol(ctx.f)] = ctx.f0 + jf
    d = sympy.expand(d.xreplace(subs))
    for q in d.atoms(sympy.floor, sympy.Mod):
        if q.has(ip) or q.has(jf) or q.has(jr):
            tiled = ", ".join(i for i in (ctx.p, ctx.f) if i is not None)
            raise Unsupported(
                f"a condition on indices takes // or % of an index on the tile axes ({tiled}) "
                f"(got {expr_text(written)} {cond.op.value} 0): affine_select compares an affine "
                "expression of the tile's partition and column with 0 (SH nki/api/nki/isa "
                "affine_select, nki 0.3; S25 affine_select pred, SDK 2.25), and floor division "
                "and modulo are not affine",
                "pass the mask as an input tensor (where(keep[m, n] > 0, ...)), or divide only "
                "indices that are outer loops here (a left-hand index before the last two)")
    pcoef, fcoef, rcoef = d.coeff(ip), d.coeff(jf), d.coeff(jr)
    offset = sympy.expand(d - pcoef * ip - fcoef * jf - rcoef * jr)
    stray = sorted(s.name for s in offset.free_symbols if s.name in c.extents
                   and s == index_symbol(s.name))
    if stray:
        raise Unsupported(f"condition index {stray[0]} is not bound here")
    if not (pcoef.is_Integer and fcoef.is_Integer and rcoef.is_Integer) or \
            offset.has(ip) or offset.has(jf) or offset.has(jr):
        raise Unsupported("condition is not affine in the tile's indices")
    _check_int32(c, written)
    return cond.op, offset, pcoef, fcoef, period, rcoef


INT32_MAX = 2 ** 31 - 1


def _check_int32(c: Compiler, written: sympy.Expr) -> None:
    """Refuse the affine_select / iota form of a condition whose affine value may leave int32
    at the sizes' maxima: GpSimd computes it in 32-bit integer math (S25
    general/nki/api/nki/isa/__init__.py ``iota``, SDK 2.25; SH nki/api/nki/isa/__init__.py
    ``iota`` "Data types" and ``affine_select`` "similar to nisa.iota", nki 0.3), so a value
    past the range wraps (``n // 4 >= 600000000`` is ``n - 2400000000 >= 0`` after divcmp:
    review 14 R14-1). The caller then takes the value path (its operands checked by
    :func:`_check_fp32_exact`). No refusal when a size the value grows with has no max (the
    value is then bounded by the tensor's extent only, as before)."""
    from nkigen.analysis.sizes import size_domain

    r = value_range(written, c.extents)
    if r is None:
        return
    dom = size_domain(c.spec)
    unbounded = {s for s, _, _, hi in dom.free if hi is None}
    lo, hi = (dom.resolve(sympy.sympify(x)) for x in r)
    if (lo.free_symbols | hi.free_symbols) & unbounded:
        return
    top = sympy.Integer(INT32_MAX)
    if _within(top - hi, dom) and _within(lo + top + 1, dom):
        return
    raise Unsupported(
        f"the condition value {expr_text(written)} ranges over {expr_text(r[0])} .. "
        f"{expr_text(r[1])}, not provably within int32, which GpSimd affine_select / iota "
        "compute in (S25 nki.isa iota '32-bit integer math', SDK 2.25; SH nki.isa iota, "
        "affine_select, nki 0.3)",
        "compare smaller index values, or give the sizes a max")


def _periodic(c: Compiler, ctx: TileCtx, d: sympy.Expr) -> int | None:
    """The period ``c`` when the tile's free index ``f`` enters ``d`` only as ``f % c``, ``f //
    c`` and ``f`` itself, every free chunk starts on a multiple of ``c`` (its allocation width
    is one) and holds whole periods (the free extent is a multiple of ``c`` at every size),
    in the current API: the engine's access pattern then walks each chunk as ``[fsz // c,
    c]``, and ``f % c`` is the inner position (a chunk that ends inside a period, when the
    free extent need not be a multiple of ``c``, takes its whole periods so and the rest as
    a one-dimensional pattern: :func:`select`) (SH nki/api/nki/isa/__init__.py
    ``affine_select``: up to four pattern dimensions whose sizes multiply to the elements per
    partition; nki 0.3). None otherwise (the classic predicate is one affine ``nl.arange``
    comparison: S25 ``affine_select``, SDK 2.25)."""
    if c.classic or ctx.f is None:
        return None
    fsym = index_symbol(ctx.f)
    divs = [q for q in d.atoms(sympy.floor, sympy.Mod) if fsym in q.free_symbols]
    if not divs:
        return None
    periods = set()
    for q in divs:
        num, den = division_parts(q)
        if num != fsym or not den.is_Integer or int(den) < 2:
            return None
        periods.add(int(den))
    if len(periods) != 1:
        return None
    period = periods.pop()
    width = sympy.sympify(ctx.falloc)
    if not (width.is_Integer and int(width) % period == 0):
        return None
    return period


def _whole_periods(c: Compiler, ctx: TileCtx, period: int) -> bool:
    """Whether every free chunk holds whole periods: the free extent is a multiple of the
    period at every allowed size (else the last chunk ends inside one)."""
    from nkigen.codegen.residue import quotient
    return quotient(c.extents.get(ctx.f or "", ZERO), period,
                    {s.name: s for s in c.spec.sizes}) is not None


def index_value(c: Compiler, ctx: TileCtx, e: IndexValue) -> Val:
    """An index expression used as a number in arithmetic (``-(m - n) * slope[h]``): the
    int32 tile of its values on this tile (one GpSimd ``iota``, see :func:`_operand`), or a
    trace-time scalar when it depends on no tile index. Engines read the int32 tile converted
    to float32 (SH/S25 nki.api.shared.rst "Supported Math Operators"), exact because
    :func:`_check_fp32_exact` proves every value within +-2**24 at every allowed size."""
    _check_fp32_exact(c, e, number=True)
    return _operand(c, ctx, e)


def _operand(c: Compiler, ctx: TileCtx, e: Expr) -> Val:
    """A comparison operand of a condition that reads tensors (``ids[t] == v``): an index
    expression is written as a tile of its int32 values on this tile's partitions and columns
    by one GpSimd ``iota`` (``offset + pcoef * partition + fcoef * column``: SH
    nki/api/nki/isa/__init__.py ``iota``, nki 0.3; S25 general/nki/api/nki/isa/__init__.py
    ``iota``, SDK 2.25); anything else is compiled as a value."""
    if not isinstance(e, IndexValue):
        return c.compile(ctx, e)
    _check_fp32_exact(c, e)
    v = sympy.expand(sympy.sympify(e.expr))
    ip, jf = sympy.Dummy("ip", integer=True), sympy.Dummy("jf", integer=True)
    subs = {index_symbol(k): x for k, x in ctx.env.items()}
    subs[index_symbol(ctx.p)] = ctx.p0 + ip
    if ctx.f is not None:
        subs[index_symbol(ctx.f)] = ctx.f0 + jf
    d = sympy.expand(v.xreplace(subs))
    divs = [q for q in d.atoms(sympy.floor, sympy.Mod) if q.has(ip) or q.has(jf)]
    if divs:
        return _divided_operand(c, ctx, d, divs, ip, jf)
    pcoef, fcoef = d.coeff(ip), d.coeff(jf)
    offset = sympy.expand(d - pcoef * ip - fcoef * jf)
    stray = sorted(s.name for s in offset.free_symbols if s.name in c.extents
                   and s == index_symbol(s.name))
    if stray:
        raise Unsupported(f"index {stray[0]} of a comparison is not bound here")
    if not (pcoef.is_Integer and fcoef.is_Integer) or offset.has(ip) or offset.has(jf):
        raise Unsupported(f"the index value {expr_text(v)} is not affine in the tile's indices",
                          "compare with an index plus a constant, e.g. ids[t] == v")
    if pcoef == 0 and fcoef == 0 and not offset.free_symbols:
        return Val(Kind.SCALAR, expr=offset)
    return _iota(c, ctx, offset, pcoef, fcoef)


def value_range(e: sympy.Expr, extents: dict[str, sympy.Expr]
                ) -> tuple[sympy.Expr, sympy.Expr] | None:
    """(lowest, highest) value of the index expression ``e`` as expressions of the sizes: each
    index ``i`` over ``0 .. extent(i) - 1``, sizes as themselves (positive), sums and integer
    multiples term by term, ``floor(x / c)`` monotone, ``x % c`` within ``0 .. c - 1`` (``c`` a
    positive integer). None for any other form (no bound known)."""
    e = sympy.sympify(e)
    if e.is_Integer:
        return e, e
    if isinstance(e, sympy.Symbol):
        if e.name in extents and e == index_symbol(e.name):
            return sympy.Integer(0), sympy.sympify(extents[e.name]) - 1
        return (e, e) if e.is_positive else None
    if isinstance(e, sympy.Add):
        parts = [value_range(a, extents) for a in e.args]
        if any(p is None for p in parts):
            return None
        return (sympy.Add(*(p[0] for p in parts if p is not None)),
                sympy.Add(*(p[1] for p in parts if p is not None)))
    if isinstance(e, sympy.Mul):
        k, rest = e.as_coeff_Mul()
        if not k.is_Integer:
            return None
        parts = [value_range(f, extents) for f in sympy.Mul.make_args(rest)]
        if any(p is None or not p[0].is_nonnegative for p in parts):
            return None     # (a product of non-negative ranges only: N * b + n)
        lo = sympy.Mul(*(p[0] for p in parts if p is not None))
        hi = sympy.Mul(*(p[1] for p in parts if p is not None))
        return (k * lo, k * hi) if k >= 0 else (k * hi, k * lo)
    if isinstance(e, (sympy.floor, sympy.Mod)):
        num, den = division_parts(e)
        den = sympy.sympify(den)
        r = value_range(num, extents)
        if r is None or not den.is_Integer or den <= 0:
            return None
        if isinstance(e, sympy.Mod):
            return sympy.Integer(0), den - 1
        return sympy.floor(r[0] / den), sympy.floor(r[1] / den)
    return None


def _monotone(e: sympy.Expr) -> bool:
    """Whether ``e`` (over positive sizes) never decreases when a size grows: numbers, sizes,
    sums of such, products of such with a non-negative number, ``floor`` of such."""
    if e.is_number:
        return True
    if isinstance(e, sympy.Symbol):
        return bool(e.is_positive)
    if isinstance(e, sympy.Add):
        return all(_monotone(a) for a in e.args)
    if isinstance(e, sympy.Mul):
        k, rest = e.as_coeff_Mul()
        return k >= 0 and all(_monotone(f) and (f.is_number or isinstance(f, sympy.Symbol))
                              for f in sympy.Mul.make_args(rest)) or (
            k >= 0 and len(sympy.Mul.make_args(rest)) == 1 and _monotone(rest)
            and bool(rest.is_nonnegative))
    if isinstance(e, sympy.floor):
        return _monotone(e.args[0])
    return False


def _within(e: sympy.Expr, dom) -> bool:
    """``e >= 0`` at every allowed size: by the prover, else (a floor or a product of sizes,
    which its linear steps may not take) exactly at the sizes' ``max`` when ``-e`` resolved to
    free sizes never decreases as they grow (each then needs a max), or at their ``min`` when
    ``e`` never decreases."""
    from nkigen.analysis.prover import prove_nonneg

    if prove_nonneg(e, dom).proven:
        return True
    r = dom.resolve(e)
    for f, at in ((-r, {s: hi for s, _, _, hi in dom.free}),
                  (r, {s: lo for s, _, lo, _ in dom.free})):
        f = sympy.expand(f)
        if _monotone(f) and all(at.get(s) is not None for s in f.free_symbols):
            return bool(r.xreplace({s: sympy.Integer(v) for s, v in at.items()
                                    if v is not None}) >= 0)
    return False


def _free_sizes(spec, e: sympy.Expr) -> list[str]:
    """The names of the free sizes ``e`` depends on (derived sizes by their definitions)."""
    from nkigen.analysis.sizes import size_domain

    free = {s.symbol for s in spec.free_sizes}
    return sorted(x.name for x in size_domain(spec).resolve(sympy.sympify(e)).free_symbols
                  if x in free)


def _check_fp32_exact(c: Compiler, e: IndexValue, number: bool = False) -> None:
    """Refuse an index value compared on VectorE whose magnitude may exceed 2**24: the
    comparison and the ``+ k`` of a divided value compute in float32 (SH
    nki/api/nki/isa/__init__.py ``tensor_scalar`` / ``tensor_tensor`` and
    nki/api/nki.api.shared.rst "Supported Math Operators", nki 0.3: arithmetic and comparison
    operators cast their inputs to float32; S25 general/nki/api/nki/isa/__init__.py the same,
    SDK 2.25), which holds every integer only up to 2**24 (:data:`FP32_EXACT_INT`), so a larger
    index could compare equal to its neighbour (review 11 R11-7). Proven over every size the
    spec allows (:func:`nkigen.analysis.prover.prove_nonneg`)."""
    from nkigen.analysis.sizes import size_domain

    v = sympy.sympify(e.expr)
    r = value_range(v, c.extents)
    limit = sympy.Integer(FP32_EXACT_INT)
    if r is not None:
        dom = size_domain(c.spec)
        if _within(limit - r[1], dom) and _within(limit + r[0], dom):
            return
    shown = expr_text(v)
    hi = "no bound (a size without a max)" if r is None else expr_text(r[1])
    sizes = _free_sizes(c.spec, r[1] if r is not None else sympy.Add(*(
        sympy.sympify(x) for n, x in c.extents.items() if v.has(index_symbol(n)))))
    which = f"a max on {', '.join(sizes)}" if sizes else "sizes a max"
    if number:      # an index used as a number in arithmetic (index_value)
        raise Unsupported(
            f"the index value {shown} is used as a number: the engines' arithmetic converts "
            f"its int32 tile to float32 (SH nki/api/nki.api.shared.rst 'Supported Math "
            f"Operators', nki 0.3; S25 the same table, SDK 2.25), which holds every integer "
            f"only up to {FP32_EXACT_INT} (2**24), and {shown} reaches {hi}, not provably "
            f"within +-{FP32_EXACT_INT} at every size the spec allows",
            f"give {which} so that {shown} stays within {FP32_EXACT_INT}, or pass the values "
            "as an input tensor")
    raise Unsupported(
        f"the index value {shown} is compared on VectorE, whose comparison operators are "
        f"arithmetic: they convert their inputs to float32 (SH nki/api/nki.api.shared.rst "
        f"'Supported Math Operators', nki 0.3; S25 the same table, SDK 2.25), which holds "
        f"every integer only up to {FP32_EXACT_INT} (2**24), and {shown} reaches {hi}, not "
        f"provably within +-{FP32_EXACT_INT} at every size the spec allows",
        f"give {which} so that {shown} stays within {FP32_EXACT_INT}, or pass the mask "
        "as an input tensor (where(keep[m, n] > 0, ...))")


def _iota(c: Compiler, ctx: TileCtx, offset: sympy.Expr, pcoef: sympy.Expr,
          fcoef: sympy.Expr) -> Val:
    """An int32 tile of ``offset + pcoef * partition + fcoef * column`` by one GpSimd ``iota``
    (a column when ``fcoef`` is 0)."""
    kind = Kind.ROW if fcoef != 0 else Kind.COL
    dst = c.tile(ctx, kind, DType.int32, "iota")
    c.charge(ctx, "gpsimd", 1.0)
    ctx.out.append(Iota(c.ref(ctx, dst), offset, pcoef, fcoef if kind is Kind.ROW else ZERO,
                        ctx.psz, ctx.fsz if kind is Kind.ROW else ONE))
    return dst


def _divided_operand(c: Compiler, ctx: TileCtx, d: sympy.Expr, divs: list, ip: sympy.Symbol,
                     jf: sympy.Symbol) -> Val:
    """An index value ``e // 2**s + k`` or ``e % 2**s + k`` (``e`` affine in the tile's
    partition and column, ``k`` free of them: a block mask ``n // 64 <= m // 64``) as an int32
    tile: GpSimd ``iota`` of ``e``, then one VectorE bitvec ``tensor_scalar``, a logical right
    shift by ``s`` (the floor division of the non-negative ``e``: tbl-aluop has no arithmetic
    right shift, so a value that may be negative is refused) or an AND with ``2**s - 1``, and
    ``+ k`` (SH nki/api/nki/isa/__init__.py ``iota`` and
    ``tensor_scalar`` with the integer ALU operators ``right_shift`` / ``bitwise_and``, nki 0.3;
    S25 the same, SDK 2.25). Unsupported for any other division (a divisor that is not a power
    of two has no integer ALU operator)."""
    if len(divs) != 1:
        raise Unsupported("an index value divides the tile's indices more than once")
    q = divs[0]
    rest = sympy.expand(d - q)
    if rest.has(ip) or rest.has(jf):
        raise Unsupported("an index value mixes a division of the tile's indices with them")
    inner, den = division_parts(q)
    den = sympy.sympify(den)
    if den.is_Integer and int(den) >= 2 and int(den) & (int(den) - 1):
        got = _residue_operand(c, ctx, q, sympy.expand(inner), int(den), rest, jf)
        if got is not None:
            return got
    if not den.is_Integer or int(den) < 2 or int(den) & (int(den) - 1):
        raise Unsupported(f"an index value (compared, or used as a number) divides the "
                          f"tile's indices by {den}, which is "
                          "not a power of two: no integer ALU operator "
                          "divides, and floor division and modulo are not affine for "
                          "affine_select (SH nki/api/nki/isa tensor_scalar, affine_select, "
                          "nki 0.3)",
                          "pass the mask as an input tensor (where(keep[m, n] > 0, ...)), or "
                          "the values as one, or divide by a power of two")
    inner = sympy.expand(inner)
    pcoef, fcoef = inner.coeff(ip), inner.coeff(jf)
    offset = sympy.expand(inner - pcoef * ip - fcoef * jf)
    if not (pcoef.is_Integer and fcoef.is_Integer) or offset.has(ip) or offset.has(jf):
        raise Unsupported("the divided index value is not affine in the tile's indices")
    if isinstance(q, sympy.floor) and (pcoef < 0 or fcoef < 0 or any(
            sympy.Mul.make_args(t)[0].is_Number and sympy.Mul.make_args(t)[0] < 0
            for t in sympy.Add.make_args(offset))):
        # (the value could be negative: nl.right_shift is the logical shift and tbl-aluop has
        # no arithmetic one (SH nki/api/nki.api.shared.rst, nki 0.3), so a negative int32 would
        # not shift to its floor; only values that are sums of indices and sizes are divided.
        # An AND with 2**s - 1 is the floor modulo of any two's-complement int32: no limit)
        raise Unsupported("a condition divides an index expression that may be negative",
                          "pass the mask as an input tensor (where(keep[m, n] > 0, ...))")
    raw = _iota(c, ctx, offset, pcoef, fcoef)
    shift = int(den).bit_length() - 1
    op, operand = (P.AluOp.RIGHT_SHIFT, shift) if isinstance(q, sympy.floor) else \
        (P.AluOp.BITWISE_AND, int(den) - 1)
    ctx.out.append(P.TensorScalar(c.ref(ctx, raw), c.ref(ctx, raw), op,
                                  P.Scalar(sympy.Integer(operand), integer=True),
                                  engine=P.Eng.VECTOR))
    if rest != 0:
        # an arithmetic operator: its operand is float32 (SH tensor_scalar, nki 0.3), a
        # trace-time constant; a classic k holding an nl.affine_range index has no trace-time
        # value (S25 static_range and tensor_scalar, SDK 2.25; review 10 R10-6), so GpSimd
        # writes it on chip as a float32 (P, 1) column, the tile operand (review 11 R11-2)
        addend: P.Operand = P.Scalar(rest)
        if c.classic and not rest.is_Integer:
            col = c.tile(ctx, Kind.COL, F32, "lead")
            ctx.out.append(Iota(c.ref(ctx, col), rest, ZERO, ZERO, ctx.psz, ONE))
            c.charge(ctx, "gpsimd", 1.0)
            addend = c.ref(ctx, col)
        ctx.out.append(P.TensorScalar(c.ref(ctx, raw), c.ref(ctx, raw), P.AluOp.ADD,
                                      addend, engine=P.Eng.VECTOR))
    c.charge(ctx, "vector", 1.0 if rest == 0 else 2.0)
    return raw


def _residue_operand(c: Compiler, ctx: TileCtx, q: sympy.Expr, inner: sympy.Expr, den: int,
                     rest: sympy.Expr, jf: sympy.Symbol) -> Val | None:
    """``(f + k) % c + r`` or ``(f + k) // c + r`` of the tile's free index ``f`` for a
    divisor ``c`` that is not a power of two (no integer ALU operator divides by it), ``k``
    and ``r`` integers, where every free chunk starts on a multiple of ``c`` (its allocation
    width is one): column ``c * i + j`` of the chunk holds ``(j + k) % c + r``, or ``f0 // c +
    i + (j + k) // c + r``, so one GpSimd ``iota`` per residue ``j < c`` writes the strided
    view ``[j::c]`` with a constant or with a step of one (SH nki/api/nki/isa/__init__.py
    ``iota``, a destination slice with a step: nki/api/nki/language/__init__.py NkiTensor,
    nki 0.3; S25 general/nki/api/nki/isa/__init__.py ``iota`` written to ``t[i_p, j + c *
    i_f]``: general/nki/programming_model.rst "Advanced Tensor Indexing", SDK 2.25). The
    chunk's columns past its size up to whole periods are written too, never read (as the
    period copies of codegen/tilexpr.py). None for any other form."""
    if ctx.f is None or not rest.is_Integer:
        return None
    width = sympy.sympify(ctx.falloc)
    if not (width.is_Integer and int(width) % den == 0):
        return None
    f0 = sympy.sympify(ctx.f0)
    k = sympy.expand(inner - jf - f0)
    if not k.is_Integer or inner.coeff(jf) != 1:
        return None
    k_, r_ = int(k), int(rest)
    if c.classic:
        got = c._classic_periods(ctx, den, None)
        if got is None:
            return None
        base, reps = got
    else:
        base, reps = sympy.floor(f0 / den), sympy.ceiling(ctx.fsz / den)
    dst = c.tile(ctx, Kind.ROW, DType.int32, "resid")
    assert dst.buf is not None
    floor = isinstance(q, sympy.floor)
    for j in range(den):
        view = P.Ref(dst.buf, (P.Slice(ZERO, ctx.psz),
                               P.Slice(sympy.Integer(j), reps, sympy.Integer(den))))
        if floor:
            ctx.out.append(Iota(view, base + (j + k_) // den + r_, ZERO, ONE, ctx.psz, reps))
        else:
            ctx.out.append(Iota(view, sympy.Integer((j + k_) % den + r_), ZERO, ZERO, ctx.psz,
                                reps))
    c.charge(ctx, "gpsimd", 1.0)
    return dst


def _row_or_col(c: Compiler, ctx: TileCtx, v: Val) -> Val:
    kind = Kind.ROW if ctx.f is not None else Kind.COL
    if v.kind is kind:
        return v
    return c.materialize(ctx, v, kind, F32)


def _false_value(v: Val) -> sympy.Expr:
    assert v.expr is not None
    x = sympy.sympify(v.expr)
    return sympy.Float(float(x)) if x.is_number else x


def select(c: Compiler, ctx: TileCtx, cond: Compare, a: Val, false: sympy.Expr,
           want: DType | None, negate: bool = False) -> Val:
    op, offset, pcoef, fcoef, period, rcoef = affine_condition(c, ctx, cond)
    if negate:
        op = NEGATE[op]
    src = _row_or_col(c, ctx, a) if period is None else \
        c.materialize(ctx, a, Kind.ROW, F32) if a.kind is not Kind.ROW else a
    dst = c.tile(ctx, src.kind, want or F32, "sel")
    c.charge(ctx, "gpsimd", 1.0)
    if period is not None and not _whole_periods(c, ctx, period):
        # the chunk's whole periods, then its last fsz % c columns (inside one period, where
        # f % c is the column's distance from the period's start): two instructions, each
        # under a trace-time guard for its empty case
        reps = sympy.floor(ctx.fsz / period)
        whole = period * reps
        head = ctx.sub(fsz=whole)
        tail = ctx.sub(fsz=ctx.fsz - whole)
        first: list = [AffineSelect(
            c.ref(head, dst), c.ref(head, src), CMP_NAME[op], offset, pcoef, fcoef, ctx.psz,
            whole, false, period, rcoef, reps)]
        ctx.out.append(P.If(ZERO, whole, tuple(first), (), P.Cmp.LT))
        tdst = dataclasses.replace(dst, off=dst.off + whole * dst.step)
        tsrc = dataclasses.replace(src, off=src.off + whole * src.step)
        rest: list = [AffineSelect(
            c.ref(tail, tdst), c.ref(tail, tsrc), CMP_NAME[op],
            sympy.expand(offset + fcoef * reps), pcoef, rcoef,
            ctx.psz, ctx.fsz - whole, false)]
        ctx.out.append(P.If(ZERO, ctx.fsz - whole, tuple(rest), (), P.Cmp.LT))
        return dst
    fsz = ctx.fsz if src.kind is Kind.ROW else ONE
    ctx.out.append(AffineSelect(c.ref(ctx, dst), c.ref(ctx, src), CMP_NAME[op], offset, pcoef,
                                fcoef if src.kind is Kind.ROW else ZERO, ctx.psz, fsz, false,
                                period, rcoef,
                                None if period is None else sympy.floor(ctx.fsz / period)))
    return dst


ALU_OF_CMP: dict[CmpOp, P.AluOp] = {
    CmpOp.LT: P.AluOp.LESS, CmpOp.LE: P.AluOp.LESS_EQUAL, CmpOp.EQ: P.AluOp.EQUAL,
    CmpOp.NE: P.AluOp.NOT_EQUAL, CmpOp.GE: P.AluOp.GREATER_EQUAL, CmpOp.GT: P.AluOp.GREATER,
}


def value_compare(c: Compiler, ctx: TileCtx, e: Compare, want: DType | None) -> Val:
    """A comparison reading tensors: one VectorE ``tensor_scalar``/``tensor_tensor`` with a
    comparison ALU op, which writes 1.0 or 0.0 (SH/S25 nki.isa ALU operators ``nl.greater``
    ...; the engine computes in fp32)."""
    a, b = _operand(c, ctx, e.lhs), _operand(c, ctx, e.rhs)
    if a.kind is Kind.SCALAR and b.kind is Kind.SCALAR:
        raise Unsupported("a comparison of two constants")
    return c.binary(ctx, ALU_OF_CMP[e.op], a, b, want)


def value_where(c: Compiler, ctx: TileCtx, e: Where, want: DType | None,
                compiled: tuple[Val, Val] | None = None) -> Val:
    """``where(cond, a, b)`` with a condition on values: the condition as a uint8 0/1 tile,
    ``b`` written into the result tile (in place when ``b`` is a temp of the result's kind and
    dtype), then ``tensor_copy_predicated`` of ``a`` where the condition holds (SH
    nki/api/nki/isa/__init__.py ``tensor_copy_predicated``, nki 0.3; S25 the same API, SDK
    2.25: uint8 predicate, src and dst of one dtype and shape). Exact for every value, inf
    and NaN included; a constant ``a`` swaps the roles (``reverse_pred``) so the copied
    source is always a tile. ``compiled``: the branches, already lowered by the caller."""
    cond = e.cond
    assert isinstance(cond, Compare)
    lhs, rhs = _operand(c, ctx, cond.lhs), _operand(c, ctx, cond.rhs)
    if lhs.kind is Kind.SCALAR and rhs.kind is Kind.SCALAR:
        raise Unsupported("a comparison of two constants")
    a, b = compiled if compiled is not None else (c.compile(ctx, e.a), c.compile(ctx, e.b))
    if _number(a) == 1 and _number(b) == 0:
        # where(cond, 1, 0) is the comparison's own value: the ALU comparison writes 1.0 / 0.0
        # (SH nki/api/nki/isa/__init__.py tensor_scalar / tensor_tensor, nki.api.shared.rst
        # tbl-aluop; S25 the same, SDK 2.25), cast to the result's dtype. One instruction
        # instead of the mask, two memsets and the predicated copy (review 12 R12-3); the
        # same mask the general form copies by, so the same value for NaN operands too
        return c.binary(ctx, ALU_OF_CMP[cond.op], lhs, rhs, want)
    reverse = False
    if a.kind is Kind.SCALAR and b.kind is not Kind.SCALAR:
        a, b, reverse = b, a, True
    rank = {Kind.SCALAR: 0, Kind.COL: 1, Kind.ROW: 2}
    kind = max((lhs.kind, rhs.kind, a.kind, b.kind), key=rank.__getitem__)
    dtype = want or F32
    if rank[max(lhs.kind, rhs.kind, key=rank.__getitem__)] == rank[kind]:
        m = c.binary(ctx, ALU_OF_CMP[cond.op], lhs, rhs, DType.uint8)
    else:
        # a column condition on row values: the 0/1 column (fp32) added onto a zeroed uint8
        # row tile (tensor_scalar operands are fp32 for arithmetic, SH tensor_scalar)
        col = c.binary(ctx, ALU_OF_CMP[cond.op], lhs, rhs, F32)
        m = c.tile(ctx, kind, DType.uint8, "pred")
        ctx.out.append(P.Memset(c.ref(ctx, m), ZERO))
        ctx.out.append(P.TensorScalar(c.ref(ctx, m), c.ref(ctx, m), P.AluOp.ADD,
                                      c.ref(ctx, col), engine=P.Eng.VECTOR))
    if b.temp and b.kind is kind and b.dtype == dtype and b.buf is not None and b.buf != a.buf:
        res = b
    else:
        res = c.materialize(ctx, b, kind, dtype)
    if not c.classic and _number(a) is not None and b.kind is Kind.SCALAR:
        # two constants: the current API copies a scalar src where the predicate holds (SH
        # nki/api/nki/isa/__init__.py tensor_copy_predicated, nki 0.3: "If src is a scalar,
        # the scalar is copied to the dst tile"), so only b is written out (review 12 R12-3b);
        # the classic API shows a tile src (S25)
        if kind is Kind.ROW:
            c.charge(ctx, "vector", 1.0)
        ctx.out.append(CopyPredicated(c.ref(ctx, res), P.Scalar(a.expr), c.ref(ctx, m),
                                      reverse))
        return dataclasses.replace(res, temp=True)
    src = a if a.kind is kind and a.dtype == dtype else c.materialize(ctx, a, kind, dtype)
    if kind is Kind.ROW:
        c.charge(ctx, "vector", 2.0)    # both src and predicate in SBUF: 2N (S25 cost table)
    ctx.out.append(CopyPredicated(c.ref(ctx, res), c.ref(ctx, src), c.ref(ctx, m), reverse))
    return dataclasses.replace(res, temp=True)


def _number(v: Val) -> float | None:
    """The value of a numeric constant ``v`` (None for a tile or a symbolic scalar)."""
    if v.kind is not Kind.SCALAR or v.expr is None or not v.expr.is_number:
        return None
    return float(v.expr)


def lower_where(c: Compiler, ctx: TileCtx, e: Where, want: DType | None) -> Val:
    cond = e.cond
    if not isinstance(cond, Compare):
        raise Unsupported("the condition of where must be a comparison")
    if not index_only(cond):
        return value_where(c, ctx, e, want)
    try:
        affine_condition(c, ctx, cond)      # (no side effects: a probe)
    except Unsupported:
        # a division of a tile index with no affine_select form (a block mask n // 64 <= m //
        # 64): the sides as int32 tiles, compared on VectorE (_divided_operand)
        return value_where(c, ctx, e, want)
    a = c.compile(ctx, e.a)
    b = c.compile(ctx, e.b)
    picked = _pick_at_trace_time(c, ctx, cond, a, b, want)
    if picked is not None:
        return picked
    if c.classic and any(_wide_int(d) for d in (want, a.dtype, b.dtype)):
        # The classic affine_select takes float or 8/16-bit integer tiles only (S25
        # general/nki/api/nki/isa/__init__.py affine_select, SDK 2.25; conformance row
        # affine_select.classic_dtypes): an int32 where on indices takes the value path instead, the
        # index operands as GpSimd iota tiles, a uint8 predicate and tensor_copy_predicated
        # (exact for every int32 value; the compared indices are below 2**24).
        return value_where(c, ctx, e, want, (a, b))
    if b.kind is Kind.SCALAR:
        return select(c, ctx, cond, a, _false_value(b), want)
    if a.kind is Kind.SCALAR:
        return select(c, ctx, cond, b, _false_value(a), want, negate=True)
    x = select(c, ctx, cond, a, sympy.Float(0.0), None)
    y = select(c, ctx, cond, b, sympy.Float(0.0), None, negate=True)
    return c.binary(ctx, P.AluOp.ADD, x, y, want)


def _wide_int(d: DType | None) -> bool:
    """A 4-byte integer dtype (int32, uint32): not an affine_select tile in the classic API."""
    return d is not None and d.is_integer and d.itemsize > 2


def _pick_at_trace_time(c: Compiler, ctx: TileCtx, cond: Compare, a: Val, b: Val,
                        want: DType | None) -> Val | None:
    """``where(cond, a, b)`` whose condition reads only scalar-loop indices that are Python
    ints at trace time (``c.trace_env``): a Python ``if`` copies the branch taken into the
    result tile (allocated before the ``if``: S25 general/nki/api/nki.errors.rst
    err_local_variable_used_out_of_scope), one instruction instead of two GpSimd
    ``affine_select`` and an add (review4 F5, rope_half). None when it does not apply."""
    if not c.trace_env or (a.kind is Kind.SCALAR and b.kind is Kind.SCALAR):
        return None
    op, offset, pcoef, fcoef, period, _ = affine_condition(c, ctx, cond)
    env = {sympy.sympify(v) for v in ctx.env.values()}
    if period is not None or pcoef != 0 or fcoef != 0 or not offset.free_symbols <= env:
        return None
    # op(offset, 0) as `if lhs <cmp> rhs` with cmp in {==, <} (offset is an integer)
    form = {CmpOp.EQ: (P.Cmp.EQ, ZERO, False), CmpOp.NE: (P.Cmp.EQ, ZERO, True),
            CmpOp.LT: (P.Cmp.LT, ZERO, False), CmpOp.GE: (P.Cmp.LT, ZERO, True),
            CmpOp.LE: (P.Cmp.LT, ONE, False), CmpOp.GT: (P.Cmp.LT, ONE, True)}
    cmp, rhs, swap = form[op]
    first, second = (b, a) if swap else (a, b)
    kind = Kind.ROW if Kind.ROW in (a.kind, b.kind) else Kind.COL
    dst = c.tile(ctx, kind, want or F32, "sel")
    then: list = []
    orelse: list = []
    c.write_into(ctx.sub(out=then), dst, first)
    c.write_into(ctx.sub(out=orelse), dst, second)
    ctx.out.append(P.If(offset, rhs, tuple(then), tuple(orelse), cmp))
    return dataclasses.replace(dst, temp=True)


def fold_where(e: Expr, env: dict[str, sympy.Expr]) -> Expr:
    """``e`` with each ``where`` whose condition reads only indices that ``env`` fixes to
    integers replaced by the branch it takes (stage: plan, for a row statement whose short
    outer loops are unrolled, :func:`nkigen.codegen.rows.unrolled_envs`): no instruction picks
    at run time or at trace time. A taken ``-a`` that is a factor of a product is pulled out
    of it, ``(-a) * b`` -> ``(a * b) * -1.0`` (the same value), so the sign can ride on a
    ``scalar_tensor_tensor``/``tensor_scalar`` of the product."""
    import dataclasses as dc

    from nkigen.ir import BinOp, BinOpKind, Neg

    subs = {index_symbol(k): v for k, v in env.items() if sympy.sympify(v).is_Integer}

    def decided(cond: Expr) -> bool | None:
        if not isinstance(cond, Compare) or not index_only(cond):
            return None
        sides = []
        for x in (cond.lhs, cond.rhs):
            if isinstance(x, IndexValue):
                v = sympy.sympify(x.expr).xreplace(subs)
            elif isinstance(x, Const):
                v = sympy.sympify(x.value)
            else:
                return None
            if not v.is_number:
                return None
            sides.append(v)
        a, b = (float(v) for v in sides)    # sympy: Integer(0) == Float(0.0) is False
        return bool({CmpOp.LT: a < b, CmpOp.LE: a <= b, CmpOp.EQ: a == b, CmpOp.NE: a != b,
                     CmpOp.GE: a >= b, CmpOp.GT: a > b}[cond.op])

    def fold(x: Any) -> Any:      # an Expr node, or a field value of one
        if isinstance(x, Where):
            d = decided(x.cond)
            if d is not None:
                return fold(x.a if d else x.b)
        if not dc.is_dataclass(x) or isinstance(x, type):
            return x
        kw: dict[str, Any] = {}
        for f in dc.fields(x):
            v = getattr(x, f.name)
            if dc.is_dataclass(v) and not isinstance(v, type):
                kw[f.name] = fold(v)
            elif isinstance(v, tuple) and any(dc.is_dataclass(i) for i in v):
                kw[f.name] = tuple(fold(i) if dc.is_dataclass(i) else i for i in v)
        y = dc.replace(x, **kw) if kw else x
        if isinstance(y, BinOp) and y.op is BinOpKind.MUL and (isinstance(y.lhs, Neg)
                                                              or isinstance(y.rhs, Neg)):
            a = y.lhs.operand if isinstance(y.lhs, Neg) else y.lhs
            b = y.rhs.operand if isinstance(y.rhs, Neg) else y.rhs
            if isinstance(y.lhs, Neg) != isinstance(y.rhs, Neg):
                return BinOp(BinOpKind.MUL, BinOp(BinOpKind.MUL, a, b), Const(-1.0))
            return BinOp(BinOpKind.MUL, a, b)
        return y

    return fold(e) if subs else e


def lower_compare(c: Compiler, ctx: TileCtx, e: Compare, want: DType | None) -> Val:
    if not index_only(e):
        return value_compare(c, ctx, e, want)
    return lower_where(c, ctx, Where(e, Const(1.0), Const(0.0)), want)
