"""Cost model: an LNC=2 launch runs its two programs on two physical NeuronCores.

On NeuronCore-v3+ ``kernel[2]`` puts program 0 and program 1 on the two physical cores of a
logical NeuronCore, in parallel, sharing HBM (SH nki/nki_faq.rst; nki/get-started/about/lnc.rst).
The cost model gives each its own engines and DMA queues (nkigen.sim.cost.physical_cores);
dependencies through shared tensors stay. NeuronCore-v2 and other grids stay on one core.
Checked on the fast, reference and replay schedules (the same timeline from each).
"""

from __future__ import annotations

import dataclasses

import pytest

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import cost, cost_replay, mode
from nkigen.sim.calibration import explain_bound
from nkigen.sim.trace import Instr, Mem, Region

P0 = cost.DEFAULT_PARAMS


def _program(prog: tuple, base: int, out_hbm: int = 900) -> list[Instr]:
    """Load a [128, 2048] fp32 tile, one VectorE pass, store: one program's work."""
    t_in, t_mid, t_out = base, base + 1, base + 2
    sb = Region(t_in, Mem.SBUF, 0, 128, 0, 8192)
    mid = Region(t_mid, Mem.SBUF, 0, 128, 0, 8192)
    off = (prog[0] if prog else 0) * 1 << 20
    src = Region(t_out + 1000, Mem.HBM, 0, 1, off, off + (1 << 20))
    dst = Region(out_hbm, Mem.HBM, 0, 1, off, off + (1 << 20))
    load = Instr(Engine.DMA, "dma_copy", 1, reads=(src,), writes=(sb,), partitions=128,
                 nbytes=1 << 20, hbm_bytes=1 << 20, chunk_bytes=8192, program=prog)
    op = Instr(Engine.VECTOR, "tensor_scalar", 2, reads=(sb,), writes=(mid,), partitions=128,
               free=2048, program=prog)
    store = Instr(Engine.DMA, "dma_copy", 3, reads=(mid,), writes=(dst,), partitions=128,
                  nbytes=1 << 20, hbm_bytes=1 << 20, chunk_bytes=8192, program=prog)
    return [load, op, store]


def _timeline(trace, target: str, path: str, monkeypatch) -> cost.Timeline:
    monkeypatch.setenv(mode.ENV, "1" if path == "reference" else "0")
    t = hw.target(target)
    if path == "replay":
        return cost_replay.record(trace, t, P0).timeline(t, P0)
    return cost.schedule(trace, t, P0)


PATHS = ["fast", "reference", "replay"]


@pytest.mark.parametrize("path", PATHS)
def test_two_programs_run_in_parallel_on_trn2_only(path, monkeypatch):
    one = _timeline(_program((0,), 10), "trn2", path, monkeypatch).latency_ns
    both = _program((0,), 10) + _program((1,), 20)
    lnc = _timeline(both, "trn2", path, monkeypatch)
    assert lnc.cores == 2
    assert lnc.latency_ns == pytest.approx(one)             # independent: fully parallel
    # NeuronCore-v2 has no LNC: the same two programs share one core's engines and queues
    seq = _timeline(both, "trn1", path, monkeypatch)
    one1 = _timeline(_program((0,), 10), "trn1", path, monkeypatch).latency_ns
    assert seq.cores == 1 and seq.latency_ns > 1.2 * one1         # (they overlap in part)


@pytest.mark.parametrize("path", PATHS)
def test_other_grids_stay_on_one_core(path, monkeypatch):
    one = _timeline(_program((0,), 10), "trn2", path, monkeypatch).latency_ns
    three = _program((0,), 10) + _program((1,), 20) + _program((2,), 30)
    tl = _timeline(three, "trn2", path, monkeypatch)
    assert tl.cores == 1 and tl.latency_ns > 2 * one
    single = _timeline(_program((), 10) + _program((), 20), "trn2", path, monkeypatch)
    assert single.cores == 1 and single.latency_ns > 1.5 * one


@pytest.mark.parametrize("path", PATHS)
def test_a_dependency_through_shared_hbm_crosses_cores(path, monkeypatch):
    """Program 1 reads what program 0 stored (the same HBM bytes): it waits for the store."""
    p0 = _program((0,), 10)
    p1 = _program((1,), 20)
    stored = p0[2].writes[0]
    p1[0] = dataclasses.replace(p1[0], reads=(stored,))
    tl = _timeline(p0 + p1, "trn2", path, monkeypatch)
    assert tl.start[3] >= tl.end[2]
    one = _timeline(_program((0,), 10), "trn2", path, monkeypatch).latency_ns
    assert tl.latency_ns > 1.9 * one


def test_each_core_has_its_own_queues_and_busy_is_per_core(monkeypatch):
    monkeypatch.setenv(mode.ENV, "0")
    both = _program((0,), 10) + _program((1,), 20)
    rep = cost.estimate(both, "trn2")
    qs = {q for _i, q, *_ in rep.timeline.dma_pieces()}
    assert qs == set(range(32))                              # 16 per physical core
    one = cost.estimate(_program((0,), 10), "trn2")
    for name, frac in one.engine_busy.items():              # the same work on each core
        assert rep.engine_busy[name] == pytest.approx(frac)
    assert rep.mbu == pytest.approx(one.mbu)
    assert explain_bound(rep).resource == explain_bound(one).resource
