"""Stage analyze (contractions): which ``+=`` statements are TensorE matmuls, and the dtypes
their operands take on chip.

Input: a :class:`nkigen.ir.Statement` and the spec's index names. Output: :class:`MatmulShape`
(the stationary / moving operands, the free indices ``r`` and ``c``, the contraction index ``k``
on the partitions), or None for a statement that is not a product of two accesses summed over an
index both index directly. The planner (:mod:`nkigen.codegen.matmul`) lowers every shape found
here (conv and attention take some first, with operands of one dtype only).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Expr,
    Reduce,
    Spec,
    Statement,
    accesses,
    index_symbol,
    walk,
)


@dataclass(frozen=True)
class OperandPlan:
    access: Access
    free: str            # its free index (r or c)
    kdim: int
    xdim: int
    transposed: bool


@dataclass(frozen=True)
class MatmulShape:
    st: Statement
    stat: OperandPlan
    mov: OperandPlan
    r: str
    c: str
    k: str
    kx: tuple[str, ...]         # further contraction indices (scalar loops)
    outer: tuple[str, ...]      # other target indices (scalar loops)
    scale: tuple[Expr, ...]     # trace-time factors


def _factors(e: Expr) -> list[Expr] | None:
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        a, b = _factors(e.lhs), _factors(e.rhs)
        return None if a is None or b is None else a + b
    return [e]


def _indices_of(e: sympy.Expr, names: set[str]) -> set[str]:
    return {s.name for s in sympy.sympify(e).free_symbols if s.name in names
            and s == index_symbol(s.name)}


def match(names: set[str], st: Statement) -> MatmulShape | None:
    """The TensorE matmul shape of ``st`` (``names``: the spec's index names), or None when
    ``st`` is not a ``+=`` product of two accesses over a directly indexed contraction."""
    if st.op is not AssignOp.ACCUMULATE or not st.sum_indices:
        return None
    fs = _factors(st.rhs)
    if fs is None:
        return None
    accs = [f for f in fs if isinstance(f, Access)]
    if any(a.tensor == st.target or a.indirect for a in accs):
        # (a gathered operand's indices hold the placeholder 0 in its indexed dimension,
        # nkigen.ir.Access: a TensorE operand plan would read row 0 for every id (fuzz15:
        # w[eid[t], k, n]); the row lowering gathers it per partition instead)
        return None
    others = [f for f in fs if not isinstance(f, Access)]
    if len(accs) != 2 or any(accesses(f) for f in others):
        return None
    if any(isinstance(x, Reduce) for f in others for x in walk(f)):
        return None
    idx = [set().union(*(_indices_of(e, names) for e in a.indices)) for a in accs]
    ks = list(st.sum_indices)
    if any(k not in idx[0] or k not in idx[1] for k in ks):
        return None
    c = st.lhs[-1]
    holders = [i for i in (0, 1) if c in idx[i]]
    if len(holders) != 1:
        return None
    mi = holders[0]
    si = 1 - mi
    r = next((x for x in reversed(st.lhs[:-1]) if x in idx[si] and x not in idx[mi]), None)
    if r is None:
        return None

    def direct_dim(a: Access, name: str) -> int | None:
        for d, e in enumerate(a.indices):
            if sympy.sympify(e) == index_symbol(name):
                return d
        return None

    kcands = [k for k in ks if direct_dim(accs[0], k) is not None
              and direct_dim(accs[1], k) is not None]
    if not kcands:
        return None
    k = kcands[-1]
    kx = tuple(x for x in ks if x != k)
    outer = tuple(x for x in st.lhs if x not in (r, c))

    def op_plan(a: Access, free: str) -> OperandPlan | None:
        kd = direct_dim(a, k)
        xd = None
        for d, e in enumerate(a.indices):
            ids = _indices_of(e, names)
            if free in ids:
                if xd is not None or k in ids:
                    return None
                co = sympy.expand(sympy.sympify(e)).coeff(index_symbol(free))
                if not (co.is_Integer and int(co) >= 1):
                    return None
                xd = d
            elif d != kd and (ids - set(kx) - set(outer)):
                return None
        if xd is None or kd is None:
            return None
        return OperandPlan(a, free, kd, xd, kd > xd)

    sp = op_plan(accs[si], r)
    mp = op_plan(accs[mi], c)
    if sp is None or mp is None:
        return None
    return MatmulShape(st, sp, mp, r, c, k, kx, outer, tuple(others))


def operand_dtypes(spec: Spec, ms: MatmulShape) -> tuple[DType, DType]:
    """The on-chip dtypes of the stationary and the moving operand of ``ms``: each operand's
    :attr:`nkigen.dtypes.DType.matmul_dtype`, except that TensorE pairs a float32 operand only
    with a float32 one (SH nki/api/nki/isa/__init__.py nc_matmul "Data types", nki 0.3; S25
    nki.isa.nc_matmul, SDK 2.25): a 16- or 8-bit (or int8/uint8) operand paired with a float32
    (or int32) one is widened to float32 by its loading DMA, which casts when the dtypes differ
    (SH nki/api/nki/isa/__init__.py dma_copy; S25 nki.isa.dma_copy). Exact: every bfloat16,
    float16, float8, int8 and uint8 value is a float32 value. Spec language 1: a contraction
    takes any two input dtypes (fuzz13: a bfloat16 x float32 matmul was refused)."""
    s = spec.tensor(ms.stat.access.tensor).dtype.matmul_dtype
    m = spec.tensor(ms.mov.access.tensor).dtype.matmul_dtype
    if DType.float32 in (s, m):
        return DType.float32, DType.float32
    return s, m


__all__ = ["MatmulShape", "OperandPlan", "match", "operand_dtypes"]
