"""Frozen kernel plan IR: the dialect-neutral description of one generated kernel.

Stage: plan (Spec + Analysis -> :class:`KernelPlan`); consumed by render (KernelPlan -> source).

The plan is a tree of small frozen nodes: trace-time scalar bindings (:class:`Let`), loops,
on-chip/HBM allocations, DMA transfers and one node per engine instruction kind. Nothing here
names an NKI API: ops are enums, sizes and offsets are sympy expressions over the generated
Python variables (sizes, loop variables, ``Let`` names), and every name is a validated Python
identifier chosen by :mod:`nkigen.codegen.names`. Each dialect's templates map the nodes to calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

import sympy

from nkigen.codegen.symcache import names
from nkigen.dtypes import DType

IntExpr: TypeAlias = sympy.Expr    # an integer-valued expression of generated variables
NumExpr: TypeAlias = sympy.Expr    # a real-valued trace-time expression (scale factors, fills)


class Mem(Enum):
    HBM = "hbm"               # scratch HBM (temps that do not stay on chip)
    SHARED_HBM = "shared_hbm"  # kernel outputs
    SBUF = "sbuf"
    PSUM = "psum"


class LoopKind(Enum):
    PARALLEL = "parallel"      # iterations independent (accumulation into PSUM allowed)
    SEQUENTIAL = "sequential"  # loop-carried dependency
    STATIC = "static"          # classic only: the index is needed as a Python int at trace time


class AluOp(Enum):
    """ALU operators. ``DIVIDE`` is planner-internal (trace-time folding, then lowered to a
    reciprocal and a multiply): it is not in the documented operator table and never reaches
    a node."""

    ADD = "add"
    SUBTRACT = "subtract"
    MULTIPLY = "multiply"
    DIVIDE = "divide"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    # spec language 1.1 comparisons (1.0 where true, else 0.0)
    LESS = "less"
    LESS_EQUAL = "less_equal"
    EQUAL = "equal"
    NOT_EQUAL = "not_equal"
    GREATER_EQUAL = "greater_equal"
    GREATER = "greater"
    # bitvec operators on int32 row ids (codegen/revrows.py divided_rows): VectorE only, integer
    # operands (SH nki/api/nki.api.shared.rst tbl-aluop, nki 0.3; S25 the same table, SDK 2.25)
    RIGHT_SHIFT = "right_shift"
    BITWISE_AND = "bitwise_and"
    BITWISE_OR = "bitwise_or"       # classic integer period copies (codegen/tilexpr.py)


class ActFunc(Enum):
    """ScalarE activation functions (value = neutral spelling, mapped per dialect)."""

    COPY = "copy"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    RECIPROCAL = "reciprocal"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"
    SILU = "silu"
    SQUARE = "square"
    ABS = "abs"


class Eng(Enum):
    """Engine of a VectorE-class ALU instruction (printed explicitly). Only VectorE: GpSimd's
    tensor_scalar is documented for rsqrt only (SH nki/api/nki/isa/__init__.py tensor_scalar,
    nki 0.3) and its tensor_tensor for power only (S25 general/nki/api/nki.api.shared.rst);
    ScalarE work is planned as ``Activation`` nodes. ``GPSIMD`` is for ``Memset`` (memset
    runs on VectorE or GpSimd: SH nki/api/nki/isa/__init__.py memset, nki 0.3; S25
    general/nki/api/nki/isa/__init__.py memset, neuronxcc) and for a ``TensorTensor`` of int32
    tiles, which GpSimd computes in native integer arithmetic (SH nki/api/nki/isa/__init__.py
    tensor_tensor, nki 0.3; :meth:`nkigen.codegen.tilexpr.Compiler._native_int`)."""

    VECTOR = "vector"
    GPSIMD = "gpsimd"


class Rule(Enum):
    """A size constraint checked by the generated kernel."""

    MULTIPLE_OF = "multiple_of"
    MIN = "min"
    MAX = "max"


# ---- references to tensors ---------------------------------------------------------------

@dataclass(frozen=True)
class Slice:
    """``start : start + (size - 1) * step + 1 : step`` along one dimension."""

    start: IntExpr
    size: IntExpr
    step: IntExpr = sympy.Integer(1)


@dataclass(frozen=True)
class Index:
    """An integer index: the dimension is dropped (HBM) or kept with size 1 (partition dim)."""

    at: IntExpr


Dim = Slice | Index


@dataclass(frozen=True)
class Ref:
    """A view of a named tensor: one :data:`Dim` per dimension (empty = the whole tensor)."""

    name: str
    dims: tuple[Dim, ...] = ()


@dataclass(frozen=True)
class ApRef:
    """A raw access pattern on a whole HBM tensor: flat element ``offset`` and
    ``[(step, count), ...]`` pairs, the first pair mapping to the partitions of the on-chip side
    (step 0 = the same row replicated on every partition: a partition-broadcast DMA).
    """

    name: str
    offset: IntExpr
    pattern: tuple[tuple[IntExpr, IntExpr], ...]


AnyRef = Ref | ApRef


@dataclass(frozen=True)
class Scalar:
    """A trace-time number used as an instruction operand (a float32 literal; ``integer``: an
    int literal, the operand of a bitvec operator)."""

    value: NumExpr
    integer: bool = False


Operand = Scalar | Ref    # a Ref operand is a per-partition column ``[P, 1]``


# ---- nodes -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comment:
    text: str


@dataclass(frozen=True)
class Let:
    """``name = value`` evaluated at trace time (tile sizes, offsets, counts)."""

    name: str
    value: IntExpr


@dataclass(frozen=True)
class Alloc:
    name: str
    shape: tuple[IntExpr, ...]
    dtype: DType
    mem: Mem
    view_of: str = ""       # HBM: a reshaped view of this allocation, no storage of its own


@dataclass(frozen=True)
class Loop:
    var: str
    count: IntExpr
    kind: LoopKind
    body: tuple[Node, ...]


class Cmp(Enum):
    EQ = "=="
    LT = "<"


@dataclass(frozen=True)
class If:
    """Trace-time condition ``lhs <cmp> rhs`` (first iteration of a loop, prefetch guard)."""

    lhs: IntExpr
    rhs: IntExpr
    then: tuple[Node, ...]
    orelse: tuple[Node, ...] = ()
    cmp: Cmp = Cmp.EQ


@dataclass(frozen=True)
class Dma:
    """A DMA copy (casts when the dtypes differ)."""

    dst: AnyRef
    src: AnyRef


@dataclass(frozen=True)
class DmaTranspose:
    """A 2-D DMA transpose: ``dst[j, i] = src[i, j]`` (src: a view or a raw access pattern)."""

    dst: Ref
    src: Ref | ApRef


@dataclass(frozen=True)
class Matmul:
    """TensorE ``dst (PSUM) (+)= stationary.T @ moving``; first write into a fresh tile resets.

    ``stationary_onezero``: the stationary operand holds only 0/1 (the ``is_stationary_onezero``
    hint, both API versions). ``double_row``: fp8 operands laid out ``[K, 2, F]``, contraction
    over the partitions and the 2 (``perf_mode=double_row``, nki dialect only).
    ``accumulate`` False/True overrides that (a PSUM tile reused for a new accumulation group;
    S29 nki/api/nki/isa/__init__.py nc_matmul ``accumulate``); current API only."""

    dst: Ref
    stationary: Ref
    moving: Ref
    _: dataclasses.KW_ONLY          # the flags by name only: a positional bool is a silent bug
    stationary_onezero: bool = False
    double_row: bool = False
    accumulate: bool | None = None


@dataclass(frozen=True)
class PeTranspose:
    """TensorE transpose (identity matmul) of an SBUF tile into PSUM."""

    dst: Ref
    src: Ref


@dataclass(frozen=True)
class Activation:
    """ScalarE ``dst = func(src * scale + bias)``; bias is a column tile. With ``reduce_res``
    the results are also summed along the free axis into that column."""

    dst: Ref
    func: ActFunc
    src: Ref
    scale: Operand = Scalar(sympy.Float(1.0))
    bias: Ref | None = None
    reduce_res: Ref | None = None


@dataclass(frozen=True)
class TensorTensor:
    """VectorE ``dst = a op b`` (same shapes)."""

    dst: Ref
    a: Ref
    b: Ref
    op: AluOp
    engine: Eng = Eng.VECTOR


@dataclass(frozen=True)
class TensorScalar:
    """VectorE ``dst = (src op0 operand0) [op1 operand1]``; ``reverse`` swaps operand order."""

    dst: Ref
    src: Ref
    op0: AluOp
    operand0: Operand
    reverse0: bool = False
    op1: AluOp | None = None
    operand1: Operand | None = None
    reverse1: bool = False
    engine: Eng = Eng.VECTOR


@dataclass(frozen=True)
class ScalarTensorTensor:
    """VectorE ``dst = (data op0 operand0) op1 operand1`` with a full-tile ``operand1``."""

    dst: Ref
    data: Ref
    op0: AluOp
    operand0: Operand
    op1: AluOp
    operand1: Ref


@dataclass(frozen=True)
class TensorReduce:
    """VectorE reduction of ``src`` along its last free axis into ``dst`` (a column);
    ``negate`` stores the negated result (arithmetic operators only; S29
    nki/api/nki/isa/__init__.py tensor_reduce ``negate``)."""

    dst: Ref
    op: AluOp
    src: Ref
    negate: bool = False


@dataclass(frozen=True)
class Reciprocal:
    """VectorE ``dst = 1 / src`` (more precise than the ScalarE activation)."""

    dst: Ref
    src: Ref


@dataclass(frozen=True)
class TensorCopy:
    """Engine copy (casts to dst's dtype); PSUM -> SBUF evictions. ``src`` is an
    :class:`ApRef` on an SBUF tile only for a reversed free axis (nki dialect,
    :mod:`nkigen.codegen.revrows`); ``engine`` None lets the compiler pick."""

    dst: Ref
    src: Ref | ApRef
    engine: Eng | None = None


@dataclass(frozen=True)
class Memset:
    dst: Ref
    value: NumExpr
    engine: Eng | None = None      # None: the compiler picks (the documented default)


@dataclass(frozen=True)
class Release:
    """End of life of on-chip tiles allocated in the enclosing loop body (frees SBUF/PSUM
    before the next iteration allocates its own)."""

    names: tuple[str, ...]


Node = (Comment | Let | Alloc | Loop | If | Dma | DmaTranspose | Matmul | PeTranspose
        | Activation | TensorTensor | TensorScalar | ScalarTensorTensor | TensorReduce
        | Reciprocal | TensorCopy | Memset | Release)

NODE_TYPES: tuple[type, ...] = (Comment, Let, Alloc, Loop, If, Dma, DmaTranspose, Matmul,
                                PeTranspose, Activation, TensorTensor, TensorScalar,
                                ScalarTensorTensor, TensorReduce, Reciprocal, TensorCopy,
                                Memset, Release)


def names_used(node) -> set[str]:
    """Tensor names a node reads or writes (Refs, Let values, nested bodies)."""
    out: set[str] = set()
    _add_names_used(node, out)
    return out


def _add_names_used(node, out: set[str]) -> None:
    if isinstance(node, (str, int, float)) or node is None:    # no names below
        return
    if isinstance(node, (Ref, ApRef)):
        out.add(node.name)
    elif isinstance(node, sympy.Basic):
        out.update(names(node))
    elif isinstance(node, tuple):
        for x in node:
            _add_names_used(x, out)
    elif hasattr(node, "__dataclass_fields__"):
        for k in node.__dataclass_fields__:
            _add_names_used(getattr(node, k), out)


def ap_on_bases(node, bases: dict[str, str]):
    """``node`` with every :class:`ApRef` on a reshaped view (``bases``: view -> the tensor it
    reshapes, :class:`Alloc` ``view_of``) taken on that tensor instead: a raw access pattern
    addresses storage, and a reshape of a whole row-major tensor keeps its storage layout, so
    the pattern and offset are the same, on the tensor ``nl.ndarray`` returned (the simulator
    takes ``.ap()`` only there)."""
    if isinstance(node, ApRef):
        base = bases.get(node.name)
        return node if base is None else ApRef(base, node.offset, node.pattern)
    if isinstance(node, tuple):
        new = tuple(ap_on_bases(x, bases) for x in node)
        return node if all(a is b for a, b in zip(new, node)) else new
    if hasattr(node, "__dataclass_fields__") and not isinstance(node, (Ref, sympy.Basic)):
        changes = {}
        for k in (f.name for f in dataclasses.fields(node)):    # not ClassVars (NAME_FIELDS)
            v = getattr(node, k)
            if isinstance(v, (tuple, ApRef)) or hasattr(v, "__dataclass_fields__"):
                nv = ap_on_bases(v, bases)
                if nv is not v:
                    changes[k] = nv
        return dataclasses.replace(node, **changes) if changes else node
    return node


def with_releases(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """Release every tile allocated directly in a loop body right after its last use there,
    so SBUF/PSUM is free for the next tiles (and the next iteration)."""
    out: list[Node] = []
    for n in nodes:
        if isinstance(n, Loop):
            body = list(with_releases(n.body))
            last: dict[int, list[str]] = {}
            used: list[set[str]] | None = None     # names_used of each body node, once
            for a in n.body:
                if isinstance(a, Alloc) and a.mem in (Mem.SBUF, Mem.PSUM):
                    if used is None:
                        used = [names_used(m) for m in body]
                    idx = max(i for i, m in enumerate(body)
                              if m is a or a.name in used[i])
                    last.setdefault(idx, []).append(a.name)
            new: list[Node] = []
            for i, m in enumerate(body):
                new.append(m)
                if i in last:
                    new.append(Release(tuple(last[i])))
            n = Loop(n.var, n.count, n.kind, tuple(new))
        elif isinstance(n, If):
            n = If(n.lhs, n.rhs, with_releases(n.then), with_releases(n.orelse), n.cmp)
        out.append(n)
    return tuple(out)


# ---- the kernel --------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorArg:
    name: str
    shape: tuple[IntExpr, ...]
    dtype: DType


@dataclass(frozen=True)
class SizeBind:
    """``size = tensor.shape[dim]`` (or solved from a linear shape entry ``coef*size + const``)."""

    size: str
    tensor: str
    dim: int
    coef: int = 1
    const: IntExpr = sympy.Integer(0)


@dataclass(frozen=True)
class SizeCheck:
    size: str
    rule: Rule
    bound: int


@dataclass(frozen=True)
class StagePlan:
    """What ``nkigen explain`` shows for one lowered statement group."""

    statements: tuple[int, ...]
    strategy: str                    # "matmul", "rows", "rows-fused", "attention-softmax", ...
    partition: str                   # the index on the partition axis
    free: tuple[str, ...]
    loops: tuple[str, ...]           # outer scalar loops
    tiles: tuple[tuple[str, int], ...]
    blocks: tuple[tuple[str, int], ...]
    engines: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Const:
    """A tile size or block factor of one stage, written once as a module-level constant and
    read by name in the stage's index arithmetic (render.consts). ``tile_size``: the documented
    ``nl.tile_size`` attribute it equals (printed instead of the number), or None. ``owners``:
    generated names (lets, loop variables, tiles) whose arithmetic uses this constant, to tell
    apart two constants of equal value; ``owned_only`` constants name nothing else."""

    name: str
    value: int
    why: str
    tile_size: str | None = None
    owners: tuple[str, ...] = ()
    owned_only: bool = False
    expr: str | None = None          # definition in terms of earlier constants (printed)


@dataclass(frozen=True)
class KernelPlan:
    name: str
    doc: str
    spec_name: str
    spec_sha256: str
    target: str
    nkigen_version: str
    inputs: tuple[TensorArg, ...]
    outputs: tuple[TensorArg, ...]
    params: tuple[tuple[str, int | float], ...]
    binds: tuple[SizeBind, ...]
    derived: tuple[tuple[str, IntExpr], ...]
    checks: tuple[SizeCheck, ...]
    body: tuple[Node, ...]
    stages: tuple[StagePlan, ...]
    consts: tuple[tuple[int, Const], ...] = ()     # (stage number, constant)


# spec-language 1.1 nodes live in plan_ext (imported last: it builds on Ref and friends)
from nkigen.codegen.plan_ext import EXT_NODE_TYPES  # noqa: E402

NODE_TYPES = NODE_TYPES + EXT_NODE_TYPES


def bound_names(nodes) -> set[str]:
    """Names a node list binds itself, nested bodies included: allocations, ``Let`` values and
    loop variables (the scope rules of render, cse and ahead)."""
    out: set[str] = set()
    for n in nodes:
        if isinstance(n, (Alloc, Let)):
            out.add(n.name)
        elif isinstance(n, Loop):
            out.add(n.var)
            out |= bound_names(n.body)
        elif isinstance(n, If):
            out |= bound_names(n.then) | bound_names(n.orelse)
    return out
