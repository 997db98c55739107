"""Cost-model replay: schedule a trace once, then re-time it quickly under other parameters.

Stage: cost (calibration helper; benchmarks/bench_calibration.py fits with it). Everything
:func:`nkigen.sim.cost.schedule` derives from the trace's *structure* -- which earlier
instructions each one waits for (RAW/WAR/WAW over regions), which recomputations are elided
(CSE), which reads are PSUM-resident broadcasts, which shared ports an engine instruction holds --
does not depend on the numeric parameters. :func:`record` derives it once; :meth:`Recording.
timeline` then only redoes the arithmetic (durations, engine/port/queue availability, DMA queue
placement), for any ``CostParams`` whose structural switches (``cse``, ``psum_broadcast``,
``v2_shared_ports``) match the recording and any target of the same NeuronCore version. The
result equals ``schedule(instrs, target, params)`` exactly (tests/test_cost_replay.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from nkigen import hw
from nkigen.hw import Engine, Target
from nkigen.sim.cost import (
    COMPUTE_ENGINES,
    DEFAULT_PARAMS,
    CostParams,
    Timeline,
    _alternatives,
    _cse_key,
    _cycles_key,
    _Index,
    _ports,
    _ports_v3,
    _Queues,
    dma_pieces,
    instr_ns,
    physical_cores,
)
from nkigen.sim.trace import Instr, Mem

_DMA, _ENG, _ELIDED = 0, 1, 2


def _wcombine(a: tuple, b: tuple) -> tuple:
    return (a[0] | b[0], a[1] and b[1])


def _rcombine(a: frozenset, b: frozenset) -> frozenset:
    return a | b


@dataclass
class Recording:
    """The structure of one trace's schedule (see the module docstring)."""

    instrs: Sequence[Instr]
    kinds: bytes                     # _DMA / _ENG / _ELIDED per instruction
    deps: list[tuple[int, ...]]      # per instruction: 2 * j + (1: writer-busy/reader, 0: visible)
    costed: list[Instr]              # the instruction as timed (PSUM-broadcast reads applied)
    ports: list[tuple[int, ...]]     # shared ports held (engine instructions)
    first: array                     # elided: index of the first instance, else -1
    structure: tuple                 # (cse, psum_broadcast, v2_shared_ports, nc_version)
    # engine-unspecified instructions: (instruction on that engine, ports) per candidate engine
    # (cost.schedule gives each to the one whose result is visible first)
    alts: dict[int, tuple[tuple[Instr, tuple[int, ...]], ...]] = field(default_factory=dict)

    def timeline(self, target: Target | str, params: CostParams = DEFAULT_PARAMS) -> Timeline:
        """The schedule's Timeline under ``params`` (same as cost.schedule)."""
        t = hw.target(target) if isinstance(target, str) else target
        if _structure(t, params) != self.structure:
            raise ValueError("replay needs the recording's cse/psum_broadcast/v2_shared_ports "
                             "and NeuronCore version")
        instrs, kinds, deps, costed, ports = (self.instrs, self.kinds, self.deps, self.costed,
                                              self.ports)
        n = len(instrs)
        start, busy_a, end = (array("d", bytes(8 * n)) for _ in range(3))
        wb = array("d", bytes(8 * n))             # writer-busy / reader value
        vals = (end, wb)
        pieces = array("d")
        eng_free = {e: 0.0 for e in COMPUTE_ENGINES}
        eng_busy = {e.value: 0.0 for e in (*COMPUTE_ENGINES, Engine.DMA)}
        lat = {e: params.dep_latency(e) / t.clock_ghz(e) for e in COMPUTE_ENGINES}
        issue = {e: params.issue_cycles / t.clock_ghz(e) for e in COMPUTE_ENGINES}
        queues = _Queues(t.dma_queues)
        cores = physical_cores(instrs, t)
        per_core = [(eng_free, queues), ({e: 0.0 for e in COMPUTE_ENGINES},
                                         _Queues(t.dma_queues, 1))]
        core = 0
        port_free = [0.0, 0.0]
        cycles_cache: dict = {}
        dma_cache: dict = {}
        first = self.first
        moved: dict[int, Engine] = {}
        for i in range(n):
            if cores is not None and cores[i] != core:    # the other physical core
                core = cores[i]
                eng_free, queues = per_core[core]
            ready = 0.0
            for d in deps[i]:
                v = vals[d & 1][d >> 1]
                if v > ready:
                    ready = v
            k = kinds[i]
            ins = instrs[i]
            if k == _ELIDED:
                j = first[i]
                v = ready if ready > end[j] else end[j]
                start[i] = busy_a[i] = end[i] = wb[i] = v
                continue
            if k == _DMA:
                dkey = (ins.op, ins.partitions, ins.nbytes, ins.chunk_bytes, ins.hbm_bytes,
                        ins.transpose)
                spec = dma_cache.get(dkey)
                if spec is None:
                    spec = dma_cache[dkey] = dma_pieces(ins, t, params)
                kq, occ, done = spec
                s0, e_busy, e_vis = queues.issue(i, ready, occ, done, kq, pieces)
                eng_busy["dma"] += occ * kq
                start[i], busy_a[i], end[i], wb[i] = s0, e_busy, e_vis, e_vis
                continue
            c = costed[i]
            eng = c.engine
            best = None
            for a, aps in self.alts.get(i, ((c, ports[i]),)):
                ae = a.engine
                key = _cycles_key(a)
                dur = cycles_cache.get(key) if key is not None else None
                if dur is None:
                    dur = instr_ns(a, t, params) + issue[ae]
                    if key is not None:
                        cycles_cache[key] = dur
                f = eng_free[ae]
                s = f if f > ready else ready
                for p in aps:
                    if port_free[p] > s:
                        s = port_free[p]
                if best is None or s + dur + lat[ae] < best[0]:
                    best = (s + dur + lat[ae], ae, dur, s, aps)
            assert best is not None
            _, ae, dur, s, ps = best
            if ae is not eng:
                moved[i] = eng = ae
            b = s + dur
            for p in ps:
                port_free[p] = b
            eng_free[eng] = b
            eng_busy[eng.value] += dur
            start[i], busy_a[i], end[i], wb[i] = s, b, b + lat[eng], b
        tl = Timeline(instrs=instrs, target=t)
        tl.start, tl.busy, tl.end, tl.pieces = start, busy_a, end, pieces
        tl.engine_busy_ns = eng_busy
        tl.cores = 1 if cores is None else 2
        tl.elided = array("b", (1 if k == _ELIDED else 0 for k in kinds))
        tl.moved = moved
        return tl


def _structure(t: Target, p: CostParams) -> tuple:
    return (p.cse, p.psum_broadcast, p.v2_shared_ports, t.nc_version < 3)


def record(instrs: Sequence[Instr], target: Target | str,
           params: CostParams = DEFAULT_PARAMS) -> Recording:
    """Derive the parameter-independent structure of ``schedule(instrs, target, params)``."""
    t = hw.target(target) if isinstance(target, str) else target
    n = len(instrs)
    kinds = bytearray(n)
    deps: list[tuple[int, ...]] = []
    costed: list = [None] * n
    ports: list = [()] * n
    first = array("q", [-1]) * n
    writers: dict[int, _Index] = {}
    readers: dict[int, _Index] = {}
    use_ports = params.v2_shared_ports and t.nc_version < 3
    psum_bcast: set[int] = set()
    ver: dict[int, int] = {}
    seen: dict[tuple, int] = {}
    alts: dict[int, tuple] = {}
    for i, ins in enumerate(instrs):
        eng = ins.engine
        on_tensor = eng is Engine.TENSOR
        dset: set[int] = set()
        for r in ins.reads:
            ws = writers.get(r.tensor)
            if ws is not None:
                for js, te in ws.overlapping(r.p0, r.p1, r.b0, r.b1):
                    code = 1 if (on_tensor and te) else 0
                    dset.update(2 * j + code for j in js)
        for r in ins.writes:
            ws = writers.get(r.tensor) if r.mem is not Mem.HBM else None
            if ws is not None:
                for js, te in ws.overlapping(r.p0, r.p1, r.b0, r.b1):
                    code = 1 if (on_tensor and te) else 0
                    dset.update(2 * j + code for j in js)
            rs = readers.get(r.tensor)
            if rs is not None:
                for js in rs.overlapping(r.p0, r.p1, r.b0, r.b1):
                    dset.update(2 * j + 1 for j in js)
        deps.append(tuple(sorted(dset)))
        kind = _DMA if eng is Engine.DMA else _ENG
        if eng is Engine.DMA:
            if not ins.op.startswith("spill_"):   # a DMA write changes the tile too (CSE);
                for w in ins.writes:                # a spill reload restores the same data
                    ver[w.tensor] = ver.get(w.tensor, 0) + 1
        else:
            ckey = _cse_key(ins, ver) if params.cse else None
            for w in ins.writes:
                ver[w.tensor] = ver.get(w.tensor, 0) + 1
            j0 = seen.get(ckey) if ckey is not None else None
            if j0 is not None:
                kind = _ELIDED
                first[i] = j0
            else:
                if ckey is not None:
                    seen[ckey] = i
                c = ins
                if params.psum_broadcast:
                    if on_tensor and ins.op.endswith("broadcast_to") and ins.writes and \
                            ins.writes[0].b1 - ins.writes[0].b0 <= hw.PSUM_BANK_BYTES:
                        psum_bcast.add(ins.writes[0].tensor)
                    elif psum_bcast:
                        extra = sum(1 for r in ins.reads if r.tensor in psum_bcast)
                        if extra:
                            c = replace(ins, in_psum=ins.in_psum + extra)
                costed[i] = c
                if not on_tensor and params.v2_shared_ports:
                    ports[i] = _ports(c) if use_ports else _ports_v3(c, t)
                cands = _alternatives(c)
                if len(cands) > 1:
                    alts[i] = tuple((a, _ports(a) if use_ports else _ports_v3(a, t))
                                    if params.v2_shared_ports else (a, ()) for a in cands)
        kinds[i] = kind
        # record, as _Deps.record does, with instruction indices as values
        te_w = on_tensor if kind != _DMA else False
        mine = frozenset((i,))
        for r in ins.reads:
            rs = readers.get(r.tensor)
            if rs is None:
                rs = readers[r.tensor] = _Index()
            rs.put((r.p0, r.p1, r.b0, r.b1), mine, _rcombine)
        for r in ins.writes:
            box = (r.p0, r.p1, r.b0, r.b1)
            ws = writers.get(r.tensor)
            if ws is None:
                ws = writers[r.tensor] = _Index()
            elif r.mem is not Mem.HBM:
                ws.drop_contained(box)
            ws.put(box, (mine, te_w), _wcombine)
            rs = readers.get(r.tensor)
            if rs is not None and r.mem is not Mem.HBM:
                rs.drop_contained(box)
    return Recording(instrs, bytes(kinds), deps, costed, ports, first,
                     _structure(t, params), alts)
