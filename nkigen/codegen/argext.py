"""Lowering of ``argmax(e, j)`` / ``argmin(e, j)`` (spec language 1.1) onto a row tile.

Stage: plan (helper of :mod:`nkigen.codegen.tilexpr`). The body is evaluated as a row over
``j`` (whole rows on chip); VectorE ``max8`` gives each partition's largest values and
``nc_find_index8`` the index of the first element equal to the largest, which is the first
index of the maximum (SH nki/api/nki/isa/__init__.py, nki 0.3; S25
general/nki/api/nki/isa/__init__.py, SDK 2.25). ``argmin`` runs the same on the negated row.
Both instructions need 8..16384 elements per partition: shorter rows are padded with ``-inf``
(rendered ``-math.inf``), which is never the first maximum of real data: below every other
value, and tied with a row of ``-inf`` it loses to the data, since nc_find_index8 returns the
first occurrence and the pad sits after the data. (A finite pad such as ``-FLT_MAX`` beats a
row of ``-inf`` and returns an index past the row.) max8 reads its input as fp32 ("converts
them to fp32 internally", same docstring), so infinities of every float dtype stay ordered;
the row max8 reads is always fp32 here, so its 8 outputs are exact copies of data values and
nc_find_index8 always finds them (S25 nc_find_index8: "Behavior is undefined if vals tensor
contains values that are not in the data tensor"). The pad is a memset of a compile-time
constant, which may be any value of the tile's dtype (SH/S25 nki.isa.memset "supports all
valid NKI dtypes").

NaN: the reference is NumPy's (the first NaN is the extreme); the NKI docs do not say how max8
and nc_find_index8 order or match NaN, so a row holding NaN has no defined kernel result and
``nkigen build`` rejects test data that puts NaN in the operand
(:func:`nkigen.reference.first_arg_nan`). An ``argmax`` body
that is already an fp32 row of a
tile ``max(8, n)`` wide (a loaded row, or a computed one) is padded in place under a
trace-time ``if n < 8`` and read directly; otherwise (``argmin``, other dtypes) the body is
copied, negated for ``argmin``, into a padded fp32 row first. The uint32 index is copied
into the target's integer dtype by a VectorE ``tensor_copy``.
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.plan_ext import FindIndex8, Max8
from nkigen.codegen.symcache import Max
from nkigen.codegen.tilexpr import (
    F32,
    ZERO,
    Compiler,
    Kind,
    TileCtx,
    Unsupported,
    Val,
)
from nkigen.dtypes import DType
from nkigen.hw import PMAX
from nkigen.ir import Reduce, ReduceKind

MAX8_MIN, MAX8_MAX = 8, 16384   # elements per partition of max8 / nc_find_index8 (docs above)
# the pad past a short row: -inf ties with a row of -inf and then loses (find_index8 returns the
# first occurrence), and is below every other value; a finite pad (-FLT_MAX) beats -inf
PAD = sympy.S.NegativeInfinity


def lower_arg(c: Compiler, ctx: TileCtx, e: Reduce, want: DType | None) -> Val:
    (j,) = e.indices
    ext = sympy.sympify(c.extents[j])
    if j in (ctx.p, ctx.f) or c.depends_on(e.body, ctx.f):
        raise Unsupported(f"{e.op.value} over {j} needs {j} alone on the free axis")
    # the whole row is one max8 / nc_find_index8 operand: its largest allowed size must stay
    # within their 16384 elements per partition (a symbolic size by its declared max; review
    # 12 R12-5: a size with max 40000 gave a kernel the compiler rejects above 16384)
    most = size_upper_bound(c, ext)
    if most is None or most > MAX8_MAX:
        got = "no max" if most is None else f"up to {most}"
        raise Unsupported(f"{e.op.value} over {j} ({ext}: {got}): max8 and nc_find_index8 read "
                          f"8..{MAX8_MAX} elements per partition (SH "
                          "nki/api/nki/isa/__init__.py max8 / nc_find_index8, nki 0.3; S25 "
                          "the same, SDK 2.25), and the row is one operand",
                          f"bound {ext} to at most {MAX8_MAX} (sizes: max)")
    width = Max(sympy.Integer(MAX8_MIN), ext)
    sub = ctx.sub(f=j, f0=ZERO, fsz=ext, falloc=width, fvar=None)   # its own row (fuzz13)
    body = c.compile(sub, e.body)
    if body.kind is not Kind.ROW:
        raise Unsupported(f"{e.op.value} over {j} of a value that does not depend on it")
    if e.op is ReduceKind.ARGMAX and _padded_in_place(ctx, body, width):
        # the body's own fp32 tile is already max(8, n) wide: only the pad columns past the
        # data (none once n >= 8, a trace-time int) get the fill, no copy (review4 F7)
        assert body.buf is not None
        full = P.Ref(body.buf, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, width)))
        pad = P.Ref(body.buf, (P.Slice(ZERO, ctx.psz), P.Slice(ext, MAX8_MIN - ext)))
        ctx.out.append(P.If(ext, sympy.Integer(MAX8_MIN), (P.Memset(pad, PAD),), (),
                            P.Cmp.LT))
    else:
        row = c.tile(sub, Kind.ROW, F32, "arow")
        full = P.Ref(row.buf or "", (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, width)))
        ctx.out.append(P.Memset(full, PAD))
        sign = sympy.Integer(-1) if e.op is ReduceKind.ARGMIN else sympy.Integer(1)
        ctx.out.append(P.TensorScalar(c.ref(sub, row), c.ref(sub, body), P.AluOp.MULTIPLY,
                                      P.Scalar(sympy.Float(float(sign)))))
    top, idx = c.namer.fresh("top8"), c.namer.fresh("idx8")
    eight = sympy.Integer(8)
    ctx.out.append(P.Alloc(top, (sympy.Integer(PMAX), eight), F32, P.Mem.SBUF))
    ctx.out.append(P.Alloc(idx, (sympy.Integer(PMAX), eight), DType.uint32, P.Mem.SBUF))
    rows = P.Slice(ZERO, ctx.psz)
    ctx.out.append(Max8(P.Ref(top, (rows, P.Slice(ZERO, eight))), full))
    ctx.out.append(FindIndex8(P.Ref(idx, (rows, P.Slice(ZERO, eight))), full,
                              P.Ref(top, (rows, P.Slice(ZERO, eight)))))
    c.charge(ctx, "vector", 3.0)
    dst = c.tile(ctx, Kind.COL, want if want is not None and want.is_integer else DType.int32,
                 "arg")
    first = P.Ref(idx, (rows, P.Slice(ZERO, sympy.Integer(1))))
    ctx.out.append(P.TensorCopy(c.ref(ctx, dst), first))
    return dst


def size_upper_bound(c: Compiler, e: sympy.Expr) -> int | None:
    """The largest value of size expression ``e`` with every size at its declared max (fixed
    sizes at their value, derived ones by their formula; sizes are monotone in the spec's
    extents), or None when a size has no max."""
    subs = {}
    for sym in e.free_symbols:
        d = next((z for z in c.spec.sizes if z.name == sym.name), None)
        if d is None:
            return None
        if d.value is not None:             # fixed, or derived (G = (M + 3) // 4)
            v = size_upper_bound(c, sympy.sympify(d.value))
        else:
            v = d.max
        if v is None:
            return None
        subs[sym] = v
    r = e.subs(subs)
    return int(r) if r.is_number else None


def _padded_in_place(ctx: TileCtx, body: Val, width: sympy.Expr) -> bool:
    """True when ``body`` is an fp32 row at offset 0, step 1 of a tile allocated in this row
    tile's code exactly ``width`` = max(8, n) wide: max8 can then read it directly once its
    pad columns are filled."""
    if body.dtype is not F32 or body.buf is None or body.off != ZERO or body.step != 1:
        return False
    nodes = list(ctx.out) + list(ctx.hoist or ())
    allocs = [n for n in nodes if isinstance(n, P.Alloc) and n.name == body.buf]
    return len(allocs) == 1 and allocs[0].mem is P.Mem.SBUF \
        and allocs[0].shape == (sympy.Integer(PMAX), width)
