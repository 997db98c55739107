"""Lowering of indexed reads ``table[ids[t], d]`` (spec language 1.1) to indirect DMA.

Stage: plan (helper of :mod:`nkigen.codegen.tilexpr`). The ids must depend on the tile's
partition index (one id per partition); they are loaded as an integer column and drive one
vector-indirect DMA per tile (see :class:`~nkigen.codegen.plan_ext.GatherDma` for the docs):
element ``(p, i)`` is read at ``offset + row[p] * row_step + i * fstep`` of the flat table.
When the table's other dimensions also move with the partition index (the label pick
``x[b, labels[b]]``), ``row[p] = ids[p] + k * p`` is formed on chip with GpSimd ``iota`` and an
int32 GpSimd ``tensor_tensor`` add (int32 add runs on GpSimd: nki-reference, S25 ALU table).
Out-of-range ids make the DMA raise (``oob_mode.error``), as the reference does.
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.names import checked
from nkigen.codegen.plan_ext import GatherDma, Iota
from nkigen.codegen.tilexpr import ONE, ZERO, Compiler, Kind, TileCtx, Unsupported, Val, strides
from nkigen.dtypes import DType
from nkigen.hw import FP32_EXACT_INT, PMAX
from nkigen.ir import Access, index_symbol

INT32_MAX = 2 ** 31 - 1   # the largest flat index an int32 id holds

# the dtypes of the documented index tiles of an indirect DMA (see load_gather)
_INDEX_DTYPES = (DType.int32, DType.uint32)


def load_gather(c: Compiler, ctx: TileCtx, a: Access) -> Val:
    ((d, inner),) = a.indirect
    t = c.spec.tensor(a.tensor)
    # the index tile of an indirect DMA is 32-bit in every documented form (review 12 R12-2):
    # SH nki/api/nki/isa/__init__.py dma_copy "Indirect addressing" (a uint32 (P, 1) tile) and
    # nki/deep-dives/nki-aps.rst "Vector Dynamic Access" (int32), nki 0.3; S25
    # general/nki/test/test_nki_nl_load_store_indirect.py and test_nki_isa_dma_copy.py (int32
    # index tiles), SDK 2.25. Narrower ids are loaded into an int32 column: the DMA casts
    # through float32 (SH / S25 dma_copy), exact for every 8- and 16-bit integer.
    narrow = c.spec.tensor(inner.tensor).dtype not in _INDEX_DTYPES
    ids = c.load(ctx, inner, DType.int32 if narrow else None)
    if ids.kind is not Kind.COL or not any(
            index_symbol(ctx.p) in sympy.sympify(e).free_symbols for e in inner.indices):
        got = ", ".join(str(e) for e in inner.indices)
        raise Unsupported(f"the ids of {a.tensor}[...] must vary with the partition index "
                          f"{ctx.p} (got {inner.tensor}[{got}])",
                          f"read the gathered values into a temp first, with the ids' index "
                          f"on its left-hand side (e.g. g[t, d] = {a.tensor}[ids[t], d]), and "
                          "read the temp in this statement")
    psym = index_symbol(ctx.p)
    fsym = index_symbol(ctx.f) if ctx.f else None
    subs = {index_symbol(k): v for k, v in ctx.env.items()}
    strd = strides(tuple(sympy.sympify(s) for s in t.shape))
    pstep, fstep, base, outer = ZERO, ZERO, ZERO, ZERO
    at = {psym: ctx.p0}
    if fsym is not None:
        at[fsym] = ctx.f0
    for k, e in enumerate(a.indices):
        if k == d:
            continue
        e = sympy.expand(sympy.sympify(e).xreplace(subs))
        if e.atoms(sympy.floor, sympy.Mod):
            raise Unsupported(f"// or % in a gathered access of {a.tensor}")
        pc = e.coeff(psym)
        fc = e.coeff(fsym) if fsym is not None else ZERO
        pstep += pc * strd[k]
        fstep += fc * strd[k]
        base += e.subs(at) * strd[k]
        if k < d:     # (the partition's own rows are the pstep term below)
            outer += (e.subs(at) - pc * ctx.p0) * strd[k]
            if c.classic and fc != 0:
                raise Unsupported(f"the classic gather of {a.tensor} reads the columns of one "
                                  f"row per id, and {ctx.f} moves across rows")
    row_step = strd[d]
    # classic: the table is viewed as rows of row_step elements and the column index must stay
    # inside one row (offset < row_step), so the dimensions before the gathered one move the
    # ids instead, by whole rows (their strides are multiples of row_step): table[b, ids[t]]
    # read past the one-element rows before (fuzz7: indirect index out of bounds)
    shift = sympy.expand(outer / row_step) if c.classic else ZERO
    fcount = ctx.fsz if fsym is not None and fstep != 0 else ONE
    kind = Kind.ROW if fsym is not None and fstep != 0 else Kind.COL
    rows = P.Slice(ZERO, ctx.psz)
    idx_ref = c.ref(ctx, ids)
    if ids.dtype not in _INDEX_DTYPES:
        # a form of load that keeps the tensor's dtype: widen on VectorE (a dtype-changing
        # copy casts through float32, exact here: SH / S25 tensor_copy)
        wide = c.namer.fresh(f"{inner.tensor}_i32")
        ctx.out.append(P.Alloc(wide, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
        ctx.out.append(P.TensorCopy(P.Ref(wide, (rows, P.Slice(ZERO, ONE))), idx_ref,
                                    P.Eng.VECTOR))
        idx_ref = P.Ref(wide, (rows, P.Slice(ZERO, ONE)))
        c.charge(ctx, "vector", 1.0)
    pstep = sympy.expand(pstep)
    offset = sympy.expand(base)
    if pstep != 0 or shift != 0:
        k = sympy.simplify(pstep / row_step)
        if not (k.is_integer or k.is_Symbol or (k.is_number and float(k).is_integer())):
            raise Unsupported(f"rows of {a.tensor} move with {ctx.p} by a non-multiple of the "
                              "gathered stride")
        _check_table_rows(c, t, a.tensor, INT32_MAX + 1,
                          "whose row index int32 arithmetic adds exactly", d)
        io, adj = c.namer.fresh("iota"), c.namer.fresh("rows")
        ctx.out.append(P.Alloc(io, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
        ctx.out.append(P.Alloc(adj, (sympy.Integer(PMAX), ONE), DType.int32, P.Mem.SBUF))
        col = P.Slice(ZERO, ONE)
        ctx.out.append(Iota(P.Ref(io, (rows, col)), sympy.expand(k * ctx.p0 + shift), k, ZERO,
                            ctx.psz, ONE))
        # int32 + int32 into int32 on GpSimd: native integer arithmetic, exact for every
        # 32-bit value (SH nki/api/nki/isa/__init__.py tensor_tensor, nki 0.3: GpSimd "uses
        # native integer arithmetic" when every tile is int32/uint32; S25
        # general/nki/api/nki.api.shared.rst operator table: 32-bit integer add on GpSIMD),
        # so a table of up to 2**31 elements is picked exactly (fuzz15: on VectorE, which
        # computes in float32, the label pick of a 32k vocabulary stopped at B = 512 rows)
        ctx.out.append(P.TensorTensor(P.Ref(adj, (rows, col)), idx_ref, P.Ref(io, (rows, col)),
                                      P.AluOp.ADD, P.Eng.GPSIMD))
        idx_ref = P.Ref(adj, (rows, col))
        offset = sympy.expand(base - ctx.p0 * pstep - shift * row_step)
        c.charge(ctx, "gpsimd", 2.0)   # iota, add
    return gathered_tile(c, ctx, t, f"{a.tensor}_g", idx_ref, offset, row_step,
                         fstep if kind is Kind.ROW else ONE, fcount, kind)


def gather_dma(t, dst: P.Ref, ids: P.Ref, offset: sympy.Expr, row_step: sympy.Expr,
               psz: sympy.Expr, fstep: sympy.Expr, fcount: sympy.Expr) -> GatherDma:
    """The :class:`GatherDma` reading rows of the table ``t`` (a TensorDecl) into ``dst``: its
    element count, and whether the table is viewed as rows of ``row_step`` elements first (the
    row step is not the table's own row stride)."""
    numel = sympy.Integer(1)
    for s in t.shape:
        numel = numel * sympy.sympify(s)
    row = strides(tuple(sympy.sympify(s) for s in t.shape))[0]
    return GatherDma(dst, checked(t.name, "tensor"), numel, ids, offset, row_step, psz, fstep,
                     fcount, sympy.simplify(row_step - row) != 0)


def gathered_tile(c: Compiler, ctx: TileCtx, t, base: str, ids: P.Ref, offset: sympy.Expr,
                  row_step: sympy.Expr, fstep: sympy.Expr, fcount: sympy.Expr,
                  kind: Kind) -> Val:
    """A new tile of ``ctx``'s rows (``kind``: a row of the free chunk or a column) loaded by
    one vector-indirect DMA: partition ``p`` reads the table's row ``ids[p]``."""
    name = c.namer.fresh(base)
    width = ctx.falloc if kind is Kind.ROW else ONE
    ctx.out.append(P.Alloc(name, (sympy.Integer(PMAX), width), t.dtype, P.Mem.SBUF))
    dst = P.Ref(name, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, fcount)))
    ctx.out.append(gather_dma(t, dst, ids, offset, row_step, ctx.psz, fstep, fcount))
    return Val(kind, buf=name, dtype=t.dtype, temp=False)


def _check_fp32_exact_rows(c: Compiler, t, name: str, dim: int) -> None:
    """Row ids computed on VectorE, whose arithmetic is fp32 (S25
    general/nki/api/nki/isa/__init__.py tensor_tensor: inputs are cast to float32; SH nki 0.3
    tensor_tensor: only GpSimd computes int32 natively): every row id (in rows of at least the
    gathered dimension ``dim``'s stride) is below the table's row count up to ``dim``, so they
    are exact when that count is at most 2**24 for every allowed size; otherwise refuse
    (revrows.divided_rows)."""
    _check_table_rows(c, t, name, FP32_EXACT_INT, "whose row index fp32 arithmetic adds "
                      "exactly", dim)


def _check_table_rows(c: Compiler, t, name: str, limit: int, why: str, dim: int) -> None:
    """Refuse a gather from ``t`` whose row ids may reach ``limit`` at the sizes' maxima.

    The ids of a vector-indirect DMA count rows of the gathered dimension ``dim``: the DMA
    scales them by that dimension's stride itself (SH nki/deep-dives/nki-aps.rst "Vector
    Dynamic Access", nki 0.3: ``vector_offset`` times the base tensor's dim-0 stride, the table
    viewed as ``[rows, stride]``; S25 nki-reference "Indirect DMA": ``data[idx_tile[i_p, 0],
    i_f]``, an index into dimension 0), so every id the kernel forms on chip is below the
    product of the dimensions up to and including ``dim``, not the table's element count
    (fuzz17: ``h[b, pos[b], d]``, last-token pooling of a [256, 4096, 4096] table, was refused
    for its 2**32 elements although its row ids stay below 2**20)."""
    bound = sympy.Integer(1)
    maxes = {s.symbol: s.max for s in c.spec.sizes}
    derived = {s.symbol: s.value for s in c.spec.sizes if s.value is not None}
    # the gathered dimension last: its rows are single elements
    unit = "elements" if dim == len(t.shape) - 1 else f"rows (dimensions 0..{dim})"
    for size in t.shape[:dim + 1]:
        e = sympy.sympify(size)
        for _ in range(len(derived)):       # a derived size by its formula (G = (M + 3) // 4)
            e = e.xreplace(derived)
        for sym in e.free_symbols:
            if maxes.get(sym) is None:
                raise Unsupported(f"gathering rows of {name} that move with the partition index "
                                  f"needs a bounded table: give every size of {name} a max so "
                                  f"it holds at most {limit} {unit} ({why})")
        bound *= e.xreplace({k: v for k, v in maxes.items() if v is not None})
    if bound > limit:
        raise Unsupported(f"gathering rows of {name} that move with the partition index: the "
                          f"table can hold {bound} {unit}, more than the {limit} {why}",
                          f"lower the max of the sizes of {name} so that it holds at most "
                          f"{limit} {unit}")
