"""Reversed partition-axis reads (``x[N - 1 - n, m]`` with ``n`` on the partitions) as a
vector-indirect DMA gather, never an HBM access pattern with a negative step.

Stage: plan (tile loads, called by :meth:`nkigen.codegen.tilexpr.Compiler.load`). No NKI
document gives a DMA (HBM) access pattern a negative stride (review 7 R7-1:
``docs/review-kernels-7.md``; the simulator rejects one, :data:`nkigen.sim.tensor.NEG_STEP_RULE`).
A tile whose rows are read in descending order is gathered instead: GpSimd ``iota`` writes the
row number of each partition, ``R - p`` (int32 arithmetic, a signed int32 ``channel_multiplier``:
SH nki/api/nki/isa/__init__.py ``iota``, nki 0.3; an affine ``nl.arange`` expression computed in
32-bit integer math: S25 general/nki/api/nki/isa/__init__.py ``iota``, SDK 2.25), and one
vector-indirect DMA reads each partition's row in ascending element order (SH
nki/deep-dives/nki-aps.rst "Vector Dynamic Access", nki 0.3; S25 ``data[idx_tile[i_p, 0], i_f]``
indirect load, SDK 2.25). Values are moved, never computed: bit-exact for every dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.plan_ext import Iota
from nkigen.codegen.symcache import substitute
from nkigen.dtypes import DType
from nkigen.hw import PMAX
from nkigen.ir import Access, index_symbol

if TYPE_CHECKING:
    from nkigen.codegen.tilexpr import Compiler, TileCtx, Val

ZERO, ONE = sympy.Integer(0), sympy.Integer(1)


def descending(src: P.AnyRef) -> bool:
    """Whether ``src`` is a raw HBM pattern whose partition pair steps backwards."""
    return isinstance(src, P.ApRef) and len(src.pattern) == 2 and \
        sympy.sympify(src.pattern[0][0]).could_extract_minus_sign()


def gather_rows(c: Compiler, ctx: TileCtx, tensor: str, indices: tuple, src: P.ApRef,
                dst: P.Ref, out: list, rows: sympy.Expr) -> None:
    """Append to ``out`` the iota + gather that load ``dst`` with what ``src`` (a pattern whose
    partition step is negative) describes; the plain DMA when its free step is negative too."""
    from nkigen.codegen.tilexpr import strides
    t = c.spec.tensor(tensor)
    strd = strides(tuple(sympy.sympify(s) for s in t.shape))
    psym = index_symbol(ctx.p)
    fsym = index_symbol(ctx.f) if ctx.f else None
    subs = {index_symbol(k): v for k, v in ctx.env.items()}
    dims = [sympy.expand(substitute(sympy.sympify(e), subs)) for e in indices]
    pdims = [d for d, e in enumerate(dims) if psym in e.free_symbols]
    (fstep, fcount) = src.pattern[1]
    if len(pdims) != 1 or sympy.sympify(fstep).could_extract_minus_sign():
        # not reached from load() (it turns a reversed free axis forward first); a caller
        # that passes one gets the plain DMA, which the simulator refuses (NEG_STEP_RULE)
        out.append(P.Dma(dst, src))
        return
    pd = pdims[0]
    if c.classic and fsym is not None and \
            any(fsym in dims[d].free_symbols for d in range(pd + 1)):
        from nkigen.codegen.tilexpr import Unsupported
        raise Unsupported(
            f"{tensor} is read with its rows in descending order along {ctx.p} and its free "
            f"index {ctx.f} on an outer dimension: the classic vector-indirect load indexes "
            "whole rows, indirect on the partition dimension only (S25 "
            "general/nki/api/nki.errors.rst err_indirect_indices_free_dim, SDK 2.25) and an "
            "HBM access pattern may not step backwards (no NKI document gives one); use the "
            "nki dialect, or read the tensor with the reversed index on its last dimension")
    pcoef = dims[pd].coeff(psym)
    at = {psym: ctx.p0}
    if fsym is not None:
        at[fsym] = ctx.f0
    row_step = strd[pd]
    first = sympy.expand(sum((dims[d].subs(at) * sympy.simplify(strd[d] / row_step)
                              for d in range(pd + 1)), ZERO))
    # the pattern's own offset (a reversed free axis turned forward starts at its last element)
    base = sympy.expand(src.offset - first * row_step)
    ids = c.namer.fresh(f"{tensor}_rows")
    col = (P.Slice(ZERO, rows), P.Slice(ZERO, ONE))
    out.append(P.Alloc(ids, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
    out.append(Iota(P.Ref(ids, col), first, pcoef, ZERO, rows, ONE))
    from nkigen.codegen.gather import gather_dma
    out.append(gather_dma(t, dst, P.Ref(ids, col), base, row_step, rows, fstep, fcount))
    c.charge(ctx, "gpsimd", 1.0)   # iota


def backwards_free(src: P.AnyRef) -> bool:
    """Whether ``src`` is a raw HBM pattern whose free pair (of more than one element) steps
    backwards."""
    return isinstance(src, P.ApRef) and len(src.pattern) == 2 and \
        sympy.sympify(src.pattern[1][0]).could_extract_minus_sign() and \
        sympy.sympify(src.pattern[1][1]) != 1


def load(c: Compiler, ctx: TileCtx, tensor: str, indices: tuple, src: P.AnyRef, dst: P.Ref,
         out: list, rows: sympy.Expr, width: sympy.Expr) -> None:
    """Append to ``out`` the load of ``dst`` (a ``[rows, count]`` corner of a tile ``width``
    elements wide) with what ``src`` describes, with no negative HBM step.

    A reversed free axis is read in ascending order into a scratch tile and reversed on chip by
    a VectorE copy whose SBUF source steps backwards: a free-axis stride is a signed int16 of
    the engine access pattern (S25 general/nki/arch/trainium_inferentia2_arch.rst, SDK 2.25; SH
    nki/guides/architecture/trainium_inferentia2_arch.rst), spelled ``t.ap([[W, P], [-1, n]],
    offset=n - 1)`` in nki 0.3 (SH nki/deep-dives/nki-aps.rst: ``.ap`` expresses any pattern
    the hardware supports) and ``t[i_p, n - 1 - i_f]`` in the classic dialect (S25
    general/nki/programming_model.rst "Advanced Tensor Indexing"). Same dtype in and out, on
    VectorE: a bit-accurate copy (SH nki/api/nki/isa/__init__.py ``tensor_copy``, nki 0.3;
    ScalarE would cast through float32). Reversed rows: :func:`gather_rows`.
    """
    if not backwards_free(src):
        if descending(src):
            assert isinstance(src, P.ApRef)
            gather_rows(c, ctx, tensor, indices, src, dst, out, rows)
        else:
            out.append(P.Dma(dst, src))
        return
    assert isinstance(src, P.ApRef)
    (pstep, pn), (fstep, count) = src.pattern
    ahead = P.ApRef(src.name, sympy.expand(src.offset + (count - 1) * fstep),
                    ((pstep, pn), (sympy.expand(-fstep), count)))
    t = c.spec.tensor(tensor)
    scratch = c.namer.fresh(f"{tensor}_fw")
    out.append(P.Alloc(scratch, (sympy.Integer(PMAX), width), t.dtype, P.Mem.SBUF))
    sdst = P.Ref(scratch, (P.Slice(ZERO, rows), P.Slice(ZERO, count)))
    if descending(ahead):
        gather_rows(c, ctx, tensor, indices, ahead, sdst, out, rows)
    else:
        out.append(P.Dma(sdst, ahead))
    back: P.Ref | P.ApRef
    if c.classic:
        back = P.Ref(scratch, (P.Slice(ZERO, rows), P.Slice(count - 1, count, sympy.Integer(-1))))
    else:
        back = P.ApRef(scratch, sympy.expand(count - 1), ((width, rows), (sympy.Integer(-1),
                                                                          count)))
    out.append(P.TensorCopy(dst, back, P.Eng.VECTOR))
    c.charge(ctx, "vector", 1.0)


def _power_of_two(c: sympy.Expr) -> int | None:
    """log2 of ``c`` when it is an integer power of two >= 2, else None."""
    if not (c.is_Integer and int(c) >= 2 and int(c) & (int(c) - 1) == 0):
        return None
    return int(c).bit_length() - 1


def _divided(e: sympy.Expr, psym: sympy.Symbol
             ) -> tuple[sympy.Expr, sympy.Expr, bool, int, int | None] | None:
    """``e = k * q + rest`` with ``q`` the one ``floor(L / c)`` or ``Mod(L, c)`` of ``psym`` in
    it, ``L = psym + e0`` and ``c >= 2`` an integer: ``(L, k, is_floor, c, log2 c or None)``,
    else None."""
    qs = [q for q in e.atoms(sympy.floor, sympy.Mod) if psym in q.free_symbols]
    if len(qs) != 1:
        return None
    q = qs[0]
    if isinstance(q, sympy.Mod):
        lin, c = sympy.expand(q.args[0]), sympy.sympify(q.args[1])
    else:
        arg = sympy.expand(q.args[0])
        inv = arg.coeff(psym)
        if not inv.is_Rational or inv <= 0 or inv.p != 1:
            return None
        c = sympy.Integer(inv.q)
        lin = sympy.expand(arg * c)
    if not (c.is_Integer and int(c) >= 2):
        return None
    s = _power_of_two(c)
    if lin.coeff(psym) != 1 or \
            any(x.has(psym) for x in sympy.Add.make_args(lin - psym)) or \
            lin.atoms(sympy.floor, sympy.Mod) or \
            any(not t.is_Integer for t in sympy.Add.make_args(lin.subs(psym, 0)) if t.is_number):
        return None
    dummy = sympy.Dummy("q")
    ed = sympy.expand(e.xreplace({q: dummy}))
    k = ed.coeff(dummy)
    if not (k.is_Integer and k > 0) or sympy.expand(ed - k * dummy).has(dummy, psym):
        return None
    return lin, k, isinstance(q, sympy.floor), int(c), s


def divided_rows(c: Compiler, ctx: TileCtx, a: Access) -> Val | None:
    """A read whose partition index is divided, ``x[r // c, n]`` or ``x[r % c, n]`` with ``r``
    on the partitions, gathered row by row; None when the access has another form (the load's
    other paths, or the row lowering's fallback placements, take it). ``c`` a power of two
    below; any other ``c`` is counted (:func:`_counted`).

    The row lowering could not place ``r`` on the partitions for such a read and moved it to a
    scalar loop, one element per partition and per DMA (597 us modelled for ``y[m, n] = x[m, n]
    * g[m // 4]`` at 256 x 300; codegen/residue.py views the output instead, but only when the
    rows are a multiple of ``c``). Here each partition's source row is computed on chip: GpSimd
    ``iota`` writes ``r`` (int32, :class:`~nkigen.codegen.plan_ext.Iota`), one VectorE
    ``tensor_scalar`` takes ``r >> log2 c`` or ``r & (c - 1)`` (bitvec operators on integer
    data with integer operands, logical right shift, VectorE only: SH nki/api/nki.api.shared.rst
    tbl-aluop and nki/api/nki/isa/__init__.py tensor_scalar, nki 0.3; S25 the same table, SDK
    2.25; ``r >= 0`` where the tile reads, so the logical shift is the floor), and one
    vector-indirect DMA reads the rows (:class:`~nkigen.codegen.plan_ext.GatherDma`). Values are
    moved, never computed: bit-exact for every dtype."""
    from nkigen.codegen.gather import _check_fp32_exact_rows, gathered_tile
    from nkigen.codegen.tilexpr import Kind, Unsupported, strides
    from nkigen.ir import index_symbol as isym
    psym = isym(ctx.p)
    fsym = isym(ctx.f) if ctx.f else None
    subs = {isym(k): v for k, v in ctx.env.items()}
    dims = [sympy.expand(substitute(sympy.sympify(e), subs)) for e in a.indices]
    pd = [d for d, e in enumerate(dims) if psym in e.free_symbols]
    if len(pd) != 1:
        return None
    d = pd[0]
    got = _divided(dims[d], psym)
    if got is None or (fsym is not None and fsym in dims[d].free_symbols):
        return None
    lin, k, is_floor, cval, shift = got
    fd = [j for j, e in enumerate(dims) if fsym is not None and fsym in e.free_symbols]
    if len(fd) > 1 or (fd and fd[0] < d):
        return None
    for j, e in enumerate(dims):
        if j != d and any(fsym is not None and fsym in q.free_symbols or psym in q.free_symbols
                          for q in e.atoms(sympy.floor, sympy.Mod)):
            return None
    t = c.spec.tensor(a.tensor)
    strd = strides(tuple(sympy.sympify(s) for s in t.shape))
    at = {psym: ctx.p0}
    fstep, fcount, kind = ONE, ONE, Kind.COL
    if fd:
        fcoef = dims[fd[0]].coeff(fsym)
        if not fcoef.is_Integer or fcoef <= 0:
            return None
        at[fsym] = ctx.f0
        fstep, fcount, kind = sympy.expand(fcoef * strd[fd[0]]), ctx.fsz, Kind.ROW
    row_step = sympy.expand(k * strd[d])
    q_at = dims[d].atoms(sympy.floor, sympy.Mod)
    (q,) = [x for x in q_at if psym in x.free_symbols]
    rest = sympy.expand(dims[d].xreplace({q: ZERO}).subs(at))
    before = sympy.expand(sum((dims[j].subs(at) * strd[j] for j in range(d)), ZERO)
                          + rest * strd[d])
    cols = sympy.expand(sum((dims[j].subs(at) * strd[j] for j in range(d + 1, len(dims))), ZERO))
    lead = sympy.simplify(before / row_step)       # whole rows before the gathered one
    if not (lead.is_integer or all(isinstance(x, sympy.Symbol) or x.is_Integer
                                   for x in sympy.Add.make_args(sympy.expand(lead)))):
        return None
    lead = sympy.expand(lead)
    start = sympy.expand(lin.subs(psym, ctx.p0))
    # the classic row view takes the column offset only (offset < row_step): the rows before
    # a residue are added to its ids on chip
    add_lead = not is_floor and c.classic and lead != 0
    if shift is None or add_lead:
        # ids computed or moved in fp32 on VectorE: exact for tables of at most 2**24 rows
        # (gather._check_fp32_exact_rows; Unsupported otherwise)
        try:
            _check_fp32_exact_rows(c, t, a.tensor, d)
        except Unsupported:
            return None
    key = ("divided", a.tensor, tuple(dims), ctx.p0, ctx.f0 if fd else None)
    if key in ctx.cache:
        return ctx.cache[key]
    if shift is None:
        v = _counted(c, ctx, a, t, start, cval, is_floor, lead, row_step, cols, fstep, fcount,
                     kind)
        ctx.cache[key] = v
        return v
    offset = cols
    if is_floor:
        start = sympy.expand(start + lead * cval)   # (r + lead * c) >> s = (r >> s) + lead
    elif not c.classic:
        offset = sympy.expand(cols + lead * row_step)
    rows = ctx.psz
    col = (P.Slice(ZERO, rows), P.Slice(ZERO, ONE))
    rid, ids = c.namer.fresh(f"{a.tensor}_r"), c.namer.fresh(f"{a.tensor}_rows")
    ctx.out.append(P.Alloc(rid, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
    ctx.out.append(P.Alloc(ids, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
    ctx.out.append(Iota(P.Ref(rid, col), start, ONE, ZERO, rows, ONE))
    op, operand = (P.AluOp.RIGHT_SHIFT, shift) if is_floor else (P.AluOp.BITWISE_AND,
                                                                 cval - 1)
    ctx.out.append(P.TensorScalar(P.Ref(ids, col), P.Ref(rid, col), op,
                                  P.Scalar(sympy.Integer(operand), integer=True)))
    if add_lead:
        ids = _add_lead(c, ctx, a.tensor, rid, ids, lead, rows)
    c.charge(ctx, "gpsimd", 1.0)   # iota
    c.charge(ctx, "vector", 1.0)   # the shift / mask
    v = gathered_tile(c, ctx, t, f"{a.tensor}_t", P.Ref(ids, col), offset, row_step, fstep,
                      fcount, kind)
    ctx.cache[key] = v
    return v


def _add_lead(c: Compiler, ctx: TileCtx, name: str, spare: str, ids: str, lead: sympy.Expr,
              rows: sympy.Expr) -> str:
    """``ids + lead`` (the whole rows before the gathered one) into the int32 ``(P, 1)`` tile
    ``spare``; returns the name of the tile holding the sum. An integer ``lead`` is one VectorE
    ``tensor_scalar`` add. A lead of loop indices (the rows of the batches before, ``G * i_b``)
    is no scalar operand: a tensor_scalar operand is "a compile-time constant scalar" (S25
    general/nki/api/nki/isa/__init__.py tensor_scalar, SDK 2.25) and an nl.affine_range index
    is symbolic while the body is traced (S25 static_range: only static_range unrolls during
    tracing), so float(G * i_b) has no value (review 10 R10-6). GpSimd writes it on chip
    instead (iota of an affine expression of the loop indices, S25 iota) and one VectorE
    tensor_tensor adds it (fp32 math, exact: the caller checked the table's rows)."""
    col = (P.Slice(ZERO, rows), P.Slice(ZERO, ONE))
    if lead.is_Integer:
        ctx.out.append(P.TensorScalar(P.Ref(spare, col), P.Ref(ids, col), P.AluOp.ADD,
                                      P.Scalar(lead)))
        c.charge(ctx, "vector", 1.0)
        return spare
    lid = c.namer.fresh(f"{name}_lead")
    ctx.out += [P.Alloc(lid, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF),
                Iota(P.Ref(lid, col), lead, ZERO, ZERO, rows, ONE),
                P.TensorTensor(P.Ref(spare, col), P.Ref(ids, col), P.Ref(lid, col),
                               P.AluOp.ADD)]
    c.charge(ctx, "gpsimd", 1.0)
    c.charge(ctx, "vector", 1.0)
    return spare


def _counted(c: Compiler, ctx: TileCtx, a: Access, t, start: sympy.Expr, cval: int,
             is_floor: bool, lead: sympy.Expr, row_step: sympy.Expr, cols: sympy.Expr,
             fstep: sympy.Expr, fcount: sympy.Expr, kind) -> Val:
    """``divided_rows`` for a divisor that is not a power of two (``r // 3``), both dialects.

    The ALU table has no divide and no modulo (SH nki/api/nki.api.shared.rst tbl-aluop, nki
    0.3), so the quotient is counted: with the tile's first row ``s = c * Q + R`` (``Q``, ``R``
    trace-time integers: the row tile loops are Python ``range`` loops in nki 0.3, and in the
    classic dialect the renderer makes the row loop an ``nl.static_range`` because ``Q`` and
    ``R`` take ``//`` and ``%`` of its index: S25 general/nki/api/nki/language/__init__.py
    static_range, SDK 2.25),
    ``floor((s + p) / c) = Q + #{j >= 1 : c * j <= p + R}``. GpSimd ``iota`` writes ``p + R -
    c * j`` over ``j = 1 .. J`` along the free axis, one VectorE ``tensor_scalar`` compares it
    with 0 (1.0 / 0.0), one ``tensor_reduce`` adds the row up and one ``tensor_scalar`` adds
    ``Q`` (and the rows before) into the int32 ids; the residue is ``p + R - c * count`` (one
    ``scalar_tensor_tensor``). fp32 arithmetic, exact: every value is an integer below 2**24
    (the table's row count is checked, gather._check_fp32_exact_rows)."""
    rows = ctx.psz
    col = (P.Slice(ZERO, rows), P.Slice(ZERO, ONE))
    q0, r0 = sympy.floor(start / cval), sympy.Mod(start, cval)
    span = (PMAX - 1 + cval - 1) // cval          # the largest count, (127 + R) // c
    wide = (P.Slice(ZERO, rows), P.Slice(ZERO, sympy.Integer(span)))
    big = sympy.Integer(PMAX)
    ids = c.namer.fresh(f"{a.tensor}_rows")
    ctx.out.append(P.Alloc(ids, (big, ONE), DType.int32, P.Mem.SBUF))
    steps, hits, cnt = (c.namer.fresh(f"{a.tensor}_{w}") for w in ("steps", "hits", "cnt"))
    # (not shared between reads of one tile: the modelled latency rose 23.49 -> 25.24 us on
    # the test spec when they waited for one chain)
    ctx.out += [P.Alloc(steps, (big, sympy.Integer(span)), DType.int32, P.Mem.SBUF),
                P.Alloc(hits, (big, sympy.Integer(span)), DType.float32, P.Mem.SBUF),
                P.Alloc(cnt, (big, ONE), DType.float32, P.Mem.SBUF),
                Iota(P.Ref(steps, wide), sympy.expand(r0 - cval), ONE, sympy.Integer(-cval),
                     rows, sympy.Integer(span)),
                P.TensorScalar(P.Ref(hits, wide), P.Ref(steps, wide), P.AluOp.GREATER_EQUAL,
                               P.Scalar(ZERO)),
                P.TensorReduce(P.Ref(cnt, col), P.AluOp.ADD, P.Ref(hits, wide))]
    c.charge(ctx, "gpsimd", 1.0)
    c.charge(ctx, "vector", 2.0)
    offset = cols
    # the classic dialect: the phase q0, r0 is a trace-time int (the renderer makes the row
    # loop an nl.static_range for the Mod / floor of its index), a lead of affine_range
    # indices is not, and the classic row view takes the column offset only, so the rows
    # before are added to the ids on chip (_add_lead)
    on_chip = sympy.Integer(0)
    if c.classic and not (is_floor and lead.is_Integer):
        on_chip = lead
    if is_floor:
        ctx.out.append(P.TensorScalar(P.Ref(ids, col), P.Ref(cnt, col), P.AluOp.ADD,
                                      P.Scalar(sympy.expand(q0 + lead - on_chip))))
    else:
        here = c.namer.fresh(f"{a.tensor}_r")
        ctx.out += [P.Alloc(here, (big, ONE), DType.int32, P.Mem.SBUF),
                    Iota(P.Ref(here, col), r0, ONE, ZERO, rows, ONE),
                    P.ScalarTensorTensor(P.Ref(ids, col), P.Ref(cnt, col), P.AluOp.MULTIPLY,
                                         P.Scalar(sympy.Integer(-cval)), P.AluOp.ADD,
                                         P.Ref(here, col))]
        if not c.classic:
            offset = sympy.expand(cols + lead * row_step)
        c.charge(ctx, "gpsimd", 1.0)
    c.charge(ctx, "vector", 1.0)
    if on_chip != 0:
        spare = c.namer.fresh(f"{a.tensor}_rows")
        ctx.out.append(P.Alloc(spare, (big, ONE), DType.int32, P.Mem.SBUF))
        ids = _add_lead(c, ctx, a.tensor, spare, ids, on_chip, rows)
    from nkigen.codegen.gather import gathered_tile
    return gathered_tile(c, ctx, t, f"{a.tensor}_t", P.Ref(ids, col), offset, row_step, fstep,
                         fcount, kind)
