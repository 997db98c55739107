"""Programming-model rules checked on every traced instruction.

Stage: simulate (core). Called by ``emit`` for each instruction with the tensors it reads and
writes:

* start partition (S25 general/nki/arch/trainium_inferentia2_arch.rst "Data streaming", SDK
  2.25; the same text in SH nki/guides/architecture/trainium_inferentia2_arch.rst, nki 0.3): a
  compute-engine (not DMA) access of ``n`` partitions must start at partition 0 when
  ``64 < n <= 128``, at 0 or 64 when ``32 < n <= 64``, and at 0/32/64/96 when ``n <= 32``;
* classic PSUM writes are recorded (``Alloc.psum_written``): ``acc += matmul`` into a PSUM
  location nothing has written yet starts the accumulation group (the first nc_matmul
  overwrites, S25 general/nki/arch/trainium_inferentia2_arch.rst "Near-memory accumulation in
  PSUM"), see :mod:`nkigen.sim.classic.fresh`;
* operands in SBUF at once (review 12 R12-6): once live tiles have overflowed SBUF (the
  spill model of :mod:`nkigen.sim.state`), the SBUF bytes per partition one instruction reads
  and writes must still fit the partition: the engines and the DMA work on on-chip SBUF (SH
  nki/guides/architecture/trainium_inferentia2_arch.rst: a 24 MiB SBUF as the main data
  storage, 192 KiB per partition on NeuronCore-v2; SH trainium2_arch.rst 224 KiB on v3), and
  a spill cannot free an operand of the running instruction;
* tensor scope (classic API; S25 general/nki/api/nki.errors.rst
  err_local_variable_used_out_of_scope, SDK 2.25): a tensor created inside an ``nl.*_range``
  loop may not be used after that loop.
"""

from __future__ import annotations

from nkigen.hw import Engine
from nkigen.sim.errors import SimError
from nkigen.sim.trace import Mem

_HBM = Mem.HBM
_PSUM = Mem.PSUM
_MAX_REGIONS = 1024
_DMA = Engine.DMA


def start_partition(t) -> tuple[int, int]:
    """(first physical partition, number of partitions) an on-chip view accesses."""
    a = t.alloc
    p0 = t.offset // a.pstride if a.pstride else 0
    if a.phys is not None:
        p0 += a.phys[1]
    return p0, (t.shape[0] if t.shape and t.strides[0] else 1)


def written_before(t) -> bool:
    """Whether a recorded PSUM write overlaps the box of ``t`` (up to 1024 distinct boxes kept
    per allocation; beyond that the allocation counts as written)."""
    w = t.alloc.psum_written
    if not w:
        return False
    if len(w) >= _MAX_REGIONS:
        return True
    r = t.region()
    return any(q.p0 < r.p1 and r.p0 < q.p1 and q.b0 < r.b1 and r.b0 < q.b1 for q in w)


def legal_start(p0: int, n: int) -> bool:
    if n > 64:
        return p0 == 0
    if n > 32:
        return p0 in (0, 64)
    return p0 % 32 == 0


def check(run, engine: Engine, api_op: str, reads: tuple, writes: tuple) -> None:
    compute = engine is not _DMA
    classic = run.classic
    if run.sbuf_spilled_once:
        _coresident(run, api_op, reads, writes)
    if classic:
        for t in writes:
            a = t.alloc
            if a.mem is _PSUM:
                w = a.psum_written
                if w is None:
                    w = a.psum_written = set()
                if len(w) < _MAX_REGIONS:
                    w.add(t.region())
    for t in (*reads, *writes):
        if t is None:
            continue
        a = t.alloc
        if classic:
            sc = a.scope
            if sc and run.scope[:len(sc)] != sc:
                raise SimError("err_local_variable_used_out_of_scope: a tensor created inside "
                               "an nl.*_range loop is used after the loop", repr(t),
                               "allocate it before the loop (nl.ndarray) and assign into it "
                               "with t[...] = ... inside the loop")
        if compute and a.mem is not _HBM:
            p0, n = start_partition(t)
            if p0 and not legal_start(p0, n):
                need = "0" if n > 64 else ("0 or 64" if n > 32 else "0, 32, 64 or 96")
                raise SimError(f"{api_op}: an engine access of {n} partitions must start at "
                               f"partition {need} (start-partition rule)",
                               f"starts at partition {p0}: {t!r}",
                               "slice tiles so the partition range starts on a legal "
                               "quadrant, or copy the rows to a new tile with a DMA")


def _coresident(run, api_op: str, reads: tuple, writes: tuple) -> None:
    """The SBUF bytes per partition of the regions one instruction accesses (each distinct
    view counted once) must fit the partition's capacity; only checked once tiles have
    spilled (below the capacity every live tile fits anyway)."""
    seen: set = set()
    need = 0
    for t in (*reads, *writes):
        if t is None or t.alloc.mem is not Mem.SBUF:
            continue
        key = (id(t.alloc), t.offset, tuple(t.shape), tuple(t.strides))
        if key in seen:
            continue
        seen.add(key)
        need += t.free_size * t.dtype.itemsize
    cap = run.sbuf.capacity
    if need > cap:
        raise SimError(f"{api_op}: the SBUF operands of one instruction must fit the SBUF "
                       f"partition at once ({cap} B on {run.target.name}); a spill cannot free "
                       "an operand of the running instruction",
                       f"{need} B/partition",
                       "tile the free dimension so each instruction touches fewer bytes")
