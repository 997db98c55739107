"""Plain 2-D transposes ``y[i, j] = x[j, i]`` through TensorE, VectorE or the DMA transpose unit.

Stage: plan (Statement -> plan nodes). The row lowering would put ``i`` on the partitions and
read ``x`` with ``i`` in its inner dimension: every DMA descriptor one element long (the spec
cliff of issue 14: 192 us, MBU 0.8 %). Instead 512 x 512 super-blocks of ``x`` are loaded as
row tiles (512 contiguous elements per row), turned on chip in 128 x 128 blocks and stored as
row tiles of ``y`` (again 512 contiguous elements):

* TensorE: ``nc_transpose`` into a PSUM tile of the input's dtype (the transpose output keeps
  the data's dtype: SH nki/api/nki/isa/__init__.py nc_transpose, nki 0.3; S25
  general/nki/api/generated/nki.isa.nc_transpose.rst), evicted to SBUF by ``tensor_copy``
  (which casts to ``y``'s dtype); float8 data is loaded into bfloat16 tiles by the DMA (a
  cast, exact) and turned in bfloat16, like a float8 matmul operand
  (:func:`nkigen.codegen.matmul.pe_transpose_dtype`: a float8 TensorE transpose writes 16-bit
  PSUM elements on NeuronCore-v3, SH nki/guides/architecture/trainium2_arch.rst);
* DMA transpose: ``dma_transpose`` straight from HBM into the SBUF tile, for 2- and 4-byte
  dtypes only (SH nki/guides/architecture/trainium2_arch.rst "DMA transpose"; SH
  nki/api/nki/isa/__init__.py dma_transpose, nki 0.3).

* VectorE: on NeuronCore-v2 (trn1) a TensorE transpose is not bit-accurate for NaN/Inf (S29
  nki/api/nki/isa/__init__.py nc_transpose, nki 0.3; S25 general/nki/api/nki/isa/__init__.py
  nc_transpose, SDK 2.25), and the data of a transpose is an input, which may hold them: float
  data is turned by VectorE ``nc_transpose`` in 32 x 32 pieces, SBUF to SBUF (same docs: at
  most [32, 32] on VectorE, SBUF or PSUM on both sides), exact for every value. It costs more
  than TensorE in the cost model (16 instructions per 128 x 128 block: 11.2 -> 37.6 us at
  512 x 512 float32 on trn1), the price of a transpose that moves NaN/Inf unchanged; a DMA
  transpose on NeuronCore-v2 has element-sized descriptors (665 us there). NeuronCore-v3
  transposes bit-accurately on TensorE (SH nki/guides/architecture/trainium2_arch.rst
  "Built-in Transpose Support"): trn2 is unchanged.

:func:`nkigen.codegen.matmul.choose_transpose` picks the cheaper of TensorE and DMA per target.
Anything else (other expressions, ranks, a self-read) returns None.
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.matmul import choose_transpose, pe_transpose_dtype
from nkigen.codegen.names import checked
from nkigen.codegen.plan_ext import VeTranspose
from nkigen.codegen.symcache import Min
from nkigen.dtypes import DType
from nkigen.hw import PMAX, VE_TRANSPOSE_MAX
from nkigen.ir import Access, AssignOp, Statement, index_symbol

ZERO = sympy.Integer(0)
TILE = PMAX            # a block is 128 x 128: partitions on both sides of the turn
SUPER = 4 * TILE       # 512 x 512 super-blocks: DMA rows of 512 elements on both sides
VE_TILE = VE_TRANSPOSE_MAX   # a VectorE transpose turns at most 32 x 32 elements


def _suitable(b: Build, st: Statement) -> Access | None:
    """The read of ``y[..., i, j] = x[..., j, i]``: the last two indices swapped, any leading
    (batch) indices the same on both sides."""
    rhs = st.rhs
    if st.op is not AssignOp.ASSIGN or st.sum_indices or len(st.lhs) < 2 \
            or not isinstance(rhs, Access) or rhs.tensor == st.target \
            or len(rhs.indices) != len(st.lhs) or rhs.indirect:
        return None
    *lead, i, j = st.lhs
    want = (*(index_symbol(x) for x in lead), index_symbol(j), index_symbol(i))
    if tuple(sympy.sympify(e) for e in rhs.indices) != want:
        return None
    src, dst = b.spec.tensor(rhs.tensor), b.spec.tensor(st.target)
    if len(src.shape) != len(st.lhs) or len(dst.shape) != len(st.lhs):
        return None
    return rhs


def exact_turn_needed(target, dtype: DType) -> bool:
    """Whether a transpose of ``dtype`` data on ``target`` must avoid TensorE to stay exact
    (every dtype on NeuronCore-v2).

    A TensorE transpose is a matmul with the identity; "On NeuronCore-v2, Tensor Engine
    transpose is not bit-accurate if the input data contains NaN/Inf" (S29
    nki/api/nki/isa/__init__.py nc_transpose, nki 0.3; S25 general/nki/api/nki/isa/__init__.py
    nc_transpose, SDK 2.25): the NaN/Inf spreads along the accumulation chain (SH
    nki/guides/architecture/trainium2_arch.rst "Built-in Transpose Support"); from
    NeuronCore-v3 the transpose mode is bit-accurate. Integer data is no better off: without
    the transpose mode the result is the matmul's float32 (SH nc_matmul "Data types"), which
    holds integers exactly only up to 2**24 (the simulator rejects an integer TensorE
    transpose on NeuronCore-v2); a VectorE transpose takes any dtype."""
    return target.nc_version < 3


def inexact_turns(plan: P.KernelPlan) -> bool:
    """Whether ``plan`` turns tiles on TensorE on a NeuronCore-v2 target, where such a
    transpose is not bit-accurate for NaN/Inf (see :func:`exact_turn_needed`): the operand
    transposes of contractions stay there (a VectorE transpose turns 32 x 32 elements per
    instruction, 16 per 128 x 128 block next to the PSUM evictions it shares VectorE with)."""
    from nkigen.hw import target as hw_target

    if hw_target(plan.target).nc_version >= 3:
        return False

    def has(nodes) -> bool:
        for n in nodes:
            if isinstance(n, P.PeTranspose):
                return True
            if isinstance(n, P.Loop) and has(n.body):
                return True
            if isinstance(n, P.If) and (has(n.then) or has(n.orelse)):
                return True
        return False
    return has(plan.body)


def _vector_turn(b: Build, out_t: str, rows_t: str, jb: str, jb0: str, jbsz: str,
                 ib: str, ib0: str, ibsz: str) -> tuple:
    """One 128 x 128 block ``rows_t[0:jbsz, jb, ib0:ib0+ibsz]`` turned into
    ``out_t[0:ibsz, ib, jb0:jb0+jbsz]`` by VectorE transposes of 32 x 32 pieces (the VectorE
    limit, S29/S25 nc_transpose). Each piece starts on a 32-partition quadrant on both sides
    (the start-partition rule; an access of <= 32 partitions may change quadrant on
    NeuronCore-v2: SH nki/guides/architecture/trainium_inferentia2_arch.rst "Cross-Partition
    Connectivity")."""
    n, S = b.namer, b.sym
    q = sympy.Integer(VE_TILE)
    pj, pj0, pjsz = n.fresh("pj"), n.fresh("pj0"), n.fresh("pjsz")
    pi, pi0, pisz = n.fresh("pi"), n.fresh("pi0"), n.fresh("pisz")
    b.const("PIECE", VE_TILE, "side of a piece turned by one VectorE transpose (at most 32 x 32)",
            None)
    body: list = [   # a plan_ext node: the list keeps P.Node's union out of the way
        P.Let(pi0, S(pi) * VE_TILE), P.Let(pisz, Min(q, S(ibsz) - S(pi0))),
        VeTranspose(
            P.Ref(out_t, (P.Slice(S(pi0), S(pisz)), P.Index(S(ib)),
                          P.Slice(S(jb0) + S(pj0), S(pjsz)))),
            P.Ref(rows_t, (P.Slice(S(pj0), S(pjsz)), P.Index(S(jb)),
                           P.Slice(S(ib0) + S(pi0), S(pisz))))),
    ]
    piece = P.Loop(pi, sympy.ceiling(S(ibsz) / VE_TILE), P.LoopKind.PARALLEL, tuple(body))
    return (P.Loop(pj, sympy.ceiling(S(jbsz) / VE_TILE), P.LoopKind.PARALLEL, (
        P.Let(pj0, S(pj) * VE_TILE), P.Let(pjsz, Min(q, S(jbsz) - S(pj0))), piece)),)


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    acc = _suitable(b, st)
    if acc is None:
        return None
    *lead, i, j = st.lhs
    n, S = b.namer, b.sym
    bvars = [n.fresh(f"i_{x}") for x in lead]      # batch (leading) indices: outer loops
    at = tuple(P.Index(S(v)) for v in bvars)
    sdt = b.spec.tensor(acc.tensor).dtype
    ddt = b.spec.tensor(st.target).dtype
    how = choose_transpose(b.target, sdt.itemsize, SUPER, TILE)
    if how == "dma" and sdt != ddt:
        how = "pe"
    if how == "pe" and b.classic and sdt.is_integer:
        # classic integer data (review 12 R12-1): S25 nc_transpose runs on TensorE as a matmul
        # with the identity, and S25 nc_matmul takes float8/bfloat16/float16/tfloat32/float32
        # data with float32 results (general/nki/api/nki/isa/__init__.py, SDK 2.25), so an
        # integer TensorE transpose is not a documented classic form (the forms rule
        # transpose.tensor-integer). The DMA transpose moves the bytes (S25 dma_transpose; 2-
        # and 4-byte dtypes bit-accurate on NeuronCore-v3, SH trainium2_arch.rst "DMA
        # Transpose"); NeuronCore-v2 has no transpose unit, so there VectorE's 32 x 32 pieces
        how = "dma" if b.target.nc_version >= 3 and sdt.itemsize in (2, 4) and sdt == ddt \
            else "ve"
    if how == "pe" and exact_turn_needed(b.target, sdt):
        how = "ve"
    it, i0, isz = n.fresh(f"{i}t"), n.fresh(f"{i}0"), n.fresh(f"{i}sz")
    jt, j0, jsz = n.fresh(f"{j}t"), n.fresh(f"{j}0"), n.fresh(f"{j}sz")
    ib, ib0, ibsz = n.fresh(f"{i}b"), n.fresh(f"{i}b0"), n.fresh(f"{i}bsz")
    jb, jb0, jbsz = n.fresh(f"{j}b"), n.fresh(f"{j}b0"), n.fresh(f"{j}bsz")
    ext_i, ext_j = b.extents[i], b.extents[j]
    src_name, dst_name = checked(acc.tensor, "tensor"), checked(st.target, "tensor")
    block, sup, nb = sympy.Integer(TILE), sympy.Integer(SUPER), sympy.Integer(SUPER // TILE)
    out_t = n.fresh("turned")
    b.const("TILE", TILE, "a block turned on chip: partitions on both sides of the transpose",
            "pmax")
    b.const("SUPER", SUPER, "super-block side: DMA rows of this many contiguous elements on "
            "both sides", None, (), expr=f"{SUPER // TILE} * TILE")

    def j_blocks(body: tuple) -> P.Loop:
        return P.Loop(jb, sympy.ceiling(S(jsz) / TILE), P.LoopKind.PARALLEL, (
            P.Let(jb0, S(jb) * TILE), P.Let(jbsz, Min(block, S(jsz) - S(jb0))), *body))

    out_block = P.Ref(out_t, (P.Slice(ZERO, S(ibsz)), P.Index(S(ib)),
                              P.Slice(S(jb0), S(jbsz))))
    sup_body: list = [P.Let(j0, S(jt) * SUPER), P.Let(jsz, Min(sup, ext_j - S(j0)))]
    if how == "dma":
        turn: tuple = (j_blocks((P.DmaTranspose(out_block, P.Ref(src_name, (
            *at, P.Slice(S(j0) + S(jb0), S(jbsz)), P.Slice(S(i0) + S(ib0), S(ibsz))))),)),)
        sup_body.append(P.Alloc(out_t, (block, nb, sup), ddt, P.Mem.SBUF))
        engines: tuple[str, ...] = ("dma",)
        note = "DMA transpose unit per 128 x 128 block (2/4-byte dtype; cheaper than TensorE)"
    elif how == "ve":
        rows_t = n.fresh("rows")
        # the loaded rows are in y's dtype (VectorE nc_transpose: dst of data's dtype; a
        # DMA casts on the way, SH nki/api/nki/isa/__init__.py dma_copy), the turned blocks
        # are written straight into the output row tiles (no PSUM)
        sup_body += [
            P.Alloc(rows_t, (block, nb, sup), ddt, P.Mem.SBUF),
            j_blocks((P.Dma(P.Ref(rows_t, (P.Slice(ZERO, S(jbsz)), P.Index(S(jb)),
                                           P.Slice(ZERO, S(isz)))),
                            P.Ref(src_name, (*at, P.Slice(S(j0) + S(jb0), S(jbsz)),
                                             P.Slice(S(i0), S(isz))))),)),
            P.Alloc(out_t, (block, nb, sup), ddt, P.Mem.SBUF),
        ]
        turn = (j_blocks(_vector_turn(b, out_t, rows_t, jb, jb0, jbsz, ib, ib0, ibsz)),)
        engines = ("dma", "vector")
        note = ("VectorE transpose of 32 x 32 pieces (exact for NaN/Inf; a NeuronCore-v2 "
                "TensorE transpose is not)")
    else:
        rows_t, ps = n.fresh("rows"), n.fresh("turned_psum")
        # the dtype TensorE turns the data in (matmul.pe_transpose_dtype): float32 on
        # NeuronCore-v2; float8 goes through bfloat16 (its transpose writes 16-bit PSUM
        # elements on NeuronCore-v3), cast by the loading DMA and back by the eviction
        tdt = sdt if sdt.is_integer else pe_transpose_dtype(sdt, b.target)
        # up to 4 row tiles of x, each [128 j, 512 i]: DMA rows of up to 2 KiB (fp32)
        sup_body += [
            P.Alloc(rows_t, (block, nb, sup), tdt, P.Mem.SBUF),
            j_blocks((P.Dma(P.Ref(rows_t, (P.Slice(ZERO, S(jbsz)), P.Index(S(jb)),
                                           P.Slice(ZERO, S(isz)))),
                            P.Ref(src_name, (*at, P.Slice(S(j0) + S(jb0), S(jbsz)),
                                             P.Slice(S(i0), S(isz))))),)),
            P.Alloc(out_t, (block, nb, sup), ddt, P.Mem.SBUF),
        ]
        turn = (j_blocks((
            P.Alloc(ps, (block, block), tdt, P.Mem.PSUM),
            P.PeTranspose(P.Ref(ps, (P.Slice(ZERO, S(ibsz)), P.Slice(ZERO, S(jbsz)))),
                          P.Ref(rows_t, (P.Slice(ZERO, S(jbsz)), P.Index(S(jb)),
                                         P.Slice(S(ib0), S(ibsz))))),
            # an integer eviction names VectorE: a same-dtype copy there is bit-accurate,
            # while ScalarE copies through float32 (SH nki/api/nki/isa/__init__.py
            # tensor_copy, nki 0.3; review 8 R8-4, review 12 R12-1)
            P.TensorCopy(out_block, P.Ref(ps, (P.Slice(ZERO, S(ibsz)), P.Slice(ZERO, S(jbsz)))),
                         P.Eng.VECTOR if sdt.is_integer else None),
        )),)
        engines = ("dma", "tensor", "vector")
        note = "TensorE transpose of contiguous row blocks (PSUM in the input dtype)"
    # each output row tile [128 i, up to 512 j] is stored as whole rows of y
    store = P.Dma(P.Ref(dst_name, (*at, P.Slice(S(i0) + S(ib0), S(ibsz)),
                                   P.Slice(S(j0), S(jsz)))),
                  P.Ref(out_t, (P.Slice(ZERO, S(ibsz)), P.Index(S(ib)), P.Slice(ZERO, S(jsz)))))
    sup_body.append(P.Loop(ib, sympy.ceiling(S(isz) / TILE), P.LoopKind.PARALLEL, (
        P.Let(ib0, S(ib) * TILE), P.Let(ibsz, Min(block, S(isz) - S(ib0))),
        *turn, store)))
    nodes: list = [P.Loop(it, sympy.ceiling(ext_i / SUPER), P.LoopKind.PARALLEL, (
        P.Let(i0, S(it) * SUPER), P.Let(isz, Min(sup, ext_i - S(i0))),
        P.Loop(jt, sympy.ceiling(ext_j / SUPER), P.LoopKind.PARALLEL, tuple(sup_body)),
    ))]
    for x, v in reversed(list(zip(lead, bvars))):
        nodes = [P.Loop(v, b.extents[x], P.LoopKind.PARALLEL, tuple(nodes))]
    stage = P.StagePlan(statements=(st.position,), strategy="transpose", partition=i,
                        free=(j,), loops=tuple(lead), tiles=((i, TILE), (j, SUPER)), blocks=(),
                        engines=engines, notes=(note,))
    return nodes, stage
