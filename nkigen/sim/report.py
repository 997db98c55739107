"""Cost report stage: timeline (nkigen.sim.cost) -> Report (latency, utilisation, JSON, table).

A :class:`Report` summarises one cost-model estimate of a kernel run. It is an *estimate from the
nkigen cost model, not a measurement*; every serialised form says so in its ``model`` field.

How the figures are computed (all from the scheduled timeline):

* ``latency_us``: time at which the last instruction's result is visible (first start is t=0).
* ``engine_busy[e]``: sum of engine ``e``'s instruction occupancy / latency, in [0, 1]. For
  ``"dma"`` the busy time of all queue pieces is divided by ``queues * latency`` (average queue
  utilisation); ``dma_active`` is the fraction of the latency during which at least one queue
  is busy (what a profiler's "DMA active" shows). An LNC=2 launch (two physical cores, see
  ``nkigen.sim.cost.physical_cores``) divides by both cores' engines and queues, and ``hfu`` /
  ``mbu`` by both cores' peaks.
* ``hfu``: TensorE hardware FLOP utilisation = sum over issued ``nc_matmul`` of
  ``2 * K * M * N / peak_flops(dtype)`` divided by latency, where K = partitions (contraction),
  M = stationary free size, N = moving free size; ``peak_flops`` is the target's bf16 peak for
  8/16-bit and tf32 operands and a quarter of it for fp32 (nki-reference.md 4.1/4.2). Transposes
  (``nc_transpose``, ``is_transpose``) are not counted as useful FLOPs.
* ``mbu``: HBM bytes moved by DMAs / latency / the target's per-core HBM bandwidth (hw.py).
* ``device_latency_us``: ``latency_us`` + ``launch_us``, the fixed NEFF start-up/tear-down time
  (calibration parameter ``CostParams.launch_us``); what a device benchmark reports.
* ``band``: the model's calibration band (nkigen.sim.calibration.BAND): printed latencies carry
  it ("12.3 us model, +-19 %").
* ``spill_bytes``: SBUF spill + reload DMA traffic the compiler would add (nkigen.sim.spill).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

MODEL_NOTE = "estimate from the nkigen cost model, not a measurement"


@dataclass
class Report:
    """Cost-model estimate of one kernel run on one target."""

    target: str
    latency_us: float
    engine_busy: dict[str, float]
    hfu: float
    mbu: float
    hbm_bytes: int
    matmul_flops: int
    instr_counts: dict[str, int]
    op_counts: dict[str, int] = field(default_factory=dict)
    dma_bytes: int = 0
    dma_active: float = 0.0
    launch_us: float = 0.0
    spill_bytes: int = 0
    band: float = 0.0
    model: str = MODEL_NOTE
    timeline: Any = field(default=None, repr=False, compare=False)   # cost.Timeline, not serialised

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000.0

    @property
    def device_latency_us(self) -> float:
        return self.latency_us + self.launch_us

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) if self.timeline is None else asdict(_without_timeline(self))
        d.pop("timeline", None)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def __str__(self) -> str:
        rows = [
            ("target", self.target),
            ("latency", f"{self.latency_us:,.2f} us model, +-{round(100 * self.band):d} % "
                        f"(kernel timeline)"),
            ("device latency", f"{self.device_latency_us:,.2f} us model, "
                               f"+-{round(100 * self.band):d} % (+ {self.launch_us:g} us launch)"),
            ("HFU (TensorE)", f"{100 * self.hfu:.2f} %"),
            ("MBU (HBM)", f"{100 * self.mbu:.2f} %"),
            ("HBM bytes", f"{self.hbm_bytes:,}"),
            ("DMA bytes", f"{self.dma_bytes:,}"),
            ("DMA active", f"{100 * self.dma_active:.2f} % (any queue busy)"),
            ("matmul FLOPs", f"{self.matmul_flops:,}"),
        ]
        if self.spill_bytes:
            rows.append(("SBUF spill", f"{self.spill_bytes:,} B spill/reload DMA traffic"))
        order = ("tensor", "vector", "scalar", "gpsimd", "dma")
        for eng in sorted(self.engine_busy, key=lambda e: (order.index(e) if e in order else 9, e)):
            n = self.instr_counts.get(eng, 0)
            rows.append((f"{eng} busy", f"{100 * self.engine_busy[eng]:6.2f} %  ({n:,} instr)"))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        lines.append(f"({self.model})")
        return "\n".join(lines)


def _without_timeline(r: Report) -> Report:
    from dataclasses import replace

    return replace(r, timeline=None)
