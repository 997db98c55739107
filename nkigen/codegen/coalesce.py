"""Contiguous row loads for strided reads: one DMA per row block, strided SBUF views on top.

Stage: plan (helper of :mod:`nkigen.codegen.tilexpr`'s loads). Input: one row access whose free
index walks the tensor with an element stride ``s > 1`` (``x[c, 2 * o + r]``, ``x[c, 2 * i + a,
2 * j + b]``); output: a view ``tile[0:psz, off:off + s * (fsz - 1) + 1:s]`` of a tile holding
the contiguous span of HBM that covers this access *and* every sibling access of the statement
that differs from it by a constant flat offset (the window taps of a pooling: the same pattern
at offsets ``0, 1, 2`` or ``0, 1, W, W + 1``). The span is loaded once, in chunks of
``span * itemsize`` contiguous bytes per partition, instead of one ``itemsize`` descriptor per
element (issue 14's pooling cliffs: an element-strided DMA moves 4 useful bytes per
descriptor).

Docs: a DMA buffer is a contiguous run of memory, and per-buffer and per-transfer overheads are
amortized only by moving enough data (S25 general/nki/arch/trainium_inferentia2_arch.rst "Data
movement between HBM and SBUF using DMAs"; S29 nki/deep-dives/nki-dma-bandwidth-guide.rst "Why
Large Contiguous DMA Payloads Are Still Required"); on-chip memories are strided along the free
dimension at full performance by every NKI API that reads them, while HBM is fastest read
sequentially (S25 general/nki/programming_model.rst "Advanced Tensor Indexing", case 1: even
and odd columns as ``start + 2 * nl.arange(size)``); S29 nki/api/nki/isa/__init__.py
``tensor_tensor(dst, data1, data2, op)`` takes such views as operands.

The rule (general, by shape, never by spec name): the access's free stride ``s`` is a constant
with ``1 < s`` and ``s * itemsize <= MAX_GAP_BYTES``, or ``s = 1`` with sibling taps at constant
offsets (a sliding window ``x[m, o + r]``: one load of ``fsz + taps - 1`` elements instead of one
per tap) (a wider gap wastes more bandwidth than the
descriptors cost); every sibling offset is a constant or a size expression that is ordered
against the others (``W + 1 >= W >= 1 >= 0`` for sizes >= 1); the tile fits
``MAX_TILE_BYTES`` per partition at the largest allowed sizes.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import sympy

from nkigen.analysis.sizes import at_max
from nkigen.codegen import plan as P
from nkigen.hw import PMAX
from nkigen.ir import Access, Reduce, accesses, index_symbol

if TYPE_CHECKING:
    from nkigen.codegen.tilexpr import Compiler, TileCtx, Val

MAX_GAP_BYTES = 16          # widest element stride (bytes) turned into a contiguous load
MAX_TILE_BYTES = 32 * 1024  # per-partition bytes of one coalesced tile at the largest sizes
MAX_TAPS = 64               # sibling combinations enumerated per access (window taps)
UNROLL_MAX = 8              # a reduction over a constant extent up to this is unrolled


def unrolled(c: Compiler, e: Reduce) -> bool:
    """True when the row compiler unrolls ``e`` (every index a constant extent up to
    ``UNROLL_MAX``, at most ``MAX_TAPS`` terms; see ``Compiler.unrolled_reduce``) instead of
    looping over it."""
    n = 1
    for j in e.indices:
        ext = sympy.sympify(c.extents[j])
        if not ext.is_Integer or not 1 <= int(ext) <= UNROLL_MAX:
            return False
        n *= int(ext)
    return n <= MAX_TAPS


def try_load(c: Compiler, ctx: TileCtx, a: Access) -> Val | None:
    """A strided view of a coalesced row tile for ``a``, or None (the caller loads as usual)."""
    from nkigen.codegen.tilexpr import Kind, Unsupported, Val
    if ctx.f is None or a.indirect or a.tensor in ctx.bound:
        return None
    try:
        view, kind, per_row = c.hbm_view(ctx, a.tensor, a.indices)
    except Unsupported:
        return None
    src = _as_ap(c, view)
    if kind is not Kind.ROW or not per_row or src is None:
        return None
    (pstep, _), (fstep, _) = src.pattern
    fstep = sympy.sympify(fstep)
    t = c.spec.tensor(a.tensor)
    if not fstep.is_Integer or int(fstep) < 1 or int(fstep) * t.dtype.itemsize > MAX_GAP_BYTES:
        return None
    offs = _sibling_offsets(c, ctx, a, src)
    if int(fstep) == 1 and (len(offs) < 2 or not all(o.is_Integer for o in offs)):
        return None      # a contiguous read alone, or taps a size apart: the plain loads
    lo = _extreme(offs, lowest=True)
    hi = _extreme(offs, lowest=False)
    if lo is None or hi is None:
        return None
    width = sympy.expand(hi - lo + fstep * (ctx.falloc - 1) + 1)
    span = sympy.expand(hi - lo + fstep * (ctx.fsz - 1) + 1)
    top = at_max(c.spec, width)
    if top is None or top * t.dtype.itemsize > MAX_TILE_BYTES:
        return None
    base = sympy.expand(src.offset + lo)
    key = ("coalesced", src.name, src.pattern, base, ctx.fsz)
    name = ctx.cache.get(key)
    if name is None:
        name = c.namer.fresh(f"{a.tensor}_rows")
        ctx.out.append(P.Alloc(name, (sympy.Integer(PMAX), width), t.dtype, P.Mem.SBUF))
        ctx.out.append(P.Dma(P.Ref(name, (P.Slice(sympy.Integer(0), ctx.psz),
                                          P.Slice(sympy.Integer(0), span))),
                             P.ApRef(src.name, base, ((pstep, ctx.psz), (sympy.Integer(1), span)))))
        ctx.cache[key] = name
    return Val(Kind.ROW, buf=name, dtype=t.dtype, temp=False, off=sympy.expand(-lo), step=fstep)


def _sibling_offsets(c: Compiler, ctx: TileCtx, a: Access, src: P.ApRef) -> list[sympy.Expr]:
    """Flat offsets, relative to ``a``'s, of every access of the statement to the same tensor
    with the same access pattern here (``a`` itself is 0). Indices that are neither tile axes
    nor outer-loop variables (window / reduction indices with constant extents, possibly bound
    to a constant by an unrolled reduction) are enumerated over their extents."""
    from nkigen.codegen.tilexpr import Unsupported
    out: list[sympy.Expr] = [sympy.Integer(0)]
    fixed = {k for k, v in ctx.env.items() if not sympy.sympify(v).is_Integer}
    tiled = {ctx.p, ctx.f}
    seen: set[tuple[sympy.Expr, ...]] = set()
    for a2 in accesses(c.st.rhs):
        if a2.tensor != a.tensor or a2.indirect or a2.indices in seen:
            continue      # a repeated access has the offsets of its first occurrence
        seen.add(a2.indices)
        names = sorted({s.name for e in a2.indices for s in sympy.sympify(e).free_symbols
                        if s == index_symbol(s.name) and s.name in c.extents}
                       - tiled - fixed)
        ranges = []
        for n in names:
            ext = sympy.sympify(c.extents[n])
            if not ext.is_Integer:
                break
            ranges.append(range(int(ext)))
        else:
            if _count(ranges) > MAX_TAPS:
                continue
            for vals in itertools.product(*ranges):
                env = dict(ctx.env)
                env.update({n: sympy.Integer(v) for n, v in zip(names, vals)})
                try:
                    v2, _, _ = c.hbm_view(ctx.sub(env=env), a2.tensor, a2.indices)
                except Unsupported:
                    continue
                s2 = _as_ap(c, v2)
                if s2 is None or s2.pattern != src.pattern:
                    continue
                d = sympy.expand(s2.offset - src.offset)
                if all(s.name in _size_names(c) for s in d.free_symbols) and d not in out:
                    out.append(d)
    return out


def _as_ap(c: Compiler, v: P.AnyRef) -> P.ApRef | None:
    """``v`` as a raw access pattern (flat offset, [partition, free] pairs), or None."""
    if isinstance(v, P.ApRef):
        return v
    from nkigen.codegen.tilexpr import strides
    t = c.spec.tensor(v.name)
    strd = strides(tuple(sympy.sympify(x) for x in t.shape))
    offset = sympy.Integer(0)
    pattern = []
    for d, s in zip(v.dims, strd):
        if isinstance(d, P.Slice):
            offset += sympy.sympify(d.start) * s
            pattern.append((sympy.expand(sympy.sympify(d.step) * s), d.size))
        else:
            offset += sympy.sympify(d.at) * s
    if len(pattern) != 2:
        return None
    return P.ApRef(v.name, sympy.expand(offset), tuple(pattern))


def _count(ranges: list[range]) -> int:
    n = 1
    for r in ranges:
        n *= len(r)
    return n


def _size_names(c: Compiler) -> set[str]:
    return {s.name for s in c.spec.sizes}


def _extreme(offs: list[sympy.Expr], lowest: bool) -> sympy.Expr | None:
    """The offset below (above) all others for every size >= 1, or None when none is."""
    for o in offs:
        diffs = [sympy.expand(x - o if lowest else o - x) for x in offs]
        if all(_nonneg(d) for d in diffs):
            return o
    return None


def _nonneg(d: sympy.Expr) -> bool:
    """``d >= 0`` for all sizes >= 1 (sizes are positive integer symbols): a polynomial with
    nonnegative coefficients after shifting each size by 1."""
    if d.is_number:
        return bool(d >= 0)
    shifted = sympy.expand(d.subs({s: s + 1 for s in d.free_symbols}, simultaneous=True))
    poly = sympy.Poly(shifted, *sorted(shifted.free_symbols, key=str))
    return all(co >= 0 for co in poly.coeffs())


