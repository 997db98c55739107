"""SBUF spill planning: a traced kernel whose SBUF tiles overflow -> the compiler's spill DMAs.

Stage: simulate (end of a run, before the cost model). When the live SBUF tiles of a kernel need
more than the usable SBUF, the NKI compiler spills intermediate tiles to device memory and
reloads them (S25 general/nki/tutorials/fused_mamba.rst, "Increasing input seq_len size": the v2
kernel at seq_len 8192 shows ``qSyncSpillReload0``/``qVectorSpillReload0`` DMA rows, VectorE
blocked on semaphore waits for the reloads, 53.33 ms). The simulator's own allocation accounting
(nkigen.sim.state) only detects *that* the kernel overflows, using Python reference lifetimes;
:func:`plan` decides *what* is spilled, the way a register allocator would:

* liveness is the compiler's, from the trace: a tile is live from its first access to its last
  (not while a Python name still refers to it);
* when an instruction needs room, the victim is the resident tile, not accessed by that
  instruction, whose next use is furthest away (Belady's rule; the tiles an allocator keeps are
  the ones needed soonest), whole tiles at a time;
* spill once, reload per use: an evicted tile is written to HBM (``spill_out``) only if it was
  written since its last spill (a clean copy is already there); every later use after an
  eviction reloads it (``spill_reload``) right before that use.

Dependencies the cost model sees (regions, as for any instruction): ``spill_out`` reads the
victim (waits for its last writer) and writes the box of the incoming tile (the instruction that
needed the room waits for it, WAW); ``spill_reload`` writes the victim's box (its consumer waits,
RAW) and reads what the consumer's engine wrote last (the reload is issued from the consuming
engine's instruction stream right before the use, not prefetched: the profile rows are named
after the issuing engine, ``q<Engine>SpillReload``, and the tutorial shows VectorE idle on a
semaphore wait for them).

Not modelled: fragmentation (the tutorial's profile peaks at 50 % SBUF usage while spilling; we
spill only what the byte count forces), partial-tile spills, and rematerialising a load instead
of spilling it. An instruction whose own operands exceed the capacity spills nothing more.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from nkigen import hw
from nkigen.sim.trace import Instr, Mem, Region

SPILL_OPS = ("spill_out", "spill_reload")


def _tiles(instrs: Sequence[Instr]) -> tuple[dict[int, int], dict[int, int], dict[int, list[int]]]:
    """(bytes/partition, partitions, sorted access indices) of every SBUF tile of the trace."""
    size: dict[int, int] = {}
    parts: dict[int, int] = {}
    uses: dict[int, list[int]] = {}
    for i, ins in enumerate(instrs):
        for r in (*ins.reads, *ins.writes):
            if r.mem is not Mem.SBUF:
                continue
            t = r.tensor
            if r.b1 > size.get(t, 0):
                size[t] = r.b1
            if r.p1 > parts.get(t, 0):
                parts[t] = r.p1
            u = uses.setdefault(t, [])
            if not u or u[-1] != i:
                u.append(i)
    return size, parts, uses


def _dma(op: str, at: Instr, tile: int, nbytes_pp: int, parts: int, reads: tuple,
         writes: tuple) -> Instr:
    nbytes = nbytes_pp * parts
    return Instr(hw.Engine.DMA, op, at.line, reads=reads, writes=writes, partitions=parts,
                 nbytes=nbytes, hbm_bytes=nbytes, chunk_bytes=nbytes_pp, file=at.file,
                 loops=at.loops, program=at.program,
                 attrs={"spilled_bytes_per_partition": nbytes_pp, "tile": tile})


def plan(instrs: Sequence[Instr], capacity: int) -> list[Instr]:
    """The trace with the spill/reload DMAs the compiler would add for ``capacity`` usable
    SBUF bytes per partition (the input trace unchanged, as a list, if nothing overflows)."""
    size, parts, uses = _tiles(instrs)
    out: list[Instr] = []
    resident: dict[int, int] = {}        # tile -> bytes/partition, in SBUF now
    evicted: set[int] = set()            # tiles with a copy in HBM only
    dirty: set[int] = set()              # resident tiles written since their last spill_out
    used = 0
    last_on: dict[hw.Engine, Instr] = {}  # latest instruction of each compute engine
    for i, ins in enumerate(instrs):
        need = {r.tensor for r in (*ins.reads, *ins.writes) if r.mem is Mem.SBUF}
        for t in sorted(need, key=lambda x: uses[x][0]):
            if t in resident:
                continue
            sz = size[t]
            while used + sz > capacity:
                victim = _victim(resident, need, uses, i)
                if victim is None:
                    break
                used -= resident.pop(victim)
                if victim in dirty:
                    dirty.discard(victim)
                    box = (Region(t, Mem.SBUF, 0, parts[t], 0, sz),)
                    whole = (Region(victim, Mem.SBUF, 0, parts[victim], 0, size[victim]),)
                    out.append(_dma("spill_out", ins, victim, size[victim], parts[victim],
                                    whole, box))
                evicted.add(victim)
            if t in evicted:
                evicted.discard(t)
                prev = last_on.get(ins.engine)
                after = prev.writes if prev is not None else ()
                whole = (Region(t, Mem.SBUF, 0, parts[t], 0, sz),)
                out.append(_dma("spill_reload", ins, t, sz, parts[t], after, whole))
            resident[t] = sz
            used += sz
        out.append(ins)
        last_on[ins.engine] = ins
        for r in ins.writes:
            if r.mem is Mem.SBUF:
                dirty.add(r.tensor)
        for t in need:
            if uses[t][-1] == i:                     # last use: the tile dies
                used -= resident.pop(t)
                dirty.discard(t)
    return out


def _victim(resident: dict[int, int], need: set[int], uses: dict[int, list[int]], i: int
            ) -> int | None:
    """The resident tile not used by instruction ``i`` whose next use is furthest away (ties:
    the larger, then the older tile)."""
    best, key = None, None
    for t, sz in resident.items():
        if t in need:
            continue
        u = uses[t]
        j = bisect_right(u, i)
        nxt = u[j] if j < len(u) else 1 << 62
        k = (nxt, sz, -t)
        if key is None or k > key:
            best, key = t, k
    return best
