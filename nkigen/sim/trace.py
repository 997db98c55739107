"""Simulator instruction trace: what the simulator records and the cost model consumes.

Stage: simulate (records) -> cost (timeline, report). One :class:`Instr` per executed NKI
instruction (engine op or DMA). Dependencies are derived by the cost model from the regions each
instruction reads and writes: an instruction waits for the last writers of what it reads (RAW)
and for the readers/writers of what it overwrites (WAR/WAW).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from nkigen.hw import Engine


class Mem(Enum):
    HBM = "hbm"
    SBUF = "sbuf"
    PSUM = "psum"


@dataclass(frozen=True, slots=True)
class Region:
    """A box of one allocation: partitions [p0, p1) x bytes [b0, b1) within each partition.

    For HBM tensors p0=0, p1=1 and [b0, b1) is the byte range of the flat tensor touched
    (a bounding range; precise enough for dependencies).
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
