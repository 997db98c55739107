"""Cost model stage: simulator trace (list[Instr]) -> instruction times -> timeline -> Report.

Three steps, each a function:

1. :func:`instr_cycles` -- engine cycles of one compute instruction from the published rules
   (nki-reference.md 2.3 "documented cost" column, 4.2 and 9.10), one rule per op in the
   :data:`RULES` registry; :func:`dma_pieces` -- how a DMA splits over the 16 queues and how long
   each piece occupies its queue. Both live in :mod:`nkigen.sim.cost_rules` (re-exported here).
2. :func:`schedule` -- a dependency-aware list schedule. Compute engines run their instructions in
   program order; each DMA piece goes to the queue where it can start earliest (a queue runs one
   piece at a time and back-fills idle gaps, see :class:`_Queues`). An instruction starts when
   its engine/queue is free and the last writers of what it reads (RAW) and the readers/writers
   of what it overwrites (WAR/WAW) are done (see :class:`_Deps`), plus a per-engine result
   latency for consumers (``CostParams.dep_latency_cycles``).
3. :func:`estimate` -- the timeline summarised as a :class:`~nkigen.sim.report.Report`.

Speed (issue 18): both steps read the simulator's compact trace (nkigen.sim.trace.Trace) without
making Instr records: every rule that depends only on an instruction's Kind (cycle rule, DMA
split, shared ports, cycles key, FLOPs) is derived once per Kind and schedule; the dependency
maps stay plain dicts while small; reads of a tensor that nothing writes later are not recorded
(reader entries are only consulted by later writes). ``NKIGEN_SIM_REFERENCE=1`` runs the
per-Instr reference (:func:`_schedule_instrs`, :func:`_sums_instrs`); tests/test_cost_compact.py
and tests/test_sim_equivalence.py prove identical timelines and reports.

Every number is either in ``nkigen.hw`` (hardware constants with sources) or in
:class:`CostParams` (cost_rules), where each field names its source or says "calibration". The
calibration parameters are global (one value for every kernel); benchmarks/bench_calibration.py
prints how the model compares with the published latencies.

DMA model (per piece on one queue)::

    rate      = min(queue_bw, hbm_bw / queues if HBM is touched) * eff(chunk) * transpose_factor
    occupancy = max(piece_bytes / rate, dma_fixed_ns / dma_inflight)     # queue busy time
    done      = start + piece_bytes / rate + dma_fixed_ns                 # result visible

``eff(chunk)`` is 1.0 at or above ``dma_sat_chunk`` (4 KiB, the documented saturation size),
``dma_small_chunk_eff`` from 256 B to ``dma_min_chunk`` (1 KiB; the chunks of the DMA-bound
calibration anchors, trn1; a target that documents its own, ``hw.Target.dma_small_row_eff``,
takes that: trn2 0.93 from the SH DMA overview's profiled example), linear in log2(chunk)
between (so the documented 2 KiB "minimum" sits at 0.625 on trn1), and proportional to the
chunk below 256 B (packet-rate bound). A DMA of P partitions splits into ``min(queues, ceil(P /
8))`` equal pieces, one per engine serving 8 partitions (the docs' examples: a 128-partition
load becomes 16 transfers of 8 partitions, a 4-partition load one transfer on one engine). The
fixed cost is latency: a queue keeps
``dma_inflight`` transfers in flight, so back-to-back DMAs hide it, dependent ones do not.

Engine choice: a tile copy issued with no engine (``nisa.tensor_copy`` without ``engine=`` or
with ``engine=unknown``, ``nl.copy``, tile assignments, the compiler's PSUM staging copies) runs
where the compiler puts it, "based on engine workload" (S25/SH nki.isa.tensor_copy). The trace
lists the engines it may use (nkigen.sim.isa_move.copy_engines); each schedule gives it to the
candidate on which its result would be visible first given the engines' and shared ports'
current backlog (ties: VectorE, ScalarE, GpSimd in that order), and records the choice in
``Timeline.moved``. Other engine-unspecified instructions (memset, tensor_scalar, tensor_tensor,
nc_transpose: "based on the input tile shape", no rule published) stay on their default engine.

Cost model v2 (issue 13) adds, in :func:`schedule`: ``CostParams.issue_cycles`` on every engine
instruction (issue/semaphore overhead, fitted); elision of identical recomputations on unchanged
inputs (``cse``, a modelled compiler behaviour); PSUM-resident partition broadcasts
(``psum_broadcast``); the NC-v3 VectorE performance-mode bus shared with GpSimd; and in
:func:`estimate` the fixed launch time (``launch_us``), SBUF spill traffic and the calibration
band. benchmarks/bench_calibration.py compares it with every published latency we reproduce.

Known limits (what the model does not see): buffers are as many as the simulator allocates (it
gives each allocation a fresh id, so loads may run arbitrarily far ahead of their consumers;
direct allocations share physical ids, so their reuse is seen); no PSUM bank arbitration (NC-v3
VectorE/ScalarE collide only on the same bank, SH trainium2_arch; not modelled); HBM regions are
bounding byte ranges.

Not modelled because the docs say it does not happen: SBUF port contention between DMA writes and
engine accesses. The arch guides list only engine-engine restrictions (NC-v2: VectorE/GpSimd on
SBUF, VectorE/ScalarE on PSUM, modelled as ``_ports``; NC-v3: the VectorE performance-mode bus
shared with GpSimd, ``_ports_v3``) and state that SBUF drives every engine's read/write
interface at peak "simultaneously without bandwidth interference" (S25
general/nki/arch/trainium_inferentia2_arch.rst, "Concurrent SBUF/PSUM accesses by engines"); SBUF
has ~20x the HBM bandwidth (S25 programming_model.rst), i.e. far more than the 16 DMA queues
can write. The only documented DMA contention is between DMA rings of one engine (round-robin at
packet boundaries, S25 deep-dives/compiler/compute-comm-overlap.rst: compute vs collectives, not
a single kernel's concern) and software-DGE descriptor generation competing with GpSimd work (SH
nki/deep-dives/nki-dge.rst; not modelled: the trace does not record the DGE mode).
tests/test_cost.py pins the no-contention choice.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nkigen import hw
from nkigen.hw import Engine, Target
from nkigen.sim import mode
from nkigen.sim.calibration import BAND
from nkigen.sim.cost_rules import (
    _FP32,
    COMPUTE_ENGINES,
    DEFAULT_PARAMS,
    RULES,
    CostParams,
    Rule,
    _norm_op,
    dma_efficiency,
    dma_pieces,
    engine_choices,
    instr_cycles,
    instr_ns,
    isa_kind,
    rule,
    vector_perf_mode,
)
from nkigen.sim.report import Report
from nkigen.sim.trace import Instr, Kind, Mem, as_compact, entries_of

__all__ = ["COMPUTE_ENGINES", "DEFAULT_PARAMS", "RULES", "CostParams", "Rule", "Timeline",
           "dma_efficiency", "dma_pieces", "estimate", "instr_cycles", "instr_ns", "isa_kind",
           "matmul_flops", "peak_flops_per_ns", "rule", "schedule"]

# --------------------------------------------------------------------------------------------
# 2. Dependencies
# --------------------------------------------------------------------------------------------

_Box = tuple[int, int, int, int]
_MAX_ENTRIES = 4096       # per tensor and kind; beyond it entries merge into one bounding box
_SMALL = 8                # boxes per tensor scanned linearly (see _Index)
_HBM = Mem.HBM            # (an Enum class attribute lookup is slow on Python 3.11)


class _Index:
    """Accesses to one tensor: exact box -> value. Up to ``_SMALL`` boxes are scanned linearly
    (most tiles are accessed as a few boxes); beyond that the boxes are kept sorted by start byte
    so that an overlap query only visits boxes starting in [b0 - longest box + 1, b1). Both
    forms answer every query identically (the sorted form only skips boxes that cannot
    overlap); ``NKIGEN_SIM_REFERENCE=1`` uses the sorted form from the first box
    (:class:`_RefIndex`, the reference the equivalence test compares with)."""

    __slots__ = ("vals", "starts", "boxes", "longest")

    def __init__(self) -> None:
        self.vals: dict[_Box, Any] = {}
        self.starts: list[int] | None = None
        self.boxes: list[_Box] | None = None    # None: small form (linear scans)
        self.longest = 0

    def overlapping(self, p0: int, p1: int, b0: int, b1: int) -> list:
        boxes = self.boxes
        if boxes is None:
            return [v for k, v in self.vals.items()
                    if b0 < k[3] and k[2] < b1 and k[0] < p1 and p0 < k[1]]
        starts = self.starts
        lo = bisect_left(starts, b0 - self.longest + 1)  # type: ignore[arg-type]
        hi = bisect_left(starts, b1)  # type: ignore[arg-type]
        vals = self.vals
        return [vals[k] for k in boxes[lo:hi] if b0 < k[3] and k[0] < p1 and p0 < k[1]]

    def put(self, box: _Box, val: object, combine: Callable | None = None) -> None:
        vals = self.vals
        if box in vals:
            vals[box] = combine(vals[box], val) if combine else val
            return
        vals[box] = val
        if box[3] - box[2] > self.longest:
            self.longest = box[3] - box[2]
        boxes = self.boxes
        if boxes is None:
            if len(vals) <= _SMALL:
                return
            self._to_sorted()
            boxes = self.boxes
        else:
            j = bisect_left(self.starts, box[2])  # type: ignore[arg-type]
            self.starts.insert(j, box[2])  # type: ignore[union-attr]
            boxes.insert(j, box)
        if len(vals) > _MAX_ENTRIES and combine:
            self._merge_all(combine)

    def _to_sorted(self) -> None:
        keys = sorted(self.vals, key=lambda k: k[2])
        self.boxes = keys
        self.starts = [k[2] for k in keys]

    def drop_contained(self, box: _Box) -> None:
        """Forget accesses inside ``box`` (called when ``box`` is overwritten)."""
        vals = self.vals
        if len(vals) == 1:
            k = next(iter(vals))
            if box[0] <= k[0] and k[1] <= box[1] and box[2] <= k[2] and k[3] <= box[3]:
                vals.clear()
                if self.boxes is not None:
                    self.boxes.clear()
                    self.starts.clear()  # type: ignore[union-attr]
            return
        p0, p1, b0, b1 = box
        boxes = self.boxes
        if boxes is None:
            doomed = [k for k in vals if b0 <= k[2] < b1 and p0 <= k[0] and k[1] <= p1
                      and k[3] <= b1]
            for k in doomed:
                del vals[k]
            return
        starts = self.starts
        lo, hi = bisect_left(starts, b0), bisect_left(starts, b1)  # type: ignore[arg-type]
        doomed = [k for k in boxes[lo:hi] if p0 <= k[0] and k[1] <= p1 and k[3] <= b1]
        if not doomed:
            return
        for k in doomed:
            del vals[k]
        gone = set(doomed)
        keep = [k for k in boxes[lo:hi] if k not in gone]
        boxes[lo:hi] = keep
        starts[lo:hi] = [k[2] for k in keep]  # type: ignore[index]

    def _merge_all(self, combine: Callable) -> None:
        keys = list(self.vals)
        box = (min(k[0] for k in keys), max(k[1] for k in keys),
               min(k[2] for k in keys), max(k[3] for k in keys))
        it = iter(self.vals.values())
        acc = next(it)
        for v in it:
            acc = combine(acc, v)
        self.vals = {box: acc}
        self.boxes, self.starts, self.longest = [box], [box[2]], box[3] - box[2]


class _RefIndex(_Index):
    """The sorted form from the first box (reference path, ``NKIGEN_SIM_REFERENCE=1``)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.boxes, self.starts = [], []


def _max_w(a: tuple, b: tuple) -> tuple:
    return (max(a[0], b[0]), max(a[1], b[1]), a[2] and b[2])


class _Deps:
    """Last writers and readers per tensor id (an :class:`_Index` each).

    Writer entries hold (visible time, engine busy end, written by TensorE); reader entries hold
    the time the read is finished. A new write drops the entries its box contains: any later
    access overlapping them overlaps the new write, which already waited for them (exact pruning).
    A tensor with more than ``_MAX_ENTRIES`` distinct boxes is merged into one bounding box
    (conservative: may add dependencies, never drops one).

    HBM writes are not ordered after earlier HBM writes (no WAW there): HBM regions are bounding
    byte ranges, so disjoint strided stores (e.g. column slabs) would look overlapping, and DMA
    writes on different queues are not ordered by the hardware either. RAW and WAR on HBM stay.
    """

    __slots__ = ("writers", "readers", "index")

    def __init__(self, reference: bool = False) -> None:
        self.writers: dict[int, _Index] = {}
        self.readers: dict[int, _Index] = {}
        self.index = _RefIndex if reference else _Index

    def ready(self, ins: Instr, on_tensor: bool) -> float:
        t = 0.0
        writers, readers = self.writers, self.readers
        for r in ins.reads:
            ws = writers.get(r.tensor)
            if ws is not None:
                for vis, busy, te in ws.overlapping(r.p0, r.p1, r.b0, r.b1):
                    v = busy if (on_tensor and te) else vis
                    if v > t:
                        t = v
        for r in ins.writes:
            ws = writers.get(r.tensor) if r.mem is not _HBM else None
            if ws is not None:
                for vis, busy, te in ws.overlapping(r.p0, r.p1, r.b0, r.b1):
                    v = busy if (on_tensor and te) else vis
                    if v > t:
                        t = v
            rs = readers.get(r.tensor)
            if rs is not None:
                for v in rs.overlapping(r.p0, r.p1, r.b0, r.b1):
                    if v > t:
                        t = v
        return t

    def record(self, ins: Instr, vis: float, busy: float, on_tensor: bool) -> None:
        writers, readers = self.writers, self.readers
        for r in ins.reads:
            rs = readers.get(r.tensor)
            if rs is None:
                rs = readers[r.tensor] = self.index()
            rs.put((r.p0, r.p1, r.b0, r.b1), busy, max)
        wval = (vis, busy, on_tensor)
        for r in ins.writes:
            box = (r.p0, r.p1, r.b0, r.b1)
            ws = writers.get(r.tensor)
            if ws is None:
                ws = writers[r.tensor] = self.index()
            elif r.mem is not _HBM:
                ws.drop_contained(box)
            ws.put(box, wval, _max_w)
            rs = readers.get(r.tensor)
            if rs is not None and r.mem is not _HBM:
                rs.drop_contained(box)


class _FastDeps(_Deps):
    """:class:`_Deps` with the small-index cases inlined (no per-query list or call); the same
    answers (the reference path, ``NKIGEN_SIM_REFERENCE=1``, uses :class:`_Deps`)."""

    __slots__ = ()

    def ready(self, ins: Instr, on_tensor: bool) -> float:
        t = 0.0
        writers, readers = self.writers, self.readers
        for r in ins.reads:
            ws = writers.get(r.tensor)
            if ws is None:
                continue
            p0, p1, b0, b1 = r.p0, r.p1, r.b0, r.b1
            if ws.boxes is None:
                for k, w in ws.vals.items():
                    if k[0] < p1 and p0 < k[1] and b0 < k[3] and k[2] < b1:
                        v = w[1] if (on_tensor and w[2]) else w[0]
                        if v > t:
                            t = v
            else:
                for vis, busy, te in ws.overlapping(p0, p1, b0, b1):
                    v = busy if (on_tensor and te) else vis
                    if v > t:
                        t = v
        for r in ins.writes:
            tid = r.tensor
            p0, p1, b0, b1 = r.p0, r.p1, r.b0, r.b1
            ws = writers.get(tid) if r.mem is not _HBM else None
            if ws is not None:
                if ws.boxes is None:
                    for k, w in ws.vals.items():
                        if k[0] < p1 and p0 < k[1] and b0 < k[3] and k[2] < b1:
                            v = w[1] if (on_tensor and w[2]) else w[0]
                            if v > t:
                                t = v
                else:
                    for vis, busy, te in ws.overlapping(p0, p1, b0, b1):
                        v = busy if (on_tensor and te) else vis
                        if v > t:
                            t = v
            rs = readers.get(tid)
            if rs is not None:
                if rs.boxes is None:
                    for k, v in rs.vals.items():
                        if k[0] < p1 and p0 < k[1] and b0 < k[3] and k[2] < b1 and v > t:
                            t = v
                else:
                    for v in rs.overlapping(p0, p1, b0, b1):
                        if v > t:
                            t = v
        return t

    def record(self, ins: Instr, vis: float, busy: float, on_tensor: bool) -> None:
        writers, readers = self.writers, self.readers
        for r in ins.reads:
            box = (r.p0, r.p1, r.b0, r.b1)
            rs = readers.get(r.tensor)
            if rs is None:
                rs = readers[r.tensor] = _Index()
                rs.vals[box] = busy
                if box[3] > box[2]:
                    rs.longest = box[3] - box[2]
                continue
            vals = rs.vals
            old = vals.get(box)
            if old is not None:
                if busy > old:
                    vals[box] = busy
                continue
            rs.put(box, busy, max)
        wval = (vis, busy, on_tensor)
        for r in ins.writes:
            box = (r.p0, r.p1, r.b0, r.b1)
            tid = r.tensor
            ws = writers.get(tid)
            if ws is None:
                ws = writers[tid] = _Index()
                ws.vals[box] = wval
                if box[3] > box[2]:
                    ws.longest = box[3] - box[2]
            else:
                if r.mem is not _HBM:
                    ws.drop_contained(box)
                ws.put(box, wval, _max_w)
            if r.mem is not _HBM:
                rs = readers.get(tid)
                if rs is not None:
                    rs.drop_contained(box)


_MAX_GAPS = 64            # idle gaps remembered per DMA queue for back-filling
_MIN_GAP_NS = 1.0


class _Queues:
    """DMA queues. Each queue runs one piece at a time; a piece starts at the earliest time >= its
    ready time where the queue is idle long enough. Idle gaps left when a piece had to wait for its
    inputs (e.g. a store waiting for compute) are back-filled by later, independent pieces; this
    stands for the compiler ordering each queue by readiness rather than by program order.
    A DMA of k < queues pieces takes the k queues where it can start earliest (ties: lowest id).

    Speed: while every DMA is split over all queues the queues stay identical, so one state
    (queue 0) stands for all of them (``uniform``); each queue caches its longest gap.
    """

    __slots__ = ("tail", "gaps", "maxgap", "n", "uniform", "base", "every")

    def __init__(self, n: int, core: int = 0) -> None:
        self.n = n
        self.base = core * n            # queue ids of physical core ``core``: base .. base + n
        self.every = -1 - core          # the id of "one identical piece on every queue"
        self.tail = [0.0] * n
        self.gaps: list[list[list[float]]] = [[] for _ in range(n)]
        self.maxgap = [0.0] * n
        self.uniform = True

    def _earliest(self, q: int, ready: float, occ: float) -> tuple[float, int]:
        if self.maxgap[q] >= occ:
            for j, (gs, ge) in enumerate(self.gaps[q]):
                s = gs if gs > ready else ready
                if s + occ <= ge:
                    return s, j
        tail = self.tail[q]
        return (tail if tail > ready else ready), -1

    def _take(self, q: int, s: float, occ: float, j: int) -> None:
        gaps = self.gaps[q]
        if j < 0:
            tail = self.tail[q]
            if s - tail > _MIN_GAP_NS:
                gaps.append([tail, s])
                if len(gaps) > _MAX_GAPS:
                    del gaps[0]
                    self.maxgap[q] = max([ge - gs for gs, ge in gaps], default=0.0)
                elif s - tail > self.maxgap[q]:
                    self.maxgap[q] = s - tail
            self.tail[q] = s + occ
            return
        gs, ge = gaps[j]
        e = s + occ
        left, right = s - gs > _MIN_GAP_NS, ge - e > _MIN_GAP_NS
        if left and right:
            gaps[j][1] = s
            gaps.insert(j + 1, [e, ge])
        elif left:
            gaps[j][1] = s
        elif right:
            gaps[j][0] = e
        else:
            del gaps[j]
        self.maxgap[q] = max([b - a for a, b in gaps], default=0.0)

    def _split(self) -> None:
        """Leave uniform mode: give every queue its own copy of queue 0's state."""
        self.uniform = False
        for q in range(1, self.n):
            self.tail[q] = self.tail[0]
            self.gaps[q] = [list(g) for g in self.gaps[0]]
            self.maxgap[q] = self.maxgap[0]

    def place(self, ready: float, occ: float, k: int) -> list[tuple[int, float]]:
        n = self.n
        if k >= n:
            if self.uniform:
                s, j = self._earliest(0, ready, occ)
                self._take(0, s, occ, j)
                return [(-1, s)]                # -1: the same piece on every queue
            out = []
            for q in range(n):
                s, j = self._earliest(q, ready, occ)
                self._take(q, s, occ, j)
                out.append((q, s))
            t0, g0 = self.tail[0], self.gaps[0]
            if all(t == t0 for t in self.tail) and all(g == g0 for g in self.gaps):
                self.uniform = True
            return out
        if self.uniform:
            self._split()
        cands = sorted((self._earliest(q, ready, occ), q) for q in range(n))[:k]
        for (s, j), q in cands:
            self._take(q, s, occ, j)
        return [(q, s) for (s, _), q in cands]

    def issue(self, i: int, ready: float, occ: float, done: float, k: int,
              pieces: array) -> tuple[float, float, float]:
        """Place instruction ``i``'s ``k`` DMA pieces (:meth:`place`), append each piece's
        ``(i, queue, start, busy end, visible)`` to ``pieces``, and return the instruction's
        (start, busy end, visible): its earliest piece start and latest ends."""
        s0 = e_busy = e_vis = -1.0
        for q, s in self.place(ready, occ, k):
            b, v = s + occ, s + done
            pieces.extend((i, self.every if q < 0 else q + self.base, s, b, v))
            if s0 < 0 or s < s0:
                s0 = s
            if b > e_busy:
                e_busy = b
            if v > e_vis:
                e_vis = v
        return s0, e_busy, e_vis


# --------------------------------------------------------------------------------------------
# 3. Timeline
# --------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """Scheduled times (ns) of each instruction of a trace.

    ``start[i]``: first cycle of instruction i; ``busy[i]``: its occupancy end on its engine (for a
    DMA, the last piece's queue occupancy end); ``end[i]``: when its result is visible.
    ``pieces``: flat (instr index, queue, start, occupancy end, visible end) per DMA piece; queue
    -1 stands for one identical piece on every queue (see :meth:`dma_pieces`). ``cores``: physical
    NeuronCores the trace runs on (2 for an LNC=2 launch, see :func:`physical_cores`); core c
    owns queues ``c * dma_queues ..`` and its "every queue" id is ``-1 - c``.
    """

    instrs: Sequence[Instr]
    target: Target
    start: array = field(default_factory=lambda: array("d"))
    busy: array = field(default_factory=lambda: array("d"))
    end: array = field(default_factory=lambda: array("d"))
    pieces: array = field(default_factory=lambda: array("d"))
    engine_busy_ns: dict[str, float] = field(default_factory=dict)
    elided: array = field(default_factory=lambda: array("b"))   # 1: CSE'd recomputation
    cores: int = 1
    # instruction index -> the engine the schedule gave an engine-unspecified instruction when
    # it is not the recorded one (cost_rules.engine_choices); see :meth:`engine_at`
    moved: dict[int, Engine] = field(default_factory=dict)

    def engine_at(self, i: int) -> Engine:
        """The engine instruction ``i`` runs on in this schedule."""
        e = self.moved.get(i)
        return self.instrs[i].engine if e is None else e

    @property
    def latency_ns(self) -> float:
        return max(self.end) if len(self.end) else 0.0

    def dma_pieces(self) -> list[tuple[int, int, float, float, float]]:
        """(instr index, queue, start, occupancy end, visible end) of every DMA piece."""
        p, nq = self.pieces, self.target.dma_queues
        out: list[tuple[int, int, float, float, float]] = []
        for j in range(0, len(p), 5):
            i, q = int(p[j]), int(p[j + 1])
            qs = range((-1 - q) * nq, (-q) * nq) if q < 0 else (q,)
            out.extend((i, qq, p[j + 2], p[j + 3], p[j + 4]) for qq in qs)
        return out


def _cycles_key(ins: Instr) -> tuple | None:
    """Everything a cycle rule may look at (None if an attribute value is unhashable)."""
    key = (ins.op, ins.engine, ins.free, ins.partitions, ins.dtype, ins.out_dtype,
           ins.n_tensor_inputs, ins.in_psum, ins.stationary_free, ins.moving_free,
           ins.transpose, any(r.mem is Mem.PSUM for r in ins.writes), len(ins.writes),
           tuple(sorted(ins.attrs.items(), key=str)) if ins.attrs else ())
    try:
        hash(key)
    except TypeError:
        return None
    return key


_SBUF_VG, _PSUM_VS = 0, 1


def _ports_v3(ins: Instr, t: Target) -> tuple[int, ...]:
    """NC-v3: VectorE and GpSimd access SBUF in parallel, except that VectorE performance-mode
    instructions use the bus shared with GpSimd (SH trainium2_arch, Data Movement Updates 1b)."""
    if ins.engine is Engine.GPSIMD:
        return (_SBUF_VG,)
    if ins.engine is Engine.VECTOR and vector_perf_mode(ins, t):
        return (_SBUF_VG,)
    return ()


def _ports(ins: Instr) -> tuple[int, ...]:
    """NC-v2 shared memory ports an engine instruction holds while it runs."""
    eng = ins.engine
    if eng is Engine.GPSIMD:
        return (_SBUF_VG,)
    mems = {r.mem for r in ins.reads} | {r.mem for r in ins.writes}
    if eng is Engine.VECTOR:
        return tuple(p for p, m in ((_SBUF_VG, Mem.SBUF), (_PSUM_VS, Mem.PSUM)) if m in mems)
    if eng is Engine.SCALAR and Mem.PSUM in mems:
        return (_PSUM_VS,)
    return ()


def schedule(instrs: Sequence[Instr], target: Target | str,
             params: CostParams = DEFAULT_PARAMS) -> Timeline:
    """List-schedule a trace in program order; see the module docstring for the rules.

    The fast path (:func:`_schedule_compact`) works on the trace's compact entries and derives
    every cost rule once per instruction kind; ``NKIGEN_SIM_REFERENCE=1`` (nkigen.sim.mode)
    runs :func:`_schedule_instrs`, one full :class:`Instr` at a time, the oracle the equivalence
    tests compare the fast path with (identical timelines)."""
    t = hw.target(target) if isinstance(target, str) else target
    if mode.reference():
        return _schedule_instrs(instrs, t, params)
    return _schedule_compact(instrs, t, params)


def physical_cores(entries: Sequence, t: Target) -> list[int] | None:
    """The physical NeuronCore of every trace entry when the trace is an LNC=2 launch, else None
    (one core).

    On NeuronCore-v3 and later ``kernel[2]`` launches the kernel on the two physical cores of a
    logical NeuronCore, one program each (``nl.program_id(0)`` 0 or 1), which run in parallel and
    share HBM (SH nki/nki_faq.rst "How do I launch a NKI kernel onto a logical NeuronCore";
    nki/get-started/about/lnc.rst: each core processes one of the two tiles "in parallel"). A
    trace whose entries come from exactly the programs (0,) and (1,) is such a launch: each
    program gets its own engines and DMA queues; dependencies through shared tensors stay.
    Other grids (NeuronCore-v2, or more programs) run their programs one after the other on one
    core."""
    if t.nc_version < 3 or not len(entries):
        return None
    progs = [e[6] if e.__class__ is tuple else e.program for e in entries]
    if set(progs) != {(0,), (1,)}:
        return None
    return [p[0] for p in progs]


def _schedule_instrs(instrs: Sequence[Instr], t: Target, params: CostParams) -> Timeline:
    """The reference schedule (see :func:`schedule`)."""
    tl = Timeline(instrs=instrs, target=t)
    n = len(instrs)
    start, busy_a, end = (array("d", bytes(8 * n)) for _ in range(3))
    pieces = array("d")
    eng_free = {e: 0.0 for e in COMPUTE_ENGINES}
    eng_busy = {e.value: 0.0 for e in (*COMPUTE_ENGINES, Engine.DMA)}
    lat = {e: params.dep_latency(e) / t.clock_ghz(e) for e in COMPUTE_ENGINES}
    nq = t.dma_queues
    queues = _Queues(nq)
    cores = physical_cores(instrs, t)
    per_core = [(eng_free, queues), ({e: 0.0 for e in COMPUTE_ENGINES}, _Queues(nq, 1))]
    core = 0
    deps = _Deps(True) if mode.reference() else _FastDeps()
    cycles_cache: dict[tuple, float] = {}
    dma_cache: dict[tuple, tuple[int, float, float]] = {}
    tensor = Engine.TENSOR
    dma = Engine.DMA
    use_ports = params.v2_shared_ports and t.nc_version < 3
    port_free = [0.0, 0.0]                      # [SBUF Vector/GpSimd, PSUM Vector/Scalar]
    issue = {e: params.issue_cycles / t.clock_ghz(e) for e in COMPUTE_ENGINES}
    psum_bcast: set[int] = set()                # broadcast_to results that stay in PSUM
    ver: dict[int, int] = {}                    # writes seen per tensor id (CSE)
    seen: dict[tuple, int] = {}                 # CSE key -> index of the first instance
    elided = array("b", bytes(n))
    moved: dict[int, Engine] = {}               # engine chosen for an engine-unspecified op
    for i, ins in enumerate(instrs):
        if cores is not None and cores[i] != core:    # the other physical core's engines
            core = cores[i]
            eng_free, queues = per_core[core]
        eng = ins.engine
        on_tensor = eng is tensor
        ready = deps.ready(ins, on_tensor)
        if eng is dma:
            if not ins.op.startswith("spill_"):   # a DMA write changes the tile too (CSE);
                for w in ins.writes:                # a spill reload restores the same data
                    ver[w.tensor] = ver.get(w.tensor, 0) + 1
        else:
            ckey = _cse_key(ins, ver) if params.cse else None
            for w in ins.writes:
                ver[w.tensor] = ver.get(w.tensor, 0) + 1
            j = seen.get(ckey) if ckey is not None else None
            if j is not None:                   # recomputation: the first result is reused
                v = max(ready, end[j])
                start[i] = busy_a[i] = end[i] = v
                elided[i] = 1
                deps.record(ins, v, v, on_tensor)
                continue
            if ckey is not None:
                seen[ckey] = i
            if params.psum_broadcast:
                if on_tensor and ins.op.endswith("broadcast_to") and ins.writes and \
                        ins.writes[0].b1 - ins.writes[0].b0 <= hw.PSUM_BANK_BYTES:
                    psum_bcast.add(ins.writes[0].tensor)
                elif psum_bcast:
                    extra = sum(1 for r in ins.reads if r.tensor in psum_bcast)
                    if extra:
                        ins = replace(ins, in_psum=ins.in_psum + extra)
        if eng is dma:
            dkey = (ins.op, ins.partitions, ins.nbytes, ins.chunk_bytes, ins.hbm_bytes,
                    ins.transpose)
            spec = dma_cache.get(dkey)
            if spec is None:
                spec = dma_cache[dkey] = dma_pieces(ins, t, params)
            k, occ, done = spec
            s0, e_busy, e_vis = queues.issue(i, ready, occ, done, k, pieces)
            eng_busy["dma"] += occ * k
            start[i], busy_a[i], end[i] = s0, e_busy, e_vis
            deps.record(ins, e_vis, e_vis, False)
            continue
        best = None
        for alt in _alternatives(ins):
            ae = alt.engine
            key = _cycles_key(alt)
            dur = cycles_cache.get(key) if key is not None else None
            if dur is None:
                dur = instr_ns(alt, t, params) + issue[ae]
                if key is not None:
                    cycles_cache[key] = dur
            f = eng_free[ae]
            s = f if f > ready else ready
            if ae is tensor or not params.v2_shared_ports:
                ports: tuple[int, ...] = ()
            else:
                ports = _ports(alt) if use_ports else _ports_v3(alt, t)
            for p in ports:
                if port_free[p] > s:
                    s = port_free[p]
            if best is None or s + dur + lat[ae] < best[0]:
                best = (s + dur + lat[ae], ae, dur, s, ports)
        assert best is not None
        _, e2, dur, s, ports = best
        if e2 is not eng:
            moved[i] = eng = e2
        b = s + dur
        for p in ports:
            port_free[p] = b
        eng_free[eng] = b
        eng_busy[eng.value] += dur
        start[i], busy_a[i], end[i] = s, b, b + lat[eng]
        deps.record(ins, b + lat[eng], b, on_tensor)
    tl.start, tl.busy, tl.end, tl.pieces = start, busy_a, end, pieces
    tl.engine_busy_ns = eng_busy
    tl.cores = 1 if cores is None else 2
    tl.elided = elided
    tl.moved = moved
    return tl


def _alternatives(ins: Instr) -> tuple[Instr, ...]:
    """The instruction as it would run on each engine it may be given (cost_rules.
    engine_choices; the recorded engine first), or just itself."""
    choices = engine_choices(ins)
    if choices is None:
        return (ins,)
    return tuple(ins if e is ins.engine else replace(ins, engine=e) for e in choices)


class _KindCost:
    """What the schedule derives from an instruction's :class:`~nkigen.sim.trace.Kind` (and the
    target and parameters): computed once per kind and schedule call."""

    __slots__ = ("eng", "ename", "dma", "rewrites", "on_tensor", "spec", "dur", "ports", "ck",
                 "bcast", "lat", "proto", "extra", "alts")

    def __init__(self, kind: Kind, t: Target, params: CostParams, lat: dict, issue: dict,
                 cycles_cache: dict, dma_cache: dict, use_ports: bool):
        proto = kind.prototype()
        eng = kind.engine
        self.eng = eng
        self.ename = eng.value
        self.proto = proto
        self.dma = eng is Engine.DMA
        # a DMA that writes new data into its tiles (a spill reload restores the same data)
        self.rewrites = self.dma and not proto.op.startswith("spill_")
        self.on_tensor = eng is Engine.TENSOR
        self.extra: dict[int, tuple] = {}
        self.spec: Any = None
        self.dur: Any = None
        self.ck: Any = None
        self.lat: Any = None
        self.ports: tuple[int, ...] = ()
        self.bcast = False
        self.alts: tuple | None = None
        if self.dma:
            dkey = (kind.op, kind.partitions, kind.nbytes, kind.chunk_bytes, kind.hbm_bytes,
                    kind.transpose)
            spec = dma_cache.get(dkey)
            if spec is None:
                spec = dma_cache[dkey] = dma_pieces(proto, t, params)
            self.spec = spec
            return
        self.lat = lat[eng]
        self.ck = _cycles_key(proto)
        self.bcast = self.on_tensor and kind.op.endswith("broadcast_to") and bool(kind.wmems)
        self.dur, self.ports = self.timing(proto, t, params, issue, cycles_cache, use_ports)
        self.alts = self.alt_timings(proto, t, params, issue, cycles_cache, use_ports, lat)

    def alt_timings(self, ins: Instr, t: Target, params: CostParams, issue: dict,
                    cycles_cache: dict, use_ports: bool, lat: dict) -> tuple | None:
        """(engine name, occupancy ns, ports, result latency ns) on each engine an
        engine-unspecified instruction may run on (:func:`_alternatives`), else None."""
        alts = _alternatives(ins)
        if len(alts) == 1:
            return None
        return tuple((a.engine.value, *self.timing(a, t, params, issue, cycles_cache,
                                                   use_ports), lat[a.engine]) for a in alts)

    def timing(self, ins: Instr, t: Target, params: CostParams, issue: dict,
               cycles_cache: dict, use_ports: bool) -> tuple[float, tuple[int, ...]]:
        """(occupancy ns, shared ports held) of an engine instruction timed as ``ins``."""
        key = _cycles_key(ins)
        dur = cycles_cache.get(key) if key is not None else None
        if dur is None:
            dur = instr_ns(ins, t, params) + issue[ins.engine]
            if key is not None:
                cycles_cache[key] = dur
        if self.on_tensor or not params.v2_shared_ports:
            ports: tuple[int, ...] = ()
        else:
            ports = _ports(ins) if use_ports else _ports_v3(ins, t)
        return dur, ports


def _promote(vals: dict) -> _Index:
    """A small access map that outgrew ``_SMALL`` boxes as a sorted :class:`_Index` (what
    ``_Index.put`` does at that size; ``longest`` from the boxes it holds, which gives the
    same overlap answers)."""
    ix = _Index()
    ix.vals = vals
    ix.longest = max(0, max(k[3] - k[2] for k in vals))
    ix._to_sorted()
    return ix


def _drop_small(vals: dict, box: tuple) -> None:
    """``_Index.drop_contained`` on the small form (a plain dict)."""
    if len(vals) == 1:
        k = next(iter(vals))
        if box[0] <= k[0] and k[1] <= box[1] and box[2] <= k[2] and k[3] <= box[3]:
            vals.clear()
        return
    p0, p1, b0, b1 = box
    for k in [k for k in vals if b0 <= k[2] < b1 and p0 <= k[0] and k[1] <= p1
              and k[3] <= b1]:
        del vals[k]


def _schedule_compact(instrs: Sequence[Instr], t: Target, params: CostParams) -> Timeline:
    """:func:`_schedule_instrs` on compact trace entries (nkigen.sim.trace): the same rules in
    the same order, with everything that depends only on an instruction's kind (cycle rule,
    DMA split, shared ports, cycles key) computed once per kind, and :meth:`_FastDeps.ready` /
    :meth:`_FastDeps.record` written out in the loop on the entries' regions (the same
    answers and state). An access map is a plain dict (box -> value) while it holds up to
    ``_SMALL`` boxes, then a sorted :class:`_Index`. Two updates are left out because no
    later query could see them: a read of a tensor nothing writes after it (``last_w``:
    tensor id -> index of its last write; reader entries are only consulted by later writes),
    and, in a small map, a read of a box the same instruction overwrites (the write drops it
    at once)."""
    tl = Timeline(instrs=instrs, target=t)
    entries = entries_of(instrs)
    n = len(entries)
    start, busy_a, end = (array("d", bytes(8 * n)) for _ in range(3))
    pieces = array("d")
    eng_free = {e.value: 0.0 for e in COMPUTE_ENGINES}     # (str keys: no Enum hash)
    eng_busy = {e.value: 0.0 for e in (*COMPUTE_ENGINES, Engine.DMA)}
    lat = {e: params.dep_latency(e) / t.clock_ghz(e) for e in COMPUTE_ENGINES}
    queues = _Queues(t.dma_queues)
    cores = physical_cores(entries, t)
    per_core = [(eng_free, queues), ({e.value: 0.0 for e in COMPUTE_ENGINES},
                                     _Queues(t.dma_queues, 1))]
    core = 0
    every = -1                                  # queue id "every queue" of the current core
    writers: dict[int, Any] = {}              # tensor id -> small dict or _Index
    readers: dict[int, Any] = {}
    cycles_cache: dict[tuple, float] = {}
    dma_cache: dict[tuple, tuple[int, float, float]] = {}
    use_ports = params.v2_shared_ports and t.nc_version < 3
    port_free = [0.0, 0.0]                      # [SBUF Vector/GpSimd, PSUM Vector/Scalar]
    issue = {e: params.issue_cycles / t.clock_ghz(e) for e in COMPUTE_ENGINES}
    psum_bcast: set[int] = set()                # broadcast_to results that stay in PSUM
    ver: dict[int, int] = {}                    # writes seen per tensor id (CSE)
    seen: dict[tuple, int] = {}                 # CSE key -> index of the first instance
    elided = array("b", bytes(n))
    moved: dict[int, Engine] = {}               # engine chosen for an engine-unspecified op
    costs: dict[Kind, _KindCost] = {}
    kcache: dict = {}
    cse, bcast_on = params.cse, params.psum_broadcast
    bank = hw.PSUM_BANK_BYTES
    nq = t.dma_queues
    qtail, qmaxgap = queues.tail, queues.maxgap
    # tensor id -> index of its last write
    last_w = {w[0]: i for i, e in enumerate(entries)
              for w in (e[3] if e.__class__ is tuple else e.writes)}
    wget, rget, lw_get, costs_get = writers.get, readers.get, last_w.get, costs.get
    small = _SMALL
    dma_busy = 0.0
    for i in range(n):
        if cores is not None and cores[i] != core:    # the other physical core's engines
            core = cores[i]
            eng_free, queues = per_core[core]
            qtail, qmaxgap, every = queues.tail, queues.maxgap, queues.every
        e = entries[i]
        if e.__class__ is not tuple:
            e = as_compact(e, kcache)
        kind = e[0]
        reads = e[2]
        writes = e[3]
        c = costs_get(kind)
        if c is None:
            c = costs[kind] = _KindCost(kind, t, params, lat, issue, cycles_cache, dma_cache,
                                        use_ports)
        on_tensor = c.on_tensor
        # ---- when its inputs are ready and its outputs free (_FastDeps.ready) ----
        ready = 0.0
        for r in reads:
            ws = wget(r[0])
            if ws is None:
                continue
            p0, p1, b0, b1 = r[2], r[3], r[4], r[5]
            if ws.__class__ is dict:
                for k, w in ws.items():
                    if b0 < k[3] and k[2] < b1 and k[0] < p1 and p0 < k[1]:
                        v = w[1] if (on_tensor and w[2]) else w[0]
                        if v > ready:
                            ready = v
            else:
                for vis, busy, te in ws.overlapping(p0, p1, b0, b1):
                    v = busy if (on_tensor and te) else vis
                    if v > ready:
                        ready = v
        for r in writes:
            tid = r[0]
            rs = rget(tid)
            ws = wget(tid) if r[1] is not _HBM else None
            if ws is None and rs is None:
                continue
            p0, p1, b0, b1 = r[2], r[3], r[4], r[5]
            if ws is not None:
                if ws.__class__ is dict:
                    for k, w in ws.items():
                        if b0 < k[3] and k[2] < b1 and k[0] < p1 and p0 < k[1]:
                            v = w[1] if (on_tensor and w[2]) else w[0]
                            if v > ready:
                                ready = v
                else:
                    for vis, busy, te in ws.overlapping(p0, p1, b0, b1):
                        v = busy if (on_tensor and te) else vis
                        if v > ready:
                            ready = v
            if rs is not None:
                if rs.__class__ is dict:
                    for k, v in rs.items():
                        if b0 < k[3] and k[2] < b1 and k[0] < p1 and p0 < k[1] and v > ready:
                            ready = v
                else:
                    for v in rs.overlapping(p0, p1, b0, b1):
                        if v > ready:
                            ready = v
        # ---- placement: (visible, busy end, written by TensorE) of this instruction ----
        if c.dma:
            k, occ, done = c.spec
            if k >= nq and queues.uniform:     # _Queues.place's uniform case, inlined
                if qmaxgap[0] >= occ:
                    s, j = queues._earliest(0, ready, occ)
                else:
                    s = qtail[0]
                    if ready > s:
                        s = ready
                    j = -1
                if j < 0 and s - qtail[0] <= _MIN_GAP_NS:
                    qtail[0] = s + occ
                else:
                    queues._take(0, s, occ, j)
                b, vis = s + occ, s + done
                pieces.extend((i, every, s, b, vis))
                start[i], busy_a[i], end[i] = s, b, vis
            else:
                s0, e_busy, vis = queues.issue(i, ready, occ, done, k, pieces)
                start[i], busy_a[i], end[i] = s0, e_busy, vis
            dma_busy += occ * k
            busy = vis
            te = False
            if c.rewrites:                      # a DMA write changes the tile too (CSE)
                for w in writes:
                    ver[w[0]] = ver.get(w[0], 0) + 1
        else:
            te = on_tensor
            ckey = None
            if cse and reads and c.ck is not None:
                for w in writes:
                    if w[0] in ver:
                        break
                else:
                    ckey = (c.ck, tuple([(r[0], ver.get(r[0], 0), r[2], r[3], r[4], r[5])
                                         for r in reads]),
                            tuple([(w[2], w[3], w[5] - w[4]) for w in writes]))
            for w in writes:
                ver[w[0]] = ver.get(w[0], 0) + 1
            first = None
            if ckey is not None:
                first = seen.get(ckey)
                if first is None:
                    seen[ckey] = i
            if first is not None:               # recomputation: the first result is reused
                vis = end[first]
                if ready > vis:
                    vis = ready
                start[i] = busy_a[i] = end[i] = busy = vis
                elided[i] = 1
            else:
                dur, ports, alts = c.dur, c.ports, c.alts
                if bcast_on:
                    if c.bcast:
                        w0 = writes[0]
                        if w0[5] - w0[4] <= bank:
                            psum_bcast.add(w0[0])
                        elif psum_bcast:
                            extra = sum(1 for r in reads if r[0] in psum_bcast)
                            if extra:
                                dur, ports, alts = _extra(c, extra, t, params, issue,
                                                          cycles_cache, use_ports, lat)
                    elif psum_bcast:
                        extra = sum(1 for r in reads if r[0] in psum_bcast)
                        if extra:
                            dur, ports, alts = _extra(c, extra, t, params, issue,
                                                      cycles_cache, use_ports, lat)
                if alts is None:
                    eng = c.ename
                    f = eng_free[eng]
                    s = f if f > ready else ready
                    for p in ports:
                        if port_free[p] > s:
                            s = port_free[p]
                    busy = s + dur
                    vis = busy + c.lat
                else:                           # engine-unspecified: first visible result
                    vis = -1.0
                    eng = c.ename
                    s = 0.0
                    for ae, ad, aports, alat in alts:
                        f = eng_free[ae]
                        s1 = f if f > ready else ready
                        for p in aports:
                            if port_free[p] > s1:
                                s1 = port_free[p]
                        v1 = s1 + ad + alat
                        if vis < 0.0 or v1 < vis:
                            vis, eng, s, dur, ports = v1, ae, s1, ad, aports
                    if eng != c.ename:
                        moved[i] = _ENGINE_OF[eng]
                    busy = s + dur
                for p in ports:
                    port_free[p] = busy
                eng_free[eng] = busy
                eng_busy[eng] += dur
                start[i], busy_a[i], end[i] = s, busy, vis
        # ---- what later instructions wait for (_FastDeps.record) ----
        for r in reads:
            tid = r[0]
            if lw_get(tid, -1) <= i:        # nothing writes it again: never consulted
                continue
            rs = rget(tid)
            if rs is None or rs.__class__ is dict:
                # a box this instruction also overwrites (an accumulation: acc += x) would be
                # dropped again by that write below: not entered (small maps only; an _Index
                # may merge its boxes when it grows, which would keep it)
                for w in writes:
                    if w[0] == tid and w[1] is not _HBM and w[2] <= r[2] and r[3] <= w[3] \
                            and w[4] <= r[4] and r[5] <= w[5]:
                        break
                else:
                    w = None
                if w is not None:
                    continue
            box = r[2:]
            if rs is None:
                readers[tid] = {box: busy}
            elif rs.__class__ is dict:
                old = rs.get(box)
                if old is not None:
                    if busy > old:
                        rs[box] = busy
                else:
                    rs[box] = busy
                    if len(rs) > small:
                        readers[tid] = _promote(rs)
            else:
                vals = rs.vals
                old = vals.get(box)
                if old is not None:
                    if busy > old:
                        vals[box] = busy
                else:
                    rs.put(box, busy, max)
        wval = (vis, busy, te)
        for r in writes:
            tid = r[0]
            box = r[2:]
            ws = wget(tid)
            hbm = r[1] is _HBM
            if ws is None:
                writers[tid] = {box: wval}
            elif ws.__class__ is dict:
                if hbm:
                    old = ws.get(box)
                    ws[box] = wval if old is None else _max_w(old, wval)
                elif len(ws) == 1 and box in ws:        # overwritten whole: the new write only
                    ws[box] = wval
                    rs = rget(tid)
                    if rs is not None:
                        if rs.__class__ is dict:
                            _drop_small(rs, box)
                        else:
                            rs.drop_contained(box)
                    continue
                else:
                    _drop_small(ws, box)
                    ws[box] = wval
                if len(ws) > small:
                    writers[tid] = _promote(ws)
            else:
                if not hbm:
                    ws.drop_contained(box)
                ws.put(box, wval, _max_w)
            if not hbm:
                rs = rget(tid)
                if rs is not None:
                    if rs.__class__ is dict:
                        _drop_small(rs, box)
                    else:
                        rs.drop_contained(box)
    eng_busy["dma"] += dma_busy
    tl.start, tl.busy, tl.end, tl.pieces = start, busy_a, end, pieces
    tl.engine_busy_ns = eng_busy
    tl.cores = 1 if cores is None else 2
    tl.elided = elided
    tl.moved = moved
    return tl


_ENGINE_OF = {e.value: e for e in COMPUTE_ENGINES}


def _extra(c: _KindCost, extra: int, t: Target, params: CostParams, issue: dict,
           cycles_cache: dict, use_ports: bool, lat: dict) -> tuple:
    """(occupancy, ports, alternatives) of a kind read with ``extra`` more PSUM-resident
    (broadcast) operands."""
    got = c.extra.get(extra)
    if got is None:
        ins = replace(c.proto, in_psum=c.proto.in_psum + extra)
        got = c.extra[extra] = (*c.timing(ins, t, params, issue, cycles_cache, use_ports),
                                c.alt_timings(ins, t, params, issue, cycles_cache, use_ports,
                                              lat))
    return got


def _cse_key(ins: Instr, ver: dict[int, int]) -> tuple | None:
    """What makes two engine instructions the same computation: op, cost-relevant attributes,
    and the exact regions read at the same write version. None when the instruction is not a
    pure function into fresh tiles (it reads nothing, or writes a tile written before, e.g. an
    accumulation)."""
    if not ins.reads or any(w.tensor in ver for w in ins.writes):
        return None
    ck = _cycles_key(ins)
    if ck is None:
        return None
    return (ck, tuple((r.tensor, ver.get(r.tensor, 0), r.p0, r.p1, r.b0, r.b1)
                      for r in ins.reads),
            tuple((w.p0, w.p1, w.b1 - w.b0) for w in ins.writes))


# --------------------------------------------------------------------------------------------
# 4. Report
# --------------------------------------------------------------------------------------------


def matmul_flops(ins: Instr) -> int:
    """Useful FLOPs of one nc_matmul: 2 * K * M * N (0 for transposes and other ops)."""
    if _norm_op(ins.op) not in ("nc_matmul", "matmul") or ins.transpose \
            or ins.attrs.get("is_transpose"):
        return 0
    k = ins.partitions or hw.PMAX
    if ins.attrs.get("double_row"):     # contraction over the partitions and the 2 (S29
        k *= 2                          # trainium2_arch "Double FP8 Matmul Performance")
    return 2 * k * (ins.stationary_free or hw.GEMM_STATIONARY_FMAX) * (ins.moving_free or ins.free)


def peak_flops_per_ns(target: Target, dtype: str) -> float:
    """TensorE peak FLOP/ns for an operand dtype: bf16 peak for 16-bit and tf32, 1/4 for fp32;
    fp8: the bf16 peak on NeuronCore-v2, twice it from NeuronCore-v3 (S29
    nki/guides/architecture/trainium2_arch.rst: "158 FP8, 79 BF16/FP16/TF32 and 20 FP32 dense
    TFLOPS", reached with perf_mode=double_row), so an fp8 matmul without double_row shows at
    most half the fp8 peak."""
    peak = target.tensor_peak_bf16_tflops * 1e3           # TFLOP/s -> FLOP/ns
    if dtype in _FP32:
        return peak / 4.0
    if dtype.startswith("float8") and target.nc_version >= 3:
        return 2.0 * peak
    return peak


def _union_ns(pieces: array) -> float:
    """Total time covered by at least one DMA piece (occupancy intervals)."""
    iv = sorted((pieces[j + 2], pieces[j + 3]) for j in range(0, len(pieces), 5))
    total, cur_s, cur_e = 0.0, -1.0, -1.0
    for s, e in iv:
        if s > cur_e:
            total += cur_e - cur_s
            cur_s, cur_e = s, e
        elif e > cur_e:
            cur_e = e
    return total + (cur_e - cur_s)


def _sums_instrs(instrs: Sequence[Instr], t: Target) -> tuple:
    """Per-engine and per-op counts, FLOPs, bytes, time at peak and spill bytes of a trace,
    one :class:`Instr` at a time (the reference for :func:`_sums_compact`)."""
    counts = {e.value: 0 for e in (*COMPUTE_ENGINES, Engine.DMA)}
    ops: dict[str, int] = {}
    flops = hbm = dma_bytes = 0
    peak_ns = 0.0
    for ins in instrs:
        counts[ins.engine.value] += 1
        op = _norm_op(ins.op)
        ops[op] = ops.get(op, 0) + 1
        if ins.engine is Engine.DMA:
            hbm += ins.hbm_bytes
            dma_bytes += ins.nbytes
        elif ins.engine is Engine.TENSOR:
            fl = matmul_flops(ins)
            if fl:
                flops += fl
                peak_ns += fl / peak_flops_per_ns(t, ins.dtype)
    spill = sum(i.nbytes for i in instrs if i.op.startswith("spill_"))
    return counts, ops, flops, hbm, dma_bytes, peak_ns, spill


def _sums_compact(instrs: Sequence[Instr], t: Target) -> tuple:
    """:func:`_sums_instrs` from the compact trace: instructions counted per kind, each kind's
    figures derived once; the time at peak is still added instruction by instruction in trace
    order (the same float rounding)."""
    cache: dict = {}
    kinds = [e[0] if e.__class__ is tuple else as_compact(e, cache)[0]
             for e in entries_of(instrs)]
    per_kind = Counter(kinds)
    counts = {e.value: 0 for e in (*COMPUTE_ENGINES, Engine.DMA)}
    ops: dict[str, int] = {}
    flops = hbm = dma_bytes = spill = 0
    peak: dict[Kind, float] = {}
    for kind, n in per_kind.items():
        counts[kind.engine.value] += n
        op = _norm_op(kind.op)
        ops[op] = ops.get(op, 0) + n
        if kind.op.startswith("spill_"):
            spill += kind.nbytes * n
        if kind.engine is Engine.DMA:
            hbm += kind.hbm_bytes * n
            dma_bytes += kind.nbytes * n
        elif kind.engine is Engine.TENSOR:
            fl = matmul_flops(kind.prototype())
            if fl:
                flops += fl * n
                peak[kind] = fl / peak_flops_per_ns(t, kind.dtype)
    peak_ns = 0.0
    if peak:
        get = peak.get
        for k in kinds:
            v = get(k)
            if v is not None:
                peak_ns += v
    return counts, ops, flops, hbm, dma_bytes, peak_ns, spill


def estimate(instrs: Sequence[Instr], target: Target | str,
             params: CostParams = DEFAULT_PARAMS, timeline: Timeline | None = None) -> Report:
    """Schedule a trace and summarise it; the Report keeps the Timeline in ``.timeline``.
    ``timeline``: the trace's schedule under ``params`` if already known (e.g. replayed by
    nkigen.sim.cost_replay), so it is not scheduled again."""
    t = hw.target(target) if isinstance(target, str) else target
    tl = schedule(instrs, t, params) if timeline is None else timeline
    lat = tl.latency_ns
    if mode.reference():
        counts, ops, flops, hbm, dma_bytes, peak_ns, spill = _sums_instrs(instrs, t)
    else:
        counts, ops, flops, hbm, dma_bytes, peak_ns, spill = _sums_compact(instrs, t)
    for i, e in tl.moved.items():               # counted on the engine the schedule chose
        counts[instrs[i].engine.value] -= 1
        counts[e.value] += 1
    busy: dict[str, float] = {}
    nc = tl.cores                               # utilisations are of all the physical cores
    for name, ns in tl.engine_busy_ns.items():
        denom = lat * nc * (t.dma_queues if name == "dma" else 1)
        busy[name] = min(1.0, ns / denom) if denom > 0 else 0.0
    lat_s = lat * 1e-9
    return Report(
        dma_active=_union_ns(tl.pieces) / lat if lat > 0 else 0.0,
        target=t.name,
        latency_us=lat / 1000.0,
        engine_busy=busy,
        hfu=min(1.0, peak_ns / (lat * nc)) if lat > 0 else 0.0,
        mbu=min(1.0, hbm / lat_s / (nc * t.hbm_gbps_per_core * 1e9)) if lat > 0 else 0.0,
        hbm_bytes=hbm,
        matmul_flops=flops,
        instr_counts=counts,
        op_counts=dict(sorted(ops.items())),
        dma_bytes=dma_bytes,
        launch_us=params.launch_us,
        spill_bytes=spill,
        band=BAND,
        timeline=tl,
    )
