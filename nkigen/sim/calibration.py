"""Cost-model calibration band and bound explanation: Report -> words a user can act on.

Stage: cost (after nkigen.sim.cost.estimate). Two things:

* :data:`BAND` -- the model's calibration band, a relative error every printed latency carries
  ("12.3 us model, +-15 %"). It is the worst |model / published - 1| over the calibration
  anchors of benchmarks/bench_calibration.py (published trn1 latencies of the NKI matmul and
  fused-mamba tutorials, our own kernels with their structure), rounded up to whole percent, at
  the shipped parameters. It says how far the model has been seen to miss on kernels whose
  published timing we know; kernels unlike any anchor may miss by more.
* :func:`explain_bound` -- which engine or DMA queue bounds the timeline, its utilisation, and
  the kernel source lines whose instructions occupy it most (``nkigen sim --explain-cost``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nkigen.hw import Engine

# Worst |ratio - 1| of `python benchmarks/bench_calibration.py` at the shipped CostParams
# (see the module docstring): 0.181, the fused-mamba v2 at seq_len 5120 (model 0.819 of the
# published 23.7 ms), rounded up. All 24 anchors are within 20 %, 17 within 10 %; the spilling
# v2 s7168 / s8192 are at 0.879 / 1.021 with the spill planner (nkigen.sim.spill). Update
# together with the parameters.
BAND = 0.19


def format_latency(us: float, band: float = BAND) -> str:
    """``'12.30 us model, +-19 %'`` (ms above 10 000 us)."""
    pm = f"+-{round(100 * band):d} %"
    if us >= 10_000:
        return f"{us / 1000:,.3f} ms model, {pm}"
    return f"{us:,.2f} us model, {pm}"


@dataclass(frozen=True)
class LineCost:
    """Busy time of one kernel source line's instructions on the bounding resource."""

    file: str
    line: int
    op: str
    count: int
    busy_us: float
    share: float          # of the resource's busy time


@dataclass(frozen=True)
class Bound:
    """What limits a modelled kernel."""

    resource: str         # "vector", "tensor", ..., or "dma queue 3" / "dma queues"
    utilisation: float    # busy time / latency of that resource
    lines: tuple[LineCost, ...]
    spill_bytes: int

    @property
    def headline(self) -> str:
        s = f"{self.resource} {100 * self.utilisation:.0f} % busy"
        if self.lines:
            top = self.lines[0]
            s += f"; top line {top.line} ({top.op}, {100 * top.share:.0f} %)"
        if self.spill_bytes:
            s += f"; spill {self.spill_bytes / 1e6:.1f} MB"
        return s

    def __str__(self) -> str:
        rows = [f"bound: {self.resource}, {100 * self.utilisation:.1f} % busy over the latency"]
        if self.spill_bytes:
            rows.append(f"SBUF spill/reload traffic: {self.spill_bytes:,} B (compiler spills "
                        "modelled as DMA, see nkigen.sim.state)")
        if self.lines:
            rows.append(f"instruction lines occupying {self.resource} most:")
            for lc in self.lines:
                where = f"{lc.file}:{lc.line}" if lc.file else f"line {lc.line}"
                rows.append(f"  {100 * lc.share:5.1f} %  {lc.busy_us:12,.2f} us  "
                            f"{lc.count:7,d} x {lc.op:<22} {where}")
        return "\n".join(rows)


def explain_bound(report, top: int = 5) -> Bound:
    """The busiest compute engine or DMA queue of a Report's timeline and its top lines."""
    tl = report.timeline
    if tl is None or not len(tl.end):
        return Bound("nothing", 0.0, (), 0)
    lat = tl.latency_ns or 1.0
    instrs = tl.instrs
    busy: dict[str, float] = {}
    per_line: dict[str, dict[tuple, list]] = {}
    elided = tl.elided if len(tl.elided) == len(instrs) else None
    for i, ins in enumerate(instrs):
        if ins.engine is Engine.DMA or (elided is not None and elided[i]):
            continue
        d = tl.busy[i] - tl.start[i]
        name = tl.engine_at(i).value
        busy[name] = busy.get(name, 0.0) + d
        _add(per_line.setdefault(name, {}), ins, d)
    qbusy: dict[int, float] = {}
    qlines: dict[int, dict[tuple, list]] = {}
    for i, q, s, b, _v in tl.dma_pieces():
        qbusy[q] = qbusy.get(q, 0.0) + (b - s)
        _add(qlines.setdefault(q, {}), instrs[i], b - s)
    best_name, best = "", -1.0
    nc = tl.cores            # an engine's busy time sums its instances on every physical core
    for name, b in busy.items():
        if b / nc > best:
            best_name, best = name, b / nc
    lines = per_line.get(best_name, {})
    if qbusy:
        q = max(qbusy, key=lambda k: (qbusy[k], -k))
        if qbusy[q] > best:
            best, lines = qbusy[q], qlines[q]
            same = sum(1 for v in qbusy.values() if abs(v - qbusy[q]) <= 1e-6 * qbusy[q])
            best_name = "dma queues (all equally)" if same == tl.target.dma_queues * tl.cores \
                else f"dma queue {q}"
    total = sum(v[1] for v in lines.values()) or 1.0
    ranked = sorted(lines.items(), key=lambda kv: (-kv[1][1], kv[0]))[:top]
    out = tuple(LineCost(f, ln, op, v[0], v[1] / 1000, v[1] / total)
                for (f, ln, op), v in ranked)
    spill = sum(ins.nbytes for ins in instrs if ins.op.startswith("spill_"))
    return Bound(best_name, min(1.0, best / lat), out, spill)


def _add(d: dict[tuple, list], ins, ns: float) -> None:
    k = (ins.file, ins.line, ins.op.rsplit(".", 1)[-1])
    v = d.get(k)
    if v is None:
        d[k] = [1, ns]
    else:
        v[0] += 1
        v[1] += ns
