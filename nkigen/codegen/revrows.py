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
    numel = sympy.Integer(1)
    for s in t.shape:
        numel = numel * sympy.sympify(s)
    out.append(GatherDma(dst, checked(tensor, "tensor"), numel, P.Ref(ids, col), base, row_step,
                         rows, fstep, fcount, sympy.simplify(row_step - strd[0]) != 0))
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
