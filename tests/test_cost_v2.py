"""Cost model v2 (issue 13): issue cycles, CSE of recomputation, PSUM-resident broadcasts,
launch overhead, calibration band, bound explanation, and SBUF spilling (issue 11).

Each calibration parameter is pinned: its shipped value is asserted and a behaviour test shows
what it changes, so re-fitting it fails here until the tests and the band are updated together.
"""

from __future__ import annotations

import dataclasses

import pytest

from nkigen import hw, sim
from nkigen.hw import Engine
from nkigen.sim import cost
from nkigen.sim.calibration import BAND, explain_bound, format_latency
from nkigen.sim.trace import Instr, Mem, Region

TRN1 = hw.target("trn1")
P0 = cost.DEFAULT_PARAMS


def sb(t: int, nbytes: int = 2048) -> Region:
    return Region(t, Mem.SBUF, 0, 128, 0, nbytes)


def tt(a: int, b: int, out: int, free: int = 512, dtype: str = "float32") -> Instr:
    return Instr(Engine.VECTOR, "tensor_tensor", 7, reads=(sb(a, 4 * free), sb(b, 4 * free)),
                 writes=(sb(out, 4 * free),), partitions=128, free=free, dtype=dtype,
                 out_dtype=dtype, n_tensor_inputs=2, attrs={"op": "multiply"})


def bcast(src: int, out: int, free: int) -> Instr:
    row = Region(src, Mem.SBUF, 0, 1, 0, 4 * free)
    return Instr(Engine.TENSOR, "broadcast_to", 5, reads=(row,),
                 writes=(sb(out, 4 * free),), partitions=1, free=free, stationary_free=128,
                 moving_free=free)


# ---- pinned calibration values -------------------------------------------------------------

def test_shipped_calibration_values():
    assert P0.issue_cycles == 80
    assert P0.launch_us == 40.0
    assert P0.dma_small_chunk_eff == 0.25
    assert BAND == 0.19


def test_issue_cycles_add_to_every_instruction():
    one = cost.schedule([tt(1, 2, 3)], TRN1)
    dur = one.busy[0] - one.start[0]
    assert dur == pytest.approx((2 * 512 + P0.issue_cycles) / TRN1.vector_ghz)
    zero = cost.schedule([tt(1, 2, 3)], TRN1, dataclasses.replace(P0, issue_cycles=0))
    assert zero.busy[0] - zero.start[0] == pytest.approx(2 * 512 / TRN1.vector_ghz)


def test_launch_overhead_is_in_device_latency_only():
    rep = cost.estimate([tt(1, 2, 3)], TRN1)
    assert rep.device_latency_us == pytest.approx(rep.latency_us + P0.launch_us)
    assert rep.launch_us == P0.launch_us


# ---- CSE of recomputation ------------------------------------------------------------------

def test_identical_recomputation_is_elided():
    tl = cost.schedule([tt(1, 2, 3), tt(1, 2, 4)], TRN1)
    assert list(tl.elided) == [0, 1]
    assert tl.busy[1] - tl.start[1] == 0.0
    off = cost.schedule([tt(1, 2, 3), tt(1, 2, 4)], TRN1, dataclasses.replace(P0, cse=False))
    assert list(off.elided) == [0, 0]


def test_recomputation_after_an_input_changed_is_not_elided():
    write1 = Instr(Engine.VECTOR, "memset", 7, writes=(sb(1, 2048),), partitions=128, free=512)
    tl = cost.schedule([tt(1, 2, 3), write1, tt(1, 2, 4)], TRN1)
    assert list(tl.elided) == [0, 0, 0]


def _load(tile: int, src: int) -> Instr:
    return Instr(Engine.DMA, "dma_copy", 9, reads=(Region(src, Mem.HBM, 0, 1, 0, 2048 * 128),),
                 writes=(sb(tile, 2048),), partitions=128, nbytes=2048 * 128,
                 hbm_bytes=2048 * 128, chunk_bytes=2048)


@pytest.mark.parametrize("path", ["fast", "reference", "replay"])
def test_recomputation_after_a_dma_rewrote_an_input_is_not_elided(path, monkeypatch):
    """A buffer reloaded by DMA holds new data: the same instruction on it is new work (the
    nki-samples adaptive_avg_pool2d reloads one window buffer per output position and sums
    it; every sum but the first was elided)."""
    from nkigen.sim import cost_replay, mode
    trace = [_load(1, 100), tt(1, 2, 3), _load(1, 101), tt(1, 2, 4)]
    monkeypatch.setenv(mode.ENV, "1" if path == "reference" else "0")
    if path == "replay":
        tl = cost_replay.record(trace, TRN1, P0).timeline(TRN1, P0)
    else:
        tl = cost.schedule(trace, TRN1)
    assert list(tl.elided) == [0, 0, 0, 0]
    assert tl.busy[3] - tl.start[3] == pytest.approx(tl.busy[1] - tl.start[1])
    # the same trace without the reload, or with a spill reload (the same data back): the
    # second instruction is a recomputation
    reload = dataclasses.replace(_load(1, 100), op="spill_reload")
    for same in ([_load(1, 100), tt(1, 2, 3), tt(1, 2, 4)],
                 [_load(1, 100), tt(1, 2, 3), reload, tt(1, 2, 4)]):
        if path == "replay":
            again = cost_replay.record(same, TRN1, P0).timeline(TRN1, P0)
        else:
            again = cost.schedule(same, TRN1)
        assert list(again.elided)[-1] == 1 and sum(again.elided) == 1


def test_accumulation_into_a_written_tile_is_not_elided():
    tl = cost.schedule([tt(1, 2, 3), tt(1, 2, 3)], TRN1)
    assert list(tl.elided) == [0, 0]


# ---- PSUM-resident partition broadcast -----------------------------------------------------

def _consumer_ns(free: int, params=P0) -> float:
    tl = cost.schedule([bcast(10, 11, free), tt(12, 11, 13, free)], TRN1, params)
    return tl.busy[1] - tl.start[1]


def test_broadcast_within_one_psum_bank_gives_the_psum_operand_rate():
    # 512 fp32 = 2048 B = one bank: consumer costs N (+ issue), 513 fp32 does not fit: 2N
    assert _consumer_ns(512) == pytest.approx((512 + P0.issue_cycles) / TRN1.vector_ghz)
    assert _consumer_ns(513) == pytest.approx((2 * 513 + P0.issue_cycles) / TRN1.vector_ghz)
    off = dataclasses.replace(P0, psum_broadcast=False)
    assert _consumer_ns(512, off) == pytest.approx((1024 + P0.issue_cycles) / TRN1.vector_ghz)


# ---- band and explanation ------------------------------------------------------------------

def test_printed_latency_carries_the_band():
    rep = cost.estimate([tt(1, 2, 3)], TRN1)
    assert rep.band == BAND
    assert "model, +-19 %" in str(rep)
    assert format_latency(12.3) == "12.30 us model, +-19 %"
    assert format_latency(12345.0) == "12.345 ms model, +-19 %"
    assert format_latency(12.3, 0.15) == "12.30 us model, +-15 %"


def test_explain_bound_names_engine_and_lines():
    trace = [tt(1, 2, 3 + i) for i in range(0)] + [
        Instr(Engine.VECTOR, "tensor_tensor", 20 + i % 2, reads=(sb(100 + i),),
              writes=(sb(200 + i),), partitions=128, free=512 * (1 + i % 2), n_tensor_inputs=1)
        for i in range(6)]
    b = explain_bound(cost.estimate(trace, TRN1))
    assert b.resource == "vector" and 0.9 < b.utilisation <= 1.0
    assert [lc.line for lc in b.lines] == [21, 20]
    assert b.lines[0].count == 3 and b.lines[0].share > 0.6
    assert "bound: vector" in str(b)


def test_explain_bound_names_a_dma_queue():
    ld = Instr(Engine.DMA, "dma_copy", 9, reads=(Region(1, Mem.HBM, 0, 1, 0, 1 << 20),),
               writes=(sb(2, 8192),), partitions=1, nbytes=1 << 20, hbm_bytes=1 << 20,
               chunk_bytes=8192)
    b = explain_bound(cost.estimate([ld], TRN1))
    assert b.resource == "dma queue 0" and b.lines[0].line == 9


# ---- SBUF spilling (issue 11) --------------------------------------------------------------

def _spill_kernel(free: int):
    """x is written first and read last; a and b = a * a are needed in between: at b three
    tiles of ``free`` fp32 are live."""
    import nki
    import nki.isa as nisa
    import nki.language as nl

    @nki.jit
    def k(a_in):
        x = nl.ndarray((128, free), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(x, 1.0)
        a = nl.ndarray((128, free), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(a, 2.0)
        b = nl.ndarray((128, free), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=b, data1=a, data2=a, op=nl.multiply)
        y = nl.ndarray((128, free), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=y, data1=x, data2=b, op=nl.add)
        return a_in
    return k


def _run(free: int, target: str = "trn1"):
    with sim.installed():
        k = _spill_kernel(free)
    return sim.run(k, [sim.placeholder((128, 4), "float32")], target=target, numerics=False)


FITS = TRN1.sbuf_bytes_per_partition // 12      # three live fp32 tiles of this width fit


def test_sbuf_at_capacity_does_not_spill():
    assert 3 * 4 * FITS <= TRN1.sbuf_bytes_per_partition < 3 * 4 * (FITS + 1)
    res = _run(FITS)
    assert not [i for i in res.instrs if i.op.startswith("spill_")]
    assert res.report.spill_bytes == 0


def test_sbuf_overflow_spills_the_furthest_used_tile_once():
    res = _run(FITS + 1)                          # 4 bytes/partition x 3 over the capacity
    ops = [i.op for i in res.instrs]
    spills = [i for i in res.instrs if i.op.startswith("spill_")]
    # x (written, next used last) is the victim, whole; it is stored before b is written and
    # reloaded right before its use
    assert [i.op for i in spills] == ["spill_out", "spill_reload"]
    assert ops.index("spill_out") == ops.index("tensor_tensor") - 1
    assert ops.index("spill_reload") == len(ops) - 2
    x = res.instrs[0].writes[0].tensor
    assert all(i.attrs["tile"] == x for i in spills)
    assert all(i.attrs["spilled_bytes_per_partition"] == 4 * (FITS + 1) for i in spills)
    assert all(i.nbytes == 128 * 4 * (FITS + 1) for i in spills)
    assert res.report.spill_bytes == 2 * 128 * 4 * (FITS + 1)
    out, back = spills
    assert out.reads[0].tensor == x                    # waits for x's writer
    b = res.instrs[ops.index("spill_out") + 1].writes[0].tensor
    assert out.writes[0].tensor == b                   # b's writer waits for the room
    assert back.writes[0].tensor == x                  # the last add waits for the reload
    assert len(res.warnings) == 1 and "compiler spills them" in res.warnings[0]
    assert "test_cost_v2.py:" in res.warnings[0]
    assert "SBUF spill" in str(res.report)


def test_clean_tile_is_reloaded_per_use_but_stored_once():
    # x is evicted twice between three uses; only the first eviction stores it (spill once,
    # reload per use)
    from nkigen.sim import spill

    def w(t):
        return Instr(Engine.VECTOR, "memset", 1, writes=(sb(t, 100),), partitions=128, free=25)
    trace = [w(1), tt(1, 1, 9, 25), w(2), w(3), tt(2, 3, 4, 25), tt(1, 4, 5, 25),
             w(6), w(7), tt(6, 7, 8, 25), tt(1, 8, 10, 25)]
    for ins in trace[:2]:
        ins.writes = (sb(ins.writes[0].tensor, 100),)
    got = [(i.op, i.attrs.get("tile")) for i in spill.plan(trace, 300)
           if i.op.startswith("spill_")]
    assert got == [("spill_out", 1), ("spill_reload", 1), ("spill_reload", 1)]
    assert not [i for i in spill.plan(trace, 400) if i.op.startswith("spill_")]


def test_operands_of_one_instruction_are_never_spilled():
    # the add's three tiles (300 B) exceed a 200 B capacity, but all are its own operands:
    # nothing can make room, nothing is spilled (the compiler would have to split the op)
    from nkigen.sim import spill

    def w(t):
        return Instr(Engine.VECTOR, "memset", 1, writes=(sb(t, 100),), partitions=128, free=25)
    trace = [w(1), w(2), tt(1, 2, 3, 25)]
    assert spill.plan(trace, 200) == trace


def test_spill_dma_queues_pinned_and_used():
    assert P0.spill_dma_queues == 8
    ins = Instr(Engine.DMA, "spill_reload", 1, writes=(sb(1, 32768),), partitions=128,
                nbytes=128 * 32768, hbm_bytes=128 * 32768, chunk_bytes=32768)
    assert cost.dma_pieces(ins, TRN1, P0)[0] == 8
    assert cost.dma_pieces(dataclasses.replace(ins, op="dma_copy"), TRN1, P0)[0] == 16


def test_single_tile_larger_than_sbuf_is_refused():
    cap = TRN1.sbuf_bytes_per_partition
    with sim.installed():
        import nki
        import nki.isa as nisa
        import nki.language as nl

        @nki.jit
        def k(a):
            t = nl.ndarray((128, cap // 4 + 1), dtype=nl.float32, buffer=nl.sbuf)
            nisa.memset(t, 0.0)
            return a
    with pytest.raises(sim.SimError, match="SBUF capacity exceeded"):
        sim.run(k, [sim.placeholder((128, 4), "float32")], target="trn1", numerics=False)


# ---- fast paths exactly as the cost tables state -------------------------------------------

TRN2 = hw.target("trn2")


def _v(op: str, dtype: str, out_dtype: str, in_psum: int = 0, out_psum: bool = False,
       strided: bool = False, n_in: int = 1) -> Instr:
    w = Region(99, Mem.PSUM if out_psum else Mem.SBUF, 0, 128, 0, 1024)
    attrs = {"strided": True} if strided else {}
    if op == "tensor_tensor":
        attrs["op"] = "add"
    return Instr(Engine.VECTOR, op, 1, writes=(w,), partitions=128, free=512, dtype=dtype,
                 out_dtype=out_dtype, in_psum=in_psum, n_tensor_inputs=n_in, attrs=attrs)


@pytest.mark.parametrize("kw,cycles", [
    (dict(op="tensor_copy", dtype="bfloat16", out_dtype="bfloat16"), 128),          # 4x
    (dict(op="tensor_copy", dtype="bfloat16", out_dtype="float16"), 128),           # 4x
    (dict(op="tensor_copy", dtype="bfloat16", out_dtype="float32"), 512),           # mixed: 1x
    (dict(op="tensor_copy", dtype="bfloat16", out_dtype="bfloat16", strided=True), 256),
    (dict(op="tensor_copy", dtype="bfloat16", out_dtype="bfloat16", in_psum=1), 256),
    (dict(op="tensor_copy", dtype="bfloat16", out_dtype="bfloat16", out_psum=True), 256),
    (dict(op="tensor_copy", dtype="float32", out_dtype="float32"), 512),
    (dict(op="tensor_tensor", dtype="bfloat16", out_dtype="bfloat16", n_in=2), 256),  # bf16 N/2
    (dict(op="tensor_tensor", dtype="float16", out_dtype="float16", n_in=2), 512),   # 2N / 2
    (dict(op="tensor_tensor", dtype="float16", out_dtype="float32", n_in=2), 1024),  # 2N
])
def test_trn2_vector_perf_mode(kw, cycles):
    assert cost.instr_cycles(_v(**kw), TRN2) == cycles


def test_tensor_tensor_fast_path_needs_bfloat16_in_and_out_on_trn1():
    assert cost.instr_cycles(_v("tensor_tensor", "bfloat16", "bfloat16", n_in=2), TRN1) == 512
    assert cost.instr_cycles(_v("tensor_tensor", "float16", "float16", n_in=2), TRN1) == 1024
    assert cost.instr_cycles(_v("tensor_tensor", "bfloat16", "float32", n_in=2), TRN1) == 1024
    assert cost.instr_cycles(_v("tensor_tensor", "float32", "float32", in_psum=1, n_in=2),
                             TRN1) == 512


def test_trn2_perf_mode_vector_shares_the_bus_with_gpsimd():
    g = Instr(Engine.GPSIMD, "tensor_copy", 1, writes=(sb(50),), partitions=128, free=4096)
    fast = _v("tensor_copy", "bfloat16", "bfloat16")
    slow = _v("tensor_copy", "float32", "float32")
    assert cost.schedule([g, fast], TRN2).start[1] >= cost.schedule([g], TRN2).busy[0]
    assert cost.schedule([g, slow], TRN2).start[1] == 0.0


def test_cli_explain_cost_names_the_bound_and_lines():
    import subprocess
    import sys
    from pathlib import Path

    kfile = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels" / "mamba_tutorial.py"
    cmd = [sys.executable, "-m", "nkigen", "sim", f"{kfile}::ssm_v2", "-i", "dt=1x128x512",
           "-i", "x=1x128x512", "-i", "a=128x2", "-i", "b=1x2x512", "-i", "c=1x2x512",
           "--cost-only", "--explain-cost", "--target", "trn1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "us model, +-19 %" in out.stdout
    assert "bound: vector" in out.stdout
    assert "mamba_tutorial.py:" in out.stdout and "tensor_tensor" in out.stdout


# ---- direct allocation: buffer reuse is visible to the schedule ----------------------------

def _two_loads(direct: bool):
    import nki
    import nki.isa as nisa
    import nki.language as nl

    @nki.jit
    def k(a):
        out = nl.ndarray((2, 128, 2048), dtype=nl.float32, buffer=nl.shared_hbm)
        for i in range(2):
            kw = {"address": (0, 0)} if direct else {}
            t = nl.ndarray((128, 2048), dtype=nl.float32, buffer=nl.sbuf, **kw)
            nisa.dma_copy(dst=t, src=a[i])
            u = nl.ndarray((128, 2048), dtype=nl.float32, buffer=nl.sbuf)
            nisa.activation(dst=u, op=nl.exp, data=t)
            nisa.dma_copy(dst=out[i], src=u)
        return out
    return k


def test_direct_allocation_reuse_serialises_the_second_load():
    starts = {}
    for direct in (False, True):
        with sim.installed():
            k = _two_loads(direct)
        res = sim.run(k, [sim.placeholder((2, 128, 2048), "float32")], target="trn1",
                      numerics=False)
        tl = res.report.timeline
        loads = [i for i, ins in enumerate(res.instrs) if ins.op.endswith("dma_copy")
                 and any(r.mem is Mem.SBUF for r in ins.writes)]
        act = [i for i, ins in enumerate(res.instrs) if ins.engine is Engine.SCALAR]
        starts[direct] = (tl.start[loads[1]], tl.busy[act[0]])
    assert starts[False][0] < starts[False][1]          # own buffer: loads run ahead
    assert starts[True][0] >= starts[True][1]           # same address: waits for the reader


def test_perfetto_marks_elided_recomputations():
    from nkigen.sim import perfetto

    ev = [e for e in perfetto.trace_events(cost.schedule([tt(1, 2, 3), tt(1, 2, 4)], TRN1))
          if e["ph"] == "X"]
    assert "elided" not in ev[0]["args"] and "CSE" in ev[1]["args"]["elided"]
    assert ev[1]["dur"] == 0.0
