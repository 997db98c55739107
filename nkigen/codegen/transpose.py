"""Plain 2-D transposes ``y[i, j] = x[j, i]`` through TensorE or the DMA transpose unit.

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

:func:`nkigen.codegen.matmul.choose_transpose` picks the cheaper of the two per target.
Anything else (other expressions, ranks, a self-read) returns None.
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.matmul import choose_transpose, pe_transpose_dtype
from nkigen.codegen.names import checked
from nkigen.codegen.symcache import Min
from nkigen.hw import PMAX
from nkigen.ir import Access, AssignOp, Statement, index_symbol

ZERO = sympy.Integer(0)
TILE = PMAX            # a block is 128 x 128: partitions on both sides of the turn
SUPER = 4 * TILE       # 512 x 512 super-blocks: DMA rows of 512 elements on both sides


def _suitable(b: Build, st: Statement) -> Access | None:
    rhs = st.rhs
    if st.op is not AssignOp.ASSIGN or st.sum_indices or len(st.lhs) != 2 \
            or not isinstance(rhs, Access) or rhs.tensor == st.target or len(rhs.indices) != 2:
        return None
    i, j = st.lhs
    want = (index_symbol(j), index_symbol(i))
    if tuple(sympy.sympify(e) for e in rhs.indices) != want:
        return None
    src, dst = b.spec.tensor(rhs.tensor), b.spec.tensor(st.target)
    if len(src.shape) != 2 or len(dst.shape) != 2:
        return None
    return rhs


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    acc = _suitable(b, st)
    if acc is None:
        return None
    i, j = st.lhs
    n, S = b.namer, b.sym
    sdt = b.spec.tensor(acc.tensor).dtype
    ddt = b.spec.tensor(st.target).dtype
    how = choose_transpose(b.target, sdt.itemsize, SUPER, TILE)
    if how == "dma" and sdt != ddt:
        how = "pe"
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
            P.Slice(S(j0) + S(jb0), S(jbsz)), P.Slice(S(i0) + S(ib0), S(ibsz))))),)),)
        sup_body.append(P.Alloc(out_t, (block, nb, sup), ddt, P.Mem.SBUF))
        engines: tuple[str, ...] = ("dma",)
        note = "DMA transpose unit per 128 x 128 block (2/4-byte dtype; cheaper than TensorE)"
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
                            P.Ref(src_name, (P.Slice(S(j0) + S(jb0), S(jbsz)),
                                             P.Slice(S(i0), S(isz))))),)),
            P.Alloc(out_t, (block, nb, sup), ddt, P.Mem.SBUF),
        ]
        turn = (j_blocks((
            P.Alloc(ps, (block, block), tdt, P.Mem.PSUM),
            P.PeTranspose(P.Ref(ps, (P.Slice(ZERO, S(ibsz)), P.Slice(ZERO, S(jbsz)))),
                          P.Ref(rows_t, (P.Slice(ZERO, S(jbsz)), P.Index(S(jb)),
                                         P.Slice(S(ib0), S(ibsz))))),
            P.TensorCopy(out_block, P.Ref(ps, (P.Slice(ZERO, S(ibsz)), P.Slice(ZERO, S(jbsz))))),
        )),)
        engines = ("dma", "tensor", "vector")
        note = "TensorE transpose of contiguous row blocks (PSUM in the input dtype)"
    # each output row tile [128 i, up to 512 j] is stored as whole rows of y
    store = P.Dma(P.Ref(dst_name, (P.Slice(S(i0) + S(ib0), S(ibsz)), P.Slice(S(j0), S(jsz)))),
                  P.Ref(out_t, (P.Slice(ZERO, S(ibsz)), P.Index(S(ib)), P.Slice(ZERO, S(jsz)))))
    sup_body.append(P.Loop(ib, sympy.ceiling(S(isz) / TILE), P.LoopKind.PARALLEL, (
        P.Let(ib0, S(ib) * TILE), P.Let(ibsz, Min(block, S(isz) - S(ib0))),
        *turn, store)))
    nodes = [P.Loop(it, sympy.ceiling(ext_i / SUPER), P.LoopKind.PARALLEL, (
        P.Let(i0, S(it) * SUPER), P.Let(isz, Min(sup, ext_i - S(i0))),
        P.Loop(jt, sympy.ceiling(ext_j / SUPER), P.LoopKind.PARALLEL, tuple(sup_body)),
    ))]
    stage = P.StagePlan(statements=(st.position,), strategy="transpose", partition=i,
                        free=(j,), loops=(), tiles=((i, TILE), (j, SUPER)), blocks=(),
                        engines=engines, notes=(note,))
    return nodes, stage
