"""Convolution-shaped contractions as implicit GEMM on TensorE.

Stage: plan (Statement -> plan nodes). Input: a statement of the class

    y[m, o1, .., on] += w[<m, k, t1, .., tn in any order>] * x[k, A1 * o1 + t1, .., An * on + tn]

(``n`` = 1 or 2 spatial dims, constant strides ``Ai >= 1``, tap indices ``ti`` with constant
extents, ``k`` the channel contraction): conv1d, conv2d, strided or not, valid padding. Output:
per output-channel tile (128 ``m`` on the PSUM partitions), the filter is loaded once as
contiguous rows (``m`` on the partitions, the span of its ``k``-tile and taps contiguous) and
turned per tap on TensorE into ``[k, m]`` stationary tiles; per output block (``nb`` rows x
``wb`` columns, ``nb * wb <= 512`` fp32 = one PSUM bank) one contiguous input block
``x[k-tile, rows, cols]`` is loaded per ``k`` tile, and every tap is one ``nc_matmul`` whose
moving operand is a strided SBUF view of that block (``x_blk[k, t1 : .. : A1, t2 : .. : A2]``),
all accumulating in one PSUM tile: ``k`` on the partitions (the contraction), the taps in PSUM.
The row lowering of the same statement ran on VectorE one tap at a time (issue 14: conv2d HFU
0.4 %); the generic matmul lowering loaded strided, narrow moving tiles per output row.

Docs: ``nc_matmul(dst, stationary, moving)`` computes ``stationary.T @ moving`` into PSUM with
the contraction on the partitions (<= 128), stationary free <= 128 and moving free <= 512 (one
PSUM bank of fp32), successive matmuls into one PSUM tile accumulating (S29
nki/api/nki/isa/__init__.py ``nc_matmul``; S25 general/nki/arch/trainium_inferentia2_arch.rst
"moving_fsize must never exceed 512"); on-chip operands may be strided along the free dimension
(S25 general/nki/programming_model.rst "Advanced Tensor Indexing"), so a tap is a view, not a
copy; ``nc_transpose`` on TensorE writes PSUM in the data's dtype (S29
nki/api/nki/isa/__init__.py ``nc_transpose``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from nkigen.analysis.sizes import at_max
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.codegen.symcache import Min
from nkigen.codegen.tilexpr import strides
from nkigen.dtypes import DType
from nkigen.hw import GEMM_MOVING_FMAX, GEMM_STATIONARY_FMAX, PMAX
from nkigen.ir import Access, AssignOp, BinOp, BinOpKind, Statement, index_symbol

ZERO, ONE = sympy.Integer(0), sympy.Integer(1)
MAX_TAPS = 64                 # taps per output channel pair (a 8 x 8 window)
SBUF_BUDGET = 96 * 1024       # per-partition bytes of the filter + input blocks at max sizes
_TE_DTYPES = (DType.float32, DType.bfloat16, DType.float16)


@dataclass(frozen=True)
class ConvShape:
    st: Statement
    m: str                            # output channel (stationary free, PSUM partitions)
    k: str                            # contraction (partitions of both operands)
    sp: tuple[str, ...]               # spatial output indices, outer first
    taps: tuple[str, ...]             # tap index per spatial dim
    stride: tuple[int, ...]           # Ai per spatial dim
    w: Access                         # filter access (plain indices)
    x: Access                         # input access


def analyze(b: Build, st: Statement) -> ConvShape | None:
    """The convolution shape of ``st``, or None when it is not of the class above."""
    rhs = st.rhs
    if st.op is not AssignOp.ACCUMULATE or b.written_before(st) \
            or not isinstance(rhs, BinOp) or rhs.op is not BinOpKind.MUL:
        return None
    a0, a1 = rhs.lhs, rhs.rhs
    if not isinstance(a0, Access) or not isinstance(a1, Access) or a0.indirect or a1.indirect:
        return None
    if len(st.lhs) not in (2, 3):
        return None
    m, sp = st.lhs[0], tuple(st.lhs[1:])
    for w, x in ((a0, a1), (a1, a0)):
        cs = _match(b, st, m, sp, w, x)
        if cs is not None:
            return cs
    return None


def _match(b: Build, st: Statement, m: str, sp: tuple[str, ...], w: Access,
           x: Access) -> ConvShape | None:
    if len(x.indices) != 1 + len(sp) or w.tensor == x.tensor:
        return None
    xi = [sympy.sympify(e) for e in x.indices]
    wi = [sympy.sympify(e) for e in w.indices]
    if not xi[0].is_Symbol:
        return None
    k = xi[0].name
    taps: list[str] = []
    stride: list[int] = []
    for o, e in zip(sp, xi[1:]):
        so = index_symbol(o)
        a = e.coeff(so)
        rest = sympy.expand(e - a * so)
        if not (a.is_Integer and int(a) >= 1) or not rest.is_Symbol:
            return None
        t = rest.name
        ext = const_extent(b, t)
        if ext is None or t in st.lhs or t == k:
            return None
        taps.append(t)
        stride.append(int(a))
    want = {m, k, *taps}
    if not all(e.is_Symbol for e in wi) or {e.name for e in wi} != want or len(wi) != len(want):
        return None
    if set(st.sum_indices) != {k, *taps} or len(set(taps)) != len(taps):
        return None
    n_taps = 1
    for t in taps:
        n_taps *= const_extent(b, t) or 0
    if n_taps > MAX_TAPS:
        return None
    dts = {b.spec.tensor(w.tensor).dtype, b.spec.tensor(x.tensor).dtype}
    if len(dts) != 1 or not dts <= set(_TE_DTYPES):
        return None
    return ConvShape(st, m, k, sp, tuple(taps), tuple(stride), w, x)


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    cs = analyze(b, st)
    if cs is None:
        return None
    return _lower(b, cs)


def _lower(b: Build, cs: ConvShape) -> tuple[list, P.StagePlan] | None:
    n, S = b.namer, b.sym
    spec = b.spec
    wt = spec.tensor(cs.w.tensor)
    dt = wt.dtype
    item = dt.itemsize
    ext = b.extents
    taps = cs.taps
    tap_ext = [const_extent(b, t) or 0 for t in taps]
    n_taps = 1
    for e in tap_ext:
        n_taps *= e
    # filter: m on the partitions; per k tile the contiguous span of (k, taps) in w's layout
    wstr = strides(tuple(sympy.sympify(s) for s in wt.shape))
    wpos = {sympy.sympify(e).name: d for d, e in enumerate(cs.w.indices)}
    mstride = wstr[wpos[cs.m]]
    kstride = wstr[wpos[cs.k]]
    tstride = [wstr[wpos[t]] for t in taps]
    tap_span = sum(((e - 1) * s for e, s in zip(tap_ext, tstride)), ZERO)
    wspan_max = sympy.expand(kstride * (PMAX - 1) + tap_span + 1)
    if any(sympy.expand(s - mstride).is_positive for s in [kstride, *tstride]):
        return None              # m is not the outermost of w's indexed dims
    # input block: rows/cols of x covering one output block
    nsp = len(cs.sp)
    sp_ext = [ext[o] for o in cs.sp]
    wb_n, nb_n = n.fresh("wb"), n.fresh("nb")
    WB = S(wb_n)
    NB = S(nb_n) if nsp == 2 else ONE
    blk = [NB, WB] if nsp == 2 else [WB]
    in_ext = [cs.stride[i] * (blk[i] - 1) + tap_ext[i] for i in range(nsp)]
    nkt_n = n.fresh("nkt")
    NKT = S(nkt_n)
    kext = ext[cs.k]
    # SBUF budget at the largest sizes: filter rows, turned filter, input blocks, output block
    need = (wspan_max + sympy.ceiling(kext / PMAX) * (n_taps * PMAX + _x_max(cs, tap_ext))
            + GEMM_MOVING_FMAX) * item
    top = at_max(b.spec, need)
    if top is None or top > SBUF_BUDGET:
        return None
    # every m tile's turned filter kept on chip when it fits: each input block is then loaded
    # once for all output channels (blocks outer, m tiles inner)
    nmt_n = n.fresh("nmt")
    NMT = S(nmt_n)
    need_all = need + sympy.ceiling(kext / PMAX) * (sympy.ceiling(ext[cs.m] / PMAX) - 1) \
        * n_taps * PMAX * item
    top_all = at_max(b.spec, need_all)
    hoist = top_all is not None and top_all <= SBUF_BUDGET
    m_t, m0, msz = n.fresh(f"{cs.m}t"), n.fresh(f"{cs.m}0"), n.fresh(f"{cs.m}sz")
    k_t, k0, ksz = n.fresh(f"{cs.k}t"), n.fresh(f"{cs.k}0"), n.fresh(f"{cs.k}sz")
    w_rows, w_turn, w_ps = n.fresh(f"{cs.w.tensor}_rows"), n.fresh(f"{cs.w.tensor}_T"), \
        n.fresh("turn_psum")
    wname, xname, yname = (checked(cs.w.tensor, "tensor"), checked(cs.x.tensor, "tensor"),
                           checked(cs.st.target, "tensor"))
    block = sympy.Integer(PMAX)
    # the tile sizes by name (render.consts; values: nkigen.hw, S25
    # general/nki/api/nki.language.rst "tile_size")
    b.const("TILE_K", PMAX, "input channels per matmul: one per partition (the contraction)",
            "pmax", (k_t, k0, ksz, nkt_n))
    b.const("TILE_W", GEMM_MOVING_FMAX, "outputs per block: the moving operand's free size, "
            "one PSUM bank of fp32", "gemm_moving_fmax", (wb_n, nb_n))
    # ---- the filter of one m tile, turned to [k, tap, m] -------------------------------------
    wspan = sympy.expand(kstride * (S(ksz) - 1) + tap_span + 1)
    wbase = sympy.expand(S(m0) * mstride + S(k0) * kstride)
    tap_list = _taps(tap_ext)

    def wref(kdim: P.Slice, kt: str, ti: int) -> P.Ref:
        mdim = (P.Index(S(m_t)),) if hoist else ()
        return P.Ref(w_turn, (kdim, *mdim, P.Index(S(kt)), P.Index(sympy.Integer(ti)),
                              P.Slice(ZERO, S(msz))))

    # NeuronCore-v2: a TensorE transpose is float32 (matmul.pe_transpose_dtype)
    tdt = DType.float32 if b.target.nc_version < 3 and not dt.is_integer else dt
    turn_body: list = [
        P.Let(k0, S(k_t) * PMAX), P.Let(ksz, Min(block, kext - S(k0))),
        P.Alloc(w_rows, (block, wspan_max), tdt, P.Mem.SBUF),
        P.Dma(P.Ref(w_rows, (P.Slice(ZERO, S(msz)), P.Slice(ZERO, wspan))),
              P.ApRef(wname, wbase, ((mstride, S(msz)), (ONE, wspan)))),
    ]
    for ti, tv in enumerate(tap_list):
        toff = sum((v * s for v, s in zip(tv, tstride)), ZERO)
        ps = w_ps      # one name: each tap's PSUM tile frees the previous one (8 banks)
        turn_body += [
            P.Alloc(ps, (block, block), tdt, P.Mem.PSUM),
            P.PeTranspose(P.Ref(ps, (P.Slice(ZERO, S(ksz)), P.Slice(ZERO, S(msz)))),
                          P.Ref(w_rows, (P.Slice(ZERO, S(msz)),
                                         P.Slice(sympy.sympify(toff), S(ksz), kstride)))),
            P.TensorCopy(wref(P.Slice(ZERO, S(ksz)), k_t, ti),
                         P.Ref(ps, (P.Slice(ZERO, S(ksz)), P.Slice(ZERO, S(msz))))),
        ]
    # ---- output blocks --------------------------------------------------------------------
    bt = n.fresh("blk")
    nbw = n.fresh("nbw")
    o0 = [n.fresh(f"{o}0") for o in cs.sp]
    osz = [n.fresh(f"{o}sz") for o in cs.sp]
    x_blk, ps_o, o_t = n.fresh(f"{cs.x.tensor}_blk"), n.fresh("ps"), n.fresh("o_t")
    b.const("TILE_M", GEMM_STATIONARY_FMAX, "output channels per tile: the turned filter's "
            "free size (the stationary operand), the output tile's partitions",
            "gemm_stationary_fmax", (m_t, m0, msz, nmt_n, w_rows, ps_o, o_t), owned_only=True)
    blk_body: list = []
    if nsp == 2:
        blk_body += [P.Let(o0[0], sympy.floor(S(bt) / S(nbw)) * NB),
                     P.Let(o0[1], sympy.Mod(S(bt), S(nbw)) * WB)]
    else:
        blk_body.append(P.Let(o0[0], S(bt) * WB))
    for i in range(nsp):
        blk_body.append(P.Let(osz[i], Min(blk[i], sp_ext[i] - S(o0[i]))))
    xin = [cs.stride[i] * (S(osz[i]) - 1) + tap_ext[i] for i in range(nsp)]
    xin_alloc = [sympy.expand(e) for e in in_ext]
    blk_body.append(P.Alloc(x_blk, (block, NKT, *xin_alloc), dt, P.Mem.SBUF))
    kl, kl0, klsz = n.fresh(f"{cs.k}t"), n.fresh(f"{cs.k}0"), n.fresh(f"{cs.k}sz")
    src_dims: list[P.Dim] = [P.Slice(S(kl0), S(klsz))]
    for i in range(nsp):
        src_dims.append(P.Slice(sympy.expand(cs.stride[i] * S(o0[i])), sympy.expand(xin[i])))
    blk_body.append(P.Loop(kl, NKT, P.LoopKind.PARALLEL, (
        P.Let(kl0, S(kl) * PMAX), P.Let(klsz, Min(block, kext - S(kl0))),
        P.Dma(P.Ref(x_blk, (P.Slice(ZERO, S(klsz)), P.Index(S(kl)),
                            *[P.Slice(ZERO, sympy.expand(e)) for e in xin])),
              P.Ref(xname, tuple(src_dims))))))
    tail: list = [P.Alloc(ps_o, (block, *blk), DType.float32, P.Mem.PSUM)]
    out_view = (P.Slice(ZERO, S(msz)), *[P.Slice(ZERO, S(osz[i])) for i in range(nsp)])
    mm_body: list = [P.Let(klsz, Min(block, kext - S(kl) * PMAX))]
    for ti, tv in enumerate(tap_list):
        mv: list[P.Dim] = [P.Slice(ZERO, S(klsz)), P.Index(S(kl))]
        for i in range(nsp):
            mv.append(P.Slice(sympy.Integer(tv[i]), S(osz[i]), sympy.Integer(cs.stride[i])))
        mm_body.append(P.Matmul(
            P.Ref(ps_o, out_view),
            wref(P.Slice(ZERO, S(klsz)), kl, ti),
            P.Ref(x_blk, tuple(mv))))
    tail.append(P.Loop(kl, NKT, P.LoopKind.PARALLEL, tuple(mm_body)))
    ydt = spec.tensor(cs.st.target).dtype
    tail += [
        P.Alloc(o_t, (block, *blk), ydt, P.Mem.SBUF),
        P.TensorCopy(P.Ref(o_t, out_view), P.Ref(ps_o, out_view)),
        P.Dma(P.Ref(yname, (P.Slice(S(m0), S(msz)),
                            *[P.Slice(S(o0[i]), S(osz[i])) for i in range(nsp)])),
              P.Ref(o_t, out_view)),
    ]
    nblocks = sympy.ceiling(sp_ext[-1] / WB)
    if nsp == 2:
        nblocks = sympy.ceiling(sp_ext[0] / NB) * S(nbw)
    pre: list = [P.Let(nkt_n, sympy.ceiling(kext / PMAX)),
                 P.Let(wb_n, Min(sympy.Integer(GEMM_MOVING_FMAX), sp_ext[-1]))]
    if nsp == 2:
        pre += [P.Let(nb_n, Min(sp_ext[0], sympy.floor(GEMM_MOVING_FMAX / WB))),
                P.Let(nbw, sympy.ceiling(sp_ext[-1] / WB))]
    pre.append(P.Let(nmt_n, sympy.ceiling(ext[cs.m] / PMAX)))
    m_lets = (P.Let(m0, S(m_t) * PMAX), P.Let(msz, Min(block, ext[cs.m] - S(m0))))
    turn = P.Loop(k_t, NKT, P.LoopKind.PARALLEL, tuple(turn_body))
    if hoist:
        nodes = pre + [
            P.Alloc(w_turn, (block, NMT, NKT, sympy.Integer(n_taps), block), dt, P.Mem.SBUF),
            P.Loop(m_t, NMT, P.LoopKind.PARALLEL, (*m_lets, turn)),
            P.Loop(bt, nblocks, P.LoopKind.PARALLEL, (
                *blk_body, P.Loop(m_t, NMT, P.LoopKind.PARALLEL, (*m_lets, *tail)))),
        ]
    else:
        nodes = pre + [P.Loop(m_t, NMT, P.LoopKind.PARALLEL, (
            *m_lets,
            P.Alloc(w_turn, (block, NKT, sympy.Integer(n_taps), block), dt, P.Mem.SBUF),
            turn,
            P.Loop(bt, nblocks, P.LoopKind.PARALLEL, (*blk_body, *tail))))]
    stage = P.StagePlan(
        statements=(cs.st.position,), strategy="implicit-gemm", partition=cs.k,
        free=(cs.m, *cs.sp), loops=(), tiles=((cs.m, PMAX), (cs.k, PMAX)), blocks=(),
        engines=("dma", "tensor", "vector"),
        notes=(f"filter {cs.w.tensor} loaded as contiguous rows ({cs.m} on the partitions) "
               f"and turned per tap on TensorE ({n_taps} taps)",
               f"{cs.x.tensor} loaded once per output block and {cs.k} tile; each tap a "
               "strided SBUF view as the moving operand, all taps accumulating in PSUM"))
    return nodes, stage


def const_extent(b: Build, idx: str) -> int | None:
    """The extent of ``idx`` when it is a constant (an integer, or a size fixed by ``value:``
    to an integer expression of params), else None."""
    e = sympy.sympify(b.extents.get(idx))
    params = {sympy.Symbol(k): v for k, v in b.spec.param_values().items()}
    for _ in range(4):
        if e.is_Integer:
            return int(e)
        subs = {}
        for sym in e.free_symbols:
            try:
                decl = b.spec.size(sym.name)
            except KeyError:
                continue
            if decl.value is not None:
                subs[sym] = decl.value
        if not subs:
            break
        e = sympy.sympify(e.subs(subs)).subs(params)
    return int(e) if e.is_Integer else None


def _taps(tap_ext: list[int]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for e in tap_ext:
        out = [t + (v,) for t in out for v in range(e)]
    return out


def _x_max(cs: ConvShape, tap_ext: list[int]) -> sympy.Expr:
    """Elements per partition of one input block at its largest (<= 512 outputs)."""
    if len(cs.sp) == 1:
        return sympy.Integer(cs.stride[0] * (GEMM_MOVING_FMAX - 1) + tap_ext[0])
    best = 0
    for wb in range(1, GEMM_MOVING_FMAX + 1):
        nb = GEMM_MOVING_FMAX // wb
        best = max(best, (cs.stride[0] * (nb - 1) + tap_ext[0])
                   * (cs.stride[1] * (wb - 1) + tap_ext[1]))
    return sympy.Integer(best)
