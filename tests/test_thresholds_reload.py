"""Cost model on the pattern that made the nki-samples adaptive_avg_pool2d thresholds a finding
(benchmarks/bench_thresholds.py, docs/cost-thresholds.md): one SBUF window buffer, declared once,
reloaded by DMA for every output position and summed. Every reload brings new data, so every sum
is work (none is a CSE'd recomputation), and each sum waits for its reload, each reload for the
previous sum (WAR on the one buffer): the positions form one chain.

Our own classic kernel with that structure; cost-only, trn1.
"""

from __future__ import annotations

import pytest

from nkigen import sim
from nkigen.hw import Engine
from nkigen.sim.report import Report

with sim.installed():
    import neuronxcc.nki.isa as nisa
    import neuronxcc.nki.language as nl
    from neuronxcc import nki

POSITIONS = 6
WIN = 8


@nki.jit
def window_sums(x):
    """out[p, j] = mean of the j-th [WIN, WIN] window of x[p] (x: [64, WIN, POSITIONS * WIN])."""
    p = x.shape[0]
    out = nl.ndarray((p, POSITIONS), dtype=x.dtype, buffer=nl.shared_hbm)
    buf = nl.ndarray((nl.par_dim(p), WIN, WIN), dtype=x.dtype, buffer=nl.sbuf)
    res = nl.ndarray((nl.par_dim(p), POSITIONS), dtype=x.dtype, buffer=nl.sbuf)
    for j in nl.static_range(POSITIONS):
        nisa.dma_copy(src=x[0:p, 0:WIN, j * WIN:(j + 1) * WIN], dst=buf[0:p, 0:WIN, 0:WIN])
        total = nl.sum(buf[0:p, 0:WIN, 0:WIN], axis=[1, 2], keepdims=True)   # a fresh tile
        res[0:p, j:j + 1] = nl.multiply(total, 1.0 / (WIN * WIN))
    nl.store(out[0:p, 0:POSITIONS], value=res[0:p, 0:POSITIONS])
    return out


@pytest.fixture(scope="module")
def timeline():
    res = sim.run(window_sums, [sim.placeholder((64, WIN, POSITIONS * WIN), "float32")],
                  target="trn1", numerics=False)
    assert isinstance(res.report, Report)
    return res.report.timeline


def test_every_window_sum_is_costed(timeline):
    sums = [i for i, ins in enumerate(timeline.instrs) if ins.op == "tensor_reduce"]
    assert len(sums) == POSITIONS
    assert [timeline.elided[i] for i in sums] == [0] * POSITIONS
    assert all(timeline.busy[i] > timeline.start[i] for i in sums)


def test_reloads_and_sums_form_one_chain(timeline):
    ins = timeline.instrs
    loads = [i for i, x in enumerate(ins) if x.engine is Engine.DMA and x.op == "dma_copy"
             and x.partitions == 64 and x.nbytes == 64 * WIN * WIN * 4]
    sums = [i for i, x in enumerate(ins) if x.op == "tensor_reduce"]
    assert len(loads) == POSITIONS
    for k in range(POSITIONS):
        assert timeline.start[sums[k]] >= timeline.end[loads[k]]          # RAW: its window
        if k:
            assert timeline.start[loads[k]] >= timeline.busy[sums[k - 1]]  # WAR: the buffer
    # 64 partitions: 8 of the 16 DMA engines, 8 partitions each (SH nki-dma-overview.rst)
    assert len({q for i, q, *_ in timeline.dma_pieces() if i == loads[0]}) == 8
