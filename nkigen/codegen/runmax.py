"""Running maxima and minima spelled as triangular reductions, as one VectorE scan per row tile.

Stage: plan (Statement -> plan nodes). The spec language has no running max; it is written

    y[m, n] = max(where(k <= n, x[m, k], F), k)      (k over the extent of n; F a number)

(or ``min``, ``k < n + 1``, ``n >= k``, or the complement ``where(k > n, F, x[m, k])``). The row
lowering evaluates it as written: for every output element a masked reduction over all ``k``
(N^2 work, a DMA per row: 9,665.13 us modelled at M 1024, N 512 on trn2).

Its value is the running max of ``x`` along the row, with ``F`` taking part wherever some ``k``
of the range lies past ``n``, i.e. at every column but the last:

    y[m, n] = max(max(x[m, 0..n]), F)   for n < N - 1,     y[m, N - 1] = max(x[m, 0..N-1]).

So each tile of 128 rows is loaded whole, turned into its running max by one
``tensor_tensor_scan`` with ``op0 = op1 = maximum`` and ``data0 = data1 = x`` (``r[i] =
max(max(x[i], r[i - 1]), x[i])``, started from the row's own first element, so no infinity
is needed), ``F`` applied to the columns before the last by one ``tensor_scalar``, and the rows
stored. Docs: SH nki/api/nki/isa/__init__.py ``tensor_tensor_scan`` (nki 0.3): ``op0`` and
``op1`` any arithmetic operator of tbl-aluop, ``initial`` a scalar or a ``[P, 1]`` tile; S25
general/nki/api/nki/isa/__init__.py ``tensor_tensor_scan`` (SDK 2.25), the same; ``maximum``
and ``minimum`` are arithmetic operators of tbl-aluop (SH nki/api/nki.api.shared.rst; S25
general/nki/api/nki.api.shared.rst).

Anything else returns None (the row lowering handles it): other reductions, a read of ``x``
whose indices are not the target's with ``k`` for ``n``, ``n`` not the last target index,
rows over :data:`ROW_BYTES`.
"""

from __future__ import annotations

import sympy

from nkigen.analysis.sizes import at_max
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.codegen.plan_ext import TensorTensorScan
from nkigen.codegen.symcache import Min
from nkigen.dtypes import DType
from nkigen.hw import PMAX
from nkigen.ir import (
    Access,
    AssignOp,
    CmpOp,
    Compare,
    Const,
    Expr,
    IndexValue,
    Neg,
    Reduce,
    ReduceKind,
    Role,
    Statement,
    Where,
    index_symbol,
)

ZERO, ONE = sympy.Integer(0), sympy.Integer(1)
F32 = DType.float32
ROW_BYTES = 32 * 1024     # bytes per partition of one whole row (float32) at the largest sizes
_OPS = {ReduceKind.MAX: P.AluOp.MAXIMUM, ReduceKind.MIN: P.AluOp.MINIMUM}


def _number(e: Expr) -> float | None:
    if isinstance(e, Const):
        return float(e.value)
    if isinstance(e, Neg) and isinstance(e.operand, Const):
        return -float(e.operand.value)
    return None


def _lower_triangle(cond: Expr, k: str, n: str) -> bool | None:
    """True when ``cond`` holds exactly for ``k <= n``, False when exactly for ``k > n``,
    None otherwise."""
    if not isinstance(cond, Compare) or not isinstance(cond.lhs, IndexValue) \
            or not isinstance(cond.rhs, IndexValue):
        return None
    d = sympy.expand(sympy.sympify(cond.lhs.expr) - sympy.sympify(cond.rhs.expr))
    ks, ns = index_symbol(k), index_symbol(n)
    le = {CmpOp.LE: ks - ns, CmpOp.LT: ks - ns - 1, CmpOp.GE: ns - ks, CmpOp.GT: ns - ks + 1}
    gt = {CmpOp.GT: ks - ns, CmpOp.GE: ks - ns - 1, CmpOp.LT: ns - ks, CmpOp.LE: ns - ks - 1}
    if cond.op in le and d == sympy.expand(le[cond.op]):
        return True
    if cond.op in gt and d == sympy.expand(gt[cond.op]):
        return False
    return None


def _match(b: Build, st: Statement) -> tuple[P.AluOp, Access, float] | None:
    rhs = st.rhs
    if st.op is not AssignOp.ASSIGN or st.sum_indices or not isinstance(rhs, Reduce) \
            or rhs.op not in _OPS or len(rhs.indices) != 1 or len(st.lhs) < 2 \
            or len(set(st.lhs)) != len(st.lhs) or not isinstance(rhs.body, Where):
        return None
    k, n = rhs.indices[0], st.lhs[-1]
    if sympy.sympify(b.extents[k]) != sympy.sympify(b.extents[n]):
        return None
    w = rhs.body
    side = _lower_triangle(w.cond, k, n)
    if side is None:
        return None
    x, fill = (w.a, w.b) if side else (w.b, w.a)
    f = _number(fill)
    if f is None or not isinstance(x, Access) or x.indirect:
        return None
    want = tuple(index_symbol(i) for i in st.lhs[:-1] + (k,))
    if tuple(sympy.sympify(e) for e in x.indices) != want:
        return None
    xd, yd = b.spec.tensor(x.tensor), b.spec.tensor(st.target)
    if xd.role is not Role.INPUT or yd.role is not Role.OUTPUT or yd.view_of \
            or xd.dtype.is_integer or yd.dtype.is_integer \
            or len(xd.shape) != len(st.lhs) or len(yd.shape) != len(st.lhs):
        return None
    if any(sympy.sympify(b.extents[i]) != sympy.sympify(s) for i, s in zip(st.lhs, yd.shape)):
        return None
    top = at_max(b.spec, sympy.sympify(b.extents[n]))
    if top is None or top * 4 > ROW_BYTES:
        return None
    return _OPS[rhs.op], x, f


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    got = _match(b, st)
    if got is None:
        return None
    op, x, fill = got
    *outer, p, n = st.lhs
    nm, S = b.namer, b.sym
    env = {i: S(nm.fresh(f"i_{i}")) for i in outer}
    pt, p0, psz = nm.fresh(f"{p}t"), nm.fresh(f"{p}0"), nm.fresh(f"{p}sz")
    b.const("TILE_P", PMAX, "rows per tile: one per partition", "pmax", (pt, p0, psz))
    N, Pext = sympy.sympify(b.extents[n]), sympy.sympify(b.extents[p])
    xt, run = nm.fresh(f"{x.tensor}_t"), nm.fresh("running")
    lead = tuple(P.Index(env[i]) for i in outer)
    rows = (P.Slice(ZERO, S(psz)), P.Slice(ZERO, N))
    body: list = [
        P.Let(p0, S(pt) * PMAX),
        P.Let(psz, Min(sympy.Integer(PMAX), Pext - S(p0))),
        P.Alloc(xt, (sympy.Integer(PMAX), N), b.spec.tensor(x.tensor).dtype, P.Mem.SBUF),
        P.Dma(P.Ref(xt, rows),
              P.Ref(checked(x.tensor, "tensor"), lead + (P.Slice(S(p0), S(psz)),
                                                         P.Slice(ZERO, N)))),
        P.Alloc(run, (sympy.Integer(PMAX), N), F32, P.Mem.SBUF),
        TensorTensorScan(P.Ref(run, rows), P.Ref(xt, rows), P.Ref(xt, rows),
                         P.Ref(xt, (P.Slice(ZERO, S(psz)), P.Slice(ZERO, ONE))), op, op),
        # the fill value takes part at every column with some k past it: all but the last
        P.If(ONE, N, (P.TensorScalar(P.Ref(run, (P.Slice(ZERO, S(psz)), P.Slice(ZERO, N - 1))),
                                     P.Ref(run, (P.Slice(ZERO, S(psz)), P.Slice(ZERO, N - 1))),
                                     op, P.Scalar(sympy.Float(fill))),), (), P.Cmp.LT),
        P.Dma(P.Ref(checked(st.target, "tensor"), lead + (P.Slice(S(p0), S(psz)),
                                                          P.Slice(ZERO, N))),
              P.Ref(run, rows)),
    ]
    nodes: list = [P.Loop(pt, sympy.ceiling(Pext / PMAX), P.LoopKind.PARALLEL, tuple(body))]
    for i in reversed(outer):
        nodes = [P.Loop(str(env[i]), b.extents[i], P.LoopKind.PARALLEL, tuple(nodes))]
    stage = P.StagePlan(
        statements=(st.position,), strategy="running-extreme", partition=p, free=(n,),
        loops=tuple(outer), tiles=((p, PMAX),), blocks=(), engines=("dma", "vector"),
        notes=(f"running {op.value} along {n}: one tensor_tensor_scan per row tile "
               f"(the triangular reduction over {n}'s range)",))
    return nodes, stage
