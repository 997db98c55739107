"""Cost model behaviour on synthetic instruction traces (no simulator needed)."""

from __future__ import annotations

import itertools
import json

import pytest

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import cost, perfetto
from nkigen.sim.trace import Instr, Mem, Region

TRN1 = hw.target("trn1")
TRN2 = hw.target("trn2")
_ids = itertools.count(1000)


def sbuf(tensor: int, p: int = 128, nbytes: int = 2048, b0: int = 0) -> Region:
    return Region(tensor, Mem.SBUF, 0, p, b0, b0 + nbytes)


def psum(tensor: int, nbytes: int = 2048) -> Region:
    return Region(tensor, Mem.PSUM, 0, 128, 0, nbytes)


def hbm(tensor: int, b0: int, b1: int) -> Region:
    return Region(tensor, Mem.HBM, 0, 1, b0, b1)


def vec(op: str = "tensor_tensor", free: int = 512, reads=(), writes=(), **kw) -> Instr:
    kw.setdefault("n_tensor_inputs", 2 if op == "tensor_tensor" else 1)
    return Instr(Engine.VECTOR, op, 1, reads=reads, writes=writes, partitions=128, free=free,
                 **kw)


def act(free: int = 512, reads=(), writes=()) -> Instr:
    return Instr(Engine.SCALAR, "activation", 1, reads=reads, writes=writes, partitions=128,
                 free=free)


def mm(dtype: str = "bfloat16", reads=(), writes=(), ns: int = 128, nm: int = 512) -> Instr:
    return Instr(Engine.TENSOR, "nc_matmul", 1, reads=reads, writes=writes, partitions=128,
                 free=nm, stationary_free=ns, moving_free=nm, dtype=dtype)


def load(dst: Region, nbytes: int = 128 * 2048, parts: int = 128, chunk: int = 2048,
         src: int | None = None) -> Instr:
    src_r = hbm(src if src is not None else next(_ids), 0, nbytes)
    return Instr(Engine.DMA, "dma_copy", 1, reads=(src_r,), writes=(dst,), partitions=parts,
                 nbytes=nbytes, hbm_bytes=nbytes, chunk_bytes=chunk)


# ---- per-instruction rules ------------------------------------------------------------------

def test_matmul_fp32_is_four_times_bf16():
    assert cost.instr_cycles(mm("float32"), TRN1) == 4 * cost.instr_cycles(mm("bfloat16"), TRN1)
    assert cost.instr_cycles(mm("bfloat16"), TRN1) == 512          # max(min(64,128), 512)
    assert cost.instr_cycles(mm(ns=128, nm=16), TRN1) == 64        # short moving: min(64, Ns)


def test_two_input_vector_is_2n_and_psum_input_is_n():
    two = vec("tensor_tensor", free=1024)
    one_psum = vec("tensor_tensor", free=1024, in_psum=1)
    assert cost.instr_cycles(two, TRN1) == 2048
    assert cost.instr_cycles(one_psum, TRN1) == 1024
    fast = vec("tensor_tensor", free=1024, dtype="bfloat16", out_dtype="bfloat16",
               attrs={"op": "add"})
    assert cost.instr_cycles(fast, TRN1) == 1024


def test_min_ii_floor_and_gpsimd_start():
    assert cost.instr_cycles(vec("tensor_copy", free=8), TRN1) == hw.MIN_II
    assert cost.instr_cycles(act(free=1), TRN1) == hw.MIN_II
    iota = Instr(Engine.GPSIMD, "iota", 1, partitions=128, free=10)
    assert cost.instr_cycles(iota, TRN1) == hw.GPSIMD_START + 10


def test_table_rules():
    r = vec("reciprocal", free=100)
    assert cost.instr_cycles(r, TRN1) == 800
    red = vec("tensor_reduce", free=1000, dtype="bfloat16", out_dtype="bfloat16",
              attrs={"op": "add"})
    assert cost.instr_cycles(red, TRN1) == 500
    agg = vec("bn_aggr", free=300)
    assert cost.instr_cycles(agg, TRN1) == pytest.approx(1300)
    ar = Instr(Engine.SCALAR, "activation_reduce", 1, partitions=128, free=1000)
    assert cost.instr_cycles(ar, TRN1) == 1000 + hw.MIN_II


def test_every_rule_is_registered_once_per_name_and_unknown_ops_fall_back():
    assert "nc_matmul" in cost.RULES and "tensor_tensor" in cost.RULES
    odd = vec("some_new_op", free=300, n_tensor_inputs=2)
    assert cost.instr_cycles(odd, TRN1) == 600


def test_nl_apis_use_the_rule_of_the_instruction_they_lower_to():
    add16 = vec("nl.add", free=1000, n_tensor_inputs=2, dtype="bfloat16", out_dtype="bfloat16")
    add32 = vec("nl.add", free=1000, n_tensor_inputs=2)
    assert cost.instr_cycles(add16, TRN1) == 1000 and cost.instr_cycles(add32, TRN1) == 2000
    s16 = vec("nl.sum", free=1000, dtype="bfloat16", out_dtype="bfloat16")
    assert cost.isa_kind(s16) == "tensor_reduce" and cost.instr_cycles(s16, TRN1) == 500
    ex = Instr(Engine.SCALAR, "nl.exp", 1, partitions=128, free=700)
    assert cost.isa_kind(ex) == "activation" and cost.instr_cycles(ex, TRN1) == 700
    cp = vec("nl.copy", free=2048, dtype="bfloat16", out_dtype="bfloat16")
    assert cost.instr_cycles(cp, TRN2) == 512


def test_activation_with_reduce_output_costs_min_ii_more():
    a, b = next(_ids), next(_ids)
    plain = act(free=1000, writes=(sbuf(a),))
    red = act(free=1000, writes=(sbuf(a), sbuf(b, nbytes=4)))
    assert cost.instr_cycles(red, TRN1) == cost.instr_cycles(plain, TRN1) + hw.MIN_II


def test_trn2_vector_perf_mode_only_for_sbuf_16bit():
    bf = vec("tensor_copy", free=2048, dtype="bfloat16", out_dtype="bfloat16")
    f32 = vec("tensor_copy", free=2048)
    assert cost.instr_cycles(bf, TRN2) == 512
    assert cost.instr_cycles(f32, TRN2) == 2048
    assert cost.instr_cycles(bf, TRN1) == 2048


def test_engine_clock_converts_cycles():
    ins = vec("tensor_copy", free=1120)
    assert cost.instr_ns(ins, TRN1) == pytest.approx(1120 / TRN1.vector_ghz)


# ---- DMA ------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [256, 1024, 2048, 3000, 4096, 16384])
def test_more_dma_bytes_is_not_faster(chunk):
    lat = [cost.estimate([load(sbuf(1), nbytes=128 * per_part, chunk=chunk)], TRN1).latency_us
           for per_part in (chunk, 2 * chunk, 8 * chunk)]
    assert lat[0] <= lat[1] <= lat[2]


def test_small_chunks_are_slower_per_byte():
    assert cost.dma_efficiency(256) == cost.dma_efficiency(1024)          # flat (calibrated)
    assert cost.dma_efficiency(4) < cost.dma_efficiency(64) < cost.dma_efficiency(256)
    assert cost.dma_efficiency(1024) < cost.dma_efficiency(2048) < cost.dma_efficiency(4096) == 1.0
    fast = cost.estimate([load(sbuf(1), nbytes=128 * 8192, chunk=8192)], TRN1).latency_us
    slow = cost.estimate([load(sbuf(1), nbytes=128 * 8192, chunk=512)], TRN1).latency_us
    assert slow > fast


def test_dma_queues_run_in_parallel():
    one = [load(sbuf(next(_ids), p=1, nbytes=64 * 1024), nbytes=64 * 1024, parts=1, chunk=65536)]
    sixteen = [load(sbuf(next(_ids), p=1, nbytes=64 * 1024), nbytes=64 * 1024, parts=1,
                    chunk=65536) for _ in range(16)]
    seventeen = sixteen + [load(sbuf(next(_ids), p=1, nbytes=64 * 1024), nbytes=64 * 1024,
                                parts=1, chunk=65536)]
    t1 = cost.estimate(one, TRN1).latency_us
    t16 = cost.estimate(sixteen, TRN1).latency_us
    t17 = cost.estimate(seventeen, TRN1).latency_us
    assert t16 == pytest.approx(t1)           # 16 single-partition DMAs use 16 queues at once
    assert t17 > t16 * 1.5                    # the 17th waits for a queue


@pytest.mark.parametrize("target", [TRN1, TRN2])
def test_dma_transpose_slower_than_copy(target):
    a = load(sbuf(1), nbytes=128 * 8192, chunk=8192)
    b = load(sbuf(2), nbytes=128 * 8192, chunk=8192)
    b.op, b.transpose, b.chunk_bytes = "dma_transpose", True, 2    # as the simulator records it
    assert cost.dma_pieces(b, target)[1] > cost.dma_pieces(a, target)[1]


def test_nc_v2_vector_and_gpsimd_share_the_sbuf_port():
    v = vec("tensor_copy", free=4096, reads=(sbuf(next(_ids)),), writes=(sbuf(next(_ids)),))
    g = Instr(Engine.GPSIMD, "tensor_scalar", 1, reads=(sbuf(next(_ids)),),
              writes=(sbuf(next(_ids)),), partitions=128, free=4096)
    assert cost.schedule([v, g], TRN1).start[1] >= cost.schedule([v], TRN1).busy[0]
    assert cost.schedule([v, g], TRN2).start[1] == 0.0


@pytest.mark.parametrize("target", [TRN1, TRN2])
def test_dma_writes_to_sbuf_do_not_slow_engine_accesses(target):
    """No SBUF port contention between DMA writes and engines: the arch guides document only
    the engine-engine restrictions (S25 general/nki/arch/trainium_inferentia2_arch.rst
    "Concurrent SBUF/PSUM accesses by engines"; SH nki/guides/architecture/trainium2_arch.rst)
    and SBUF driving every engine interface at peak "without bandwidth interference"."""
    v = vec("tensor_copy", free=4096, reads=(sbuf(next(_ids)),), writes=(sbuf(next(_ids)),))
    dmas = [load(sbuf(next(_ids)), nbytes=128 * 8192, chunk=8192) for _ in range(8)]
    alone = cost.schedule([v], target)
    both = cost.schedule([*dmas, v], target)
    assert both.start[-1] == alone.start[0] == 0.0
    assert both.busy[-1] == alone.busy[0]
    assert both.start[0] == 0.0                     # and the loads start at once too


def test_blocked_store_does_not_block_independent_loads():
    """A store waiting for compute leaves a queue gap that later independent loads fill."""
    x = next(_ids)
    slow = [vec("tensor_tensor", free=60000, writes=(sbuf(x),))]
    store = Instr(Engine.DMA, "dma_copy", 1, reads=(sbuf(x),), writes=(hbm(next(_ids), 0, 2048),),
                  partitions=128, nbytes=128 * 2048, hbm_bytes=128 * 2048, chunk_bytes=2048)
    loads = [load(sbuf(next(_ids))) for _ in range(4)]
    tl = cost.schedule(slow + [store] + loads, TRN1)
    assert tl.start[2] < tl.start[1]


# ---- timeline and dependencies ----------------------------------------------------------------

def test_independent_engines_overlap():
    a, b = next(_ids), next(_ids)
    v = vec("tensor_copy", free=4096, writes=(sbuf(a),))
    s = act(free=4096, writes=(sbuf(b),))
    tv = cost.estimate([v], TRN1).latency_us
    ts = cost.estimate([s], TRN1).latency_us
    both = cost.estimate([v, s], TRN1).latency_us
    assert both == pytest.approx(max(tv, ts))


def test_raw_dependency_serializes():
    a, b = next(_ids), next(_ids)
    v = vec("tensor_copy", free=4096, writes=(sbuf(a),))
    s = act(free=4096, reads=(sbuf(a),), writes=(sbuf(b),))
    tl = cost.schedule([v, s], TRN1)
    assert tl.start[1] >= tl.busy[0]
    indep = cost.schedule([v, act(free=4096, reads=(sbuf(next(_ids)),))], TRN1)
    assert indep.start[1] == 0.0


def test_partial_overlap_matters_and_disjoint_does_not():
    a = next(_ids)
    w = vec("tensor_copy", free=4096, writes=(sbuf(a, nbytes=1024, b0=0),))
    r_disjoint = act(free=64, reads=(sbuf(a, nbytes=1024, b0=1024),))
    r_overlap = act(free=64, reads=(sbuf(a, nbytes=1024, b0=512),))
    assert cost.schedule([w, r_disjoint], TRN1).start[1] == 0.0
    assert cost.schedule([w, r_overlap], TRN1).start[1] >= cost.schedule([w], TRN1).busy[0]
    other_parts = act(free=64, reads=(Region(a, Mem.SBUF, 0, 128, 0, 1024),))
    upper = vec("tensor_copy", free=4096, writes=(Region(a, Mem.SBUF, 64, 128, 0, 1024),))
    lower = act(free=64, reads=(Region(a, Mem.SBUF, 0, 64, 0, 1024),))
    assert cost.schedule([upper, lower], TRN1).start[1] == 0.0
    assert cost.schedule([upper, other_parts], TRN1).start[1] > 0.0


def test_war_waits_for_reader():
    a, b = next(_ids), next(_ids)
    reader = vec("tensor_copy", free=8192, reads=(sbuf(a),), writes=(sbuf(b),))
    writer = act(free=64, writes=(sbuf(a),))
    tl = cost.schedule([reader, writer], TRN1)
    assert tl.start[1] >= tl.busy[0]


def test_waw_orders_writes():
    a = next(_ids)
    w1 = vec("tensor_copy", free=8192, writes=(sbuf(a),))
    w2 = act(free=64, writes=(sbuf(a),))
    tl = cost.schedule([w1, w2], TRN1)
    assert tl.start[1] >= tl.busy[0]


def test_psum_accumulation_runs_back_to_back_on_tensor_engine():
    ps = next(_ids)
    chain = [mm(reads=(sbuf(1),), writes=(psum(ps),)) for _ in range(8)]
    tl = cost.schedule(chain, TRN1)
    one = cost.instr_ns(chain[0], TRN1) + cost.DEFAULT_PARAMS.issue_cycles / TRN1.tensor_ghz
    assert tl.busy[7] == pytest.approx(8 * one)


def test_same_engine_dependency_pays_pipeline_latency():
    a, b = next(_ids), next(_ids)
    dep = [act(free=1, writes=(sbuf(a),)), act(free=1, reads=(sbuf(a),), writes=(sbuf(b),))]
    ind = [act(free=1, writes=(sbuf(a),)), act(free=1, writes=(sbuf(b),))]
    assert cost.schedule(dep, TRN1).start[1] > cost.schedule(ind, TRN1).start[1]


def test_many_instructions_schedule():
    ps = next(_ids)
    trace = []
    for _ in range(2000):
        t = next(_ids)
        trace.append(load(sbuf(t, nbytes=1024), nbytes=128 * 1024, chunk=1024, src=1))
        trace.append(mm(reads=(sbuf(t, nbytes=1024),), writes=(psum(ps),)))
    r = cost.estimate(trace, TRN1)
    assert r.latency_us > 0 and r.instr_counts["dma"] == 2000


# ---- report and trace -----------------------------------------------------------------------

def _small_kernel() -> list[Instr]:
    ps, out = next(_ids), next(_ids)
    trace = []
    for _ in range(4):
        t = next(_ids)
        trace.append(load(sbuf(t)))
        trace.append(mm(reads=(sbuf(t),), writes=(psum(ps),)))
    trace.append(vec("tensor_copy", in_psum=1, reads=(psum(ps),), writes=(sbuf(out),)))
    trace.append(Instr(Engine.DMA, "dma_copy", 9, reads=(sbuf(out),),
                       writes=(hbm(next(_ids), 0, 128 * 1024),), partitions=128,
                       nbytes=128 * 1024, hbm_bytes=128 * 1024, chunk_bytes=1024))
    return trace


def test_report_fields():
    r = cost.estimate(_small_kernel(), "trn1")
    assert r.latency_us > 0 and r.target == "trn1"
    assert 0 < r.hfu <= 1 and 0 < r.mbu <= 1
    assert all(0 <= v <= 1 for v in r.engine_busy.values())
    assert set(r.engine_busy) == {"tensor", "vector", "scalar", "gpsimd", "dma"}
    assert r.instr_counts == {"tensor": 4, "vector": 1, "scalar": 0, "gpsimd": 0, "dma": 5}
    assert r.matmul_flops == 4 * 2 * 128 * 128 * 512
    assert r.hbm_bytes == 4 * 128 * 2048 + 128 * 1024
    assert "not a measurement" in r.model and "not a measurement" in str(r)
    fp32 = [mm("float32", reads=(sbuf(1),), writes=(psum(2),))]
    bf16 = [mm("bfloat16", reads=(sbuf(1),), writes=(psum(2),))]
    assert cost.estimate(fp32, TRN1).hfu == pytest.approx(cost.estimate(bf16, TRN1).hfu, rel=0.2)


def test_report_json_round_trip():
    r = cost.estimate(_small_kernel(), TRN2)
    d = json.loads(r.to_json())
    assert d["latency_us"] == pytest.approx(r.latency_us)
    assert d["model"] == r.model and "timeline" not in d
    assert d == r.to_dict()


def test_perfetto_trace_structure(tmp_path):
    r = cost.estimate(_small_kernel(), TRN1)
    p1 = perfetto.write_trace(r, tmp_path / "a.json")
    p2 = perfetto.write_trace(r.timeline, tmp_path / "b.json")
    assert p1.read_text() == p2.read_text()            # deterministic
    doc = json.loads(p1.read_text())
    evs = doc["traceEvents"]
    xs = [e for e in evs if e["ph"] == "X"]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"tensor engine", "vector engine", "dma queue 0", "dma queue 15"} <= names
    assert len([e for e in xs if e["tid"] < 100]) == 5     # 4 matmuls + 1 copy
    assert len([e for e in xs if e["tid"] >= 100]) == 5 * 16
    for e in xs:
        assert e["dur"] >= 0 and e["ts"] >= 0 and "line" in e["args"]
    dma = [e for e in xs if e["tid"] >= 100]
    assert all("bytes" in e["args"] for e in dma)
    by_tid: dict[int, list] = {}
    for e in xs:
        by_tid.setdefault(e["tid"], []).append(e)
    for track in by_tid.values():                      # events on one track never overlap
        for a, b in itertools.pairwise(track):
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-6


def test_perfetto_collapses_wide_dmas_when_large(tmp_path):
    r = cost.estimate(_small_kernel(), TRN1)
    doc = json.loads(perfetto.write_trace(r, tmp_path / "c.json", max_dma_events=10).read_text())
    dma = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["tid"] >= 99]
    assert len(dma) == 5 and all(e["tid"] == 99 and e["args"]["queues"] == 16 for e in dma)


def test_disjoint_strided_hbm_stores_do_not_serialize():
    """Column-slab stores have overlapping bounding byte ranges but must not wait on each other."""
    out = next(_ids)
    stores = [Instr(Engine.DMA, "dma_copy", 1, reads=(sbuf(next(_ids), p=1, nbytes=256),),
                    writes=(hbm(out, 4 * j, 4 * j + 4 + 127 * 256),), partitions=1, nbytes=512,
                    hbm_bytes=512, chunk_bytes=4) for j in range(8)]
    tl = cost.schedule(stores, TRN1)
    assert max(tl.start) == 0.0


def test_schedule_uses_each_instructions_own_cost():
    """The per-schedule cycle cache must not mix up instructions that differ in a costed field."""
    a, b, c = next(_ids), next(_ids), next(_ids)
    plain = act(free=1000, writes=(sbuf(a),))
    red = act(free=1000, writes=(sbuf(b), sbuf(c, nbytes=4)))
    tl = cost.schedule([plain, red], TRN1)
    assert (tl.busy[1] - tl.start[1]) > (tl.busy[0] - tl.start[0])


def test_scalar_tensor_tensor_is_n_only_for_bf16_subtract_multiply_even():
    """S25 nki.isa.scalar_tensor_tensor cost table (SDK 2.25): N cycles when data and operand1
    are both bfloat16, op0 = subtract, op1 = multiply and N is even; else 2N."""
    def stt(free=512, dtype="bfloat16", op0="subtract", op1="multiply", **attrs):
        return vec("scalar_tensor_tensor", free=free, dtype=dtype, out_dtype=dtype,
                   n_tensor_inputs=2, attrs={"op0": op0, "op1": op1, **attrs})
    assert cost.instr_cycles(stt(), TRN1) == 512
    assert cost.instr_cycles(stt(free=511), TRN1) == 2 * 511             # N odd
    assert cost.instr_cycles(stt(dtype="float16"), TRN1) == 1024        # float16 is not bf16
    assert cost.instr_cycles(stt(dtype="float32"), TRN1) == 1024
    assert cost.instr_cycles(stt(op1="add"), TRN1) == 1024
    assert cost.instr_cycles(stt(op0="multiply"), TRN1) == 1024
    assert cost.instr_cycles(stt(operand1_dtype="float32"), TRN1) == 1024   # operand1 fp32


def test_scalar_tensor_tensor_records_a_different_operand1_dtype():
    from nkigen import sim
    with sim.installed():
        import nki
        import nki.isa as nisa
        import nki.language as nl

    @nki.jit
    def k(a, b):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        x = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
        y = nl.ndarray(b.shape, dtype=b.dtype, buffer=nl.sbuf)
        r = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=x, src=a)
        nisa.dma_copy(dst=y, src=b)
        nisa.scalar_tensor_tensor(dst=r, data=x, op0=nl.subtract, operand0=1.0,
                                  op1=nl.multiply, operand1=y)
        nisa.dma_copy(dst=out, src=r)
        return out

    for bdt, cycles in (("bfloat16", 512), ("float32", 1024)):
        res = sim.run(k, [sim.placeholder((128, 512), "bfloat16"),
                          sim.placeholder((128, 512), bdt)], target="trn1", numerics=False)
        ins = next(i for i in res.instrs if i.op == "scalar_tensor_tensor")
        assert cost.instr_cycles(ins, TRN1) == cycles
