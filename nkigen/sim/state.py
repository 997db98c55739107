"""Simulation state: the one active run (target, mode, trace, memory accounting, SPMD ids).

Stage: simulate. ``current()`` is what every API call consults; ``Run`` is entered by
:func:`nkigen.sim.runner.run`. Memory accounting counts live on-chip allocation bytes per
partition: an allocation is charged when created and released (``Alloc.__del__``) when its
last Python reference dies (so a tile re-created in each loop iteration is charged twice at the
moment of rebinding: a conservative, honest peak). PSUM allocations are rounded up to whole
2 KiB banks.

SBUF spilling: when live SBUF tiles need more than the capacity, the NKI compiler spills
intermediate tiles to device memory and reloads them (S25 general/nki/tutorials/fused_mamba.rst:
the v2 kernel at seq_len 8192 runs with ``qSyncSpillReload``/``qVectorSpillReload`` DMA activity,
53.33 ms). The simulator does the same: an SBUF allocation that overflows the capacity is
accepted, warned about once, and noted in ``Pool.spilled``; at the end of the run
:func:`nkigen.sim.spill.plan` decides which tiles the compiler would spill (from the trace's
liveness, not the Python reference lifetimes counted here) and inserts the ``spill_out`` /
``spill_reload`` DMAs. Only a single tile larger than the whole SBUF is refused (nothing can be
spilled to make room for it). PSUM is never spilled (the compiler does not spill PSUM; its 8
banks are a hard limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nkigen import hw
from nkigen.sim.errors import SimError
from nkigen.sim.trace import Mem, Trace


@dataclass
class Pool:
    """Live bytes per partition of one on-chip memory, with its capacity and peak."""

    mem: Mem
    capacity: int
    live: int = 0
    peak: int = 0

    spilled: int = 0          # bytes/partition spilled over the run (SBUF only)

    def charge(self, nbytes: int, what: Any, spill: bool = False) -> int:
        """Add ``nbytes``; returns the bytes/partition that overflow the capacity (spilled) when
        ``spill`` allows it, else raises on overflow."""
        live = self.live + nbytes
        over = 0
        if live > self.capacity and spill and nbytes <= self.capacity:
            over = live - max(self.capacity, self.live)
            self.spilled += over
        elif live > self.capacity:
            if hasattr(what, "shape"):      # an allocation: describe it only when failing
                what = f"{what.buffer.name} tensor {list(what.shape)} {what.dtype}"
            raise SimError(
                f"{self.mem.value.upper()} capacity exceeded: allocating {what} needs "
                f"{nbytes} B/partition with {self.live} B/partition already live",
                f"{live} > {self.capacity} B/partition",
                "free tiles earlier (allocate inside the loop that uses them) or use smaller "
                "tiles")
        self.live = live
        if live > self.peak:
            self.peak = live
        return over

    def release(self, nbytes: int) -> None:
        self.live -= nbytes


@dataclass
class Run:
    """Everything one simulated kernel execution accumulates."""

    target: hw.Target
    numerics: bool
    instrs: Trace = field(default_factory=Trace)     # the instruction trace (compact)
    grid: tuple[int, ...] = ()
    program: tuple[int, ...] = ()
    loops: tuple = ()
    shared_hbm: list = field(default_factory=list)   # allocations, in creation order
    shared_index: int = 0
    next_id: int = 1
    act_regs: np.ndarray | None = None               # ScalarE reduce registers (numerics)
    act_regs_set: np.ndarray | None = None           # per partition: reset since the start
    warnings: list = field(default_factory=list)     # located warning texts
    vec_regs: np.ndarray | None = None               # VectorE accumulator registers (numerics)
    vec_regs_set: np.ndarray | None = None           # per partition: reset since the start
    affine: list = field(default_factory=list)       # deps.LoopState per running affine loop
    epoch: int = 0                                   # loop iterations started (deps.py)
    phys: dict = field(default_factory=dict)         # Mem -> physical bytes (direct allocation)
    direct_alloc: bool = False                       # a direct allocation was made (classic)
    classic: bool = False                            # neuronxcc.nki kernel (else current nki)
    scope: tuple = ()                                # ids of the running nl.*_range loops
    kernel_code: Any = None                          # code object of the top-level kernel
    nested_lines: frozenset = frozenset()            # its lines inside for/while/if bodies
    sbuf_spilled_once: bool = False                  # the spill warning was given
    interleave: Any = None                           # spmd.Interleaved while programs interleave
    sbuf: Pool = field(init=False)
    psum: Pool = field(init=False)

    def __post_init__(self) -> None:
        self.sbuf = Pool(Mem.SBUF, self.target.sbuf_bytes_per_partition)
        self.psum = Pool(Mem.PSUM, hw.PSUM_BYTES_PER_PARTITION)

    def new_id(self) -> int:
        i = self.next_id
        self.next_id = i + 1
        return i

    def charge(self, mem: Mem, nbytes: int, what: object) -> tuple[Pool, int]:
        """Charge an on-chip allocation; returns (pool, bytes charged) for the release."""
        if mem is Mem.PSUM:
            banks = -(-nbytes // hw.PSUM_BANK_BYTES)
            nbytes = banks * hw.PSUM_BANK_BYTES
            self.psum.charge(nbytes, what)
            return self.psum, nbytes
        over = self.sbuf.charge(nbytes, what, spill=True)
        if over:
            self._spill(over, what)
        return self.sbuf, nbytes

    def _spill(self, over: int, what: object) -> None:
        """Warn (once) that live SBUF tiles overflow by ``over`` bytes/partition here; the spill
        DMAs themselves are planned over the whole trace at the end of the run
        (:func:`nkigen.sim.spill.plan`)."""
        if not self.sbuf_spilled_once:
            self.sbuf_spilled_once = True
            file, line = _caller()
            where = f"{file}:{line}: " if file else ""
            self.warnings.append(
                f"{where}warning: live SBUF tiles exceed {self.sbuf.capacity} B/partition here; "
                "the compiler spills them to HBM and reloads them (modelled as spill_out/"
                "spill_reload DMAs in the cost estimate); allocate large tiles inside the loops "
                "that use them, or tile the free dimension, to avoid it")


def _caller() -> tuple[str, int]:
    """(file, line) of the innermost frame outside nkigen/sim (the kernel line allocating)."""
    import sys

    from nkigen.sim.errors import _SIM_DIR

    f: Any = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_SIM_DIR):
        f = f.f_back
    return (f.f_code.co_filename, f.f_lineno) if f is not None else ("", 0)


_CURRENT: list[Run] = []


def current() -> Run:
    """The active run; NKI API calls outside a simulated kernel are an error."""
    if not _CURRENT:
        raise SimError("NKI API called outside a simulated kernel",
                       fix="call the kernel through nkigen.sim.simulate/run or a @nki.jit "
                       "kernel with NumPy arrays")
    return _CURRENT[-1]


def active() -> Run | None:
    return _CURRENT[-1] if _CURRENT else None


def push(run: Run) -> None:
    _CURRENT.append(run)


def pop() -> None:
    _CURRENT.pop()
