"""Cost-model parameters pinned (issue 17): changing a CostParams default, the DMA efficiency
curve or the DMA queue model fails here. When the cost model is deliberately revised, update the
pinned values below together with the calibration they come from (nkigen/sim/cost_rules.py cites
its sources; the latencies below are recomputed by hand from those parameters and hw.py).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim.cost import estimate
from nkigen.sim.cost_rules import DEFAULT_PARAMS, CostParams, dma_efficiency
from nkigen.sim.trace import Instr

PINNED = {
    "min_ii": 64, "gpsimd_start": 150, "min_ii_dynamic": 600,
    "dep_latency_cycles": ((Engine.SCALAR, 200), (Engine.VECTOR, 100), (Engine.GPSIMD, 100),
                           (Engine.TENSOR, 64)),
    "dma_packet_chunk": 256, "dma_min_chunk": 1024, "dma_sat_chunk": 4096,
    "dma_small_chunk_eff": 0.25, "dma_inflight": 4,
    "dma_transpose_hbm_factor": 0.9, "dma_transpose_sbuf_factor": 0.5,
    "v2_shared_ports": True,
    "issue_cycles": 80, "cse": True, "psum_broadcast": True, "launch_us": 40.0,
    "spill_dma_queues": 8,
}


def test_cost_params_defaults_are_pinned():
    assert dataclasses.asdict(CostParams()) == PINNED
    assert CostParams() == DEFAULT_PARAMS


def test_dma_efficiency_curve_at_its_knees():
    p = DEFAULT_PARAMS
    e = p.dma_small_chunk_eff
    assert dma_efficiency(p.dma_packet_chunk - 1) == pytest.approx(e * 255 / 256)
    assert dma_efficiency(p.dma_packet_chunk) == e
    assert dma_efficiency(p.dma_min_chunk) == e
    assert e < dma_efficiency(p.dma_min_chunk + 1) < e + 0.001
    assert dma_efficiency(2048) == pytest.approx(e + (1 - e) / 2)   # log2 ramp midpoint
    assert dma_efficiency(p.dma_sat_chunk - 1) < 1.0
    assert dma_efficiency(p.dma_sat_chunk) == 1.0
    assert dma_efficiency(1) == pytest.approx(e / 256)


def test_trn2_small_rows_run_near_the_queue_rate():
    # SH nki-dma-overview.rst example 2 (trn2 profile): 8 rows of 256 B per engine in 97 ns
    from nkigen import hw
    from nkigen.sim.cost_rules import dma_pieces
    from nkigen.sim.trace import Instr, Mem, Region
    p, t2, t1 = DEFAULT_PARAMS, hw.TRN2, hw.TRN1
    assert dma_efficiency(p.dma_packet_chunk, p, t2) == 0.93
    assert dma_efficiency(p.dma_min_chunk, p, t2) == 0.93
    assert 0.93 < dma_efficiency(p.dma_min_chunk + 1, p, t2) < 0.931
    assert dma_efficiency(p.dma_sat_chunk, p, t2) == 1.0
    assert dma_efficiency(p.dma_packet_chunk - 1, p, t2) == pytest.approx(0.93 * 255 / 256)
    assert dma_efficiency(p.dma_packet_chunk, p, t1) == p.dma_small_chunk_eff   # trn1: fitted
    n = 128 * 256
    ins = Instr(hw.Engine.DMA, "dma_copy", 0, reads=(Region(1, Mem.HBM, 0, 1, 0, n),),
                writes=(Region(2, Mem.SBUF, 0, 128, 0, 256),), partitions=128, nbytes=n,
                hbm_bytes=n, chunk_bytes=256)
    k, _occ, done = dma_pieces(ins, t2, p)
    assert k == 16
    assert done - t2.dma_fixed_ns == pytest.approx(97.0, abs=1.0)


def _dma(i: int, partitions: int, nbytes: int, chunk: int) -> Instr:
    return Instr(Engine.DMA, "dma_copy", i, partitions=partitions, nbytes=nbytes,
                 hbm_bytes=nbytes, chunk_bytes=chunk)


def test_one_large_dma_latency():
    # 128 partitions x 2 KiB chunks from HBM on trn2: split over the 16 queues; each queue moves
    # 16 KiB at min(23 B/ns, 362.5/16 B/ns) x efficiency(2 KiB), plus the fixed 600 ns; the
    # efficiency is the log2 midpoint between trn2's 0.93 at 1 KiB and 1.0 at 4 KiB
    t = hw.TRN2
    rate = min(t.dma_gbps_per_queue, t.hbm_gbps_per_core / t.dma_queues) * 0.965
    want_ns = (128 * 2048 / 16) / rate + t.dma_fixed_ns
    assert want_ns == pytest.approx(1349.384, abs=1e-3)
    got = estimate([_dma(1, 128, 128 * 2048, 2048)], "trn2").latency_us * 1000
    assert got == pytest.approx(want_ns, rel=1e-9)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_many_tiny_dmas_are_bound_by_the_in_flight_count(target):
    # 64 independent 4-byte DMAs: 4 per queue; each occupies its queue for
    # max(transfer, fixed / in-flight) = fixed / 4, the last one then takes transfer + fixed.
    t = hw.target(target)
    eff = {"trn1": 0.25, "trn2": 0.93}[target]     # 256 B .. 1 KiB rows; packet-bound below
    rate = min(t.dma_gbps_per_queue, t.hbm_gbps_per_core / t.dma_queues) * eff * 4 / 256
    xfer = 4 / rate
    occ = t.dma_fixed_ns / 4
    assert occ > xfer
    want_ns = 3 * occ + xfer + t.dma_fixed_ns
    got = estimate([_dma(i, 1, 4, 4) for i in range(64)], target).latency_us * 1000
    assert math.isclose(got, want_ns, rel_tol=1e-9), (got, want_ns)


# ---- codegen's transpose choice uses the target's curve: pinned at its crossover ---------------

def test_transpose_choice_at_its_crossover():
    """``choose_transpose`` (nkigen.codegen.matmul): TensorE costs a plain load of whole source
    rows + 128 cycles per 128x128 tile; DMA transpose 0.9 x a copy of the destination rows
    (NC-v3), both with the target's DMA efficiency (trn2: 0.93 for 256 B .. 1 KiB rows,
    hw.Target.dma_small_row_eff, SH nki-dma-overview.rst; proportional below 256 B)."""
    from nkigen.codegen.matmul import choose_transpose

    t, item, row = hw.TRN2, 2, 512
    tile = 128 * 128 * item
    pe_ns = tile / (t.hbm_gbps_per_core * dma_efficiency(row * item, target=t)) \
        + 128 / t.tensor_ghz

    def dma_ns(free: int) -> float:
        return tile / (t.hbm_gbps_per_core * dma_efficiency(free * item, target=t) * 0.9)

    cross = next(f for f in range(1, 2049) if dma_ns(f) <= pe_ns)
    assert 64 < cross < 128              # 128 .. 256 B destination rows: packet-rate bound
    assert choose_transpose(t, item, row, cross - 1) == "pe"
    assert choose_transpose(t, item, row, cross) == "dma"
    # from 256 B destination rows the DMA transpose wins whatever the source rows (the
    # trn1-fitted 0.25 put the crossover at 1 KiB .. 1.1 KiB source rows instead)
    for r in (64, 512, 2048, 8192):
        assert choose_transpose(t, item, r, 128) == "dma"
        assert choose_transpose(t, 4, r, 64) == "dma"
    # NC-v2 has no DMA transpose unit (element-sized descriptors): TensorE always wins
    assert choose_transpose(hw.TRN1, item, 64, 2048) == "pe"
    assert choose_transpose(hw.TRN1, 4, 8192, 2048) == "pe"


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_dma_engines_serve_eight_partitions_each(target):
    """A DMA over P partitions runs on ceil(P / 8) of the 16 engines (SH nki/get-started/about/
    nki-dma-overview.rst: A[4, 4096] bf16 -> SBUF on one engine moving all 32 KiB; A[128, 128]
    on all 16, 8 partitions = 2 KiB each)."""
    from nkigen.sim.cost_rules import dma_pieces
    t = hw.target(target)

    def pieces(p: int) -> tuple[int, float]:
        k, occ, _done = dma_pieces(_dma(1, p, p * 32768, 32768), t)
        return k, occ

    assert pieces(1)[0] == 1
    assert pieces(8)[0] == 1 and pieces(9)[0] == 2        # the first engine's last partition
    assert pieces(120)[0] == 15 and pieces(121)[0] == 16
    assert pieces(128)[0] == 16
    one, four = pieces(1)[1], pieces(4)[1]
    assert four == pytest.approx(4 * one)                  # one engine moves all four rows
