"""Lowering of scans (spec language 1.1: ``cumsum`` and first-order linear recurrences).

Stage: plan (helper of :mod:`nkigen.codegen.tilexpr` and :mod:`nkigen.codegen.rows`). A
:class:`~nkigen.ir.Scan` ``out[t] = a[t] * out[t - 1] + b[t]`` becomes one VectorE
``tensor_tensor_scan`` per row tile with ``op0 = multiply``, ``op1 = add`` (SH
nki/api/nki/isa/__init__.py, nki 0.3; S25 general/nki/api/nki/isa/__init__.py, SDK 2.25): the
scanned index lies on the free axis, whole rows on chip, each partition an independent scan.

A row whose operands and result do not fit one SBUF partition at the declared max
(:func:`_check_rows_fit` raises :class:`ScanRowsTooLong`) is scanned in chunks instead
(:func:`nkigen.codegen.rows.scan_chunks`): a sequential loop over free chunks, each scan started
from the previous chunk's last value. ``initial`` is "a float32 compile-time scalar constant
[...] or a tile with the same partition axis size as data0/data1 and one element per
partition" (SH nki/api/nki/isa/__init__.py tensor_tensor_scan, nki 0.3; S25
general/nki/api/nki/isa/__init__.py tensor_tensor_scan, SDK 2.25): a ``[P, 1]`` fp32 carry
column per scan and row tile (:class:`ScanCarry`), set from the spec's initial value before the
first chunk and from the last column of each chunk's result after it. The engine computes in
float32 ("automatically casts input data types to float32 and performs the computation in
float32 math", same docstrings), so each chunk's result is kept in an fp32 tile and the carry
is the running value itself: the chunked scan performs the same float32 operations in the same
order as one scan over the whole row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.plan_ext import TensorTensorScan
from nkigen.codegen.tilexpr import F32, ONE, ZERO, Compiler, Kind, TileCtx, Unsupported, Val
from nkigen.dtypes import DType
from nkigen.hw import PMAX
from nkigen.ir import Expr, Scan, walk


class ScanRowsTooLong(Unsupported):
    """The whole-row scan does not fit one SBUF partition at the declared max: a statement of
    its own is then scanned in chunks (:func:`nkigen.codegen.rows.scan_chunks`)."""


@dataclass
class ScanCarry:
    """The chunked scans of one statement: ``init`` receives, once per row tile before the
    chunk loop, each carry column's allocation and its setting from the scan's initial value;
    ``cols`` maps a scan to its carry column; ``updates`` are the copies of each chunk's last
    result column into its carry, appended by the caller after the chunk's store."""

    init: list
    cols: dict[Scan, str] = field(default_factory=dict)
    updates: list = field(default_factory=list)


def scans(e: Expr) -> list[Scan]:
    return [x for x in walk(e) if isinstance(x, Scan)]


def scan_placement(lhs: tuple[str, ...], rhs: Expr) -> tuple[str, str, tuple[str, ...]] | None:
    """(partition, free, outer loops) for a statement holding a scan: the scanned index on the
    free axis, the first other left-hand index on the partitions; None without a scan."""
    found = scans(rhs)
    if not found:
        return None
    f = found[0].index
    rest = [i for i in lhs if i != f]
    if not rest:
        return None
    return rest[0], f, tuple(rest[1:])


def lower_scan(c: Compiler, ctx: TileCtx, e: Scan, want: DType | None) -> Val:
    if ctx.f != e.index:
        raise Unsupported(f"a scan along {e.index} needs {e.index} on the free axis")
    carry = ctx.scan_carry
    if carry is None and (sympy.sympify(ctx.f0) != ZERO
                          or sympy.simplify(ctx.fsz - c.extents[e.index]) != 0):
        raise Unsupported(f"a scan along {e.index} needs whole rows on chip")
    a = c.compile(ctx, e.a)
    b = c.compile(ctx, e.b)
    init = c.compile(ctx, e.initial) if carry is None else None
    if carry is not None and a.kind is Kind.SCALAR and a.expr is not None:
        a = _const_chunk(c, ctx, a.expr, carry)
    if a.kind is not Kind.ROW:
        a = c.materialize(ctx, a, Kind.ROW, F32)
    if b.kind is not Kind.ROW:
        b = c.materialize(ctx, b, Kind.ROW, F32)
    initial: P.Operand
    if carry is not None:
        col = _carry(c, ctx, e, carry)
        initial = col
        dst = c.tile(ctx, Kind.ROW, F32, "scan")       # fp32: the carried running value
        last = P.Ref(dst.buf or "", (P.Slice(ZERO, ctx.psz), P.Slice(ctx.fsz - 1, ONE)))
        carry.updates.append(P.TensorCopy(col, last, P.Eng.VECTOR))
    else:
        assert init is not None
        if init.kind is Kind.ROW:
            raise Unsupported("the initial value of a scan depends on the scanned index")
        initial = P.Scalar(sympy.Float(float(init.expr))) if (
            init.kind is Kind.SCALAR and init.expr is not None and init.expr.is_number) else \
            c.operand(ctx, init)
        dst = c.tile(ctx, Kind.ROW, want or F32, "scan")
        _check_rows_fit(c, e, a, b, dst, init)
    c.charge(ctx, "vector", 2.0)
    ctx.out.append(TensorTensorScan(c.ref(ctx, dst), c.ref(ctx, a), c.ref(ctx, b), initial))
    return dst


def _const_chunk(c: Compiler, ctx: TileCtx, value: sympy.Expr, carry: ScanCarry) -> Val:
    """A constant multiplier (1 for ``cumsum``, the ``a`` of ``a * h[t - 1] + b``) as a row
    filled once per row tile before the chunk loop, a whole chunk wide, instead of once per
    chunk: every chunk reads it, none writes it."""
    name = c.namer.fresh("coef")
    carry.init.append(P.Alloc(name, (sympy.Integer(PMAX), ctx.falloc), F32, P.Mem.SBUF))
    carry.init.append(P.Memset(P.Ref(name, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, ctx.falloc))),
                               value))
    return Val(Kind.ROW, buf=name, dtype=F32, temp=False)


def _carry(c: Compiler, ctx: TileCtx, e: Scan, carry: ScanCarry) -> P.Ref:
    """The ``[P, 1]`` fp32 carry column of scan ``e`` in this row tile: made once, before the
    chunk loop, from the scan's initial value (a memset of a number, else a VectorE copy of
    the column, widened to fp32 on the way)."""
    col = carry.cols.get(e)
    if col is None:
        col = c.namer.fresh("carry")
        carry.cols[e] = col
        ref = P.Ref(col, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, ONE)))
        sub = ctx.sub(out=carry.init, cache={}, hoist_ok=False, row_hoist=carry.init)
        init = c.compile(sub, e.initial)
        if init.kind is Kind.ROW:
            raise Unsupported("the initial value of a scan depends on the scanned index")
        carry.init.append(P.Alloc(col, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF))
        if init.kind is Kind.SCALAR:
            assert init.expr is not None
            carry.init.append(P.Memset(ref, init.expr))
        else:
            carry.init.append(P.TensorCopy(ref, c.ref(sub, init), P.Eng.VECTOR))
    return P.Ref(col, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, ONE)))


def _check_rows_fit(c: Compiler, e: Scan, a: Val, b: Val, dst: Val, init: Val) -> None:
    """The scan reads two whole rows and writes a third, all in SBUF at once (one
    ``tensor_tensor_scan``: SH nki/api/nki/isa/__init__.py, nki 0.3; the engines read and write
    on-chip memory only), with its initial value when that is a ``[P, 1]`` tile (one more
    element of its dtype per partition), so their bytes at the largest allowed extent must fit
    one SBUF partition of the target (nkigen.hw: 212984 B usable on trn2, 180224 on trn1);
    spilling cannot free an operand of the running instruction. Review 12 R12-6: a cumsum with
    N up to 200000 was generated and ran in the simulator only below N of about 53000 (its
    single-tile limit), with nothing said at generation. A row over the limit is scanned in
    chunks (:class:`ScanRowsTooLong`); the initial column was not counted before (a bf16 h0
    with fp32 a, bf16 x and h at T = 26623 on trn2 was planned whole and overflowed the
    partition by 2 B in the simulator)."""
    from nkigen.codegen.argext import size_upper_bound

    ext = sympy.sympify(c.extents[e.index])
    per = a.dtype.itemsize + b.dtype.itemsize + dst.dtype.itemsize
    col = init.dtype.itemsize if init.kind is Kind.COL else 0
    cap = c.target.sbuf_bytes_per_partition
    most = size_upper_bound(c, ext)
    if most is None or most * per + col > cap:
        got = "no max" if most is None else f"up to {most}, {most * per + col} B per partition"
        what = f" and its initial column ({col} B)" if col else ""
        raise ScanRowsTooLong(f"a scan along {e.index} keeps whole rows on chip: its two operand "
                              f"rows and result row ({per} B per element){what} must fit one "
                              f"SBUF partition ({cap} B on {c.target.name}) ({ext}: {got})",
                              f"bound {ext} to at most {(cap - col) // per} (sizes: max)")
