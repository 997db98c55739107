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
from nkigen.codegen.symcache import Max, Min
from nkigen.codegen.tilexpr import (
    F32,
    ONE,
    ZERO,
    Compiler,
    Kind,
    TileCtx,
    Unsupported,
    Val,
)
from nkigen.dtypes import DType
from nkigen.hw import FP32_EXACT_INT, PMAX
from nkigen.ir import Reduce, ReduceKind

MAX8_MIN, MAX8_MAX = 8, 16384   # elements per partition of max8 / nc_find_index8 (docs above)
ARG_CHUNK = MAX8_MAX            # elements per chunk of a longer row (one max8 operand each)
# the pad past a short row: -inf ties with a row of -inf and then loses (find_index8 returns the
# first occurrence), and is below every other value; a finite pad (-FLT_MAX) beats -inf
PAD = sympy.S.NegativeInfinity


def lower_arg(c: Compiler, ctx: TileCtx, e: Reduce, want: DType | None) -> Val:
    (j,) = e.indices
    ext = sympy.sympify(c.extents[j])
    if j in (ctx.p, ctx.f) or c.depends_on(e.body, ctx.f):
        raise Unsupported(f"{e.op.value} over {j} needs {j} alone on the free axis")
    # a row of at most 16384 elements (its declared max; review 12 R12-5: a size with max
    # 40000 gave a kernel the compiler rejects above 16384) is one max8 / nc_find_index8
    # operand; a longer one is streamed in ARG_CHUNK pieces (_chunked)
    most = size_upper_bound(c, ext)
    if most is None or most > MAX8_MAX:
        return _chunked(c, ctx, e, want, ext, most)
    width = Max(sympy.Integer(MAX8_MIN), ext)
    sub = ctx.sub(f=j, f0=ZERO, fsz=ext, falloc=width, fvar=None)   # its own row (fuzz13)
    top, idx = _top8(c, ctx, sub, e)
    c.charge(ctx, "vector", 3.0)
    dst = c.tile(ctx, Kind.COL, want if want is not None and want.is_integer else DType.int32,
                 "arg")
    rows = P.Slice(ZERO, ctx.psz)
    ctx.out.append(P.TensorCopy(c.ref(ctx, dst), P.Ref(idx, (rows, P.Slice(ZERO, ONE)))))
    return dst


def _top8(c: Compiler, ctx: TileCtx, sub: TileCtx, e: Reduce) -> tuple[str, str]:
    """max8 and nc_find_index8 over the row of ``e``'s body in ``sub`` (``sub.fsz`` elements,
    padded with -inf up to 8 in a tile ``sub.falloc`` wide); their nodes go to ``sub.out``.
    Returns the names of the [P, 8] fp32 values and uint32 indices (local to the row)."""
    (j,) = e.indices
    n = sub.fsz
    width = Max(sympy.Integer(MAX8_MIN), n)
    body = c.compile(sub, e.body)
    if body.kind is not Kind.ROW:
        raise Unsupported(f"{e.op.value} over {j} of a value that does not depend on it")
    if e.op is ReduceKind.ARGMAX and _padded_in_place(sub, body, sub.falloc):
        # the body's own fp32 tile is already wide enough: only the pad columns past the
        # data (none once n >= 8, a trace-time int) get the fill, no copy (review4 F7)
        assert body.buf is not None
        full = P.Ref(body.buf, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, width)))
        _pad_short(sub, body.buf, ctx.psz, n)
    else:
        row = c.tile(sub, Kind.ROW, F32, "arow")
        full = P.Ref(row.buf or "", (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, width)))
        if sub.falloc != width:
            # a chunk tile (ARG_CHUNK wide): only a last chunk under 8 elements has pad
            # columns; the whole-row tile is max(8, n) wide, filled before the copy
            _pad_short(sub, row.buf or "", ctx.psz, n)
        else:
            sub.out.append(P.Memset(full, PAD))
        sign = sympy.Integer(-1) if e.op is ReduceKind.ARGMIN else sympy.Integer(1)
        sub.out.append(P.TensorScalar(c.ref(sub, row), c.ref(sub, body), P.AluOp.MULTIPLY,
                                      P.Scalar(sympy.Float(float(sign)))))
    top, idx = c.namer.fresh("top8"), c.namer.fresh("idx8")
    eight = sympy.Integer(8)
    sub.out.append(P.Alloc(top, (sympy.Integer(PMAX), eight), F32, P.Mem.SBUF))
    sub.out.append(P.Alloc(idx, (sympy.Integer(PMAX), eight), DType.uint32, P.Mem.SBUF))
    rows = P.Slice(ZERO, ctx.psz)
    sub.out.append(Max8(P.Ref(top, (rows, P.Slice(ZERO, eight))), full))
    sub.out.append(FindIndex8(P.Ref(idx, (rows, P.Slice(ZERO, eight))), full,
                              P.Ref(top, (rows, P.Slice(ZERO, eight)))))
    return top, idx


def _pad_short(sub: TileCtx, buf: str, psz: sympy.Expr, n: sympy.Expr) -> None:
    """Fill the pad columns ``n .. 8`` of ``buf`` with -inf under a trace-time ``if n < 8``
    (none once the row holds max8's minimum of 8 elements)."""
    pad = P.Ref(buf, (P.Slice(ZERO, psz), P.Slice(n, MAX8_MIN - n)))
    sub.out.append(P.If(n, sympy.Integer(MAX8_MIN), (P.Memset(pad, PAD),), (), P.Cmp.LT))


def _chunked(c: Compiler, ctx: TileCtx, e: Reduce, want: DType | None, ext: sympy.Expr,
             most: int | None) -> Val:
    """argmax / argmin of a row longer than one max8 operand: a sequential loop over chunks of
    ARG_CHUNK elements (the last one ragged, padded like a short row when under 8), each
    loaded and reduced by max8 / nc_find_index8 (8..16384 elements per partition: SH
    nki/api/nki/isa/__init__.py max8 / nc_find_index8, nki 0.3; S25
    general/nki/api/nki/isa/__init__.py, SDK 2.25), folded into a running best value and
    index per partition, [P, 1] fp32 columns on VectorE:

    - ``gt = top > best`` (strictly: a later chunk holding only a tie never wins, so the
      first chunk holding the maximum keeps it, and nc_find_index8 gives that chunk's first
      occurrence: NumPy's first index over the row; a row of -inf keeps index 0);
    - ``best = max(best, top)``;
    - ``d = (i + base) - best_i``, ``best_i = d * gt + best_i`` (the chunk's index made
      global by the chunk start ``base``, taken where ``gt`` is 1);
    - ``base += ARG_CHUNK``.

    The index arithmetic is float32 (arithmetic ALU operators convert their inputs, the
    uint32 nc_find_index8 output included, to float32: SH nki/api/nki.api.shared.rst and S25
    general/nki/api/nki.api.shared.rst "Supported Math Operators"), exact while every value
    is an integer of magnitude at most 2**24 (hw.FP32_EXACT_INT): the row's declared max must
    be within it. The chunk start is a column added on chip, not the loop index: the scalar
    ``operand0`` of scalar_tensor_tensor is "a compile-time constant scalar", else a
    ``(data.shape[0], 1)`` tile (S25 general/nki/api/nki/isa/__init__.py
    scalar_tensor_tensor, SDK 2.25), and the classic sequential_range index is not a
    compile-time constant. The final fp32 index is copied into the target's
    integer dtype (exact: an integer below 2**24). A fused pass keeps whole rows on chip, so
    only a statement of its own (whose reductions stream: ``TileCtx.chunked``) takes this
    form. NaN: as for one operand, undefined (the build refuses such test data)."""
    (j,) = e.indices
    if most is None or most > FP32_EXACT_INT:
        got = "no max" if most is None else f"up to {most}"
        raise Unsupported(f"{e.op.value} over {j} ({ext}: {got}): the index is computed in "
                          "float32 (VectorE arithmetic converts its inputs to float32: SH "
                          "nki/api/nki.api.shared.rst, S25 general/nki/api/nki.api.shared.rst "
                          f"\"Supported Math Operators\"), exact up to {FP32_EXACT_INT} only",
                          f"bound {ext} to at most {FP32_EXACT_INT} (sizes: max)")
    if not ctx.chunked:
        raise Unsupported(f"{e.op.value} over {j} ({ext}: up to {most}) streams its row in "
                          f"chunks of {ARG_CHUNK}, which a fused row pass (whole rows on chip) "
                          "does not", f"bound {ext} to at most {MAX8_MAX} (sizes: max)")
    col = lambda name: P.Ref(name, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, ONE)))  # noqa: E731
    best, best_i, base = (c.namer.fresh("best"), c.namer.fresh("best_i"),
                          c.namer.fresh("base"))
    for name, fill in ((best, PAD), (best_i, ZERO), (base, ZERO)):
        ctx.out.append(P.Alloc(name, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF))
        ctx.out.append(P.Memset(col(name), fill))
    jc, j0, jsz = (c.namer.fresh(f"{j}c"), c.namer.fresh(f"{j}0"), c.namer.fresh(f"{j}sz"))
    sym = lambda n: sympy.Symbol(n, integer=True, nonnegative=True)  # noqa: E731
    k = P.Const("ARG_CHUNK", ARG_CHUNK, "elements per partition of one max8 / "
                "nc_find_index8 operand (8..16384): longer rows stream in chunks", None,
                (jc, j0, jsz))
    if k not in c.declared:
        c.declared.append(k)
    body_out: list = [P.Let(j0, sym(jc) * ARG_CHUNK),
                      P.Let(jsz, Min(sympy.Integer(ARG_CHUNK), ext - sym(j0)))]
    # the chunk's own row: loaded in the loop (hoist_ok False), fvar the chunk index (the
    # classic divided and periodic reads place their periods by it: tilexpr.chunked_reduce)
    sub = ctx.sub(f=j, f0=sym(j0), fsz=sym(jsz), falloc=sympy.Integer(ARG_CHUNK),
                  out=body_out, cache={}, hoist_ok=False, fvar=sym(jc))
    top, idx = _top8(c, ctx, sub, e)
    gt, d = c.namer.fresh("gt"), c.namer.fresh("didx")
    first = lambda name: P.Ref(name, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, ONE)))  # noqa: E731
    body_out += [
        P.Alloc(gt, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
        P.TensorTensor(col(gt), first(top), col(best), P.AluOp.GREATER),
        P.TensorTensor(col(best), col(best), first(top), P.AluOp.MAXIMUM),
        P.Alloc(d, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
        P.ScalarTensorTensor(col(d), first(idx), P.AluOp.ADD, col(base), P.AluOp.SUBTRACT,
                             col(best_i)),
        P.ScalarTensorTensor(col(best_i), col(d), P.AluOp.MULTIPLY, col(gt), P.AluOp.ADD,
                             col(best_i)),
        P.TensorScalar(col(base), col(base), P.AluOp.ADD,
                       P.Scalar(sympy.Float(float(ARG_CHUNK)))),
    ]
    ctx.out.append(P.Loop(jc, sympy.ceiling(ext / ARG_CHUNK), P.LoopKind.SEQUENTIAL,
                          tuple(body_out)))
    c.charge(ctx, "vector", 3.0)
    dst = c.tile(ctx, Kind.COL, want if want is not None and want.is_integer else DType.int32,
                 "arg")
    ctx.out.append(P.TensorCopy(c.ref(ctx, dst), col(best_i)))
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
