"""Cost model stage: simulator trace (list[Instr]) -> instruction times -> timeline -> Report.

Three steps, each a function:

1. :func:`instr_cycles` -- engine cycles of one compute instruction from the published rules
   (nki-reference.md 2.3 "documented cost" column, 4.2 and 9.10), one rule per op in the
   :data:`RULES` registry; :func:`dma_pieces` -- how a DMA splits over the 16 queues and how long
   each piece occupies its queue.
2. :func:`schedule` -- a dependency-aware list schedule. Compute engines run their instructions in
   program order; each DMA piece goes to the queue where it can start earliest (a queue runs one
   piece at a time and back-fills idle gaps, see :class:`_Queues`). An instruction starts when
   its engine/queue is free and the last writers of what it reads (RAW) and the readers/writers
   of what it overwrites (WAR/WAW) are done (see :class:`_Deps`), plus a per-engine result
   latency for consumers (``CostParams.dep_latency_cycles``).
3. :func:`estimate` -- the timeline summarised as a :class:`~nkigen.sim.report.Report`.

Every number is either in ``nkigen.hw`` (hardware constants with sources) or in
:class:`CostParams` below, where each field names its source or says "calibration". The
calibration parameters are global (one value for every kernel); benchmarks/bench_sim_calibration.py
prints how the model compares with the published matmul tutorial latencies.

DMA model (per piece on one queue)::

    rate      = min(queue_bw, hbm_bw / queues if HBM is touched) * eff(chunk) * transpose_factor
    occupancy = max(piece_bytes / rate, dma_fixed_ns / dma_inflight)     # queue busy time
    done      = start + piece_bytes / rate + dma_fixed_ns                 # result visible

``eff(chunk)`` is 1.0 at or above ``dma_sat_chunk`` (4 KiB, the documented saturation size),
``dma_small_chunk_eff`` at or below ``dma_min_chunk`` (1 KiB, the largest chunk of the DMA-bound
calibration anchors), linear in log2(chunk) between (so the documented 2 KiB "minimum" sits at
0.625). A DMA of P partitions splits into ``min(queues, P)`` equal pieces (the docs' example: a
128-partition load becomes 16 transfers of 8 partitions). The fixed cost is latency: a queue keeps
``dma_inflight`` transfers in flight, so back-to-back DMAs hide it, dependent ones do not.

Known limits (what the model does not see): buffers are as many as the simulator allocates (it
gives each allocation a fresh id, so loads may run arbitrarily far ahead of their consumers); no
PSUM bank or SBUF port arbitration beyond the NC-v2 shared ports; no per-instruction
semaphore/dispatch overhead; HBM regions are bounding byte ranges.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nkigen import hw
from nkigen.hw import Engine, Target
from nkigen.sim.report import Report
from nkigen.sim.trace import Instr, Mem

COMPUTE_ENGINES = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)


@dataclass(frozen=True)
class CostParams:
    """Model parameters that are not plain hardware constants. One set for every kernel."""

    min_ii: int = hw.MIN_II                     # S25 isa docs: minimum initiation interval
    gpsimd_start: int = hw.GPSIMD_START         # S25 isa docs: iota / affine_select start-up
    min_ii_dynamic: int = 600                   # S25 isa docs: tensor_copy_dynamic_* floor
    # Cycles after an instruction's occupancy before a *dependent* instruction may use its result.
    # ScalarE: S25 perf guide Opt #5a observed 264 cycles back-to-back for dependent 1-element
    # ops = MIN_II (64) + 200 [derived]. Vector/GpSimd: the arch guide's static ~100-cycle overhead.
    # TensorE: MM_INIT_LATENCY = 64 cycles (S25 arch guide); TensorE->TensorE dependencies (PSUM
    # accumulation groups) are ordered by the engine itself and pay no latency.
    dep_latency_cycles: tuple[tuple[Engine, int], ...] = (
        (Engine.SCALAR, 200),
        (Engine.VECTOR, hw.STATIC_OVERHEAD),
        (Engine.GPSIMD, hw.STATIC_OVERHEAD),
        (Engine.TENSOR, 64),
    )
    # Chunk sizes of the efficiency curve. Saturation: S25 arch/perf guide (>= 4 KiB per
    # partition). Flat region: up to 1 KiB, the largest chunk of the DMA-bound calibration
    # anchors below (the guide calls 2 KiB the minimum to aim for; the log2 ramp puts it at 0.625).
    dma_min_chunk: int = 1024
    dma_sat_chunk: int = 4096
    # Calibration: efficiency of DMA descriptors with contiguous chunks <= 1 KiB. Fitted once to
    # the published trn1 matmul tutorial (nki-reference.md 5.2): its tiled, hoisted and
    # free-dim-blocked versions (256 B and 1 KiB chunks, DMA-bound) move 5.37 / 4.36 / 2.22 GB in
    # 51.80 / 42.96 / 22.07 ms = 104 / 102 / 100 GB/s, i.e. 0.253 / 0.248 / 0.245 of the modelled
    # peak 16 x min(27 GiB/s, 410/16 GB/s) = 410 GB/s [derived]; 256 B vs 1 KiB chunks make no
    # visible difference there, hence one flat value (0.25) for chunks up to 1 KiB.
    dma_small_chunk_eff: float = 0.25
    # Calibration: transfers a queue keeps in flight; bounds the issue rate of tiny DMAs to
    # dma_fixed_ns / dma_inflight per queue. No published figure; 4 is a labelled guess.
    dma_inflight: int = 4
    dma_transpose_hbm_factor: float = 0.9       # SH trainium2_arch: up to 90 % of copy (HBM->SBUF)
    dma_transpose_sbuf_factor: float = 0.5      # SH trainium2_arch: up to 50 % (SBUF->SBUF)
    # NC-v2 shared ports (S25 arch guide): VectorE and GpSimd cannot access SBUF at the same time,
    # VectorE and ScalarE cannot access PSUM at the same time (lifted on NC-v3, SH trainium2_arch).
    v2_shared_ports: bool = True

    def dep_latency(self, engine: Engine) -> int:
        for e, c in self.dep_latency_cycles:
            if e is engine:
                return c
        return 0


DEFAULT_PARAMS = CostParams()

# --------------------------------------------------------------------------------------------
# 1. Per-instruction cycle rules (engine cycles). N = instr.free (elements per partition).
# --------------------------------------------------------------------------------------------

Rule = Callable[[Instr, Target, CostParams], float]
RULES: dict[str, Rule] = {}

_16BIT = frozenset({"bfloat16", "float16"})
_FAST_MM = frozenset({"bfloat16", "float16", "tfloat32", "float8_e4m3", "float8_e5m2",
                      "float8_e4m3fn", "float8"})
_FP32 = frozenset({"float32"})


def rule(*ops: str) -> Callable[[Rule], Rule]:
    """Register a cycle rule under one or more op names (API names, without ``nisa.``/``nl.``)."""

    def deco(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn

    return deco


def _op_attr(ins: Instr, key: str = "op") -> str:
    """The ALU op of an instruction: ``attrs[key]`` if recorded, else the ``nl.*`` name itself
    (``nl.add`` is an add)."""
    v = ins.attrs.get(key)
    if v is None:
        return ins.op.rsplit(".", 1)[-1] if key == "op" and ins.op.startswith("nl.") else ""
    return getattr(v, "__name__", str(v)).lower()


# nl.* APIs -> the ISA instruction they lower to (elementwise ones are decided by engine/inputs)
_NL_KIND = {
    "copy": "tensor_copy", "matmul": "nc_matmul", "broadcast_to": "nc_matmul",
    "transpose": "nc_transpose", "full": "memset", "zeros": "memset", "ones": "memset",
    "sum": "tensor_reduce", "max": "tensor_reduce", "min": "tensor_reduce",
    "mean": "tensor_reduce", "prod": "tensor_reduce", "all": "tensor_reduce",
}


def isa_kind(ins: Instr) -> str:
    """The ISA instruction whose cost rule applies: the op itself when it has a rule, else what
    its ``nl.*`` API lowers to, else by engine and inputs (ScalarE -> activation; VectorE/GpSimd
    -> tensor_tensor with two tensor inputs, tensor_scalar with one; TensorE -> nc_matmul)."""
    name = ins.op.rsplit(".", 1)[-1]
    if name in RULES:
        return name
    kind = _NL_KIND.get(name)
    if kind is not None:
        return kind
    if not ins.op.startswith("nl."):
        return name                                       # unknown ISA op: engine fallback
    if ins.engine is Engine.SCALAR:
        return "activation"
    if ins.engine is Engine.TENSOR:
        return "nc_matmul"
    return "tensor_tensor" if ins.n_tensor_inputs >= 2 else "tensor_scalar"


def _vector_speedup(ins: Instr, t: Target) -> float:
    """NC-v3+ VectorE perf modes (SH trainium2_arch): 4x for tensor_copy/tensor_scalar with SBUF
    bf16/fp16 in and out and a contiguous innermost dim; 2x for partial conditions and for
    tensor_tensor with SBUF bf16/fp16 inputs. Never applies with a PSUM operand or on NC-v2."""
    if t.nc_version < 3 or ins.engine is not Engine.VECTOR or ins.in_psum:
        return 1.0
    if any(r.mem is Mem.PSUM for r in ins.writes) or ins.attrs.get("strided"):
        return 1.0
    full = t.vector_elems_per_cycle_16bit / hw.PMAX        # 4 on trn2 (512 / 128 elem/cycle)
    in16, out16 = ins.dtype in _16BIT, ins.out_dtype in _16BIT
    op = isa_kind(ins)
    if op in ("tensor_copy", "tensor_scalar"):
        if in16 and out16:
            return full
        return 2.0 if (in16 or out16) else 1.0
    if op == "tensor_tensor" and in16:
        return 2.0
    return 1.0


def _floor(p: CostParams, cycles: float) -> float:
    return max(float(p.min_ii), cycles)


@rule("nc_matmul", "matmul")
def _matmul(ins: Instr, t: Target, p: CostParams) -> float:
    if ins.transpose or ins.attrs.get("is_transpose"):
        return _te_transpose(ins, t, p)
    ns = ins.stationary_free or hw.GEMM_STATIONARY_FMAX
    nm = ins.moving_free or ins.free
    cyc = float(max(min(64, ns), nm))                     # S25 isa: back-to-back average
    return cyc * (4.0 if ins.dtype in _FP32 else 1.0)    # fp32 4x slower


def _te_transpose(ins: Instr, t: Target, p: CostParams) -> float:
    f = ins.free
    cyc = float(max(ins.partitions, min(64, f)))          # S25 isa: max(P, min(64, F))
    if ins.dtype in _FP32 and t.nc_version < 3:           # v2: identity matmul, fp32 4x
        cyc *= 4.0                                        # v3 transpose mode is 2x faster fp32
    elif ins.dtype in _FP32:
        cyc *= 2.0
    return cyc


@rule("nc_transpose", "transpose")
def _transpose(ins: Instr, t: Target, p: CostParams) -> float:
    if ins.engine is Engine.TENSOR:
        return _te_transpose(ins, t, p)
    return _floor(p, ins.free)                            # Vector 32x32: max(MIN_II, N)


@rule("activation", "exponential")
def _activation(ins: Instr, t: Target, p: CostParams) -> float:
    # a free-dim reduction read out through reduce_res (a second output) costs like
    # activation_reduce: + MIN_II (S25 isa docs)
    reduces = ins.attrs.get("reduce") or len(ins.writes) > 1
    return _floor(p, ins.free) + (p.min_ii if reduces else 0)


@rule("activation_reduce", "tensor_scalar_reduce")
def _act_reduce(ins: Instr, t: Target, p: CostParams) -> float:
    return _floor(p, ins.free / _vector_speedup(ins, t)) + p.min_ii


@rule("tensor_tensor")
def _tensor_tensor(ins: Instr, t: Target, p: CostParams) -> float:
    n = ins.free
    fast_bf16 = (ins.in_psum == 0 and ins.dtype in _16BIT and ins.out_dtype in _16BIT
                 and _op_attr(ins) in ("add", "multiply", "subtract")
                 and not ins.attrs.get("strided"))
    one_input = ins.n_tensor_inputs < 2
    if ins.in_psum == 1 or fast_bf16 or one_input:
        cyc = float(n)
    else:
        cyc = 2.0 * n
    return _floor(p, cyc / _vector_speedup(ins, t))


@rule("tensor_scalar", "tensor_copy", "dropout", "nc_stream_shuffle", "bn_stats", "select")
def _one_pass(ins: Instr, t: Target, p: CostParams) -> float:
    return _floor(p, ins.free / _vector_speedup(ins, t))


@rule("tensor_copy_dynamic_src", "tensor_copy_dynamic_dst")
def _dyn_copy(ins: Instr, t: Target, p: CostParams) -> float:
    return max(float(p.min_ii_dynamic), ins.free)


@rule("tensor_copy_predicated")
def _pred_copy(ins: Instr, t: Target, p: CostParams) -> float:
    return _floor(p, ins.free if ins.in_psum else 2.0 * ins.free)


@rule("scalar_tensor_tensor")
def _stt(ins: Instr, t: Target, p: CostParams) -> float:
    ops = (_op_attr(ins, "op0"), _op_attr(ins, "op1"))
    fast = ins.dtype in _16BIT and ops == ("subtract", "multiply") and ins.free % 2 == 0
    return _floor(p, ins.free if fast else 2.0 * ins.free)


@rule("tensor_reduce")
def _reduce(ins: Instr, t: Target, p: CostParams) -> float:
    half = (ins.dtype == "bfloat16" and ins.out_dtype == "bfloat16"
            and _op_attr(ins) in ("add", "max", "maximum", "sum"))
    return _floor(p, ins.free / 2.0 if half else float(ins.free))


@rule("tensor_tensor_scan")
def _scan(ins: Instr, t: Target, p: CostParams) -> float:
    return _floor(p, 2.0 * ins.free)


def _is_zero(v: object) -> bool:
    try:
        return float(v) == 0.0              # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@rule("memset")
def _memset(ins: Instr, t: Target, p: CostParams) -> float:
    zero16 = ins.out_dtype in _16BIT and _is_zero(ins.attrs.get("value", 1.0))
    return _floor(p, (ins.free / 2.0 if zero16 else float(ins.free)) / _vector_speedup(ins, t))


@rule("iota", "affine_select", "local_gather")
def _gpsimd_start(ins: Instr, t: Target, p: CostParams) -> float:
    return float(p.gpsimd_start + ins.free)               # 150 + N


@rule("bn_aggr")
def _bn_aggr(ins: Instr, t: Target, p: CostParams) -> float:
    return _floor(p, 13.0 * ins.free / 3.0)


@rule("reciprocal")
def _reciprocal(ins: Instr, t: Target, p: CostParams) -> float:
    if ins.engine is Engine.SCALAR:
        return _floor(p, ins.free)
    return _floor(p, 8.0 * ins.free)                      # VectorE: 8N


@rule("max8", "nc_find_index8", "nc_match_replace8")
def _max8(ins: Instr, t: Target, p: CostParams) -> float:
    return _floor(p, ins.free)


def _fallback(ins: Instr, t: Target, p: CostParams) -> float:
    """Ops without a documented cost: the engine's generic rule (arch guide 4.2): VectorE N for one
    tensor input, 2N for two SBUF inputs; ScalarE and GpSimd N; all floored at MIN_II."""
    if ins.engine is Engine.TENSOR:
        return _matmul(ins, t, p)
    n = float(ins.free)
    if ins.engine is Engine.VECTOR and ins.n_tensor_inputs >= 2 and ins.in_psum == 0:
        n *= 2.0
    return _floor(p, n / _vector_speedup(ins, t))


def _norm_op(op: str) -> str:
    return op.rsplit(".", 1)[-1]


def instr_cycles(ins: Instr, target: Target, params: CostParams = DEFAULT_PARAMS) -> float:
    """Engine cycles one compute instruction occupies its engine."""
    return RULES.get(isa_kind(ins), _fallback)(ins, target, params)


def instr_ns(ins: Instr, target: Target, params: CostParams = DEFAULT_PARAMS) -> float:
    """Occupancy in ns of one compute instruction (cycles / engine clock)."""
    return instr_cycles(ins, target, params) / target.clock_ghz(ins.engine)


# --------------------------------------------------------------------------------------------
# DMA pieces
# --------------------------------------------------------------------------------------------


def dma_efficiency(chunk_bytes: float, params: CostParams = DEFAULT_PARAMS) -> float:
    """Fraction of a queue's bandwidth reached with contiguous chunks of ``chunk_bytes``."""
    lo, hi, e = params.dma_min_chunk, params.dma_sat_chunk, params.dma_small_chunk_eff
    if chunk_bytes >= hi:
        return 1.0
    if chunk_bytes <= lo:
        return e
    return e + (1.0 - e) * math.log2(chunk_bytes / lo) / math.log2(hi / lo)


def dma_pieces(ins: Instr, target: Target, params: CostParams = DEFAULT_PARAMS
               ) -> tuple[int, float, float]:
    """How a DMA runs: (number of queue pieces, occupancy ns per piece, latency ns per piece)."""
    nq = target.dma_queues
    k = max(1, min(nq, ins.partitions or 1))
    piece = ins.nbytes / k
    chunk = ins.chunk_bytes or (ins.nbytes / max(1, ins.partitions or 1))
    rate = target.dma_gbps_per_queue                      # GB/s == bytes/ns
    if ins.hbm_bytes:
        rate = min(rate, target.hbm_gbps_per_core / nq)   # HBM shared by the core's queues
    base_rate = rate
    rate *= dma_efficiency(chunk, params)
    if ins.transpose or _norm_op(ins.op) in ("dma_transpose", "load_transpose2d"):
        if target.nc_version >= 3:
            # hardware DMA transpose: a fraction of the same tile's plain copy
            chunk = ins.nbytes / max(1, ins.partitions or 1)
            rate = base_rate * dma_efficiency(chunk, params) * (
                params.dma_transpose_hbm_factor if ins.hbm_bytes
                else params.dma_transpose_sbuf_factor)
        else:
            # NC-v2 has no transpose unit: element-sized descriptors (chunk = one element)
            rate = base_rate * dma_efficiency(ins.chunk_bytes or 1, params)
    xfer = piece / rate if rate > 0 else 0.0
    occ = max(xfer, target.dma_fixed_ns / max(1, params.dma_inflight))
    return k, occ, xfer + target.dma_fixed_ns


# --------------------------------------------------------------------------------------------
# 2. Dependencies
# --------------------------------------------------------------------------------------------

_Box = tuple[int, int, int, int]
_MAX_ENTRIES = 4096       # per tensor and kind; beyond it entries merge into one bounding box


class _Index:
    """Accesses to one tensor: exact box -> value, plus the boxes sorted by start byte so that an
    overlap query only visits boxes starting in [b0 - longest box + 1, b1)."""

    __slots__ = ("vals", "starts", "boxes", "longest")

    def __init__(self) -> None:
        self.vals: dict[_Box, object] = {}
        self.starts: list[int] = []
        self.boxes: list[_Box] = []
        self.longest = 0

    def _span(self, b0: int, b1: int) -> tuple[int, int]:
        return (bisect_left(self.starts, b0 - self.longest + 1), bisect_left(self.starts, b1))

    def overlapping(self, p0: int, p1: int, b0: int, b1: int) -> list:
        lo, hi = self._span(b0, b1)
        vals = self.vals
        return [vals[k] for k in self.boxes[lo:hi]
                if k[0] < p1 and p0 < k[1] and b0 < k[3]]

    def put(self, box: _Box, val: object, combine: Callable | None = None) -> None:
        vals = self.vals
        if box in vals:
            vals[box] = combine(vals[box], val) if combine else val
            return
        vals[box] = val
        j = bisect_left(self.starts, box[2])
        self.starts.insert(j, box[2])
        self.boxes.insert(j, box)
        if box[3] - box[2] > self.longest:
            self.longest = box[3] - box[2]
        if len(vals) > _MAX_ENTRIES and combine:
            self._merge_all(combine)

    def drop_contained(self, box: _Box) -> None:
        """Forget accesses inside ``box`` (called when ``box`` is overwritten)."""
        if len(self.boxes) == 1:
            k = self.boxes[0]
            if box[0] <= k[0] and k[1] <= box[1] and box[2] <= k[2] and k[3] <= box[3]:
                self.vals.clear()
                self.boxes.clear()
                self.starts.clear()
            return
        p0, p1, b0, b1 = box
        lo, hi = bisect_left(self.starts, b0), bisect_left(self.starts, b1)
        doomed = [k for k in self.boxes[lo:hi] if p0 <= k[0] and k[1] <= p1 and k[3] <= b1]
        if not doomed:
            return
        for k in doomed:
            del self.vals[k]
        gone = set(doomed)
        keep = [k for k in self.boxes[lo:hi] if k not in gone]
        self.boxes[lo:hi] = keep
        self.starts[lo:hi] = [k[2] for k in keep]

    def _merge_all(self, combine: Callable) -> None:
        keys = self.boxes
        box = (min(k[0] for k in keys), max(k[1] for k in keys),
               min(k[2] for k in keys), max(k[3] for k in keys))
        it = iter(self.vals.values())
        acc = next(it)
        for v in it:
            acc = combine(acc, v)
        self.vals = {box: acc}
        self.boxes, self.starts, self.longest = [box], [box[2]], box[3] - box[2]


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

    __slots__ = ("writers", "readers")

    def __init__(self) -> None:
        self.writers: dict[int, _Index] = {}
        self.readers: dict[int, _Index] = {}

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
            ws = writers.get(r.tensor) if r.mem is not Mem.HBM else None
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
                rs = readers[r.tensor] = _Index()
            rs.put((r.p0, r.p1, r.b0, r.b1), busy, max)
        wval = (vis, busy, on_tensor)
        for r in ins.writes:
            box = (r.p0, r.p1, r.b0, r.b1)
            ws = writers.get(r.tensor)
            if ws is None:
                ws = writers[r.tensor] = _Index()
            elif r.mem is not Mem.HBM:
                ws.drop_contained(box)
            ws.put(box, wval, _max_w)
            rs = readers.get(r.tensor)
            if rs is not None and r.mem is not Mem.HBM:
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

    __slots__ = ("tail", "gaps", "maxgap", "n", "uniform")

    def __init__(self, n: int) -> None:
        self.n = n
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
                    self.maxgap[q] = max((ge - gs for gs, ge in gaps), default=0.0)
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
        self.maxgap[q] = max((b - a for a, b in gaps), default=0.0)

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


# --------------------------------------------------------------------------------------------
# 3. Timeline
# --------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """Scheduled times (ns) of each instruction of a trace.

    ``start[i]``: first cycle of instruction i; ``busy[i]``: its occupancy end on its engine (for a
    DMA, the last piece's queue occupancy end); ``end[i]``: when its result is visible.
    ``pieces``: flat (instr index, queue, start, occupancy end, visible end) per DMA piece; queue
    -1 stands for one identical piece on every queue (see :meth:`dma_pieces`).
    """

    instrs: Sequence[Instr]
    target: Target
    start: array = field(default_factory=lambda: array("d"))
    busy: array = field(default_factory=lambda: array("d"))
    end: array = field(default_factory=lambda: array("d"))
    pieces: array = field(default_factory=lambda: array("d"))
    engine_busy_ns: dict[str, float] = field(default_factory=dict)

    @property
    def latency_ns(self) -> float:
        return max(self.end) if len(self.end) else 0.0

    def dma_pieces(self) -> list[tuple[int, int, float, float, float]]:
        """(instr index, queue, start, occupancy end, visible end) of every DMA piece."""
        p, nq = self.pieces, self.target.dma_queues
        out: list[tuple[int, int, float, float, float]] = []
        for j in range(0, len(p), 5):
            i, q = int(p[j]), int(p[j + 1])
            qs = range(nq) if q < 0 else (q,)
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
    """List-schedule a trace in program order; see the module docstring for the rules."""
    t = hw.target(target) if isinstance(target, str) else target
    tl = Timeline(instrs=instrs, target=t)
    n = len(instrs)
    start, busy_a, end = (array("d", bytes(8 * n)) for _ in range(3))
    pieces = array("d")
    eng_free = {e: 0.0 for e in COMPUTE_ENGINES}
    eng_busy = {e.value: 0.0 for e in (*COMPUTE_ENGINES, Engine.DMA)}
    lat = {e: params.dep_latency(e) / t.clock_ghz(e) for e in COMPUTE_ENGINES}
    nq = t.dma_queues
    queues = _Queues(nq)
    deps = _Deps()
    cycles_cache: dict[tuple, float] = {}
    dma_cache: dict[tuple, tuple[int, float, float]] = {}
    tensor = Engine.TENSOR
    dma = Engine.DMA
    use_ports = params.v2_shared_ports and t.nc_version < 3
    port_free = [0.0, 0.0]                      # [SBUF Vector/GpSimd, PSUM Vector/Scalar]
    for i, ins in enumerate(instrs):
        eng = ins.engine
        on_tensor = eng is tensor
        ready = deps.ready(ins, on_tensor)
        if eng is dma:
            dkey = (ins.op, ins.partitions, ins.nbytes, ins.chunk_bytes, ins.hbm_bytes,
                    ins.transpose)
            spec = dma_cache.get(dkey)
            if spec is None:
                spec = dma_cache[dkey] = dma_pieces(ins, t, params)
            k, occ, done = spec
            s0 = e_busy = e_vis = -1.0
            for q, s in queues.place(ready, occ, k):
                b, v = s + occ, s + done
                pieces.extend((i, q, s, b, v))
                if s0 < 0 or s < s0:
                    s0 = s
                if b > e_busy:
                    e_busy = b
                if v > e_vis:
                    e_vis = v
            eng_busy["dma"] += occ * k
            start[i], busy_a[i], end[i] = s0, e_busy, e_vis
            deps.record(ins, e_vis, e_vis, False)
            continue
        key = _cycles_key(ins)
        dur = cycles_cache.get(key) if key is not None else None
        if dur is None:
            dur = instr_ns(ins, t, params)
            if key is not None:
                cycles_cache[key] = dur
        f = eng_free[eng]
        s = f if f > ready else ready
        ports = _ports(ins) if use_ports and not on_tensor else ()
        for p in ports:
            if port_free[p] > s:
                s = port_free[p]
        b = s + dur
        for p in ports:
            port_free[p] = b
        eng_free[eng] = b
        eng_busy[eng.value] += dur
        start[i], busy_a[i], end[i] = s, b, b + lat[eng]
        deps.record(ins, b + lat[eng], b, on_tensor)
    tl.start, tl.busy, tl.end, tl.pieces = start, busy_a, end, pieces
    tl.engine_busy_ns = eng_busy
    return tl


# --------------------------------------------------------------------------------------------
# 4. Report
# --------------------------------------------------------------------------------------------


def matmul_flops(ins: Instr) -> int:
    """Useful FLOPs of one nc_matmul: 2 * K * M * N (0 for transposes and other ops)."""
    if _norm_op(ins.op) not in ("nc_matmul", "matmul") or ins.transpose \
            or ins.attrs.get("is_transpose"):
        return 0
    k = ins.partitions or hw.PMAX
    return 2 * k * (ins.stationary_free or hw.GEMM_STATIONARY_FMAX) * (ins.moving_free or ins.free)


def peak_flops_per_ns(target: Target, dtype: str) -> float:
    """TensorE peak FLOP/ns for an operand dtype: bf16 peak for 8/16-bit and tf32, 1/4 for fp32."""
    peak = target.tensor_peak_bf16_tflops * 1e3           # TFLOP/s -> FLOP/ns
    return peak / 4.0 if dtype in _FP32 else peak


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


def estimate(instrs: Sequence[Instr], target: Target | str,
             params: CostParams = DEFAULT_PARAMS) -> Report:
    """Schedule a trace and summarise it; the Report keeps the Timeline in ``.timeline``."""
    t = hw.target(target) if isinstance(target, str) else target
    tl = schedule(instrs, t, params)
    lat = tl.latency_ns
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
    busy: dict[str, float] = {}
    for name, ns in tl.engine_busy_ns.items():
        denom = lat * (t.dma_queues if name == "dma" else 1)
        busy[name] = min(1.0, ns / denom) if denom > 0 else 0.0
    lat_s = lat * 1e-9
    return Report(
        dma_active=_union_ns(tl.pieces) / lat if lat > 0 else 0.0,
        target=t.name,
        latency_us=lat / 1000.0,
        engine_busy=busy,
        hfu=min(1.0, peak_ns / lat) if lat > 0 else 0.0,
        mbu=min(1.0, hbm / lat_s / (t.hbm_gbps_per_core * 1e9)) if lat > 0 else 0.0,
        hbm_bytes=hbm,
        matmul_flops=flops,
        instr_counts=counts,
        op_counts=dict(sorted(ops.items())),
        dma_bytes=dma_bytes,
        timeline=tl,
    )
