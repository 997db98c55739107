"""Matmul lowering: ``T[.., r, c] += s[..] * m[..]`` contractions on TensorE.

Stage: plan (contraction Statement [+ epilogue Statement] -> plan nodes). Input: a ``+=``
statement whose right-hand side is a product of two tensor accesses (times trace-time scalars)
summed over at least one index that both operands index directly.

Roles: the target's last index ``c`` is the moving free index (PSUM tile width <= 512); the
operand holding it is *moving*, the other *stationary*, whose last target index ``r`` is the
stationary free index (<= 128). The contraction index ``k`` both operands index directly goes on
the partitions (tiles of <= 128); further contraction indices (a conv window) and all other target
indices (batch) become scalar loops. An operand whose ``k`` dimension comes after its free
dimension is transposed on the way in (see :func:`choose_transpose`).

Loop structure (the fully blocked form of the public matmul tutorial): blocks of ``block[r]``
x ``block[c]`` tiles; per block a sequential loop over contraction blocks of ``block[k]`` tiles
loads both operand blocks once (one DMA per k tile, whole rows of the block: large transfers) and
reuses them for every tile pair. Each tile pair accumulates its k tiles in one PSUM bank and is
added into an SBUF fp32 block accumulator, zeroed once per output block (one accumulate pattern,
no first-block branch). The epilogue (scale, the next statement fused: bias, activation, cast)
runs once per block row from the accumulator, and one DMA stores each ``[128, block width]``
output row.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from nkigen.analysis.contraction import MatmulShape, OperandPlan, match, operand_dtypes
from nkigen.analysis.schedule import MAX_BLOCK
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.symcache import Min, substitute, xreplace
from nkigen.codegen.tilexpr import (
    F32,
    ZERO,
    Bound,
    Compiler,
    Kind,
    TileCtx,
    Unsupported,
    size_max,
    stmt_error,
)
from nkigen.diagnostics import error
from nkigen.dtypes import DType
from nkigen.hw import GEMM_MOVING_FMAX, GEMM_STATIONARY_FMAX, PMAX, Target
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    Compare,
    Expr,
    Neg,
    Reduce,
    Scan,
    Schedule,
    Statement,
    Where,
    accesses,
    index_symbol,
    walk,
)

DEFAULT_BLOCK = {"r": 16, "c": 2, "k": 8}   # the public tutorial's fully blocked shape
MM_MARK = "<matmul>"     # placeholder tensor name of the matmul result inside the epilogue




def analyze(b: Build, st: Statement) -> MatmulShape | None:
    """:func:`nkigen.analysis.contraction.match` over the build's index names."""
    return match(set(b.extents), st)


def is_contraction(b: Build, st: Statement) -> bool:
    return analyze(b, st) is not None


def pe_transpose_dtype(stored: DType, target: Target | None = None) -> DType:
    """The dtype an operand stored as ``stored`` is transposed in on TensorE: its matmul dtype,
    except float8, which goes through bfloat16 (exact for every float8 value): a TensorE
    transpose of float8 data writes 16-bit elements to PSUM on NeuronCore-v3 (S29
    nki/guides/architecture/trainium2_arch.rst "Built-in Transpose Support", note), which no
    float8 dst tile holds (nkigen.sim rule nc_transpose.fp8_tensor_v3). The load casts to
    bfloat16 on the way (DMA casts, SH nki/api/nki/isa/__init__.py dma_copy) and the PSUM
    eviction casts back to float8.

    On NeuronCore-v2 (``target.nc_version < 3``) every TensorE transpose is float32: 16-bit
    PSUM output is a NeuronCore-v3 transpose-mode feature (same arch-guide section; without
    it the output is the matmul's float32), and the current API wants dst and data of one
    dtype (S29 nki/api/nki/isa/__init__.py nc_transpose), so the data is transposed as float32
    too (the DMA casts on the way in, exact; the eviction casts back)."""
    dt = stored.matmul_dtype
    if target is not None and target.nc_version < 3:
        return DType.float32
    return DType.bfloat16 if dt in (DType.float8_e4m3, DType.float8_e5m2) else dt


def choose_transpose(t: Target, itemsize: int, row_elems: int, free_elems: int = 2048) -> str:
    """Pick how to bring an operand stored ``[free, k]`` into ``[k, free]`` tiles.

    A simple cost comparison per 128 x 128 tile, using the cost model's DMA efficiency curve
    for the target (``nkigen.sim.cost_rules.dma_efficiency`` with ``target=t``: the target's
    documented small-row efficiency where it has one, ``hw.Target.dma_small_row_eff``, trn2
    0.93 from the SH nki-dma-overview.rst profile; else the fitted
    ``CostParams.dma_small_chunk_eff``; chunk = contiguous bytes per descriptor):

    * DMA transpose: on NC-v3+ the transpose unit runs at ``CostParams.dma_transpose_hbm_factor``
      (0.9, SH trainium2_arch "up to 90 %") x a plain copy of the destination rows
      (``free_elems`` per partition); NC-v2 has no transpose unit, so the descriptors are one
      element long;
    * TensorE transpose: a plain load of whole source rows (``row_elems`` contiguous elements),
      plus max(P, min(64, F)) = 128 TensorE cycles per tile (the PSUM eviction runs on
      another engine).

    The cheaper estimate wins.
    """
    from nkigen.sim.cost_rules import DEFAULT_PARAMS, dma_efficiency

    if itemsize not in (2, 4):
        # DMA transpose is bit-accurate for 2- and 4-byte dtypes only (SH
        # nki/guides/architecture/trainium2_arch.rst "DMA transpose"; the API's explicit
        # hwdge/swdge modes take 2-byte dtypes only, SH nki/api/nki/isa/__init__.py
        # dma_transpose, nki 0.3): fp8 operands transpose on TensorE
        return "pe"
    tile_bytes = 128 * 128 * itemsize
    bw = t.hbm_gbps_per_core                       # bytes / ns
    p = DEFAULT_PARAMS
    if t.nc_version >= 3:
        dma_eff = dma_efficiency(free_elems * itemsize, p, t) * p.dma_transpose_hbm_factor
    else:
        dma_eff = dma_efficiency(itemsize, p, t)
    dma_t = tile_bytes / (bw * dma_eff)
    pe_t = tile_bytes / (bw * dma_efficiency(row_elems * itemsize, p, t)) + 128 / t.tensor_ghz
    return "pe" if pe_t < dma_t else "dma"


def _hint(sched: Schedule, kind: str, idx: str, default: int, limit: int | None,
          what: str) -> int:
    v = sched.tile(idx) if kind == "tiles" else sched.block_of(idx)
    if v is None:
        return default
    if v < 1 or (limit is not None and v > limit):
        raise error(sched.loc, f"schedule.{kind}.{idx}", f"{what} must be 1..{limit}", v,
                    f"use {min(default, limit or default)}")
    return int(v)


def try_lower(b: Build, st: Statement, nxt: Statement | None, sched: Schedule):
    ms = analyze(b, st)
    if ms is None:
        return None
    ms = merge_contraction(b, ms, sched)
    sib = _sibling(b, ms, nxt)
    if sib is not None:
        after = b.spec.statements[nxt.position + 1] if nxt is not None and \
            nxt.position + 1 < len(b.spec.statements) else None
        if _fusable(b, ms, after, (ms.st.target, sib.st.target)):
            b.resident.update((st.target, sib.st.target))
            return (_lower(b, ms, after, sched, (sib,)), 3,
                    _stage(b, ms, after, sched, (sib,)))
    epi = nxt if _fusable(b, ms, nxt) else None
    if epi is not None:
        b.resident.add(st.target)
    nodes = _lower(b, ms, epi, sched)
    return nodes, (2 if epi is not None else 1), _stage(b, ms, epi, sched)


def _sibling(b: Build, ms: MatmulShape, nxt: Statement | None) -> MatmulShape | None:
    """``nxt``'s contraction when it reads the same stationary operand as ``ms`` over the same
    indices (e.g. SwiGLU's gate and up projections of one ``x``): the two share the operand's
    load and transpose (issue 14, "several contractions reading one operand share its load
    and transpose"). Both targets must be temps that only the statement after ``nxt`` reads
    (checked by :func:`_fusable`), so their products stay on chip."""
    if nxt is None:
        return None
    m2 = analyze(b, nxt)
    if m2 is None or m2.stat.access != ms.stat.access or \
            (m2.r, m2.c, m2.k, m2.kx, m2.outer) != (ms.r, ms.c, ms.k, ms.kx, ms.outer) or \
            tuple(m2.st.lhs) != tuple(ms.st.lhs) or m2.mov.access.tensor == ms.st.target or \
            b.written_before(ms.st) or b.written_before(m2.st):
        return None
    if operand_dtypes(b.spec, m2) != operand_dtypes(b.spec, ms):
        return None
    return m2


def _fusable(b: Build, ms: MatmulShape, nxt: Statement | None,
             targets: tuple[str, ...] | None = None) -> bool:
    if nxt is None or nxt.op is not AssignOp.ASSIGN or tuple(nxt.lhs) != tuple(ms.st.lhs):
        return False
    want = tuple(index_symbol(i) for i in ms.st.lhs)
    for t in targets or (ms.st.target,):
        if not b.is_temp(t) or b.readers(t) != [nxt.position] or b.writers(t) != 1:
            return False
        uses = [a for a in accesses(nxt.rhs) if a.tensor == t]
        if any(tuple(sympy.sympify(i) for i in a.indices) != want for a in uses):
            return False
    # a reduction, or a scan (cumsum, a recurrence: spec language 1.1), runs along a whole row,
    # and the eviction sees one column block of it (fuzz7: cumsum(acc[m, n], n) after the
    # matmul was a build error, "a scan along n needs whole rows on chip")
    return not any(isinstance(x, (Reduce, Scan)) for x in walk(nxt.rhs))


def _tiles(b: Build, ms: MatmulShape, sched: Schedule,
           nmov: int = 1) -> tuple[int, int, int, int, int, int]:
    tr = _hint(sched, "tiles", ms.r, GEMM_STATIONARY_FMAX, GEMM_STATIONARY_FMAX,
               "matmul stationary tile")
    tc = _hint(sched, "tiles", ms.c, GEMM_MOVING_FMAX, GEMM_MOVING_FMAX, "matmul moving tile")
    tk = _hint(sched, "tiles", ms.k, PMAX, PMAX, "contraction (partition) tile")
    br = _hint(sched, "block", ms.r, DEFAULT_BLOCK["r"], MAX_BLOCK, "block")
    bc = _hint(sched, "block", ms.c, DEFAULT_BLOCK["c"], MAX_BLOCK, "block")
    bk = _hint(sched, "block", ms.k, DEFAULT_BLOCK["k"], MAX_BLOCK, "block")
    given = {ms.r: sched.block_of(ms.r), ms.c: sched.block_of(ms.c), ms.k: sched.block_of(ms.k)}
    budget = b.target.sbuf_bytes_per_partition
    rmax = _k_mid(b, ms)
    while True:
        nrb = 1 if rmax is None else -(-rmax // (br * tr))
        need = _footprint(b, ms, tr, tc, tk, br, bc, bk, nmov, nrb)
        if need <= budget:
            break
        if any(v is not None for v in given.values()):
            legal = _fitting_blocks(b, ms, tr, tc, tk, br, bc, bk, nmov, rmax, budget)
            fix = "use smaller block factors" + (
                ", e.g. block: {" + ", ".join(f"{i}: {v}" for i, v in legal.items()) + "}"
                if legal else "")
            raise error(sched.loc, "schedule.block",
                        f"blocks need {need} SBUF bytes per partition, over the {b.target.name} "
                        f"budget of {budget}", {ms.r: br, ms.c: bc, ms.k: bk}, fix)
        if rmax is not None and br > 1:
            # [c, k, r]: the accumulator spans every row block whatever br is; narrower row
            # blocks keep bk (PSUM evictions per output tile) and bc (stationary re-reads)
            br //= 2
        elif bk > 1:
            bk //= 2
        elif br > 1:
            br //= 2
        elif bc > 1:
            bc //= 2
        else:
            break
    return tr, tc, tk, br, bc, bk


def _fitting_blocks(b: Build, ms: MatmulShape, tr, tc, tk, br, bc, bk, nmov: int,
                    rmax: int | None, budget: int) -> dict[str, int] | None:
    """The block factors the hint asked for, halved largest first until the blocks fit the
    SBUF budget: the legal value a hint error names; None when even 1, 1, 1 does not fit."""
    f = {ms.r: br, ms.c: bc, ms.k: bk}
    while True:
        nrb = 1 if rmax is None else -(-rmax // (f[ms.r] * tr))
        if _footprint(b, ms, tr, tc, tk, f[ms.r], f[ms.c], f[ms.k], nmov, nrb) <= budget:
            return f
        big = max(f, key=lambda i: f[i])
        if f[big] == 1:
            return None
        f[big] //= 2


def _footprint(b: Build, ms: MatmulShape, tr, tc, tk, br, bc, bk, nmov: int = 1,
               nrb: int = 1) -> int:
    """SBUF bytes per partition of the blocks; ``nmov`` contractions share the stationary
    block (each has its own moving block and accumulator); ``nrb`` row blocks share one
    accumulator (the ``[c, k, r]`` order, :func:`_k_mid`)."""
    s_dt = b.spec.tensor(ms.stat.access.tensor).dtype
    m_dt = b.spec.tensor(ms.mov.access.tensor).dtype
    s_it, m_it = s_dt.itemsize, m_dt.itemsize
    # an operand widened to float32 for a float32 partner (operand_dtypes) takes 4 bytes
    s_on, m_on = operand_dtypes(b.spec, ms)
    s_it, m_it = (4 if s_on is DType.float32 else s_it), (4 if m_on is DType.float32 else m_it)
    blocks = bk * (br * tr * s_it + nmov * bc * tc * m_it)
    # the natural-layout rows a TensorE transpose reads: float8 ones as bfloat16
    s_nat = 2 if s_dt in (DType.float8_e4m3, DType.float8_e5m2) else s_it
    m_nat = 2 if m_dt in (DType.float8_e4m3, DType.float8_e5m2) else m_it
    nat = (bk * tk * s_nat if ms.stat.transposed else 0) + (bk * tk * m_nat if
                                                            ms.mov.transposed else 0)
    acc = nmov * nrb * br * bc * tc * 4
    epi = 3 * bc * tc * 4
    return 2 * (blocks + nat) + acc + epi


def _stage(b: Build, ms: MatmulShape, epi: Statement | None, sched: Schedule,
           sibs: tuple[MatmulShape, ...] = ()) -> P.StagePlan:
    tr, tc, tk, br, bc, bk = _tiles(b, ms, sched, 1 + len(sibs))
    notes = [f"statement {m.st.position} shares the loaded stationary {ms.stat.access.tensor} "
             f"(one load and transpose for {1 + len(sibs)} contractions)" for m in sibs]
    for role, op in (("stationary", ms.stat), ("moving", ms.mov)):
        if op.transposed:
            how = _transpose_how(b, ms, op, bk * tk, (br * tr) if role == 'stationary'
                                 else (bc * tc))
            notes.append(f"{role} {op.access.tensor} stored k-minor: "
                         f"{'TensorE' if how == 'pe' else 'DMA'} transpose")
    if epi is not None:
        notes.append(f"statement {epi.position} fused as the PSUM eviction epilogue")
    if double_row(b, ms, tk):
        notes.append("fp8 k tiles two at a time (perf_mode double_row)")
    if _k_mid(b, ms) is not None:
        notes.append(f"block loops: {ms.c} outer, {ms.k} (sequential), {ms.r} inner: each "
                     f"moving block loaded once per {ms.c} block (tutorial order)")
    else:
        notes.append(f"block loops: {ms.c + ' outer' if _c_outer(b, ms) else ms.r + ' outer'};"
                     f" {ms.k} innermost (sequential contraction blocks)")
    return P.StagePlan(
        statements=(ms.st.position,) + tuple(m.st.position for m in sibs)
        + ((epi.position,) if epi is not None else ()),
        strategy="matmul", partition=ms.k, free=(ms.r, ms.c), loops=ms.outer + ms.kx,
        tiles=((ms.r, tr), (ms.c, tc), (ms.k, tk)), blocks=((ms.r, br), (ms.c, bc), (ms.k, bk)),
        engines=("dma", "tensor", "vector", "scalar", "gpsimd"), notes=tuple(notes))


def _lower(b: Build, ms: MatmulShape, epi: Statement | None, sched: Schedule,
           sibs: tuple[MatmulShape, ...] = ()) -> list:
    """The blocked matmul of ``ms`` (+ ``sibs``: further contractions sharing its stationary
    block, each with its own moving block, PSUM tile and accumulator) and the epilogue."""
    tr, tc, tk, br, bc, bk = _tiles(b, ms, sched, 1 + len(sibs))
    n = b.namer
    S = b.sym
    ext = b.extents
    K = ext[ms.k]
    RB, CB, KB = tr * br, tc * bc, tk * bk
    rmax = _k_mid(b, ms)
    NRB = 1 if rmax is None else -(-rmax // RB)     # row blocks sharing the accumulator
    env: dict[str, sympy.Expr] = {}
    outer_vars: list[tuple[str, str]] = []
    for x in ms.outer:
        v = n.fresh(f"i_{x}")
        outer_vars.append((x, v))
        env[x] = S(v)
    kx_vars: list[tuple[str, str]] = []
    for x in ms.kx:
        v = n.fresh(f"i_{x}")
        kx_vars.append((x, v))
        env[x] = S(v)

    rb, r0, rsz, nrt = n.fresh("rb"), n.fresh("r0"), n.fresh("rsz"), n.fresh("nrt")
    cb, c0, csz, nct = n.fresh("cb"), n.fresh("c0"), n.fresh("csz"), n.fresh("nct")
    kb, k0, ksz, nkt = n.fresh("kb"), n.fresh("k0"), n.fresh("ksz"), n.fresh("nkt")
    grp = None if sibs or rmax is not None else _shared_moving(b, ms, K, tk * bk)
    acc = n.fresh("acc")
    # integer operands (spec language 1.1), and any operand paired with a float32 one, are
    # widened by the loading DMA (operand_dtypes)
    s_dt, m_dt = operand_dtypes(b.spec, ms)

    # ---- contraction block body ------------------------------------------------------------
    kbody: list = [
        P.Let(k0, S(kb) * KB),
        P.Let(ksz, Min(sympy.Integer(KB), K - S(k0))),
        P.Let(nkt, sympy.ceiling(S(ksz) / tk)),
    ]
    sblk, mblk = n.fresh("s_blk"), n.fresh("m_blk")
    _declare(b, tr, tc, tk, br, bc, bk, (nrt, acc), (nkt, sblk, mblk),
             (cb, c0, csz, nrt, mblk), (kb, k0, ksz))
    kbody.append(P.Alloc(sblk, (sympy.Integer(tk), sympy.Integer(bk), sympy.Integer(RB)), s_dt,
                         P.Mem.SBUF))
    kbody.append(P.Alloc(mblk, (sympy.Integer(tk), sympy.Integer(bk), sympy.Integer(CB)), m_dt,
                         P.Mem.SBUF))
    s_load = _load_block(b, ms, ms.stat, sblk, env, S(k0), S(ksz), S(nkt), tk, bk,
                         S(r0), S(rsz), RB)
    m_load = _load_block(b, ms, ms.mov, mblk, env, S(k0), S(ksz), S(nkt), tk, bk,
                         S(c0), S(csz), CB)
    if grp is not None:
        # review5 F7: the moving block depends on the outer index h only through h // G: it is
        # loaded once per group of G values of h (one contraction block), the G stationary
        # blocks and their products inside (see _shared_moving)
        h, G = grp
        hv = dict(outer_vars)[h]
        kvv, gv = n.fresh(f"i_{h}_grp"), n.fresh(f"i_{h}_in")
        genv = {**env, h: S(kvv) * G}
        m_load = _load_block(b, ms, ms.mov, mblk, genv, S(k0), S(ksz), S(nkt), tk, bk,
                             S(c0), S(csz), CB)
        m_alloc = next(x for x in kbody if isinstance(x, P.Alloc) and x.name == mblk)
        mhead = [P.Let(kb, ZERO), *kbody[:3], m_alloc, *m_load]
        kbody = [x for x in kbody[3:] if x is not m_alloc] + s_load
    elif rmax is None:
        kbody += _interleave(s_load, m_load)
    else:       # [c, k, r] order: the moving block here, the stationary one per row block
        kbody = [n_ for n_ in kbody if not (isinstance(n_, P.Alloc) and n_.name == sblk)]
        kbody += m_load
    sib_blks = [n.fresh("m_blk") for _ in sibs]
    for sib, blk in zip(sibs, sib_blks):
        kbody.append(P.Alloc(blk, (sympy.Integer(tk), sympy.Integer(bk), sympy.Integer(CB)),
                             m_dt, P.Mem.SBUF))
        kbody += _load_block(b, sib, sib.mov, blk, env, S(k0), S(ksz), S(nkt), tk, bk,
                             S(c0), S(csz), CB)
    ct, cc0, ctsz = n.fresh("ct"), n.fresh("cc0"), n.fresh("ctsz")
    rt, rr0, rtsz = n.fresh("rt"), n.fresh("rr0"), n.fresh("rtsz")
    kt, ktsz = n.fresh("kt"), n.fresh("ktsz")
    ps = n.fresh("ps")
    b.own("TILE_M", rt, rr0, rtsz, ps)
    b.own("TILE_K", kt, ktsz)
    b.own("BLOCK_N", rt)
    mm_nodes: list = [P.Loop(kt, S(nkt), P.LoopKind.PARALLEL, (
        P.Let(ktsz, Min(sympy.Integer(tk), S(ksz) - S(kt) * tk)),
        P.Matmul(
            P.Ref(ps, (P.Slice(ZERO, S(rtsz)), P.Slice(ZERO, S(ctsz)))),
            P.Ref(sblk, (P.Slice(ZERO, S(ktsz)), P.Index(S(kt)),
                         P.Slice(S(rt) * tr, S(rtsz)))),
            P.Ref(mblk, (P.Slice(ZERO, S(ktsz)), P.Index(S(kt)),
                         P.Slice(S(cc0), S(ctsz))))),
    ))]
    if double_row(b, ms, tk):
        mm_nodes = _double_row_matmuls(b, ps, sblk, mblk, nkt, tk, S(rt) * tr, rtsz, cc0, ctsz)
    # the accumulator's row tile: rt, or rt of row block rb in the [c, k, r] order
    arow = S(rt) if rmax is None else S(rb) * br + S(rt)
    acc_view = P.Ref(acc, (P.Slice(ZERO, S(rtsz)), P.Slice(arow * CB + S(cc0), S(ctsz))))
    ps_view = P.Ref(ps, (P.Slice(ZERO, S(rtsz)), P.Slice(ZERO, S(ctsz))))
    # one accumulate pattern: the block accumulator is zeroed once per output block and every
    # contraction block adds its PSUM tile into it, as the public matmul tutorial's fully
    # blocked kernel does (a zeroed result block, one add per k block); no first-block copy
    evict: P.Node = P.TensorTensor(acc_view, acc_view, ps_view, P.AluOp.ADD)
    nkb = sympy.ceiling(K / KB)
    lin, nlin = S(kb), nkb           # linear contraction-block index and count
    for x, v in reversed(kx_vars):
        lin, nlin = lin + S(v) * nlin, nlin * ext[x]
    # the sibling contractions: same stationary tile, own moving block / PSUM / accumulator
    sib_accs = [n.fresh("acc") for _ in sibs]
    sib_nodes: list = []
    for blk, sacc in zip(sib_blks, sib_accs):
        sps, skt, sktsz = n.fresh("ps"), n.fresh("kt"), n.fresh("ktsz")
        sps_view = P.Ref(sps, (P.Slice(ZERO, S(rtsz)), P.Slice(ZERO, S(ctsz))))
        sacc_view = P.Ref(sacc, (P.Slice(ZERO, S(rtsz)), P.Slice(arow * CB + S(cc0),
                                                                 S(ctsz))))
        smm: list = [P.Loop(skt, S(nkt), P.LoopKind.PARALLEL, (
            P.Let(sktsz, Min(sympy.Integer(tk), S(ksz) - S(skt) * tk)),
            P.Matmul(sps_view, P.Ref(sblk, (P.Slice(ZERO, S(sktsz)), P.Index(S(skt)),
                                            P.Slice(S(rt) * tr, S(rtsz)))),
                     P.Ref(blk, (P.Slice(ZERO, S(sktsz)), P.Index(S(skt)),
                                 P.Slice(S(cc0), S(ctsz))))),
        ))]
        if double_row(b, ms, tk):
            smm = _double_row_matmuls(b, sps, sblk, blk, nkt, tk, S(rt) * tr, rtsz, cc0, ctsz)
        sib_nodes += [P.Alloc(sps, (sympy.Integer(tr), sympy.Integer(tc)), F32, P.Mem.PSUM),
                      *smm,
                      P.TensorTensor(sacc_view, sacc_view, sps_view, P.AluOp.ADD)]
    # A plain product (no epilogue math): the last contraction block's add writes the output
    # tile instead of the accumulator (cast on the way) and stores it, so no pass over the block
    # and no store queue behind it after the last matmul (the one branch left: which tile the
    # same add writes)
    direct = epi is None and not ms.scale and not b.written_before(ms.st)
    row_pre: list = []
    row_post: list = []
    if direct:
        tdecl0 = b.spec.tensor(ms.st.target)
        otile = n.fresh("o_t")
        tctx = TileCtx(ms.r, S(r0) + S(rt) * tr, S(rtsz), ms.c, S(c0), S(csz),
                       sympy.Integer(CB), env={x: S(v) for x, v in outer_vars})
        comp0 = Compiler(b.spec, b.namer, b.extents, ms.st, b.target, classic=b.classic)
        try:
            odst, _, _ = comp0.hbm_view(tctx, ms.st.target,
                                        tuple(index_symbol(i) for i in ms.st.lhs))
        except Unsupported as e:
            raise stmt_error(ms.st, str(e)) from None
        o_view = P.Ref(otile, (P.Slice(ZERO, S(rtsz)), P.Slice(S(cc0), S(ctsz))))
        lin, last = sympy.expand(lin), nlin - 1
        # allocated on every pass, not under the last-block `if`: a tensor created inside an
        # if body cannot be used after it (S25 general/nki/api/nki.errors.rst
        # err_local_variable_used_out_of_scope)
        row_pre = [P.Alloc(otile, (sympy.Integer(tr), sympy.Integer(CB)), tdecl0.dtype,
                           P.Mem.SBUF)]
        row_post = [P.If(lin, last, (P.Dma(odst, P.Ref(otile, (P.Slice(ZERO, S(rtsz)),
                                                               P.Slice(ZERO, S(csz))))),))]
        evict = P.If(lin, last, (P.TensorTensor(o_view, acc_view, ps_view, P.AluOp.ADD),),
                     (evict,))
    rt_loop = P.Loop(rt, S(nrt), P.LoopKind.PARALLEL, (
        P.Let(rtsz, Min(sympy.Integer(tr), S(rsz) - S(rt) * tr)),
        *row_pre,
        P.Loop(ct, S(nct), P.LoopKind.PARALLEL, (
            P.Let(cc0, S(ct) * tc),
            P.Let(ctsz, Min(sympy.Integer(tc), S(csz) - S(cc0))),
            P.Alloc(ps, (sympy.Integer(tr), sympy.Integer(tc)), F32, P.Mem.PSUM),
            *mm_nodes,
            evict,
            *sib_nodes,
        )),
        *row_post,
    ))
    if rmax is None:
        kbody.append(rt_loop)
    else:
        kbody.append(P.Loop(rb, sympy.ceiling(ext[ms.r] / RB), P.LoopKind.SEQUENTIAL, (
            *_r_lets(b, ms, rb, r0, rsz, nrt, RB, tr),
            P.Alloc(sblk, (sympy.Integer(tk), sympy.Integer(bk), sympy.Integer(RB)), s_dt,
                    P.Mem.SBUF),
            *s_load, rt_loop)))
    kloop: P.Node = P.Loop(kb, nkb, P.LoopKind.SEQUENTIAL, tuple(kbody))
    for x, v in reversed(kx_vars):
        kloop = P.Loop(v, ext[x], P.LoopKind.SEQUENTIAL, (kloop,))
    knodes: list = [kloop]
    group = None
    if grp is not None:
        # one contraction block (and no kx loop): the block body runs once, after the moving
        # block's load
        knodes = list(kbody)
        group = (h, hv, kvv, gv, G, mhead)

    # nki dialect and the [c, k, r] order: one accumulator for every output block, allocated
    # once (a tile re-created per unrolled block would be live twice while the next block's is
    # allocated: the simulator frees it when its last reference dies; no `del` in a documented
    # kernel), so the block loops reuse it and run in order. Classic: see per_block below (the
    # classic loops trace their body once, the peeled last block in its own helper call)
    acc_alloc = P.Alloc(acc, (sympy.Integer(tr), sympy.Integer(NRB * br * CB)), F32,
                        P.Mem.SBUF)
    sib_allocs = [P.Alloc(a, (sympy.Integer(tr), sympy.Integer(NRB * br * CB)), F32,
                          P.Mem.SBUF) for a in sib_accs]
    # zeroed on GpSimd: VectorE is the engine adding PSUM tiles into them, and the memset of the
    # next block then overlaps this block's tail; in the [c, k, r] order every row block's
    # part of the accumulator is zeroed before the contraction loop
    zcols = S(nrt) * CB if rmax is None else sympy.Integer(NRB * br * CB)
    zeros: list = [P.Memset(P.Ref(a, (P.Slice(ZERO, sympy.Integer(tr)), P.Slice(ZERO, zcols))),
                            ZERO, P.Eng.GPSIMD) for a in (acc, *sib_accs)]
    if b.classic and rmax is None:
        # classic: the row-tile count is the block's full count under masks (classic_mask.py),
        # so one memset would zero the whole accumulator; zero per row tile instead, the row
        # tiles past the tensor masked away (a mask that keeps no lane skips the instruction)
        zt, ztsz = n.fresh("rt"), n.fresh("rtsz")
        b.own("TILE_M", zt, ztsz)
        b.own("BLOCK_N", zt)
        zeros = [P.Loop(zt, S(nrt), P.LoopKind.PARALLEL, (
            P.Let(ztsz, Min(sympy.Integer(tr), S(rsz) - S(zt) * tr)),
            *[P.Memset(P.Ref(a, (P.Slice(ZERO, S(ztsz)), P.Slice(S(zt) * CB, sympy.Integer(CB)))),
                       ZERO, P.Eng.GPSIMD) for a in (acc, *sib_accs)]))]
    # classic, default order: one accumulator per output block, allocated in the block body
    # (as S25 general/nki/examples/matrix_multiplication/matrix_multiplication_nki_kernels.py
    # nki_matmul_fully_optimized_ allocates result_tiles inside its N-block loop; S25
    # nki_block_dimension_migration_guide.rst: "hoist down the tensor inside the loop"), so no
    # block iteration reads another's tile and the row/column block loops are nl.affine_range;
    # only the contraction block loop stays sequential (it accumulates)
    per_block = b.classic and rmax is None
    head = [] if per_block else [acc_alloc, *sib_allocs]
    inner_allocs = [acc_alloc, *sib_allocs] if per_block else []
    if direct:
        return [*head, *_wrap_blocks(b, ms, outer_vars, rb, r0, rsz, nrt, cb, c0, csz, nct,
                                     RB, CB, tr, tc, [*inner_allocs, *zeros, *knodes],
                                     per_block, group)]

    # ---- epilogue ------------------------------------------------------------------------
    hoist: list = []
    ep_body: list = [P.Let(rr0, S(rt) * tr),
                     P.Let(rtsz, Min(sympy.Integer(tr), S(rsz) - S(rr0)))]
    target_st = epi if epi is not None else ms.st
    expr: Expr = Access(MM_MARK, (index_symbol(ms.r), index_symbol(ms.c)))
    for f in ms.scale:
        expr = BinOp(BinOpKind.MUL, f, expr)
    if b.written_before(ms.st):     # += onto an earlier value: add it in the epilogue
        expr = BinOp(BinOpKind.ADD, Access(ms.st.target, tuple(index_symbol(i)
                                                               for i in ms.st.lhs)), expr)
    if epi is not None:
        expr = _substitute(epi.rhs, ms.st.target, expr)
    marks = []
    for i, sib in enumerate(sibs):
        mark = f"<matmul{i + 1}>"
        marks.append(mark)
        sx: Expr = Access(mark, (index_symbol(ms.r), index_symbol(ms.c)))
        for f in sib.scale:
            sx = BinOp(BinOpKind.MUL, f, sx)
        expr = _substitute(expr, sib.st.target, sx)
    from nkigen.codegen.rows import hoist_rows
    ctx = TileCtx(ms.r, S(r0) + S(rr0), S(rtsz), ms.c, S(c0), S(csz), sympy.Integer(CB),
                  env={x: S(v) for x, v in outer_vars}, bound={}, out=ep_body, hoist=hoist,
                  hoist_ok=True,
                  # a hoisted broadcast of a per-column operand (a bias) fills the rows a
                  # tile can hold (current API only)
                  hoist_p=hoist_rows(b, tr, ext[ms.r]))
    ctx.bound[MM_MARK] = Bound(acc, Kind.ROW, F32, off=arow * CB)
    for mark, sacc in zip(marks, sib_accs):
        ctx.bound[mark] = Bound(sacc, Kind.ROW, F32, off=arow * CB)
    comp = Compiler(b.spec, b.namer, b.extents, target_st, b.target,
                    classic=b.classic)
    # VectorE is busy evicting PSUM into the accumulator: prefer ScalarE for the epilogue
    ctx.load["vector"] = comp._ns("vector", 4.0)
    tdecl = b.spec.tensor(target_st.target)
    try:
        val = comp.compile(ctx, expr, want=tdecl.dtype)
        if val.kind is not Kind.ROW or not val.temp or val.dtype != tdecl.dtype:
            val = comp.materialize(ctx, val, Kind.ROW, tdecl.dtype)
        dst, _, _ = comp.hbm_view(ctx, target_st.target,
                                  tuple(index_symbol(i) for i in target_st.lhs))
    except Unsupported as e:
        raise stmt_error(target_st, str(e)) from None
    ep_body.append(P.Dma(dst, comp.ref(ctx, val)))

    ep_loop = P.Loop(rt, S(nrt), P.LoopKind.PARALLEL, tuple(ep_body))
    if rmax is not None:        # [c, k, r]: the epilogue runs per row block after the k loop
        tail: list = [P.Loop(rb, sympy.ceiling(ext[ms.r] / RB), P.LoopKind.SEQUENTIAL, (
            *_r_lets(b, ms, rb, r0, rsz, nrt, RB, tr), *hoist, ep_loop))]
    else:
        tail = [*hoist, ep_loop]
    return [*head, *_wrap_blocks(b, ms, outer_vars, rb, r0, rsz, nrt, cb, c0, csz, nct, RB, CB,
                                 tr, tc, [*inner_allocs, *zeros, *knodes, *tail], per_block,
                                 group)]


_FP8 = (DType.float8_e4m3, DType.float8_e5m2)


def double_row(b: Build, ms: MatmulShape, tk: int) -> bool:
    """Use TensorE's fp8 double-row mode: NeuronCore-v3+ with both operands fp8, nki dialect,
    full 128-row k tiles (the contraction of every tile pair is 2 x 128).

    S29 nki/api/nki/isa/__init__.py nc_matmul (nki 0.3) "Performance mode" / "Layout": on
    NeuronCore-v3/v4 ``perf_mode=double_row`` takes float8_e4m3/float8_e5m2 operands laid out
    ``[K, 2, F]``, the contraction split between the partitions and that first free dim of 2;
    S29 nki/guides/architecture/trainium2_arch.rst "Double FP8 Matmul Performance": the 256-deep
    instruction takes the time of a 128-deep bf16 one. The block tiles ``[k, k tile, free]``
    already hold two consecutive k tiles as ``[k, 2, free]``. The classic API (S25) documents no
    ``perf_mode`` (only an SDK test passes one through ``**kwargs``), so classic kernels keep
    plain fp8 matmuls."""
    if b.classic or b.target.nc_version < 3 or tk != PMAX:
        return False
    if any(b.spec.tensor(op.access.tensor).dtype.matmul_dtype not in _FP8
           for op in (ms.stat, ms.mov)):
        return False
    K = sympy.sympify(b.extents[ms.k])
    if K.is_Integer:
        return int(K) % tk == 0
    decl = next((z for z in b.spec.sizes if z.name == str(K)), None)
    return bool(K.is_Symbol and decl is not None and decl.multiple_of
                and decl.multiple_of % tk == 0)


def _double_row_matmuls(b: Build, ps: str, sblk: str, mblk: str, nkt: str, tk: int,
                        r_off: sympy.Expr, rtsz: str, cc0: str, ctsz: str) -> list:
    """The k tiles of one block two at a time (``perf_mode=double_row``), an odd last tile as a
    plain fp8 matmul into the same accumulation group."""
    S = b.sym
    kp = b.namer.fresh("kp")
    full = P.Slice(ZERO, sympy.Integer(tk))
    dst = P.Ref(ps, (P.Slice(ZERO, S(rtsz)), P.Slice(ZERO, S(ctsz))))
    pair = P.Slice(2 * S(kp), sympy.Integer(2))
    last = P.Index(S(nkt) - 1)
    return [
        P.Loop(kp, sympy.floor(S(nkt) / 2), P.LoopKind.PARALLEL, (
            P.Matmul(dst, P.Ref(sblk, (full, pair, P.Slice(r_off, S(rtsz)))),
                     P.Ref(mblk, (full, pair, P.Slice(S(cc0), S(ctsz)))), double_row=True),
        )),
        P.If(sympy.Mod(S(nkt), 2), sympy.Integer(1), (
            P.Matmul(dst, P.Ref(sblk, (full, last, P.Slice(r_off, S(rtsz)))),
                     P.Ref(mblk, (full, last, P.Slice(S(cc0), S(ctsz))))),
        )),
    ]


def _k_mid(b: Build, ms: MatmulShape) -> int | None:
    """The ``order`` hint lists the moving free index, then the contraction, then the
    stationary free index (``order: [n, k, m]`` for ``c[m, n] += a[m, k] * b[k, n]``): the
    public tutorial's fully blocked loop order. Per column block, the contraction blocks run
    outside the row blocks, so each moving block is loaded once and reused by every row block
    (the default order reloads it per row block: 18 % more HBM bytes than the tutorial at
    4096 x 8192 x 8192). The accumulator then holds every row block of the column block, so
    the stationary extent needs an upper bound; returns it (None: the default order)."""
    order = list(b.schedule.order) if b.schedule is not None else []
    if not all(x in order for x in (ms.r, ms.c, ms.k)) or not \
            order.index(ms.c) < order.index(ms.k) < order.index(ms.r):
        return None
    R = sympy.sympify(b.extents[ms.r])
    if R.is_Integer:
        return int(R)
    decl = next((z for z in b.spec.sizes if z.name == str(R)), None)
    if decl is None or decl.max is None:
        raise error(b.spec.loc_of("schedule.order"), "schedule.order",
                    f"order {order} keeps the accumulators of every {ms.r} block on chip, so "
                    f"the extent of {ms.r} needs a max", str(R),
                    f"give {R} a max in sizes, or put {ms.k} after {ms.r} in order")
    return int(decl.max)


def _declare(b: Build, tr: int, tc: int, tk: int, br: int, bc: int, bk: int, rt, k, bn,
             bk_names) -> None:
    """The stage's tile sizes and block factors as named constants (render.consts); the
    owners tell the equal values apart (128: the stationary tile and the contraction tile;
    1024: the column and contraction blocks of the default blocking)."""
    def doc(v: int, attr: str, limit: int) -> str | None:
        return attr if v == limit else None
    b.const("TILE_M", tr, "output rows per matmul: the stationary operand's free size",
            doc(tr, "gemm_stationary_fmax", GEMM_STATIONARY_FMAX), rt)
    b.const("TILE_K", tk, "contraction rows per matmul: one per partition",
            doc(tk, "pmax", PMAX), k)
    b.const("TILE_N", tc, "output columns per matmul: the moving operand's free size, one "
            "PSUM bank of fp32", doc(tc, "gemm_moving_fmax", GEMM_MOVING_FMAX), ())
    b.const("BLOCK_M", br * tr, f"{br} stationary tiles per block: each loaded operand block is "
            "reused by every tile pair of the block (fewer, larger DMAs)", None, (),
            expr=f"{br} * TILE_M")
    b.const("BLOCK_N", bc * tc, f"{bc} moving tiles per block: the output block's columns",
            None, bn, expr=f"{bc} * TILE_N")
    b.const("BLOCK_K", bk * tk, f"{bk} contraction tiles per block: one sequential step of "
            "the accumulation, sized so both operand blocks fit SBUF twice over "
            "(double-buffered loads)", None, bk_names, expr=f"{bk} * TILE_K")
    b.const("K_TILES", bk, "contraction tiles per block (the operand blocks' middle axis)",
            None, k[1:], owned_only=True, expr="BLOCK_K // TILE_K")
    b.const("ACC_COLS", br * bc * tc, "fp32 accumulator columns: one BLOCK_N-wide row segment "
            "per stationary tile of a block", None, (rt[-1],), owned_only=True,
            expr="BLOCK_M // TILE_M * BLOCK_N")


def _c_outer(b: Build, ms: MatmulShape) -> bool:
    """The ``order`` hint puts the moving free index before the stationary one."""
    order = list(b.schedule.order) if b.schedule is not None else []
    return ms.r in order and ms.c in order and order.index(ms.c) < order.index(ms.r)


def _wrap_blocks(b: Build, ms: MatmulShape, outer_vars, rb, r0, rsz, nrt, cb, c0, csz, nct,
                 RB: int, CB: int, tr: int, tc: int, inner: list,
                 per_block: bool = False, group=None) -> list:
    """The block loops (rows of RB, columns of CB; rows outer unless the ``order`` hint puts
    the columns first) and the outer scalar loops around ``inner``. The contraction loop always
    stays innermost (sequential, accumulating). ``per_block``: ``inner`` allocates its own
    accumulator, so the block loops carry no dependency and are affine (nl.affine_range);
    otherwise the blocks share one accumulator tile and run in order."""
    S = b.sym
    R, C = b.extents[ms.r], b.extents[ms.c]
    r_lets = _r_lets(b, ms, rb, r0, rsz, nrt, RB, tr)
    c_lets = [P.Let(c0, S(cb) * CB), P.Let(csz, Min(sympy.Integer(CB), C - S(c0))),
              P.Let(nct, sympy.ceiling(S(csz) / tc))]
    r_count, c_count = sympy.ceiling(R / RB), sympy.ceiling(C / CB)
    seq = P.LoopKind.PARALLEL if per_block else P.LoopKind.SEQUENTIAL
    if group is not None:
        # review5 F7: outer index h = G * group + member; the member loop runs inside the
        # column block, after the shared moving block's load (mhead)
        h, hv, kvv, gv, G, mhead = group
        inner = [*mhead, P.Loop(gv, sympy.Integer(G), seq, (
            P.Let(hv, S(kvv) * G + S(gv)), *inner))]
        outer_vars = [(x, v) if x != h else (h, kvv) for x, v in outer_vars]
    if _k_mid(b, ms) is not None:        # the row block loops are inside ``inner``
        nodes: list = [P.Loop(cb, c_count, seq, (*c_lets, *inner))]
    elif _c_outer(b, ms):
        nodes = [P.Loop(cb, c_count, seq, (
            *c_lets, P.Loop(rb, r_count, seq, (*r_lets, *inner))))]
    else:
        nodes = [P.Loop(rb, r_count, seq, (
            *r_lets, P.Loop(cb, c_count, seq, (*c_lets, *inner))))]
    for x, v in reversed(outer_vars):
        # the group count: exact, the extent being a multiple of G (_shared_moving)
        count = b.extents[x] if group is None or x != group[0] else \
            sympy.floor(sympy.sympify(b.extents[x]) / group[4])
        nodes = [P.Loop(v, count, seq, tuple(nodes))]
    return nodes


def upper_bound_of(b: Build, e) -> int | None:
    """The largest value of size expression ``e`` over the spec's size bounds (fixed sizes
    substituted), or None when it is unbounded."""
    return size_max(b.spec, e)


def _shared_moving(b: Build, ms: MatmulShape, K: sympy.Expr, KB: int
                   ) -> tuple[str, int] | None:
    """(h, G) when the moving operand reads the outer index h only as ``h // G`` (grouped
    query attention: G query heads share one key head), the stationary operand and the target
    read h plainly, the extent of h is a multiple of G and the contraction is one block (its
    size a number <= KB): then one moving block serves G stationary ones (review5 F7), else
    None. Each key block is turned once instead of G times (S29 nki/api/nki/isa/__init__.py
    dma_transpose; S25 general/nki/nki_perf_guide.rst: load once, reuse from SBUF); the loops
    stay plain ``range`` / ``nl.affine_range`` with ``h = G * group + member`` an affine index
    expression (S25 general/nki/api/nki/language/__init__.py affine_range)."""
    kmax = upper_bound_of(b, K)
    if ms.kx or kmax is None or kmax > KB:
        return None
    for h in ms.outer:
        hs = index_symbol(h)
        mov = [sympy.sympify(e) for e in ms.mov.access.indices]
        uses = [e for e in mov if hs in e.free_symbols]
        if len(uses) != 1 or not isinstance(uses[0], sympy.floor):
            continue
        q = uses[0].args[0]
        G = sympy.simplify(hs / q) if q != 0 else None
        if G is None or not G.is_Integer or int(G) < 2:
            continue
        if hs not in [sympy.sympify(e) for e in ms.stat.access.indices] or h not in ms.st.lhs:
            continue
        ext = sympy.sympify(b.extents[h])
        vals = {}
        for sym in ext.free_symbols:       # derived sizes (H = KV * G) by their definition
            try:
                v = b.spec.size(sym.name).value
            except KeyError:
                v = None
            if v is not None:
                vals[sym] = v
        _, den = sympy.fraction(sympy.cancel(ext.subs(vals) / G))
        if den != 1:
            continue
        return h, int(G)
    return None


def _r_lets(b: Build, ms: MatmulShape, rb: str, r0: str, rsz: str, nrt: str, RB: int,
            tr: int) -> list:
    """The row block's start, size and tile count."""
    S = b.sym
    return [P.Let(r0, S(rb) * RB), P.Let(rsz, Min(sympy.Integer(RB),
                                                        b.extents[ms.r] - S(r0))),
            P.Let(nrt, sympy.ceiling(S(rsz) / tr))]


def _interleave(a: list, b: list) -> list:
    """Merge two per-k-tile load loops into one, so both operands' first k tiles arrive first
    (the DMA queues run in order) and the first matmuls start early."""
    if len(a) == 1 and len(b) == 1 and isinstance(a[0], P.Loop) and isinstance(b[0], P.Loop) \
            and a[0].count == b[0].count and not any(isinstance(n, (P.Loop, P.Alloc))
                                                     for n in a[0].body + b[0].body):
        la, lb = a[0], b[0]
        va = sympy.Symbol(la.var, integer=True, nonnegative=True)
        vb = sympy.Symbol(lb.var, integer=True, nonnegative=True)
        from nkigen.codegen.pipeline import _map
        body_b = tuple(_map(n, lambda e: xreplace(e, {vb: va}), lambda x: x) for n in lb.body)
        return [P.Loop(la.var, la.count, la.kind, la.body + body_b)]
    return a + b


def _substitute(e: Expr, tensor: str, by: Expr) -> Expr:
    if isinstance(e, Access):
        return by if e.tensor == tensor else e
    if isinstance(e, BinOp):
        return BinOp(e.op, _substitute(e.lhs, tensor, by), _substitute(e.rhs, tensor, by))
    if isinstance(e, Neg):
        return Neg(_substitute(e.operand, tensor, by))
    if isinstance(e, Call):
        return Call(e.func, tuple(_substitute(a, tensor, by) for a in e.args))
    if isinstance(e, Where):                 # spec language 1.1
        return Where(_substitute(e.cond, tensor, by), _substitute(e.a, tensor, by),
                     _substitute(e.b, tensor, by))
    if isinstance(e, Compare):
        return Compare(e.op, _substitute(e.lhs, tensor, by), _substitute(e.rhs, tensor, by))
    return e


def merge_contraction(b: Build, ms: MatmulShape, sched: Schedule | None) -> MatmulShape:
    """Review5 F5: two contraction indices ``x, k`` that both operands index as adjacent
    whole dimensions (``a[m, x, k] * b[x, k, n]``, k spanning its dimension) are one
    contraction of ``X * K`` rows: in a row-major tensor element ``(x, k)`` is element
    ``x * K + k`` of the merged dimension, so 128-row contraction tiles cross x freely and
    every output tile accumulates in one PSUM group instead of one per x (S29
    nki/api/nki/isa/__init__.py nc_matmul: the contraction is the partition axis, <= 128).
    Both operands are then read through raw access patterns over the merged dimension
    (current API: ``t.ap(...)`` views, S29 nki/deep-dives/nki-aps.rst, as the ``src`` of
    ``dma_copy`` / ``dma_transpose``, whose src is any tensor view, SH
    nki/api/nki/isa/__init__.py dma_transpose; classic: ``t.reshape(...)`` views indexed
    with ``nl.arange`` tiles, S25 general/nki/api/nki/__init__.py tensor.reshape, via
    :mod:`nkigen.codegen.classic_index`).
    Returns ``ms`` unchanged when the layouts do not allow it."""
    if len(ms.kx) != 1:
        return ms
    x, k = ms.kx[0], ms.k
    if sched is not None and any(h is not None for i in (x, k)
                                 for h in (sched.tile(i), sched.block_of(i))):
        return ms
    xs, ks = index_symbol(x), index_symbol(k)
    ops = []
    for op in (ms.stat, ms.mov):
        idx = [sympy.sympify(e) for e in op.access.indices]
        shape = [sympy.sympify(d) for d in b.spec.tensor(op.access.tensor).shape]
        kd = op.kdim
        if kd < 1 or idx[kd] != ks or idx[kd - 1] != xs or op.xdim == kd - 1 \
                or sympy.simplify(shape[kd] - b.extents[k]) != 0 \
                or sympy.simplify(shape[kd - 1] - b.extents[x]) != 0 \
                or any(d not in (kd - 1, kd) and (ks in e.free_symbols or xs in e.free_symbols)
                       for d, e in enumerate(idx)):
            return ms
        ops.append(op)
    kx = b.namer.fresh(f"{x}{k}")
    b.extents[kx] = sympy.expand(b.extents[x] * b.extents[k])
    kxs = index_symbol(kx)

    def merged(op: OperandPlan) -> OperandPlan:
        idx = list(op.access.indices)
        kd = op.kdim
        idx[kd - 1:kd + 1] = [kxs]
        return MergedOperand(Access(op.access.tensor, tuple(idx)), op.free, kd - 1,
                             op.xdim - (op.xdim > kd), op.transposed, kd)

    import dataclasses
    return dataclasses.replace(ms, stat=merged(ms.stat), mov=merged(ms.mov), k=kx, kx=())


@dataclass(frozen=True)
class MergedOperand(OperandPlan):
    """An operand read over a merged contraction dimension (:func:`merge_contraction`):
    ``access`` names the merged index once; ``kend`` is the tensor dimension it ends at."""

    kend: int = 0


def _merged_view(b: Build, op: OperandPlan, subs: dict, kstart: sympy.Expr,
                 ksize: sympy.Expr, xstart: sympy.Expr, xsize: sympy.Expr) -> P.ApRef:
    """The raw access pattern of a merged operand (:func:`merge_contraction`): rows of the
    merged contraction dimension and the free slice, in the operand's dimension order."""
    from nkigen.codegen.names import checked
    from nkigen.codegen.tilexpr import strides
    t = b.spec.tensor(op.access.tensor)
    strd = strides(tuple(sympy.sympify(s) for s in t.shape))
    assert isinstance(op, MergedOperand)
    kend = op.kend
    xs = index_symbol(op.free)
    offset: sympy.Expr = ZERO
    pattern: list[tuple[sympy.Expr, sympy.Expr]] = []
    for d, e in enumerate(op.access.indices):
        e = substitute(e, subs)
        tdim = d if d < op.kdim else d + 1      # the tensor dimension (merged pair: kend)
        if d == op.kdim:
            offset += kstart * strd[kend]
            pattern.append((strd[kend], ksize))
        elif d == op.xdim:
            co = sympy.expand(e).coeff(xs)
            offset += sympy.expand(e.subs(xs, xstart)) * strd[tdim]
            pattern.append((co * strd[tdim], xsize))
        else:
            offset += e * strd[tdim]
    return P.ApRef(checked(op.access.tensor, "tensor"), sympy.expand(offset), tuple(pattern))


def _view(b: Build, op: OperandPlan, env: dict[str, sympy.Expr], kstart: sympy.Expr,
          ksize: sympy.Expr, xstart: sympy.Expr, xsize: sympy.Expr) -> P.Ref | P.ApRef:
    """HBM view of one operand: k rows [kstart, +ksize) and free [xstart, +xsize)."""
    subs = {index_symbol(k): v for k, v in env.items()}
    if isinstance(op, MergedOperand):
        return _merged_view(b, op, subs, kstart, ksize, xstart, xsize)
    dims: list[P.Dim] = []
    xs = index_symbol(op.free)
    for d, e in enumerate(op.access.indices):
        e = substitute(e, subs)
        if d == op.kdim:
            dims.append(P.Slice(kstart, ksize))
        elif d == op.xdim:
            co = sympy.expand(e).coeff(xs)
            dims.append(P.Slice(sympy.expand(e.subs(xs, xstart)), xsize, co))
        else:
            dims.append(P.Index(e))
    from nkigen.codegen.names import checked
    return P.Ref(checked(op.access.tensor, "tensor"), tuple(dims))


def _transpose_how(b: Build, ms: MatmulShape | None, op: OperandPlan, row_elems: int,
                   width: int) -> str:
    """How the k-minor operand ``op`` is turned (:func:`choose_transpose`): on TensorE
    whenever its on-chip dtype differs from the stored one's matmul dtype's storage, i.e. an
    integer operand or one widened to float32 for a float32 partner (:func:`operand_dtypes`):
    ``dma_transpose`` cannot cast, so a plain (casting) DMA loads it first."""
    stored = b.spec.tensor(op.access.tensor).dtype
    dt = stored.matmul_dtype
    if ms is not None:
        dt = operand_dtypes(b.spec, ms)[0 if op is ms.stat else 1]
    if stored.is_integer or dt != stored:
        return "pe"
    return choose_transpose(b.target, dt.itemsize, row_elems, width)


def _load_block(b: Build, ms: MatmulShape | None, op: OperandPlan, blk: str, env, k0, ksz, nkt,
                tk: int, bk: int, x0, xsz, width: int) -> list:
    n = b.namer
    S = b.sym
    kt, kk0, ktsz = n.fresh("kt"), n.fresh("kk0"), n.fresh("ktsz")
    b.own("TILE_K", kt, kk0, ktsz)
    lets = [P.Let(kk0, k0 + S(kt) * tk), P.Let(ktsz, Min(sympy.Integer(tk), ksz -
                                                                S(kt) * tk))]
    dst = P.Ref(blk, (P.Slice(ZERO, S(ktsz)), P.Index(S(kt)), P.Slice(ZERO, xsz)))
    if not op.transposed:
        return [P.Loop(kt, nkt, P.LoopKind.PARALLEL,
                       (*lets, P.Dma(dst, _view(b, op, env, S(kk0), S(ktsz), x0, xsz))))]
    stored = b.spec.tensor(op.access.tensor).dtype
    how = _transpose_how(b, ms, op, bk * tk, width)
    tdt = pe_transpose_dtype(stored, b.target)
    if how == "dma":
        src = _view(b, op, env, S(kk0), S(ktsz), x0, xsz)
        return [P.Loop(kt, nkt, P.LoopKind.PARALLEL, (*lets, P.DmaTranspose(dst, src)))]
    # TensorE transpose: load whole rows [ch free, block k], transpose ch x 128 tiles. ch is
    # 128 (pmax) when it divides the block width, else the largest divisor of the width under
    # 128 (at least the tile): a classic kernel clips the last chunk with mask=, not its slice,
    # so each chunk's full slice [xx0, xx0 + ch) must lie inside the block (a block of 1 or
    # 2 x 96 rows; slices are bounds-checked even under a mask: S25 general/nki/api/
    # nki.api.shared.rst "NKI API Masking" masks the computation, never the tile's extent)
    ch = next(d for d in range(min(PMAX, width), 0, -1) if width % d == 0)
    xt, xx0, xtsz, nat, pt = (n.fresh("xt"), n.fresh("xx0"), n.fresh("xtsz"), n.fresh("nat"),
                              n.fresh("tp"))
    b.own("TILE_K", xt, xx0, xtsz, nat, pt)
    b.own("BLOCK_K", nat)
    inner = P.Loop(kt, nkt, P.LoopKind.PARALLEL, (
        P.Let(ktsz, Min(sympy.Integer(tk), ksz - S(kt) * tk)),
        # the transpose output has the input's dtype (SH nki/api/nki/isa/__init__.py
        # nc_transpose "dst must have the same data type as data", nki 0.3): a PSUM tile of tdt
        P.Alloc(pt, (sympy.Integer(tk), sympy.Integer(ch)), tdt, P.Mem.PSUM),
        P.PeTranspose(P.Ref(pt, (P.Slice(ZERO, S(ktsz)), P.Slice(ZERO, S(xtsz)))),
                      P.Ref(nat, (P.Slice(ZERO, S(xtsz)), P.Slice(S(kt) * tk, S(ktsz))))),
        # evicted by ScalarE: VectorE adds every PSUM result tile into the block accumulator
        P.Activation(P.Ref(blk, (P.Slice(ZERO, S(ktsz)), P.Index(S(kt)),
                                 P.Slice(S(xx0), S(xtsz)))), P.ActFunc.COPY,
                     P.Ref(pt, (P.Slice(ZERO, S(ktsz)), P.Slice(ZERO, S(xtsz))))),
    ))
    src = _view(b, op, env, k0, ksz, x0 + S(xx0), S(xtsz))
    return [P.Loop(xt, sympy.ceiling(xsz / ch), P.LoopKind.PARALLEL, (
        P.Let(xx0, S(xt) * ch),
        P.Let(xtsz, Min(sympy.Integer(ch), xsz - S(xx0))),
        P.Alloc(nat, (sympy.Integer(ch), sympy.Integer(bk * tk)), tdt, P.Mem.SBUF),
        P.Dma(P.Ref(nat, (P.Slice(ZERO, S(xtsz)), P.Slice(ZERO, ksz))), src),
        inner,
    ))]

