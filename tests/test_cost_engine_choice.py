"""Cost model: a tile copy with no engine given runs on the engine the schedule finds first free.

S25 general/nki/api/nki/isa/__init__.py (SDK 2.25) and SH nki/api/nki/isa/__init__.py (nki 0.3),
``tensor_copy``: ``engine`` defaults to unknown, "compiler selects best engine based on engine
workload". The simulator lists the engines the copy may use (nkigen.sim.isa_move.copy_engines:
VectorE; ScalarE on NeuronCore-v3+, on v2 only classic kernels with a source dtype float32 holds
exactly; GpSimd when no operand is in PSUM) and the schedules give it to the one whose result
would be visible first, VectorE on a tie. Checked on the fast, reference and replay schedules.
"""

from __future__ import annotations

import dataclasses

import pytest

from nkigen import hw, sim
from nkigen.hw import Engine
from nkigen.sim import cost, cost_replay, mode
from nkigen.sim.calibration import explain_bound
from nkigen.sim.cost_rules import engine_choices
from nkigen.sim.trace import Instr, Mem, Region

P0 = cost.DEFAULT_PARAMS
PATHS = ["fast", "reference", "replay"]
ALL = ("vector", "scalar", "gpsimd")


def _timeline(trace, target: str, path: str, monkeypatch) -> cost.Timeline:
    monkeypatch.setenv(mode.ENV, "1" if path == "reference" else "0")
    t = hw.target(target)
    if path == "replay":
        return cost_replay.record(trace, t, P0).timeline(t, P0)
    return cost.schedule(trace, t, P0)


def _sb(tid: int, nbytes: int = 4096) -> Region:
    return Region(tid, Mem.SBUF, 0, 128, 0, nbytes)


def _vec(tid: int, line: int, free: int = 1024) -> Instr:
    """A VectorE pass over its own fresh tiles (independent work that loads VectorE)."""
    return Instr(Engine.VECTOR, "tensor_scalar", line, reads=(_sb(tid),), writes=(_sb(tid + 1),),
                 partitions=128, free=free)


def _copy(tid: int, line: int, engines: tuple[str, ...] | None = ALL, free: int = 1024,
          src_mem: Mem = Mem.SBUF, dtype: str = "float32") -> Instr:
    attrs = {"engines": engines} if engines else {}
    src = Region(tid, src_mem, 0, 128, 0, 4 * free)
    return Instr(Engine.VECTOR, "tensor_copy", line, reads=(src,), writes=(_sb(tid + 1),),
                 partitions=128, free=free, in_psum=1 if src_mem is Mem.PSUM else 0,
                 dtype=dtype, out_dtype=dtype, attrs=attrs)


@pytest.mark.parametrize("path", PATHS)
def test_a_lone_copy_goes_where_its_result_is_visible_first(path, monkeypatch):
    """Nothing else runs. trn2 bf16: VectorE's performance mode (4x, SH trainium2_arch) wins;
    trn2 fp32: GpSimd (N cycles at 1.2 GHz, VectorE N at 0.96 GHz, the same 20-cycle result
    latency) wins; an instruction with no candidates recorded (engine= given) stays put."""
    bf16 = _timeline([_copy(10, 1, dtype="bfloat16")], "trn2", path, monkeypatch)
    assert bf16.moved == {} and bf16.engine_at(0) is Engine.VECTOR
    fp32 = _timeline([_copy(10, 1)], "trn2", path, monkeypatch)
    assert fp32.engine_at(0) is Engine.GPSIMD and fp32.engine_busy_ns["vector"] == 0.0
    fixed = _timeline([_copy(10, 1, engines=None)], "trn2", path, monkeypatch)
    assert fixed.moved == {} and fixed.engine_at(0) is Engine.VECTOR


@pytest.mark.parametrize("path", PATHS)
def test_a_busy_vector_engine_sends_the_copy_elsewhere(path, monkeypatch):
    trace = [_vec(10, 1, free=8192), _copy(20, 2, engines=("vector", "scalar"), free=1024)]
    tl = _timeline(trace, "trn2", path, monkeypatch)
    assert tl.engine_at(0) is Engine.VECTOR
    assert tl.engine_at(1) is Engine.SCALAR
    assert tl.start[1] == 0.0                      # ran alongside the VectorE pass
    assert tl.engine_busy_ns["scalar"] == pytest.approx(tl.busy[1] - tl.start[1])
    # the same copy pinned to VectorE waits for the pass
    pinned = _timeline([trace[0], _copy(20, 2, engines=None, free=1024)], "trn2", path,
                       monkeypatch)
    assert pinned.start[1] >= pinned.busy[0]
    assert pinned.latency_ns > tl.latency_ns


def _blocker(free: int) -> Instr:
    """A VectorE memset of ``free`` fp32 elements (no inputs: no dependency)."""
    return Instr(Engine.VECTOR, "memset", 1, writes=(_sb(90),), partitions=128, free=free,
                 n_tensor_inputs=0)


@pytest.mark.parametrize("path", PATHS)
def test_vector_keeps_the_copy_up_to_the_tie_and_loses_it_one_cycle_later(path, monkeypatch):
    """Boundary: a VectorE backlog under which VectorE's result is still visible no later than
    ScalarE's keeps the copy on VectorE (ties go to the listed order); one VectorE cycle more of
    backlog moves it to ScalarE."""
    t = hw.TRN2
    cp = _copy(20, 2, engines=("vector", "scalar"), free=2048, dtype="bfloat16")
    lat = {e: P0.dep_latency(e) / t.clock_ghz(e) for e in (Engine.VECTOR, Engine.SCALAR)}
    issue = {e: P0.issue_cycles / t.clock_ghz(e) for e in (Engine.VECTOR, Engine.SCALAR)}
    on = {e: cost.instr_ns(dataclasses.replace(cp, engine=e), t) + issue[e] for e in lat}
    s_vis = on[Engine.SCALAR] + lat[Engine.SCALAR]

    def v_vis(free: int) -> float:
        return cost.instr_ns(_blocker(free), t) + issue[Engine.VECTOR] + \
            on[Engine.VECTOR] + lat[Engine.VECTOR]

    last = max(f for f in range(64, 4096) if v_vis(f) <= s_vis)
    assert v_vis(last + 1) > s_vis
    keep = _timeline([_blocker(last), cp], "trn2", path, monkeypatch)
    assert keep.engine_at(1) is Engine.VECTOR and keep.end[1] == pytest.approx(v_vis(last))
    move = _timeline([_blocker(last + 1), cp], "trn2", path, monkeypatch)
    assert move.engine_at(1) is Engine.SCALAR and move.end[1] == pytest.approx(s_vis)


@pytest.mark.parametrize("path", PATHS)
def test_explain_bound_and_busy_time_follow_the_chosen_engine(path, monkeypatch):
    trace = [_vec(10 * k, k, free=4096) for k in range(1, 4)]
    trace += [_copy(100 + 10 * k, 50, engines=("vector", "scalar"), free=4096)
              for k in range(3)]
    tl = _timeline(trace, "trn2", path, monkeypatch)
    assert [tl.engine_at(i) for i in range(6)] == [Engine.VECTOR] * 3 + [Engine.SCALAR] * 3
    sc = sum(tl.busy[i] - tl.start[i] for i in range(3, 6))
    assert tl.engine_busy_ns["scalar"] == pytest.approx(sc)
    rep = cost.estimate(trace, "trn2", P0, timeline=tl)
    assert rep.instr_counts["vector"] == 3 and rep.instr_counts["scalar"] == 3
    b = explain_bound(rep)
    assert b.resource == "vector"
    assert [lc.line for lc in b.lines] == [1, 2, 3]       # the copies are not VectorE's


def test_gpsimd_is_dropped_for_a_psum_resident_read():
    cp = _copy(20, 2, free=512)
    assert engine_choices(cp) == (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)
    ps = _copy(20, 2, free=512, src_mem=Mem.PSUM)
    assert engine_choices(ps) == (Engine.VECTOR, Engine.SCALAR)
    assert engine_choices(_copy(20, 2, engines=("vector", "gpsimd"), src_mem=Mem.PSUM)) is None
    assert engine_choices(_copy(20, 2, engines=None)) is None


# --- what the simulator records (nkigen.sim.isa_move.copy_engines) ---------------------------

with sim.installed():
    import neuronxcc.nki.isa as cisa
    import neuronxcc.nki.language as cnl
    import nki  # the current API, as the simulator has it
    import nki.isa as nisa
    import nki.language as nl
    from neuronxcc import nki as cnki


@cnki.jit
def classic_copies(x, xi):
    out = cnl.ndarray(x.shape, dtype=x.dtype, buffer=cnl.shared_hbm)
    outi = cnl.ndarray(xi.shape, dtype=cnl.float32, buffer=cnl.shared_hbm)
    a = cnl.load(x)
    b = cnl.copy(a)                                         # nl.copy, SBUF -> SBUF
    c = cisa.tensor_copy(b)                                 # no engine=
    d = cisa.tensor_copy(c, engine=cisa.unknown_engine)     # engine=unknown: the same
    e = cisa.tensor_copy(d, engine=cisa.vector_engine)      # pinned
    cnl.store(out, value=e)
    ai = cnl.load(xi)
    # int32 -> float32: ScalarE v2 not among the candidates (an engine-less int32 copy into
    # int32 is refused on NeuronCore-v2 altogether, isa.tensor_copy.classic_int_no_engine)
    bi = cisa.tensor_copy(ai, dtype=cnl.float32)
    cnl.store(outi, value=bi)
    return out, outi


def _recorded(trace) -> list:
    return [ins.attrs.get("engines") for ins in trace if ins.op == "tensor_copy"]


@pytest.mark.parametrize("target,scalar", [("trn1", True), ("trn2", True)])
def test_classic_copies_record_their_engines(target, scalar):
    res = sim.run(classic_copies, [sim.placeholder((128, 512), "float32"),
                                   sim.placeholder((128, 512), "int32")],
                  target=target, numerics=False)
    rec = _recorded(res.report.timeline.instrs)
    assert rec == [ALL, ALL, ALL, None,
                   ALL if target == "trn2" else ("vector", "gpsimd")]


@nki.jit
def current_copies(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    a = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=a, src=x)
    b = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=b, src=a)
    ps = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.psum)
    nisa.tensor_copy(dst=ps, src=b)                         # into PSUM: no GpSimd
    c = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=c, src=ps)
    nisa.dma_copy(dst=out, src=c)
    return out


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_current_api_copies_use_scalar_only_from_neuroncore_v3(target):
    res = sim.run(current_copies, [sim.placeholder((128, 512), "float32")], target=target,
                  numerics=False)
    rec = _recorded(res.report.timeline.instrs)
    if target == "trn2":
        assert rec == [ALL, ("vector", "scalar"), ("vector", "scalar")]
    else:                                   # SH: no ScalarE tensor_copy on NeuronCore-v2
        assert rec == [("vector", "gpsimd"), None, None]


def test_values_do_not_depend_on_the_choice():
    """The copies' values are VectorE's (bit-exact); the ScalarE candidates are exact too."""
    import numpy as np
    x = np.arange(128 * 512, dtype=np.float32).reshape(128, 512) / 7
    xi = (np.arange(128 * 512, dtype=np.int32).reshape(128, 512) * 40503) + (1 << 24) + 1
    res = sim.run(classic_copies, [x, xi], target="trn1")
    out, outi = res.outputs
    assert np.array_equal(out, x) and np.array_equal(outi, xi.astype(np.float32))
