"""Cost model, per-instruction rules: one Instr -> engine cycles, or DMA queue pieces.

Stage: cost (step 1 of nkigen.sim.cost). The :data:`RULES` registry maps an ISA instruction name
to its published cost rule (nki-reference.md 2.3 "documented cost" column, 4.2, 9.10);
:func:`isa_kind` maps ``nl.*`` APIs to the instruction they lower to; :func:`dma_pieces` gives the
queue split and times of a DMA (model described in nkigen.sim.cost). :class:`CostParams` holds
every number that is not a plain hardware constant of ``nkigen.hw``, each with its source or
marked as a calibration parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nkigen import hw
from nkigen.hw import Engine, Target
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
    # Chunk sizes of the efficiency curve. Saturation: S25 arch/perf guide and SH DMA bandwidth
    # guide (>= 4 KiB per partition). Flat region: 256 B .. 1 KiB, the chunks of the DMA-bound
    # calibration anchors below (SH guide: 256 B - 2 KiB "improving but still below peak", 2 KiB
    # "approaches peak"; the log2 ramp puts 2 KiB at 0.625). Below 256 B the SH guide calls DMA
    # "severely overhead-bound" by the packet rate: modelled as a fixed time per packet, i.e.
    # efficiency proportional to the chunk size.
    dma_packet_chunk: int = 256
    dma_min_chunk: int = 1024
    dma_sat_chunk: int = 4096
    # Calibration: efficiency of DMA descriptors with contiguous chunks <= 1 KiB. Fitted once to
    # the published trn1 matmul tutorial (nki-reference.md 5.2): its tiled, hoisted and
    # free-dim-blocked versions (256 B and 1 KiB chunks, DMA-bound) move 5.37 / 4.36 / 2.22 GB in
    # 51.80 / 42.96 / 22.07 ms = 104 / 102 / 100 GB/s, i.e. 0.253 / 0.248 / 0.245 of the modelled
    # peak 16 x min(27 GiB/s, 410/16 GB/s) = 410 GB/s [derived]; 256 B vs 1 KiB chunks make no
    # visible difference there, hence one flat value (0.25) for chunks up to 1 KiB. Re-fitted
    # with cost model v2 over all 24 anchors of benchmarks/bench_calibration.py (grid
    # 0.22/0.25/0.28): 0.25 still has the least error.
    dma_small_chunk_eff: float = 0.25
    # Calibration: transfers a queue keeps in flight; bounds the issue rate of tiny DMAs to
    # dma_fixed_ns / dma_inflight per queue. No published figure; 4 is a labelled guess.
    dma_inflight: int = 4
    dma_transpose_hbm_factor: float = 0.9       # SH trainium2_arch: up to 90 % of copy (HBM->SBUF)
    dma_transpose_sbuf_factor: float = 0.5      # SH trainium2_arch: up to 50 % (SBUF->SBUF)
    # NC-v2 shared ports (S25 arch guide): VectorE and GpSimd cannot access SBUF at the same time,
    # VectorE and ScalarE cannot access PSUM at the same time (lifted on NC-v3, SH trainium2_arch).
    v2_shared_ports: bool = True
    # --- cost model v2 (issue 13) -------------------------------------------------------------
    # Calibration: engine cycles every compute instruction adds to its occupancy for issue,
    # semaphore wait/signal and dispatch (the engines run separate instruction streams
    # synchronised by compiler-inserted semaphores, S25 arch guide; the docs give no figure).
    # Fitted by benchmarks/bench_calibration.py (grid 40/80/120 over all 24 trn1 anchors;
    # 80 has the least squared-log error). Mostly set by the compute-bound anchors: the fully
    # blocked matmul (85.24 % HFU, i.e. ~90 cycles per 512-cycle matmul) and the fused-mamba
    # v2/v3 kernels (VectorE ~99 % active at 6.86 N cycles per 6.1 N of documented work).
    # The published dependent-op latencies (dep_latency_cycles) include it, see dep_latency.
    issue_cycles: int = 80
    # Compiler behaviour (modelled): an engine instruction that repeats an earlier one on the
    # same, unchanged inputs into a fresh tile (a loop-invariant recomputation) is computed once
    # (common-subexpression elimination / loop-invariant code motion). Supported by the
    # fused-mamba tutorial (S25 fused_mamba.rst): v1 -> v2 only reorders loops and hoists the
    # delta/u loads (same instruction count), yet VectorE busy time falls by a third.
    cse: bool = True
    # Partition broadcast (``broadcast_to`` to 128 partitions) is a TensorE ones-matmul (S25
    # fused_mamba.rst: "partition-dim broadcast often requires a separate instruction on
    # TensorE"); TensorE writes only PSUM (S25 arch guide), so its consumer reads a PSUM operand
    # (tensor_tensor N instead of 2N cycles, S25 nki.isa.tensor_tensor cost) -- when the result
    # fits one PSUM bank (2 KiB per partition, hw.PSUM_BANK_BYTES). Wider results cannot stay in
    # PSUM and are read from SBUF.
    psum_broadcast: bool = True
    # Calibration: fixed NEFF start-up + tear-down time in every published device latency (S25
    # fused_mamba.rst: "every NEFF execution involves certain start-up and tear-down overhead";
    # no figure given). Fitted with the other parameters by benchmarks/bench_calibration.py;
    # in practice set by the one small anchor, the fused-mamba v1 toy (172.93 us). trn1 anchors
    # only; assumed the same on trn2. Added to Report.device_latency_us, not to latency_us (the
    # kernel's own timeline), so rankings of kernels do not depend on it.
    launch_us: float = 40.0
    # DMA queues the compiler's SBUF spill/reload traffic uses (nkigen.sim.spill). The fused-mamba
    # profile shows it on its own rows, qSyncSpillReload0 / qVectorSpillReload0 (S25
    # fused_mamba.rst), not on the kernel's IO queues; how many hardware queues stand behind
    # them is not documented. Calibration: fitted to the only spilling anchors, the fused-mamba
    # v2 at seq_len 7168 and 8192 (41.3 / 52.2 ms, S25 fused_mamba.rst scaling table), grid
    # 16/8/4 of benchmarks/bench_calibration.py: with all 16 queues the spill is hidden too well
    # (0.78 / 0.91 of published), with 4 it is too slow (1.09 / 1.42); 8 gives 0.88 / 1.02, and
    # VectorE 58 % active at s8192 (published profile: 58.93 %). Unconstrained by the other
    # families (nothing else spills), so leave-one-family-out falls back to 16 for mamba_v2.
    spill_dma_queues: int = 8

    def dep_latency(self, engine: Engine) -> int:
        """Result latency for a dependent consumer, in engine cycles. The published ScalarE and
        VectorE figures are totals seen between dependent instructions, which already include
        the instruction's issue cost: ``issue_cycles`` is taken out of them (never below 0)."""
        for e, c in self.dep_latency_cycles:
            if e is engine:
                if engine in (Engine.SCALAR, Engine.VECTOR, Engine.GPSIMD):
                    return max(0, c - self.issue_cycles)
                return c
        return 0


DEFAULT_PARAMS = CostParams()

# --------------------------------------------------------------------------------------------
# 1. Per-instruction cycle rules (engine cycles). N = instr.free (elements per partition).
# --------------------------------------------------------------------------------------------

Rule = Callable[[Instr, Target, CostParams], float]
RULES: dict[str, Rule] = {}

_16BIT = frozenset({"bfloat16", "float16"})
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
    """NC-v3+ VectorE performance mode, exactly as SH nki/guides/architecture/trainium2_arch.rst
    "Vector Engine Performance Mode" states it (input *and* output dtypes all BF16/FP16):

    * 4x: tensor_copy / tensor_scalar with input and output in SBUF, all BF16/FP16, innermost
      free dim contiguous;
    * 2x: the same but not contiguous, or contiguous with one of input/output in PSUM; and
      tensor_tensor with both inputs in SBUF and all inputs/output BF16/FP16.

    Nothing else is faster than on NC-v2 per cycle. The same page's engine table gives VectorE
    "512 BF16/FP16, 256 other" elements/cycle; the instruction-level section names no fp32 lift,
    so fp32 stays at 1x (we follow the instruction-level statement; see hw.Target)."""
    if t.nc_version < 3 or ins.engine is not Engine.VECTOR:
        return 1.0
    if ins.dtype not in _16BIT or ins.out_dtype not in _16BIT:
        return 1.0
    out_psum = any(r.mem is Mem.PSUM for r in ins.writes)
    in_psum = ins.in_psum
    contiguous = not ins.attrs.get("strided")
    op = isa_kind(ins)
    if op in ("tensor_copy", "tensor_scalar"):
        if in_psum == 0 and not out_psum:
            return t.vector_elems_per_cycle_16bit / hw.PMAX if contiguous else 2.0
        if in_psum + out_psum == 1 and contiguous:
            return 2.0
        return 1.0
    if op == "tensor_tensor" and in_psum == 0:
        return 2.0
    return 1.0


def vector_perf_mode(ins: Instr, t: Target) -> bool:
    """True when a VectorE instruction runs in NC-v3 performance mode, which uses the bus VectorE
    shares with GpSimd (SH trainium2_arch: "leverages a shared memory bus between the VectorE
    and GpsimdE engines ... arbitrating between GpsimdE and relevant VectorE instructions")."""
    return _vector_speedup(ins, t) > 1.0


def _floor(p: CostParams, cycles: float) -> float:
    return max(float(p.min_ii), cycles)


@rule("nc_matmul", "matmul")
def _matmul(ins: Instr, t: Target, p: CostParams) -> float:
    if ins.transpose or ins.attrs.get("is_transpose"):
        return _te_transpose(ins, t, p)
    ns = ins.stationary_free or hw.GEMM_STATIONARY_FMAX
    nm = ins.moving_free or ins.free
    cyc = float(max(min(64, ns), nm))                     # S25 isa: back-to-back average
    if ins.dtype not in _FP32:
        return cyc
    # fp32 4x slower; a float32 ones/zeros operand flagged is_*_onezero "could lead to 2x
    # better performance" (S25 general/nki/api/nki/isa/__init__.py nc_matmul, SDK 2.25; S29
    # nki/api/nki/isa/__init__.py, nki 0.3): modelled as exactly 2x
    return cyc * (2.0 if ins.attrs.get("onezero") else 4.0)


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
    # S25 nki.isa.tensor_tensor cost table: N cycles when one input is in PSUM and the other in
    # SBUF, or when both are in SBUF, inputs *and* output all bfloat16 (not float16), op add /
    # multiply / subtract and contiguous; else 2N.
    fast_bf16 = (ins.in_psum == 0 and ins.dtype == "bfloat16" and ins.out_dtype == "bfloat16"
                 and _op_attr(ins) in ("add", "multiply", "subtract")
                 and not ins.attrs.get("strided"))
    one_input = ins.n_tensor_inputs < 2
    if (ins.in_psum == 1 and not one_input) or fast_bf16 or one_input:
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
    # S25 nki.isa.scalar_tensor_tensor cost table (SDK 2.25): N cycles when data and operand1
    # are both bfloat16 (not float16), op0 subtract, op1 multiply and N even; else 2N
    ops = (_op_attr(ins, "op0"), _op_attr(ins, "op1"))
    bf16 = ins.dtype == "bfloat16" and ins.attrs.get("operand1_dtype", "bfloat16") == "bfloat16"
    fast = bf16 and ops == ("subtract", "multiply") and ins.free % 2 == 0
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


@rule("iota", "affine_select")
def _gpsimd_start(ins: Instr, t: Target, p: CostParams) -> float:
    return float(p.gpsimd_start + ins.free)               # 150 + N


@rule("local_gather")
def _local_gather(ins: Instr, t: Target, p: CostParams) -> float:
    """S25 local_gather cost: 150 + (num_valid_indices * num_elem_per_idx) / C with
    C = ((28 + t * e) / (t * e)) / min(4 / dtype_size, e), t = 4 (ins.free = valid * e)."""
    e = int(ins.attrs.get("num_elem_per_idx", 1))
    size = _DTYPE_BYTES.get(ins.dtype, 4)
    c = ((28.0 + 4 * e) / (4.0 * e)) / min(4.0 / size, e)
    return float(p.gpsimd_start + ins.free / c)


_DTYPE_BYTES = {"float32": 4, "int32": 4, "uint32": 4, "bfloat16": 2, "float16": 2,
                "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "float8_e4m3": 1,
                "float8_e5m2": 1}


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


_ENGINE_BY_VALUE = {e.value: e for e in COMPUTE_ENGINES}


def engine_choices(ins: Instr) -> tuple[Engine, ...] | None:
    """The engines an instruction with no ``engine=`` may run on when the compiler chooses by
    engine workload, else None (it runs on ``ins.engine``). The simulator lists them in
    ``attrs["engines"]`` (nkigen.sim.isa_move.copy_engines: tile copies, S25/SH
    nki.isa.tensor_copy "compiler selects best engine based on engine workload"); GpSimd is
    dropped when the instruction reads a PSUM-resident operand (a ``broadcast_to`` result kept
    in PSUM, ``CostParams.psum_broadcast``): GpSimd cannot access PSUM. The schedules give the
    instruction to the candidate on which its result would be visible first (ties: the listed
    order, VectorE first)."""
    names = ins.attrs.get("engines") if ins.attrs else None
    if not names:
        return None
    out = tuple(_ENGINE_BY_VALUE[n] for n in names
                if not (n == "gpsimd" and ins.in_psum))
    return out if len(out) > 1 else None


def instr_cycles(ins: Instr, target: Target, params: CostParams = DEFAULT_PARAMS) -> float:
    """Engine cycles one compute instruction occupies its engine."""
    return RULES.get(isa_kind(ins), _fallback)(ins, target, params)


def instr_ns(ins: Instr, target: Target, params: CostParams = DEFAULT_PARAMS) -> float:
    """Occupancy in ns of one compute instruction (cycles / engine clock)."""
    return instr_cycles(ins, target, params) / target.clock_ghz(ins.engine)


# --------------------------------------------------------------------------------------------
# DMA pieces
# --------------------------------------------------------------------------------------------


def dma_efficiency(chunk_bytes: float, params: CostParams = DEFAULT_PARAMS,
                   target: Target | None = None) -> float:
    """Fraction of a queue's bandwidth reached with contiguous chunks of ``chunk_bytes``
    (``target``: its own small-row efficiency where it documents one, hw.Target
    ``dma_small_row_eff``; else the fitted ``params.dma_small_chunk_eff``)."""
    lo, hi, e = params.dma_min_chunk, params.dma_sat_chunk, params.dma_small_chunk_eff
    if target is not None and target.dma_small_row_eff is not None:
        e = target.dma_small_row_eff
    if chunk_bytes >= hi:
        return 1.0
    if chunk_bytes < params.dma_packet_chunk:
        return e * max(chunk_bytes, 1) / params.dma_packet_chunk
    if chunk_bytes <= lo:
        return e
    return e + (1.0 - e) * math.log2(chunk_bytes / lo) / math.log2(hi / lo)


def dma_pieces(ins: Instr, target: Target, params: CostParams = DEFAULT_PARAMS
               ) -> tuple[int, float, float]:
    """How a DMA runs: (number of queue pieces, occupancy ns per piece, latency ns per piece)."""
    nq = target.dma_queues
    # each engine serves PMAX / queues = 8 consecutive partitions: a DMA over P partitions uses
    # ceil(P / 8) engines (SH nki/get-started/about/nki-dma-overview.rst: A[4, 4096] -> SBUF
    # runs on one engine, A[128, 128] on all 16 with 8 partitions each)
    per = max(1, hw.PMAX // nq)
    k = max(1, min(nq, -(-(ins.partitions or 1) // per)))
    if ins.op.startswith("spill_"):
        k = max(1, min(k, params.spill_dma_queues))
    piece = ins.nbytes / k
    chunk = ins.chunk_bytes or (ins.nbytes / max(1, ins.partitions or 1))
    rate = target.dma_gbps_per_queue                      # GB/s == bytes/ns
    if ins.hbm_bytes:
        rate = min(rate, target.hbm_gbps_per_core / nq)   # HBM shared by the core's queues
    base_rate = rate
    rate *= dma_efficiency(chunk, params, target)
    if ins.transpose or _norm_op(ins.op) in ("dma_transpose", "load_transpose2d"):
        if target.nc_version >= 3:
            # hardware DMA transpose: a fraction of the same tile's plain copy
            chunk = ins.nbytes / max(1, ins.partitions or 1)
            rate = base_rate * dma_efficiency(chunk, params, target) * (
                params.dma_transpose_hbm_factor if ins.hbm_bytes
                else params.dma_transpose_sbuf_factor)
        else:
            # NC-v2 has no transpose unit: element-sized descriptors (chunk = one element)
            rate = base_rate * dma_efficiency(ins.chunk_bytes or 1, params, target)
    xfer = piece / rate if rate > 0 else 0.0
    occ = max(xfer, target.dma_fixed_ns / max(1, params.dma_inflight))
    return k, occ, xfer + target.dma_fixed_ns
