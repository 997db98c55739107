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
from nkigen.codegen.names import checked
from nkigen.codegen.plan_ext import GatherDma, Iota
from nkigen.codegen.symcache import substitute
from nkigen.dtypes import DType
from nkigen.hw import PMAX
from nkigen.ir import index_symbol

if TYPE_CHECKING:
    from nkigen.codegen.tilexpr import Compiler, TileCtx

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
        # a reversed free axis too: the flipped pre-pass (codegen/flipped.py) takes the ones it
        # can; the plan pre-passes' throwaway builds see the rest, and a kernel that keeps one
        # is refused by the simulator (NEG_STEP_RULE), located at the DMA
        out.append(P.Dma(dst, src))
        return
    pd = pdims[0]
    pcoef = dims[pd].coeff(psym)
    at = {psym: ctx.p0}
    if fsym is not None:
        at[fsym] = ctx.f0
    row_step = strd[pd]
    first = sympy.expand(sum((dims[d].subs(at) * sympy.simplify(strd[d] / row_step)
                              for d in range(pd + 1)), ZERO))
    base = sympy.expand(sum((dims[d].subs(at) * strd[d] for d in range(pd + 1, len(dims))),
                            ZERO))
    ids = c.namer.fresh(f"{tensor}_rows")
    col = (P.Slice(ZERO, rows), P.Slice(ZERO, ONE))
    out.append(P.Alloc(ids, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
    out.append(Iota(P.Ref(ids, col), first, pcoef, ZERO, rows, ONE))
    numel = sympy.Integer(1)
    for s in t.shape:
        numel = numel * sympy.sympify(s)
    out.append(GatherDma(dst, checked(tensor, "tensor"), numel, P.Ref(ids, col), base, row_step,
                         rows, fstep, fcount, sympy.simplify(row_step - strd[0]) != 0))
    c.charge(ctx, "gpsimd", 1.0)   # iota
