"""The indexed dependency tracker of the cost model agrees with a brute-force scan of all earlier
instructions (random region traces, compute engines only)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import cost
from nkigen.sim.trace import Instr, Mem, Region

TRN2 = hw.target("trn2")     # no NC-v2 shared ports: engines interact only through data
# dependency tracking only: recomputations are not elided (CSE is tested in test_cost_v2.py)
NO_CSE = dataclasses.replace(cost.DEFAULT_PARAMS, cse=False)
ENGINES = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)


def _overlap(a: Region, b: Region) -> bool:
    return (a.tensor == b.tensor and a.p0 < b.p1 and b.p0 < a.p1 and a.b0 < b.b1
            and b.b0 < a.b1)


def brute_force_starts(instrs: list[Instr]) -> list[float]:
    params = NO_CSE
    free = dict.fromkeys(ENGINES, 0.0)
    busy: list[float] = []
    vis: list[float] = []
    starts: list[float] = []
    for i, ins in enumerate(instrs):
        ready = 0.0
        for j in range(i):
            prev = instrs[j]
            same_te = ins.engine is Engine.TENSOR and prev.engine is Engine.TENSOR
            w_done = busy[j] if same_te else vis[j]
            if any(_overlap(w, r) for w in prev.writes for r in ins.reads):
                ready = max(ready, w_done)                               # RAW
            if any(_overlap(w, x) for w in prev.writes for x in ins.writes):
                ready = max(ready, w_done)                               # WAW
            if any(_overlap(r, x) for r in prev.reads for x in ins.writes):
                ready = max(ready, busy[j])                              # WAR
        s = max(ready, free[ins.engine])
        d = cost.instr_ns(ins, TRN2) + params.issue_cycles / TRN2.clock_ghz(ins.engine)
        free[ins.engine] = s + d
        starts.append(s)
        busy.append(s + d)
        vis.append(s + d + params.dep_latency(ins.engine) / TRN2.clock_ghz(ins.engine))
    return starts


@st.composite
def regions(draw) -> Region:
    p0 = draw(st.sampled_from([0, 32, 64]))
    p1 = draw(st.sampled_from([p for p in (32, 64, 96, 128) if p > p0]))
    b0 = draw(st.integers(0, 6)) * 256
    b1 = b0 + draw(st.integers(1, 4)) * 256
    return Region(draw(st.integers(0, 2)), Mem.SBUF, p0, p1, b0, b1)


@st.composite
def instrs(draw) -> Instr:
    eng = draw(st.sampled_from(ENGINES))
    reads = tuple(draw(st.lists(regions(), max_size=2)))
    writes = tuple(draw(st.lists(regions(), min_size=1, max_size=1)))
    if eng is Engine.TENSOR:
        return Instr(eng, "nc_matmul", 1, reads=reads, writes=writes, partitions=128,
                     free=draw(st.sampled_from([64, 128, 512])), stationary_free=128,
                     moving_free=draw(st.sampled_from([64, 128, 512])), dtype="bfloat16")
    return Instr(eng, "tensor_copy", 1, reads=reads, writes=writes, partitions=128,
                 free=draw(st.integers(1, 2000)))


@settings(max_examples=60, deadline=None)
@given(st.lists(instrs(), min_size=1, max_size=25))
def test_indexed_dependencies_match_brute_force(trace):
    tl = cost.schedule(trace, TRN2, NO_CSE)
    expect = brute_force_starts(trace)
    assert [round(x, 6) for x in tl.start] == [round(x, 6) for x in expect]


@st.composite
def any_instr(draw) -> Instr:
    eng = draw(st.sampled_from((*ENGINES, Engine.DMA)))
    mem = draw(st.sampled_from(list(Mem)))
    reg = st.builds(Region, st.integers(0, 3), st.just(mem), st.just(0), st.integers(1, 128),
                    st.integers(0, 64), st.integers(65, 4096))
    op = draw(st.sampled_from(sorted(cost.RULES) + ["dma_copy", "dma_transpose", "nl.add",
                                                    "nl.exp", "nl.sum", "mystery"]))
    return Instr(eng, op, 0, reads=tuple(draw(st.lists(reg, max_size=2))),
                 writes=tuple(draw(st.lists(reg, max_size=2))),
                 partitions=draw(st.integers(0, 128)), free=draw(st.integers(0, 70000)),
                 dtype=draw(st.sampled_from(["float32", "bfloat16", "float8_e4m3", "int32"])),
                 out_dtype=draw(st.sampled_from(["float32", "bfloat16"])),
                 n_tensor_inputs=draw(st.integers(0, 3)), in_psum=draw(st.integers(0, 2)),
                 stationary_free=draw(st.integers(0, 128)), moving_free=draw(st.integers(0, 512)),
                 nbytes=draw(st.integers(0, 1 << 22)), hbm_bytes=draw(st.integers(0, 1 << 22)),
                 chunk_bytes=draw(st.integers(0, 1 << 16)), transpose=draw(st.booleans()),
                 attrs=draw(st.sampled_from([{}, {"op": "add"}, {"value": 0.0},
                                             {"strided": True}, {"value": [1, 2]}])))


@settings(max_examples=80, deadline=None)
@given(st.lists(any_instr(), max_size=30), st.sampled_from(["trn1", "trn2"]))
def test_any_trace_gives_a_sane_report(trace, target):
    r = cost.estimate(trace, target)
    assert r.latency_us >= 0
    assert 0 <= r.hfu <= 1 and 0 <= r.mbu <= 1 and 0 <= r.dma_active <= 1 + 1e-9
    assert all(0 <= v <= 1 for v in r.engine_busy.values())
    tl = r.timeline
    assert all(tl.start[i] <= tl.busy[i] <= tl.end[i] + 1e-9 for i in range(len(trace)))
