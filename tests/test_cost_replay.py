"""nkigen.sim.cost_replay: a recorded schedule replayed under other parameters equals a fresh
cost.schedule exactly (same start/busy/end per instruction, same DMA pieces, same busy sums)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nkigen import hw, sim
from nkigen.hw import Engine
from nkigen.sim import cost, cost_replay
from nkigen.sim.trace import Instr, Mem, Region

KERNELS = Path(__file__).resolve().parent.parent / "benchmarks" / "kernels"
P0 = cost.DEFAULT_PARAMS


def _same(a: cost.Timeline, b: cost.Timeline) -> None:
    assert list(a.start) == list(b.start)
    assert list(a.busy) == list(b.busy)
    assert list(a.end) == list(b.end)
    assert list(a.pieces) == list(b.pieces)
    assert a.engine_busy_ns == b.engine_busy_ns
    assert list(a.elided) == list(b.elided)


def _mamba_toy() -> list[Instr]:
    ks = sim.load(KERNELS / "mamba_tutorial.py", "KERNELS")
    f32 = "float32"
    args = [sim.placeholder((1, 256, 512), f32), sim.placeholder((1, 256, 512), f32),
            sim.placeholder((256, 16), f32), sim.placeholder((1, 16, 512), f32),
            sim.placeholder((1, 16, 512), f32)]
    return sim.run(ks["v1"], args, target="trn1", numerics=False, report=False).instrs


def _synthetic() -> list[Instr]:
    """DMA in, a PSUM-resident broadcast, a repeated (CSE'd) op, VectorE/GpSimd port sharing,
    a spill reload on fewer queues, a strided small-chunk store."""
    def sb(t, n=2048, p=128):
        return Region(t, Mem.SBUF, 0, p, 0, n)
    hbm = Region(1, Mem.HBM, 0, 1, 0, 1 << 20)
    ld = Instr(Engine.DMA, "dma_copy", 1, reads=(hbm,), writes=(sb(2),), partitions=128,
               nbytes=128 * 2048, hbm_bytes=128 * 2048, chunk_bytes=512)
    bc = Instr(Engine.TENSOR, "broadcast_to", 2, reads=(sb(2, 2048, 1),), writes=(sb(3),),
               partitions=1, free=512, stationary_free=128, moving_free=512)
    mul = Instr(Engine.VECTOR, "tensor_tensor", 3, reads=(sb(2), sb(3)), writes=(sb(4),),
                partitions=128, free=512, n_tensor_inputs=2, attrs={"op": "multiply"})
    again = dataclasses.replace(mul, writes=(sb(5),))
    gp = Instr(Engine.GPSIMD, "iota", 4, writes=(sb(6),), partitions=128, free=512)
    act = Instr(Engine.SCALAR, "activation", 5, reads=(sb(5),), writes=(sb(7),),
                partitions=128, free=512)
    rl = Instr(Engine.DMA, "spill_reload", 6, reads=(sb(7),), writes=(sb(8, 32768),),
               partitions=128, nbytes=128 * 32768, hbm_bytes=128 * 32768, chunk_bytes=32768)
    st = Instr(Engine.DMA, "dma_copy", 7, reads=(sb(8, 32768),),
               writes=(Region(9, Mem.HBM, 0, 1, 0, 1 << 22),), partitions=128,
               nbytes=128 * 32768, hbm_bytes=128 * 32768, chunk_bytes=4)
    return [ld, bc, mul, again, gp, act, rl, st] * 3


POINTS = [P0, dataclasses.replace(P0, issue_cycles=0, dma_small_chunk_eff=0.4),
          dataclasses.replace(P0, spill_dma_queues=2, launch_us=0.0)]


@pytest.mark.parametrize("make", [_synthetic, _mamba_toy])
@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_replay_equals_schedule(make, target):
    trace = make()
    t = hw.target(target)
    rec = cost_replay.record(trace, t)
    for p in POINTS:
        for tt in (t, dataclasses.replace(t, dma_gbps_per_queue=17.0)):
            _same(rec.timeline(tt, p), cost.schedule(trace, tt, p))
    assert rec.timeline(t).latency_ns > 0


def test_replay_feeds_estimate():
    trace = _synthetic()
    rec = cost_replay.record(trace, "trn1")
    a = cost.estimate(trace, "trn1", timeline=rec.timeline("trn1"))
    b = cost.estimate(trace, "trn1")
    assert a.latency_us == b.latency_us and a.engine_busy == b.engine_busy


def test_replay_refuses_other_structure():
    trace = _synthetic()
    rec = cost_replay.record(trace, "trn1")
    with pytest.raises(ValueError, match="cse"):
        rec.timeline("trn1", dataclasses.replace(P0, cse=False))
    with pytest.raises(ValueError, match="NeuronCore version"):
        rec.timeline("trn2")
