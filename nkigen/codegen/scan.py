"""Lowering of scans (spec language 1.1: ``cumsum`` and first-order linear recurrences).

Stage: plan (helper of :mod:`nkigen.codegen.tilexpr` and :mod:`nkigen.codegen.rows`). A
:class:`~nkigen.ir.Scan` ``out[t] = a[t] * out[t - 1] + b[t]`` becomes one VectorE
``tensor_tensor_scan`` per row tile with ``op0 = multiply``, ``op1 = add`` (SH
nki/api/nki/isa/__init__.py, nki 0.3; S25 general/nki/api/nki/isa/__init__.py, SDK 2.25): the
scanned index lies on the free axis, whole rows on chip, each partition an independent scan.
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.plan_ext import TensorTensorScan
from nkigen.codegen.tilexpr import F32, ZERO, Compiler, Kind, TileCtx, Unsupported, Val
from nkigen.dtypes import DType
from nkigen.ir import Expr, Scan, walk


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
    if sympy.sympify(ctx.f0) != ZERO or sympy.simplify(ctx.fsz - c.extents[e.index]) != 0:
        raise Unsupported(f"a scan along {e.index} needs whole rows on chip")
    a = c.compile(ctx, e.a)
    b = c.compile(ctx, e.b)
    init = c.compile(ctx, e.initial)
    if a.kind is not Kind.ROW:
        a = c.materialize(ctx, a, Kind.ROW, F32)
    if b.kind is not Kind.ROW:
        b = c.materialize(ctx, b, Kind.ROW, F32)
    if init.kind is Kind.ROW:
        raise Unsupported("the initial value of a scan depends on the scanned index")
    initial: P.Operand = P.Scalar(sympy.Float(float(init.expr))) if (
        init.kind is Kind.SCALAR and init.expr is not None and init.expr.is_number) else \
        c.operand(ctx, init)
    dst = c.tile(ctx, Kind.ROW, want or F32, "scan")
    _check_rows_fit(c, e, a, b, dst)
    c.charge(ctx, "vector", 2.0)
    ctx.out.append(TensorTensorScan(c.ref(ctx, dst), c.ref(ctx, a), c.ref(ctx, b), initial))
    return dst


def _check_rows_fit(c: Compiler, e: Scan, a: Val, b: Val, dst: Val) -> None:
    """The scan reads two whole rows and writes a third, all in SBUF at once (one
    ``tensor_tensor_scan``: SH nki/api/nki/isa/__init__.py, nki 0.3; the engines read and write
    on-chip memory only), so their bytes at the largest allowed extent must fit one SBUF
    partition of the target (nkigen.hw: 212984 B usable on trn2, 180224 on trn1); spilling
    cannot free an operand of the running instruction. Review 12 R12-6: a cumsum with N up to
    200000 was generated and ran in the simulator only below N of about 53000 (its single-tile
    limit), with nothing said at generation."""
    from nkigen.codegen.argext import size_upper_bound

    ext = sympy.sympify(c.extents[e.index])
    per = a.dtype.itemsize + b.dtype.itemsize + dst.dtype.itemsize
    cap = c.target.sbuf_bytes_per_partition
    most = size_upper_bound(c, ext)
    if most is None or most * per > cap:
        got = "no max" if most is None else f"up to {most}, {most * per} B per partition"
        raise Unsupported(f"a scan along {e.index} keeps whole rows on chip: its two operand "
                          f"rows and result row ({per} B per element) must fit one SBUF "
                          f"partition ({cap} B on {c.target.name}) ({ext}: {got})",
                          f"bound {ext} to at most {cap // per} (sizes: max)")
