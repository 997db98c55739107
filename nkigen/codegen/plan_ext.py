"""Plan nodes of the spec-language 1.1 lowerings (stage: plan; rendered by render).

Kept apart from :mod:`nkigen.codegen.plan` so the 1.1 constructs add nodes without reshaping the
existing ones; :mod:`nkigen.codegen.plan` appends :data:`EXT_NODE_TYPES` to its ``NODE_TYPES``
and :mod:`nkigen.codegen.render` maps each to the macro named in :data:`EXT_EMITTERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy

from nkigen.codegen.plan import AluOp, IntExpr, NumExpr, Operand, Ref, Scalar


@dataclass(frozen=True)
class AffineSelect:
    """GpSimd ``dst = (pred ? src : false_value)`` with the predicate
    ``cmp(offset + pcoef * partition + fcoef * free_position, 0)`` computed by the engine
    (a condition on indices only: no mask tensor). ``cmp`` is a comparison name shared by both
    dialects (``less_equal``...); ``psz``/``fsz`` are the tile's extents. With a ``period``
    ``c`` (current API only) the free position ``i`` enters as ``fcoef * (i // c) + rcoef *
    (i % c)``: a two-dimensional pattern ``[[fcoef, reps], [rcoef, c]]`` with ``reps = fsz //
    c`` (SH: "any sizes in the free dimension, as long as the number of elements per partition
    in dst matches the product" of the pattern's sizes), for conditions such as ``n % 2 ==
    0``.

    Docs: SH nki/api/nki/isa/__init__.py ``affine_select(dst, pattern, channel_multiplier,
    on_true_tile, on_false_value, cmp_op, offset)`` (nki 0.3); S25
    general/nki/api/nki/isa/__init__.py ``affine_select(pred, on_true_tile, on_false_value,
    dtype=)`` with ``pred`` an affine comparison of ``nl.arange`` (neuronxcc, SDK 2.25).
    ``on_false_value`` must be float32 in both.
    """

    dst: Ref
    src: Ref
    cmp: str
    offset: IntExpr
    pcoef: IntExpr
    fcoef: IntExpr
    psz: IntExpr
    fsz: IntExpr
    false_value: NumExpr
    period: IntExpr | None = None
    rcoef: IntExpr = sympy.Integer(0)
    reps: IntExpr | None = None         # with a period: fsz // period (written out)


EXT_NODE_TYPES: tuple[type, ...] = (AffineSelect,)
EXT_EMITTERS: dict[type, str] = {AffineSelect: "affine_select"}


@dataclass(frozen=True)
class TensorTensorScan:
    """VectorE ``dst[:, i] = a[:, i] * dst[:, i - 1] + b[:, i]`` along the free axis, starting
    from ``initial`` (a number or a ``[P, 1]`` column): ``tensor_tensor_scan`` with
    ``op0 = multiply``, ``op1 = add``, computed in fp32.

    Docs: SH nki/api/nki/isa/__init__.py ``tensor_tensor_scan(dst, data0, data1, initial, op0,
    op1)`` (nki 0.3); S25 general/nki/api/nki/isa/__init__.py ``tensor_tensor_scan(data0, data1,
    initial, op0, op1, dtype=)`` (neuronxcc, SDK 2.25).
    """

    dst: Ref
    a: Ref
    b: Ref
    initial: Operand
    # ``dst[:, i] = op1(op0(a[:, i], dst[:, i - 1]), b[:, i])``: both may be any arithmetic
    # operator of tbl-aluop (SH nki/api/nki.api.shared.rst, nki 0.3; S25
    # general/nki/api/nki.api.shared.rst, SDK 2.25); maximum/minimum make a running max/min
    # (:mod:`nkigen.codegen.runmax`)
    op0: AluOp = AluOp.MULTIPLY
    op1: AluOp = AluOp.ADD


EXT_NODE_TYPES = EXT_NODE_TYPES + (TensorTensorScan,)
EXT_EMITTERS[TensorTensorScan] = "tensor_tensor_scan"


@dataclass(frozen=True)
class Max8:
    """VectorE: the 8 largest values of each partition of ``src`` (8..16384 elements), in
    descending order, into ``dst`` ``[P, 8]``.

    Docs: SH nki/api/nki/isa/__init__.py ``max8(dst, src)`` (nki 0.3); S25
    general/nki/api/nki/isa/__init__.py ``max8(*, src, dtype=)`` (SDK 2.25).
    """

    dst: Ref
    src: Ref


@dataclass(frozen=True)
class FindIndex8:
    """VectorE: per partition, the index of the first element of ``data`` equal to each of
    the 8 ``vals`` into ``dst`` (uint32 ``[P, 8]``).

    Docs: SH nki/api/nki/isa/__init__.py ``nc_find_index8(dst, data, vals)`` (nki 0.3); S25
    general/nki/api/nki/isa/__init__.py ``nc_find_index8(*, data, vals, dtype=)`` (SDK 2.25).
    """

    dst: Ref
    data: Ref
    vals: Ref


EXT_NODE_TYPES = EXT_NODE_TYPES + (Max8, FindIndex8)
EXT_EMITTERS[Max8] = "max8"
EXT_EMITTERS[FindIndex8] = "find_index8"


@dataclass(frozen=True)
class GatherDma:
    """Vector-indirect DMA gather: ``dst[p, i] = table_flat[offset + ids[p] * row_step +
    i * fstep]`` for ``p < psz``, ``i < fcount`` (``ids`` an integer ``[P, 1]`` SBUF column).

    Docs: SH nki/api/nki/isa/__init__.py ``dma_copy`` "Indirect addressing" (``.ap(pattern,
    vector_offset=idx, indirect_dim=0)``, nki 0.3); S25 nki-reference "Indirect DMA"
    (``data[idx_tile[i_p, 0], i_f]`` with an SBUF index tile, neuronxcc). The classic form views
    the table as rows of ``row_step`` elements (``offset < row_step``). Out-of-range ids raise
    (``oob_mode.error``, the default of both).
    """

    NAME_FIELDS: ClassVar[tuple[str, ...]] = ("table",)   # read by the stage helper

    dst: Ref
    table: str
    numel: IntExpr
    ids: Ref
    offset: IntExpr
    row_step: IntExpr
    psz: IntExpr
    fstep: IntExpr
    fcount: IntExpr
    # nki: view the table as rows of row_step elements first (a reshape), because the hardware
    # scales vector_offset by the base tensor's dim-0 stride and ignores the pattern's leading
    # step (SH nki/deep-dives/nki-aps.rst "Vector Dynamic Access", nki 0.3);
    # False when row_step already is that stride (the gathered dimension is the first)
    flat: bool = False


@dataclass(frozen=True)
class Iota:
    """GpSimd ``dst[p, i] = offset + pcoef * p + fcoef * i`` (int32 math).

    Docs: SH nki/api/nki/isa/__init__.py ``iota(dst, pattern, offset, channel_multiplier)``
    (nki 0.3); S25 general/nki/api/nki/isa/__init__.py ``iota(expr, dtype)`` with an affine
    ``nl.arange`` expression (SDK 2.25).
    """

    dst: Ref
    offset: IntExpr
    pcoef: IntExpr
    fcoef: IntExpr
    psz: IntExpr
    fsz: IntExpr


EXT_NODE_TYPES = EXT_NODE_TYPES + (GatherDma, Iota)
EXT_EMITTERS[GatherDma] = "gather_dma"
EXT_EMITTERS[Iota] = "iota"


@dataclass(frozen=True)
class CopyPredicated:
    """VectorE ``dst[i] = src[i]`` where ``predicate[i]`` is nonzero (zero when ``reverse``);
    ``dst`` keeps its value elsewhere. ``predicate`` is a uint8 0/1 tile of ``dst``'s shape and
    ``src`` has ``dst``'s dtype.

    Docs: SH nki/api/nki/isa/__init__.py ``tensor_copy_predicated(dst, src, predicate,
    reverse_pred)`` (nki 0.3); S25 general/nki/api/nki/isa/__init__.py
    ``tensor_copy_predicated(*, src, dst, predicate, mask, dtype, reverse_pred)`` (neuronxcc,
    SDK 2.25): predicate uint8/uint16/uint32, src and dst of one dtype and shape. ``src`` may
    be a :class:`Scalar` in the current API only ("If src is a scalar, the scalar is copied to
    the dst tile", SH; S25 shows a tile ``src``).
    """

    dst: Ref
    src: Ref | Scalar
    predicate: Ref
    reverse: bool = False


EXT_NODE_TYPES = EXT_NODE_TYPES + (CopyPredicated,)
EXT_EMITTERS[CopyPredicated] = "copy_predicated"


@dataclass(frozen=True)
class VeTranspose:
    """VectorE transpose of a block of at most 32 x 32 elements: ``dst[f, p] = src[p, f]``,
    SBUF or PSUM on both sides, ``dst`` of ``src``'s dtype. Unlike a NeuronCore-v2 TensorE
    transpose (a matmul with the identity, not bit-accurate for NaN/Inf) it moves the data
    unchanged (a Reshape Bank of VectorE transposes 32 x 32 elements).

    Docs: S29 nki/api/nki/isa/__init__.py ``nc_transpose(dst, data, engine)`` (nki 0.3): "Vector
    Engine can handle shape [32, 32] or smaller", "can read/write from/to either SBUF or PSUM",
    dst of data's dtype; S25 general/nki/api/nki/isa/__init__.py ``nc_transpose(data, *, mask,
    dtype, engine)`` (neuronxcc, SDK 2.25), cost ``max(MIN_II, N)`` on VectorE; SH
    nki/guides/architecture/trainium_inferentia2_arch.rst "Cross-partition Data Movement" (the
    32x32 transpose) and "Cross-Partition Connectivity" (an access of <= 32 partitions may move
    to another quadrant on NeuronCore-v2).
    """

    dst: Ref
    src: Ref


EXT_NODE_TYPES = EXT_NODE_TYPES + (VeTranspose,)
EXT_EMITTERS[VeTranspose] = "ve_transpose"


@dataclass(frozen=True)
class TensorScalarReduce:
    """VectorE ``dst = src op0 operand0`` and, in the same instruction, ``reduce_res`` (a
    ``[P, 1]`` column) = the ``reduce_op`` reduction of those results along the free axis.

    Docs: SH nki/api/nki/isa/__init__.py ``tensor_scalar_reduce(dst, data, op0, operand0,
    reduce_op, reduce_res, reverse0=False)`` (nki 0.3: data in SBUF or PSUM); S25
    general/nki/api/nki/isa/__init__.py ``tensor_scalar_reduce(*, data, op0, operand0,
    reduce_op, reduce_res, reverse0=False, dtype=None, mask=None)`` (SDK 2.25). Used to evict a
    PSUM bank of scores to SBUF with its row maximum (:mod:`nkigen.codegen.attention`).
    """

    dst: Ref
    src: Ref
    op0: AluOp
    operand0: Operand
    reduce_op: AluOp
    reduce_res: Ref


EXT_NODE_TYPES = EXT_NODE_TYPES + (TensorScalarReduce,)
EXT_EMITTERS[TensorScalarReduce] = "tensor_scalar_reduce"
