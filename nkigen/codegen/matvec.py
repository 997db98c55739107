"""Matrix-vector products on TensorE: ``y[m] += A[m, k] * x[k]`` (or ``A[k, m]``).

Stage: plan (Statement -> plan nodes). Input: a ``+=`` statement with a 1-D target summing over
one index ``k`` the product of a 2-D matrix access indexed directly by ``[m, k]`` or ``[k, m]``
and a 1-D vector access ``x[k]``. The general matmul lowering needs a stationary free index in
the target, which a matrix-vector product lacks; the row lowering would run it on VectorE as a
multiply and a free-axis reduction. Issue 14: a contraction with a free operand of width 1 still
goes to TensorE.

Lowering: the vector is the stationary operand, one ``[k tile, 1]`` column per k tile; the
matrix is the moving operand in ``[k tile, 512 m]`` tiles (brought k-major by
:func:`nkigen.codegen.matmul.choose_transpose`'s choice when stored ``[m, k]``). Each 512-wide
chunk of ``y`` accumulates its k tiles in one PSUM row ``[1, 512]`` (TensorE writes PSUM
only; 512 fp32 = one PSUM bank; S25 general/nki/programming_model.rst "Tile size
considerations"; S29 nki/api/nki/isa/__init__.py nc_matmul "Tile size"), which ScalarE evicts
and one contiguous DMA stores. The matrix is read once; the kernel is DMA bound.
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.matmul import OperandPlan, _load_block, choose_transpose
from nkigen.codegen.names import checked
from nkigen.codegen.symcache import Min
from nkigen.codegen.tilexpr import F32, ONE, ZERO
from nkigen.dtypes import DType
from nkigen.hw import GEMM_MOVING_FMAX, PMAX
from nkigen.ir import Access, AssignOp, BinOp, BinOpKind, Statement, index_symbol

# k tiles per block: the matrix block is [128, 16, 512]; a k-minor matrix is read in rows of
# 16 x 128 elements, 4 KiB of bf16 per descriptor (where the cost model's DMA efficiency curve
# saturates, nkigen.sim.cost_rules dma_sat_chunk)
BK = 16
X_COLS = 256    # the whole vector stays on chip up to 256 k tiles (K <= 32768, <= 1 KiB/partition)


def _bound(b: Build, ext) -> int | None:
    """An upper bound of a size (its value, or its declared max), else None."""
    e = sympy.sympify(ext)
    if e.is_Integer:
        return int(e)
    decl = next((z for z in b.spec.sizes if z.name == str(e)), None)
    return int(decl.max) if decl is not None and decl.max is not None else None


def _suitable(b: Build, st: Statement) -> tuple[Access, Access, OperandPlan] | None:
    if st.op is not AssignOp.ACCUMULATE or len(st.sum_indices) != 1 or len(st.lhs) != 1 \
            or b.written_before(st):
        return None
    rhs = st.rhs
    if not (isinstance(rhs, BinOp) and rhs.op is BinOpKind.MUL
            and isinstance(rhs.lhs, Access) and isinstance(rhs.rhs, Access)):
        return None
    k, m = st.sum_indices[0], st.lhs[0]
    ks, ms = index_symbol(k), index_symbol(m)
    mat = vec = None
    for a in (rhs.lhs, rhs.rhs):
        idx = tuple(sympy.sympify(e) for e in a.indices)
        if idx == (ks,):
            vec = a
        elif idx in ((ms, ks), (ks, ms)):
            mat = a
    if mat is None or vec is None or st.target in (mat.tensor, vec.tensor):
        return None
    a_dt = b.spec.tensor(mat.tensor).dtype.matmul_dtype
    x_dt = b.spec.tensor(vec.tensor).dtype.matmul_dtype
    if (a_dt is DType.float32) != (x_dt is DType.float32):
        return None        # TensorE pairs float32 only with float32 (S29 nc_matmul Data types)
    kdim = 1 if sympy.sympify(mat.indices[1]) == ks else 0
    return mat, vec, OperandPlan(mat, m, kdim, 1 - kdim, kdim > 1 - kdim)


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    found = _suitable(b, st)
    if found is None:
        return None
    mat, vec, op = found
    k, m = st.sum_indices[0], st.lhs[0]
    n, S = b.namer, b.sym
    K, M = b.extents[k], b.extents[m]
    KB = PMAX * BK
    x_dt = b.spec.tensor(vec.tensor).dtype.matmul_dtype
    a_dt = b.spec.tensor(mat.tensor).dtype.matmul_dtype
    y_dt = b.spec.tensor(st.target).dtype
    mc, m0, msz = n.fresh("mc"), n.fresh("m0"), n.fresh("msz")
    kb, k0, ksz, nkt = n.fresh("kb"), n.fresh("k0"), n.fresh("ksz"), n.fresh("nkt")
    kt, kk0, ktsz = n.fresh("kt"), n.fresh("kk0"), n.fresh("ktsz")
    xb, ab, ps, res = n.fresh("x_blk"), n.fresh("a_blk"), n.fresh("ps"), n.fresh("res")
    # the tile sizes and the block factor by name (render.consts; values: nkigen.hw, S25
    # general/nki/api/nki.language.rst "tile_size")
    b.const("TILE_K", PMAX, "contraction rows per matmul: one per partition", "pmax",
            (kt, kk0, ktsz, nkt))
    b.const("TILE_M", GEMM_MOVING_FMAX, "outputs per matmul: the matrix (moving operand) "
            "free size, one PSUM bank of fp32", "gemm_moving_fmax", (mc, m0, msz, ps, res))
    b.const("BLOCK_K", KB, f"{BK} contraction tiles per block: matrix rows of {BK} x 128 "
            "contiguous elements per DMA descriptor (4 KiB of bf16)", None, (kb, k0, ksz),
            expr=f"{BK} * TILE_K")
    b.const("K_TILES", BK, "contraction tiles per block (the matrix block's middle axis)",
            None, (ab, kb), owned_only=True, expr="BLOCK_K // TILE_K")
    # the vector's k tiles as [ktsz, 1] columns (one element per partition: 2-4 byte DMA
    # descriptors). Loaded once for the whole kernel when K is bounded (<= X_COLS tiles),
    # else once per k block of every m chunk.
    kmax = _bound(b, K)
    whole = kmax is not None and -(-kmax // PMAX) <= X_COLS
    x_cols = -(-kmax // PMAX) if whole and kmax is not None else BK
    x_first = ZERO if whole else S(k0)      # first k of the x tile
    x_col0 = S(kb) * BK if whole else ZERO  # column of the block's first k tile
    x_src = P.ApRef(checked(vec.tensor, "tensor"), S(kk0), ((ONE, S(ktsz)), (ONE, ONE)))
    x_alloc = P.Alloc(xb, (sympy.Integer(PMAX), sympy.Integer(x_cols)), x_dt, P.Mem.SBUF)
    x_nt = sympy.ceiling(K / PMAX) if whole else S(nkt)
    x_load = P.Loop(kt, x_nt, P.LoopKind.PARALLEL, (
        P.Let(kk0, x_first + S(kt) * PMAX),
        P.Let(ktsz, Min(sympy.Integer(PMAX), K - S(kk0))),
        P.Dma(P.Ref(xb, (P.Slice(ZERO, S(ktsz)), P.Slice(S(kt), ONE))), x_src),
    ))
    kbody: list = [
        P.Let(k0, S(kb) * KB),
        P.Let(ksz, Min(sympy.Integer(KB), K - S(k0))),
        P.Let(nkt, sympy.ceiling(S(ksz) / PMAX)),
        *(() if whole else (x_alloc, x_load)),
        P.Alloc(ab, (sympy.Integer(PMAX), sympy.Integer(BK), sympy.Integer(GEMM_MOVING_FMAX)),
                a_dt, P.Mem.SBUF),
        *_load_matrix(b, op, ab, S(k0), S(ksz), S(nkt), S(m0), S(msz)),
    ]
    kt2, ktsz2 = n.fresh("kt"), n.fresh("ktsz")
    kbody.append(P.Loop(kt2, S(nkt), P.LoopKind.PARALLEL, (
        P.Let(ktsz2, Min(sympy.Integer(PMAX), S(ksz) - S(kt2) * PMAX)),
        P.Matmul(P.Ref(ps, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(msz)))),
                 P.Ref(xb, (P.Slice(ZERO, S(ktsz2)), P.Slice(x_col0 + S(kt2), ONE))),
                 P.Ref(ab, (P.Slice(ZERO, S(ktsz2)), P.Index(S(kt2)),
                            P.Slice(ZERO, S(msz))))),
    )))
    y_dst = P.ApRef(checked(st.target, "tensor"), S(m0), ((ZERO, ONE), (ONE, S(msz))))
    body = (
        P.Let(m0, S(mc) * GEMM_MOVING_FMAX),
        P.Let(msz, Min(sympy.Integer(GEMM_MOVING_FMAX), M - S(m0))),
        P.Alloc(ps, (ONE, sympy.Integer(GEMM_MOVING_FMAX)), F32, P.Mem.PSUM),
        # the k blocks accumulate into one PSUM row: sequential (a loop-carried sum)
        P.Loop(kb, sympy.ceiling(K / KB), P.LoopKind.SEQUENTIAL, tuple(kbody)),
        P.Alloc(res, (ONE, sympy.Integer(GEMM_MOVING_FMAX)), y_dt, P.Mem.SBUF),
        P.Activation(P.Ref(res, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(msz)))), P.ActFunc.COPY,
                     P.Ref(ps, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(msz))))),
        P.Dma(y_dst, P.Ref(res, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(msz))))),
    )
    nodes = [*((x_alloc, x_load) if whole else ()),
             P.Loop(mc, sympy.ceiling(M / GEMM_MOVING_FMAX), P.LoopKind.PARALLEL, body)]
    notes = [f"{vec.tensor}[{k}] stationary ([{k} tile, 1] columns), {mat.tensor} moving "
             f"([{k} tile, {GEMM_MOVING_FMAX} {m}]); PSUM row [1, {GEMM_MOVING_FMAX}] per chunk"]
    if op.transposed:
        how = choose_transpose(b.target, a_dt.itemsize, KB, GEMM_MOVING_FMAX)
        notes.append(f"{mat.tensor} stored {k}-minor: "
                     f"{'TensorE' if how == 'pe' else 'DMA'} transpose")
    stage = P.StagePlan(
        statements=(st.position,), strategy="matvec", partition=k, free=(m,), loops=(),
        tiles=((k, PMAX), (m, GEMM_MOVING_FMAX)), blocks=((k, BK),),
        engines=("dma", "tensor", "vector", "scalar") if op.transposed else
        ("dma", "tensor", "scalar"), notes=tuple(notes))
    return nodes, stage


def _load_matrix(b: Build, op: OperandPlan, blk: str, k0, ksz, nkt, m0, msz) -> list:
    """The matrix block ``[k tile, BK, 512 m]``. Stored k-minor and transposed on TensorE
    (the matmul's choice, :func:`nkigen.codegen.matmul.choose_transpose`), the PSUM evictions
    of the 128 x 128 transposes alternate between VectorE (``tensor_copy``) and ScalarE
    (``activation`` copy): a matrix-vector product has one matmul per four transposes, so
    the evictions, not the matmuls, would otherwise bind VectorE. Anything else: the matmul's
    block load."""
    dt = b.spec.tensor(op.access.tensor).dtype
    how = "pe" if dt.is_integer else choose_transpose(b.target, dt.matmul_dtype.itemsize,
                                                      PMAX * BK, GEMM_MOVING_FMAX)
    if not op.transposed or how != "pe":
        return _load_block(b, None, op, blk, {}, k0, ksz, nkt, PMAX, BK, m0, msz,
                           GEMM_MOVING_FMAX)
    from nkigen.codegen.matmul import _view
    n, S = b.namer, b.sym
    mt, mm0, mtsz, nat, pt = (n.fresh("xt"), n.fresh("xx0"), n.fresh("xtsz"), n.fresh("nat"),
                              n.fresh("tp"))
    kt, ktsz = n.fresh("kt"), n.fresh("ktsz")
    from nkigen.codegen.matmul import pe_transpose_dtype
    tdt = pe_transpose_dtype(dt, b.target)     # float32 on NeuronCore-v2 (see there)
    dst = P.Ref(blk, (P.Slice(ZERO, S(ktsz)), P.Index(S(kt)), P.Slice(S(mm0), S(mtsz))))
    src = P.Ref(pt, (P.Slice(ZERO, S(ktsz)), P.Slice(ZERO, S(mtsz))))
    inner = P.Loop(kt, nkt, P.LoopKind.PARALLEL, (
        P.Let(ktsz, Min(sympy.Integer(PMAX), ksz - S(kt) * PMAX)),
        # the transpose output keeps the input's dtype (SH nki/api/nki/isa/__init__.py
        # nc_transpose, nki 0.3): a PSUM tile of the transpose dtype
        P.Alloc(pt, (sympy.Integer(PMAX), sympy.Integer(PMAX)), tdt, P.Mem.PSUM),
        P.PeTranspose(src, P.Ref(nat, (P.Slice(ZERO, S(mtsz)),
                                       P.Slice(S(kt) * PMAX, S(ktsz))))),
        P.If(sympy.Mod(S(kt), 2), ZERO, (P.TensorCopy(dst, src),),
             (P.Activation(dst, P.ActFunc.COPY, src),)),
    ))
    return [P.Loop(mt, sympy.ceiling(msz / PMAX), P.LoopKind.PARALLEL, (
        P.Let(mm0, S(mt) * PMAX),
        P.Let(mtsz, Min(sympy.Integer(PMAX), msz - S(mm0))),
        P.Alloc(nat, (sympy.Integer(PMAX), sympy.Integer(PMAX * BK)), tdt, P.Mem.SBUF),
        P.Dma(P.Ref(nat, (P.Slice(ZERO, S(mtsz)), P.Slice(ZERO, ksz))),
              _view(b, op, {}, k0, ksz, m0 + S(mm0), S(mtsz))),
        inner,
    ))]
