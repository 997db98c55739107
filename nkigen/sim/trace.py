"""Simulator instruction trace: what the simulator records and the cost model consumes.

Stage: simulate (records) -> cost (timeline, report). One :class:`Instr` per executed NKI
instruction (engine op or DMA). Dependencies are derived by the cost model from the regions each
instruction reads and writes: an instruction waits for the last writers of what it reads (RAW)
and for the readers/writers of what it overwrites (WAR/WAW).

Compact form (issue 18): a run records a :class:`Trace`, not a list of :class:`Instr`. Each
entry is a small tuple ``(kind, line, reads, writes, file, loops, program)`` where ``kind`` is a
:class:`Kind`: everything about an instruction that does not depend on where its operands lie
(engine, op, sizes, dtypes, bytes, attributes, memories of its operands), interned once per
distinct instruction shape. A loop body that issues the same instruction with operands at other
offsets adds one tuple per iteration and no new object besides its regions. The cost model
(nkigen.sim.cost) schedules the compact entries directly and computes cycle rules once per kind;
anything else that reads the trace gets :class:`Instr` records, made when first accessed and kept
(``trace[i]``, iteration), equal field for field to what the reference path
(``NKIGEN_SIM_REFERENCE=1``, nkigen.sim.mode) records directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from nkigen.hw import Engine


class Mem(Enum):
    HBM = "hbm"
    SBUF = "sbuf"
    PSUM = "psum"


class Region(NamedTuple):
    """A box of one allocation: partitions [p0, p1) x bytes [b0, b1) within each partition.

    For HBM tensors p0=0, p1=1 and [b0, b1) is the byte range of the flat tensor touched
    (a bounding range; precise enough for dependencies). An immutable named tuple (made for
    every new view the trace records, so it is cheap to build; ``region[2:]`` is the box).
    """

    tensor: int   # unique id of the allocation
    mem: Mem
    p0: int
    p1: int
    b0: int
    b1: int


@dataclass(slots=True)
class Instr:
    """One executed instruction with the facts the cost rules need (nki-reference.md 4.2)."""

    engine: Engine
    op: str                       # API name: "nc_matmul", "dma_copy", "activation", ...
    line: int                     # kernel source line that issued it (0 if unknown)
    reads: tuple[Region, ...] = ()
    writes: tuple[Region, ...] = ()
    partitions: int = 0           # active partitions
    free: int = 0                 # N: elements per partition of the main input
    dtype: str = "float32"        # main input dtype name
    out_dtype: str = "float32"
    n_tensor_inputs: int = 1      # tensor (not scalar) inputs read by the engine
    in_psum: int = 0              # how many tensor inputs live in PSUM
    stationary_free: int = 0      # nc_matmul: stationary free size
    moving_free: int = 0          # nc_matmul: moving free size
    nbytes: int = 0               # DMA: bytes moved
    hbm_bytes: int = 0            # DMA: bytes read from or written to HBM
    chunk_bytes: int = 0          # DMA: contiguous bytes per descriptor element (efficiency)
    transpose: bool = False       # DMA transpose / TensorE transpose
    attrs: dict = field(default_factory=dict)   # anything else worth showing in a trace
    file: str = ""                # kernel source file that issued it
    loops: tuple = ()             # enclosing nl loops, outermost first: ((kind, index, trip), ...)
                                  # kind is "affine", "sequential" or "static"
    program: tuple = ()           # SPMD program id of the issuing instance (() if no grid)
    accumulate: bool = False      # nc_matmul: added onto existing PSUM content


class Kind:
    """The offset-independent part of an instruction (see the module docstring): one object per
    distinct instruction shape, shared by every trace entry of that shape. ``rmems``/``wmems``
    are the memories of the regions read/written (cost rules look at them). ``cost`` is the
    cost model's per-kind cache (target, params) -> derived figures."""

    __slots__ = ("engine", "op", "partitions", "free", "dtype", "out_dtype", "n_tensor_inputs",
                 "in_psum", "stationary_free", "moving_free", "nbytes", "hbm_bytes",
                 "chunk_bytes", "transpose", "attrs", "accumulate", "rmems", "wmems", "cost",
                 "proto")

    def __init__(self, engine: Engine, op: str, partitions: int, free: int, dtype: str,
                 out_dtype: str, n_tensor_inputs: int, in_psum: int, rmems: tuple,
                 wmems: tuple, kw: dict):
        self.engine = engine
        self.op = op
        self.partitions = partitions
        self.free = free
        self.dtype = dtype
        self.out_dtype = out_dtype
        self.n_tensor_inputs = n_tensor_inputs
        self.in_psum = in_psum
        self.stationary_free = kw.get("stationary_free", 0)
        self.moving_free = kw.get("moving_free", 0)
        self.nbytes = kw.get("nbytes", 0)
        self.hbm_bytes = kw.get("hbm_bytes", 0)
        self.chunk_bytes = kw.get("chunk_bytes", 0)
        self.transpose = kw.get("transpose", False)
        attrs = kw.get("attrs")
        self.attrs = dict(attrs) if attrs else {}
        self.accumulate = kw.get("accumulate", False)
        self.rmems = rmems
        self.wmems = wmems
        self.cost: dict = {}
        self.proto: Instr | None = None

    def instr(self, line: int, reads: tuple, writes: tuple, file: str, loops: tuple,
              program: tuple) -> Instr:
        """A full record of one instance (a fresh ``attrs`` dict, as the reference path)."""
        return Instr(self.engine, self.op, line, reads, writes, self.partitions, self.free,
                     self.dtype, self.out_dtype, self.n_tensor_inputs, self.in_psum,
                     self.stationary_free, self.moving_free, self.nbytes, self.hbm_bytes,
                     self.chunk_bytes, self.transpose, dict(self.attrs), file, loops, program,
                     self.accumulate)

    def prototype(self) -> Instr:
        """One representative instance (placeholder regions of the right memories) for the
        per-kind cost rules, which look at memories and counts of regions, never at boxes."""
        p = self.proto
        if p is None:
            p = self.proto = self.instr(
                0, tuple(Region(-1, m, 0, 0, 0, 0) for m in self.rmems),
                tuple(Region(-1, m, 0, 0, 0, 0) for m in self.wmems), "", (), ())
        return p


def _attr_key(attrs: dict) -> tuple:
    """Attributes as a hashable key that tells 0, 0.0 and False apart (values keep their type)."""
    return tuple([(k, v.__class__, v) for k, v in attrs.items()])


class Trace(MutableSequence):
    """The instruction trace of a run: a mutable sequence of :class:`Instr`, stored compactly.

    ``entries`` holds either an :class:`Instr` (recorded directly: the reference path, and
    instructions a caller inserts) or a compact tuple ``(kind, line, reads, writes, file, loops,
    program)``; reading an element turns a tuple into its Instr once and keeps it, so a record
    read twice is the same object. ``kinds`` interns :class:`Kind` objects per distinct key
(nkigen.sim.emit makes them)."""

    __slots__ = ("entries", "kinds")

    def __init__(self, items: Iterable[Instr] = ()):
        self.entries: list[Any] = list(items)
        self.kinds: dict[tuple, Kind] = {}

    # ---- sequence protocol -----------------------------------------------------------
    def _get(self, i: int) -> Instr:
        e = self.entries[i]
        if e.__class__ is tuple:
            e = e[0].instr(e[1], e[2], e[3], e[4], e[5], e[6])
            self.entries[i] = e
        return e

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self.entries)))]
        return self._get(i)

    def __setitem__(self, i, v) -> None:
        self.entries[i] = v

    def __delitem__(self, i) -> None:
        del self.entries[i]

    def __iter__(self) -> Iterator[Instr]:
        get = self._get
        for i in range(len(self.entries)):
            yield get(i)

    def __reversed__(self) -> Iterator[Instr]:
        get = self._get
        for i in range(len(self.entries) - 1, -1, -1):
            yield get(i)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Trace, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other) -> list[Instr]:
        return list(self) + list(other)

    def __repr__(self) -> str:
        return f"Trace({len(self.entries)} instructions)"

    def append(self, ins: Instr) -> None:
        self.entries.append(ins)

    def extend(self, items: Iterable[Instr]) -> None:
        self.entries.extend(items)

    def insert(self, i: int, ins: Instr) -> None:
        self.entries.insert(i, ins)

    def pop(self, i: int = -1) -> Instr:
        ins = self._get(i)
        self.entries.pop(i)
        return ins

    def __contains__(self, ins: object) -> bool:
        return any(x == ins for x in self)

    def clear(self) -> None:
        self.entries.clear()

    # ---- compact access (cost model) ---------------------------------------------------
    def compact(self) -> list:
        """The entries, each a compact tuple or an Instr (see :func:`as_compact`)."""
        return self.entries


def as_compact(e: Any, cache: dict) -> tuple:
    """A trace entry as ``(kind, line, reads, writes, file, loops, program)``; an :class:`Instr`
    gets a Kind of its own fields (interned in ``cache`` by value, so equal instructions share
    it)."""
    if e.__class__ is tuple:
        return e
    ins: Instr = e
    rmems = tuple(r.mem for r in ins.reads)
    wmems = tuple(r.mem for r in ins.writes)
    kw = {"stationary_free": ins.stationary_free, "moving_free": ins.moving_free,
          "nbytes": ins.nbytes, "hbm_bytes": ins.hbm_bytes, "chunk_bytes": ins.chunk_bytes,
          "transpose": ins.transpose, "attrs": ins.attrs, "accumulate": ins.accumulate}
    try:
        key: tuple | None = (ins.engine, ins.op, ins.partitions, ins.free, ins.dtype,
                             ins.out_dtype, ins.n_tensor_inputs, ins.in_psum, rmems, wmems,
                             ins.stationary_free, ins.moving_free, ins.nbytes, ins.hbm_bytes,
                             ins.chunk_bytes, ins.transpose, ins.accumulate,
                             _attr_key(ins.attrs))
        k = cache.get(key)
    except TypeError:
        key = k = None
    if k is None:
        k = Kind(ins.engine, ins.op, ins.partitions, ins.free, ins.dtype, ins.out_dtype,
                 ins.n_tensor_inputs, ins.in_psum, rmems, wmems, kw)
        k.attrs = ins.attrs             # the instruction's own attributes (never copied)
        if key is not None:
            cache[key] = k
    return (k, ins.line, ins.reads, ins.writes, ins.file, ins.loops, ins.program)


def entries_of(instrs: Any) -> list:
    """The entries of a trace (compact tuples or Instr) or the Instr of any other sequence."""
    return instrs.entries if isinstance(instrs, Trace) else list(instrs)
