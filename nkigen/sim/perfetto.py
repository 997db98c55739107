"""Trace export stage: scheduled timeline (nkigen.sim.cost) -> Chrome/Perfetto trace JSON.

Open the file in https://ui.perfetto.dev or chrome://tracing. One process ("nkigen cost model
<target>"), one thread track per compute engine and one per DMA queue; every instruction (for a
DMA, every queue piece) is a complete event (``"ph": "X"``) named by its op, lasting its
occupancy, with the source line, shape, dtype and bytes in ``args``. Times are microseconds as the
format requires. Output is deterministic: events sorted by (track, start, instruction index),
keys sorted, no timestamps of the run itself.

Size guard: a DMA split over all queues is one event per queue. When a trace would hold more than
``max_dma_events`` DMA events, such DMAs are drawn once on an extra "dma (all queues)" track
instead (args.queues says how many queues ran it); DMAs on fewer queues keep their queue tracks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nkigen.hw import Engine
from nkigen.sim.cost import COMPUTE_ENGINES, Timeline
from nkigen.sim.report import MODEL_NOTE, Report
from nkigen.sim.trace import Instr

_PID = 1
_DMA_TID0 = 100     # queue q is tid 100 + q; engines are 1..4
_DMA_ALL_TID = 99   # collapsed DMAs that ran on every queue
MAX_DMA_EVENTS = 250_000


def _engine_tid(e: Engine) -> int:
    return COMPUTE_ENGINES.index(e) + 1


def _args(ins: Instr, i: int) -> dict[str, Any]:
    a: dict[str, Any] = {"index": i, "line": ins.line, "shape": [ins.partitions, ins.free],
                         "dtype": ins.dtype}
    src = getattr(ins, "file", "")
    if src:
        a["file"] = src
    if ins.engine is Engine.DMA:
        a.update(bytes=ins.nbytes, hbm_bytes=ins.hbm_bytes, chunk_bytes=ins.chunk_bytes)
    elif ins.engine is Engine.TENSOR:
        a.update(stationary_free=ins.stationary_free, moving_free=ins.moving_free)
    if ins.out_dtype != ins.dtype:
        a["out_dtype"] = ins.out_dtype
    if ins.attrs:
        a["attrs"] = {str(k): str(v) for k, v in ins.attrs.items()}   # json sorts keys
    return a


def trace_events(timeline: Timeline, max_dma_events: int = MAX_DMA_EVENTS
                 ) -> list[dict[str, Any]]:
    """The trace events (metadata first) of a scheduled timeline."""
    tl = timeline
    nq = tl.target.dma_queues
    nq_all = nq * tl.cores                      # queue ids of every physical core
    p = tl.pieces
    n_events = sum(nq if p[j + 1] < 0 else 1 for j in range(0, len(p), 5))
    collapse = n_events > max_dma_events
    meta: list[dict[str, Any]] = [
        {"ph": "M", "pid": _PID, "tid": 0, "name": "process_name",
         "args": {"name": f"nkigen cost model {tl.target.name} ({MODEL_NOTE})"}},
    ]
    for e in COMPUTE_ENGINES:
        tid = _engine_tid(e)
        meta.append({"ph": "M", "pid": _PID, "tid": tid, "name": "thread_name",
                     "args": {"name": f"{e.value} engine"}})
        meta.append({"ph": "M", "pid": _PID, "tid": tid, "name": "thread_sort_index",
                     "args": {"sort_index": tid}})
    if collapse:
        meta.append({"ph": "M", "pid": _PID, "tid": _DMA_ALL_TID, "name": "thread_name",
                     "args": {"name": f"dma (all {nq} queues)"}})
        meta.append({"ph": "M", "pid": _PID, "tid": _DMA_ALL_TID, "name": "thread_sort_index",
                     "args": {"sort_index": _DMA_ALL_TID}})
    for q in range(nq_all):
        meta.append({"ph": "M", "pid": _PID, "tid": _DMA_TID0 + q, "name": "thread_name",
                     "args": {"name": f"dma queue {q}"}})
        meta.append({"ph": "M", "pid": _PID, "tid": _DMA_TID0 + q, "name": "thread_sort_index",
                     "args": {"sort_index": _DMA_TID0 + q}})
    events: list[tuple[int, float, int, dict[str, Any]]] = []
    instrs = tl.instrs
    elided = tl.elided if len(tl.elided) == len(instrs) else None
    for i, ins in enumerate(instrs):
        if ins.engine is Engine.DMA:
            continue
        eng = tl.engine_at(i)
        tid = _engine_tid(eng)
        s, b = tl.start[i], tl.busy[i]
        args = _args(ins, i)
        if eng is not ins.engine:
            args["engine"] = f"{eng.value} (no engine given; the cost model's choice)"
        if elided is not None and elided[i]:
            args["elided"] = "recomputation of an earlier instruction (cost model CSE)"
        events.append((tid, s, i, {"ph": "X", "pid": _PID, "tid": tid, "name": ins.op,
                                   "ts": round(s / 1000.0, 6), "dur": round((b - s) / 1000.0, 6),
                                   "args": args}))
    for j in range(0, len(p), 5):
        i, q, s, b, v = int(p[j]), int(p[j + 1]), p[j + 2], p[j + 3], p[j + 4]
        ins = instrs[i]
        if q < 0 and collapse:
            placed = [(_DMA_ALL_TID, {"queues": nq})]
        elif q < 0:                             # every queue of physical core -1 - q
            placed = [(_DMA_TID0 + qq, {"queue": qq})
                      for qq in range((-1 - q) * nq, -q * nq)]
        else:
            placed = [(_DMA_TID0 + q, {"queue": q})]
        for tid, extra in placed:
            args = _args(ins, i)
            args.update(extra)
            args["done_us"] = round(v / 1000.0, 6)
            events.append((tid, s, i, {"ph": "X", "pid": _PID, "tid": tid, "name": ins.op,
                                       "ts": round(s / 1000.0, 6),
                                       "dur": round((b - s) / 1000.0, 6), "args": args}))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return meta + [e[3] for e in events]


def write_trace(timeline: Timeline | Report, path: str | Path,
                max_dma_events: int = MAX_DMA_EVENTS) -> Path:
    """Write the Chrome/Perfetto trace JSON of a timeline (or of a Report's timeline)."""
    tl = timeline.timeline if isinstance(timeline, Report) else timeline
    if tl is None:
        raise ValueError("this report carries no timeline; estimate it with nkigen.sim.cost")
    out = Path(path)
    doc = {"displayTimeUnit": "ns", "traceEvents": trace_events(tl, max_dma_events),
           "otherData": {"model": MODEL_NOTE, "target": tl.target.name}}
    out.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    return out
