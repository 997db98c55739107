"""Hardware constants per target, in one place.

Templates, the spec checker, the planner, the simulator and the cost model all read these.
Sources are the citation keys of ../shared/nki-reference.md (S25 = SDK 2.25 docs, SH = SDK docs at
HEAD, KLR = the Lean NKI front-end). Derived numbers say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Engine(Enum):
    """Compute engines and DMA; values match ``nisa.engine`` where one exists."""

    TENSOR = "tensor"
    VECTOR = "vector"
    SCALAR = "scalar"
    GPSIMD = "gpsimd"
    DMA = "dma"


# --- limits common to NeuronCore-v2 and v3 (S25 programming_model.rst; KLR) ------------------
PMAX = 128                    # partitions of SBUF and PSUM (tile_size.pmax)
PSUM_FMAX = 512               # fp32 elements per PSUM bank per partition (tile_size.psum_fmax)
PSUM_BANK_BYTES = 2048        # bytes per bank per partition
PSUM_BANKS = 8                # banks per partition
PSUM_BYTES_PER_PARTITION = PSUM_BANKS * PSUM_BANK_BYTES  # 16 KiB
GEMM_STATIONARY_FMAX = 128    # matmul stationary (LHS) free size
GEMM_MOVING_FMAX = 512        # matmul moving (RHS) free size
BN_STATS_FMAX = 512           # bn_stats free size
VE_TRANSPOSE_MAX = 32         # VectorE nc_transpose side (S29/S25 nki.isa nc_transpose: [32, 32])
SBUF_FMAX_ELEMS = 65536       # Vector/Scalar free-dim max on SBUF (S25 arch guide)
PSUM_FMAX_ELEMS_ENGINE = 4096  # Vector/Scalar free-dim max on PSUM (S25 arch guide)
MAX_AP_FREE_DIMS = 4          # access-pattern free dims per operand (S25 arch guide)
MIN_II = 64                   # minimum initiation interval, engine cycles (S25 isa docs)
GPSIMD_START = 150            # GpSimd start-up cycles (iota, affine_select)
STATIC_OVERHEAD = 100         # extra cycles, tiny or dependent Vector/Scalar ops (S25 arch guide)
SRAM_ACCESS_CYCLES = 60       # fixed overhead per SBUF access request on NC-v2 (S25 arch guide)
PSUM_MIN_ALIGN = 4            # bytes (tile_size.psum_min_align; KLR)
SBUF_MIN_ALIGN = 1            # bytes (tile_size.sbuf_min_align; KLR)
FP32_EXACT_INT = 2 ** 24      # largest integer magnitude float32 holds with every smaller one
#                               (24-bit significand): the limit of exact int32 arithmetic on
#                               the float32 engines (SH/S25 nki.api.shared.rst: arithmetic
#                               operators convert their inputs to float32)


@dataclass(frozen=True)
class Target:
    """One NeuronCore generation as seen by a single kernel."""

    name: str
    nc_version: int                 # nisa.nc_version: 2 = Trn1/Inf2, 3 = Trn2
    sbuf_bytes_per_partition: int   # usable by kernels (KLR total_available_sbuf_size)
    sbuf_physical_bytes: int        # physical per partition (S25/SH arch)
    tensor_ghz: float
    vector_ghz: float
    scalar_ghz: float
    gpsimd_ghz: float
    vector_elems_per_cycle_16bit: int   # bf16/fp16 VectorE throughput per partition-row pass
    tensor_peak_bf16_tflops: float      # per core [derived: 128*128*2*clock]
    hbm_gbps_per_core: float            # chip HBM bandwidth / cores per chip [derived]
    dma_queues: int                     # DMA engines per core
    dma_gbps_per_queue: float           # per-engine bandwidth
    dma_fixed_ns: float                 # fixed cost per DMA transfer
    cores_per_chip: int
    # fraction of a queue's rate reached with 256 B .. 1 KiB rows (None: the cost model's
    # fitted CostParams.dma_small_chunk_eff, nkigen/sim/cost_rules.py)
    dma_small_row_eff: float | None = None

    def clock_ghz(self, engine: Engine) -> float:
        return {
            Engine.TENSOR: self.tensor_ghz,
            Engine.VECTOR: self.vector_ghz,
            Engine.SCALAR: self.scalar_ghz,
            Engine.GPSIMD: self.gpsimd_ghz,
            Engine.DMA: 1.0,
        }[engine]


TRN1 = Target(
    name="trn1",
    nc_version=2,
    sbuf_bytes_per_partition=180224,   # 176 of 192 KiB usable (KLR gen2; S25 direct allocation)
    sbuf_physical_bytes=196608,
    tensor_ghz=2.8,
    vector_ghz=1.12,
    scalar_ghz=1.4,
    gpsimd_ghz=1.4,
    vector_elems_per_cycle_16bit=128,
    tensor_peak_bf16_tflops=128 * 128 * 2 * 2.8e9 / 1e12,   # 91.75 [derived]
    hbm_gbps_per_core=820.0 / 2,                    # 410 [derived: 820 GB/s per 2-core chip]
    dma_queues=16,
    # ~27 GiB/s per engine (S25 arch guide). Disputed by the SH DMA bandwidth guide's table
    # (17 B/ns per engine on Trainium1). benchmarks/bench_calibration.py fits both: with 27 GiB/s
    # (capped to the per-queue HBM share 410/16 = 25.6 B/ns by the cost model) the best loss over
    # the 24 published anchors is 0.165, with 17 B/ns 0.188 (small-chunk kernels only constrain
    # rate x efficiency; the full-rate spill/reload traffic of v2 s7168/s8192 decides, and with the
    # spill planner and a refitted spill queue count it decides only weakly: 27 GiB/s kept).
    dma_gbps_per_queue=27.0 * 1.073741824,
    dma_fixed_ns=1300.0,                                     # S25 perf guide Opt #9
    cores_per_chip=2,
)

TRN2 = Target(
    name="trn2",
    nc_version=3,
    sbuf_bytes_per_partition=212984,   # KLR gen3
    sbuf_physical_bytes=229376,
    tensor_ghz=2.4,
    vector_ghz=0.96,
    scalar_ghz=1.2,
    gpsimd_ghz=1.2,
    vector_elems_per_cycle_16bit=512,
    tensor_peak_bf16_tflops=128 * 128 * 2 * 2.4e9 / 1e12,   # 78.6 [derived]
    hbm_gbps_per_core=2900.0 / 8,                   # 362.5 [derived: 2.9 TB/s, 8-core chip]
    dma_queues=16,
    dma_gbps_per_queue=23.0,                                 # SH dma bandwidth guide table, B/ns
    dma_fixed_ns=600.0,                                      # DGE-issued DMA (SH trainium2_arch)
    cores_per_chip=8,
    # SH nki/get-started/about/nki-dma-overview.rst example 2 (trn2 profile): A[128, 128] bf16
    # HBM -> SBUF, each of 16 engines moves 8 rows of 256 B in 97 ns, 21.1 B/ns = 0.93 of the
    # 22.66 B/ns per-queue rate; the trn1-fitted 0.25 gave 362 ns (docs/cost-thresholds.md:
    # the nki-samples pool thresholds land at 0.94-1.17 for 7 of 9 with it, 1.65-2.77 without)
    dma_small_row_eff=0.93,
)

TARGETS: dict[str, Target] = {t.name: t for t in (TRN1, TRN2)}
DEFAULT_TARGET = "trn2"


def target(name: str) -> Target:
    """Look up a target by name (``trn1`` or ``trn2``); KeyError names the legal values."""
    try:
        return TARGETS[name]
    except KeyError:
        legal = ", ".join(sorted(TARGETS))
        raise KeyError(f"unknown target {name!r}; use one of {legal}") from None
