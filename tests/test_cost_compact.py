"""The compact trace and the per-kind cost path (issue 18) change nothing observable.

nkigen.sim.trace.Trace stores compact entries and makes Instr records on access; the cost model
schedules the compact entries with each cost rule derived once per instruction kind; the ISA
calls memoise their shape checks per operand shape. Compared here with the reference path
(``NKIGEN_SIM_REFERENCE=1``: Instr records, the per-Instr schedule): traces, timelines and
reports under several cost parameters and both NeuronCore versions, the dependency maps past
their small form and past their merge limit, the sequence behaviour of a Trace, the consumers
of a trace (Perfetto export, cost replay, the report), and every check of a memoised shape
still failing at the kernel line of the one illegal instance. The shipped specs and the public
kernels are compared in tests/test_sim_equivalence.py.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from nkigen import sim
from nkigen.sim import cost, cost_replay, mode, perfetto
from nkigen.sim.errors import SimError
from nkigen.sim.trace import Instr, Trace

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "kernels"
HERE = Path(__file__).resolve()
sys.path.insert(0, str(Path(__file__).parent))

from test_cost_replay import _mamba_toy, _synthetic  # noqa: E402


def _run(monkeypatch, reference: bool, kernel, args, target="trn1", report=True):
    monkeypatch.setenv(mode.ENV, "1" if reference else "0")
    try:
        return sim.run(kernel, args, target=target, numerics=False, report=report)
    finally:
        monkeypatch.delenv(mode.ENV)


def _same_timeline(a: cost.Timeline, b: cost.Timeline) -> None:
    assert list(a.start) == list(b.start)
    assert list(a.busy) == list(b.busy)
    assert list(a.end) == list(b.end)
    assert list(a.pieces) == list(b.pieces)
    assert a.engine_busy_ns == b.engine_busy_ns
    assert list(a.elided) == list(b.elided)


def _same_report(a, b) -> None:
    fa = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name != "timeline"}
    fb = {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name != "timeline"}
    assert fa == fb
    _same_timeline(a.timeline, b.timeline)


def _matmul_args(k=1024, m=512, n=1024):
    return [sim.placeholder((k, m), "bfloat16"), sim.placeholder((k, n), "bfloat16")]


# ---- the trace container ------------------------------------------------------------------

def test_trace_entries_are_compact_and_records_made_once(monkeypatch):
    kern = sim.load(BENCH / "matmul_tutorial.py", "KERNELS")["tiled"]
    fast = _run(monkeypatch, False, kern, _matmul_args(1024, 256, 1024), report=False)
    ref = _run(monkeypatch, True, kern, _matmul_args(1024, 256, 1024), report=False)
    tr = fast.instrs
    assert isinstance(tr, Trace)
    assert all(e.__class__ is tuple for e in tr.entries)          # nothing materialised yet
    # 2 x 2 output tiles, each 8 k-tiles x (2 loads + 1 matmul) + PSUM copy + store
    assert len(tr) == len(ref.instrs) == 4 * (8 * 3 + 2)
    # one Kind per distinct instruction shape: the two loads, the first matmul of a group
    # (overwrites) and the others (accumulate), the copy and the store
    assert len({e[0] for e in tr.entries}) == 6
    assert all(isinstance(e, Instr) for e in ref.instrs.entries)   # reference: full records
    first = tr[0]
    assert first is tr[0] and tr.entries[0] is first              # made once, then kept
    assert list(tr) == list(ref.instrs) and tr == ref.instrs
    assert [i.line for i in tr] == [i.line for i in ref.instrs]
    assert tr[1:3] == list(ref.instrs)[1:3]
    assert list(reversed(tr)) == list(reversed(list(ref.instrs)))
    # the attrs dict of each record is its own (a caller may change one record's attrs)
    a, b = tr[2], tr[5]
    assert a.op == b.op == "nc_matmul" and a.attrs is not b.attrs
    # list behaviour used by the classic layer (pop / insert / append / [-1])
    last = tr.pop()
    assert last == ref.instrs[-1] and len(tr) == len(ref.instrs) - 1
    tr.insert(0, last)
    assert tr[0] is last
    tr.append(first)
    assert tr[-1] is first and len(tr) == len(ref.instrs) + 1


def test_trace_equality_is_field_by_field(monkeypatch):
    kern = sim.load(BENCH / "matmul_tutorial.py", "KERNELS")["tiled"]
    fast = _run(monkeypatch, False, kern, _matmul_args(256, 128, 512), report=False).instrs
    ref = list(_run(monkeypatch, True, kern, _matmul_args(256, 128, 512), report=False).instrs)
    ref[3] = dataclasses.replace(ref[3], line=ref[3].line + 1)
    assert fast != ref


# ---- schedule and report: compact path == reference path ------------------------------------

PARAMS = [cost.DEFAULT_PARAMS,
          dataclasses.replace(cost.DEFAULT_PARAMS, cse=False),
          dataclasses.replace(cost.DEFAULT_PARAMS, psum_broadcast=False),
          dataclasses.replace(cost.DEFAULT_PARAMS, v2_shared_ports=False, issue_cycles=0)]


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("which", ["synthetic", "mamba"])
def test_compact_schedule_equals_reference_under_other_params(which, target):
    """A list of Instr (no compact entries) takes the compact path too; every switch of the
    model (CSE, PSUM broadcast, shared ports) and both port models give the same timeline."""
    instrs = _synthetic() if which == "synthetic" else list(_mamba_toy())
    t = sim.runner.hw.target(target)
    for p in PARAMS:
        fast = cost._schedule_compact(instrs, t, p)
        ref = cost._schedule_instrs(instrs, t, p)
        _same_timeline(fast, ref)
        assert cost._sums_compact(instrs, t) == cost._sums_instrs(instrs, t)


def test_compact_schedule_of_a_trace_with_inserted_records(monkeypatch):
    """A Trace mixing compact entries and Instr records (what the classic layer leaves)."""
    ks = sim.load(BENCH / "mamba_tutorial.py", "KERNELS")
    f32 = "float32"
    args = [sim.placeholder((1, 256, 512), f32), sim.placeholder((1, 256, 512), f32),
            sim.placeholder((256, 16), f32), sim.placeholder((1, 16, 512), f32),
            sim.placeholder((1, 16, 512), f32)]
    tr = _run(monkeypatch, False, ks["v2"], args, report=False).instrs
    for i in range(0, len(tr), 3):
        tr[i]                                   # every third entry materialised
    assert {e.__class__ for e in tr.entries} == {tuple, Instr}
    t = sim.runner.hw.target("trn1")
    _same_timeline(cost._schedule_compact(tr, t, cost.DEFAULT_PARAMS),
                   cost._schedule_instrs(list(tr), t, cost.DEFAULT_PARAMS))


def _many_boxes(x, y):
    """Stores 5000 rows to distinct rows of an output (an HBM writer map past its 4096-box
    merge limit), reads them back one by one and then overwrites the output (a reader map past
    the limit that a later write consults), and overwrites slices of one SBUF tile column by
    column (a writer map past its small form, contained boxes dropped)."""
    import nki.isa as nisa
    import nki.language as nl
    out = nl.ndarray(y.shape, dtype=y.dtype, buffer=nl.shared_hbm)
    acc = nl.ndarray((128, 64), dtype=x.dtype, buffer=nl.sbuf)
    for i in nl.affine_range(5000):
        t = nl.ndarray((1, 64), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[i, :])
        nisa.dma_copy(dst=out[i, :], src=t)
        c = i % 64
        nisa.memset(acc[:, c:c + 1], 0.0)
        if i % 7 == 0:
            nisa.memset(acc[:, 0:32], 1.0)
    for i in nl.affine_range(5000):
        t = nl.ndarray((1, 64), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=out[i, :])
    for i in nl.affine_range(40):
        nisa.dma_copy(dst=out[i * 125:(i + 1) * 125, :], src=x[i * 125:(i + 1) * 125, :])
        nisa.dma_copy(dst=out[i, :], src=acc[0:1, :])
    return out


def test_dependency_maps_past_small_form_and_merge_limit(monkeypatch):
    merges, promotions = [], []
    merge_all, promote = cost._Index._merge_all, cost._promote
    monkeypatch.setattr(cost._Index, "_merge_all",
                        lambda self, c: (merges.append(1), merge_all(self, c))[1])
    monkeypatch.setattr(cost, "_promote", lambda v: (promotions.append(1), promote(v))[1])
    args = [sim.placeholder((5000, 64), "float32"), sim.placeholder((5000, 64), "float32")]
    fast = _run(monkeypatch, False, _many_boxes, args)
    assert len(merges) >= 2 and promotions          # writer and reader maps merged (fast path)
    ref = _run(monkeypatch, True, _many_boxes, args)
    assert fast.instrs == ref.instrs
    assert len(fast.instrs) > 4 * 5000
    _same_report(fast.report, ref.report)


def _war(x):
    """A tile read by a store and overwritten right after by another engine: the overwrite
    waits for the read (write-after-read), the tile's last write comes right after its read."""
    import nki.isa as nisa
    import nki.language as nl
    out = nl.ndarray((128, 2048), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 2048), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    nisa.dma_copy(dst=out, src=t)
    nisa.memset(t, 0.0)
    return out


def test_write_after_read_of_a_tile_at_the_end_of_its_life(monkeypatch):
    x = sim.placeholder((128, 2048), "float32")
    fast = _run(monkeypatch, False, _war, [x])
    ref = _run(monkeypatch, True, _war, [x])
    tl = fast.report.timeline
    assert tl.start[2] >= tl.busy[1] > 0          # the memset waits for the store's read
    _same_report(fast.report, ref.report)


def _self_overwrites(x, p1, c0):
    import nki.isa as nisa
    import nki.language as nl
    acc = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    t = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    o = nl.ndarray((128, 256), nl.float32, buffer=nl.sbuf)
    nisa.memset(acc, 0.0)
    nisa.memset(t, 1.0)
    nisa.activation(dst=o, op=nl.exp, data=acc[:, 0:256])      # 2: another engine reads acc
    for _ in range(3):      # 3-5: read acc[0:p1, c0:c0 + 256], overwrite acc[0:p1, 0:256]
        nisa.tensor_tensor(dst=acc[0:p1, 0:256], data1=acc[0:p1, c0:c0 + 256],
                           data2=t[0:p1, 0:256], op=nl.add, engine=nisa.engine.gpsimd)
    nisa.activation(dst=acc[:, 256:512], op=nl.exp, data=t[:, 0:256])  # 6: after reads 3-5
    nisa.activation(dst=acc[:, 0:256], op=nl.exp, data=t[:, 0:256])    # 7: after 5 (and 2)


@pytest.mark.parametrize("p1, c0", [(128, 0), (64, 0), (128, 256), (64, 256), (128, 128)])
def test_reads_of_a_box_the_same_instruction_overwrites(p1, c0, monkeypatch):
    """A read of a box the instruction itself overwrites (acc += x) is not entered in the
    readers map, since the write drops it at once; a read reaching outside the written box
    (other columns, more partitions) stays, and later writes there still wait for it. Either
    way the timeline is the reference's."""
    x = sim.placeholder((128, 64), "float32")
    fast = _run(monkeypatch, False, _self_overwrites, [x, p1, c0])
    ref = _run(monkeypatch, True, _self_overwrites, [x, p1, c0])
    _same_report(fast.report, ref.report)
    tl = fast.report.timeline
    assert tl.start[3] >= tl.busy[2] > 0          # the first overwrite waits for the read at 2
    assert tl.start[7] >= tl.busy[5]
    if c0:
        assert tl.start[6] >= tl.busy[5]          # WAR on the columns read outside the write


@pytest.mark.parametrize("name", ["tiled", "hoisted", "block_free", "fully_blocked"])
@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_tutorial_matmuls_identical_report(name, target, monkeypatch):
    """Latency, per-engine figures, instruction and op counts, and the whole timeline."""
    kern = sim.load(BENCH / "matmul_tutorial.py", "KERNELS")[name]
    fast = _run(monkeypatch, False, kern, _matmul_args(), target)
    ref = _run(monkeypatch, True, kern, _matmul_args(), target)
    assert fast.report.latency_us == ref.report.latency_us > 0
    assert fast.report.instr_counts == ref.report.instr_counts
    assert fast.report.engine_busy == ref.report.engine_busy
    _same_report(fast.report, ref.report)


# ---- consumers of the trace -------------------------------------------------------------------

def test_consumers_work_on_the_compact_trace(monkeypatch, tmp_path):
    kern = sim.load(BENCH / "matmul_tutorial.py", "KERNELS")["block_free"]
    fast = _run(monkeypatch, False, kern, _matmul_args(512, 256, 1024))
    ref = _run(monkeypatch, True, kern, _matmul_args(512, 256, 1024))
    a, b = tmp_path / "fast.json", tmp_path / "ref.json"
    perfetto.write_trace(fast.report, a)
    perfetto.write_trace(ref.report, b)
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    rec = cost_replay.record(fast.instrs, "trn1")
    for p in PARAMS[:1] + [dataclasses.replace(cost.DEFAULT_PARAMS, dma_small_chunk_eff=0.3)]:
        _same_timeline(rec.timeline("trn1", p), cost.schedule(list(ref.instrs), "trn1", p))


# ---- strictness: a memoised shape never hides an illegal instance ------------------------------

def _mm_tiles():
    """Zeroed bf16 stationary [128, 128] and moving [128, 512] tiles and a PSUM bank."""
    import nki.isa as nisa
    import nki.language as nl
    a = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    b = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(a, 0.0)
    nisa.memset(b, 0.0)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    return a, b, ps


def _matmul_at(x, start):
    import nki.isa as nisa
    a, b, ps = _mm_tiles()
    for i in range(3):
        p0 = start if i == 2 else 0
        nisa.nc_matmul(ps[0:64, :], a[p0:p0 + 64, 0:64], b[p0:p0 + 64, :])  # MATMUL LINE


def _dma_then_bad(x, bad):
    import nki.isa as nisa
    import nki.language as nl
    for i in range(5):
        t = nl.ndarray((128, 64 if i < 4 else bad), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[:, 0:64])  # DMA LINE


def _alloc_then_bad(x, rows):
    import nki.language as nl
    for i in range(4):
        nl.ndarray((128 if i < 3 else rows, 64), nl.float32, buffer=nl.sbuf)  # ALLOC LINE


def _tensor_tensor_at(x, start, psum):
    import nki.isa as nisa
    import nki.language as nl
    a = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
    q = nl.ndarray((128, 64), nl.float32, buffer=nl.psum)
    o = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
    nisa.memset(a, 0.0)
    nisa.memset(q, 0.0)
    for i in range(3):
        p0 = start if i == 2 else 0
        d1 = q if psum and i == 2 else a
        nisa.tensor_tensor(dst=o[p0:p0 + 32, :], data1=d1[p0:p0 + 32, :],  # TT LINE
                           data2=q[p0:p0 + 32, :], op=nl.add)


def _tensor_copy_at(x, start, engine):
    import nki.isa as nisa
    import nki.language as nl
    a = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
    o = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
    nisa.memset(a, 0.0)
    for i in range(3):
        p0 = start if i == 2 else 0
        eng = nisa.engine.scalar if engine else nisa.engine.vector
        nisa.tensor_copy(dst=o[p0:p0 + 32, :], src=a[p0:p0 + 32, :], engine=eng)  # COPY LINE


def _activation_at(x, start, scale):
    import nki.isa as nisa
    import nki.language as nl
    a = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
    bias = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
    red = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
    o = nl.ndarray((128, 64), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(a, 0.0)
    nisa.memset(bias, 0.0)
    for i in range(3):
        p0 = start if i == 2 else 0
        nisa.activation(dst=o[p0:p0 + 32, :], op=nl.exp, data=a[p0:p0 + 32, :],  # ACT LINE
                        bias=bias[p0:p0 + 32, :], scale=scale, reduce_op=nl.add,
                        reduce_res=red[p0:p0 + 32, :], reduce_cmd=nisa.reduce_cmd.reset_reduce)


def _tensor_reduce_at(x, start):
    import nki.isa as nisa
    import nki.language as nl
    a = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
    nisa.memset(a, 0.0)
    for i in range(3):
        p0 = start if i == 2 else 0
        nisa.tensor_reduce(dst=r[p0:p0 + 64, :], op=nl.maximum, data=a[p0:p0 + 64, :],  # RED LINE
                           axis=1)


def _line(tag: str) -> int:
    return next(n for n, s in enumerate(HERE.read_text().splitlines(), 1) if s.endswith(tag))


@pytest.mark.parametrize("reference", [False, True])
def test_memoised_checks_still_reject_the_illegal_instance(reference, monkeypatch):
    """The same operand shapes pass once and are then memoised; the instance that breaks a
    rule (start partition, element counts, partition dim, both tensor_tensor inputs in PSUM,
    ScalarE tensor_copy on NeuronCore-v2, an activation with bias and reduce_res tiles, a
    tensor_reduce) is still rejected, at its line."""
    x = sim.placeholder((128, 64), "float32")
    _run(monkeypatch, reference, _matmul_at, [x, 64])          # 64 partitions from 64: legal
    with pytest.raises(SimError, match="must start at partition 0 or 64") as e:
        _run(monkeypatch, reference, _matmul_at, [x, 32])      # from 32: illegal
    assert f"{HERE}:{_line('# MATMUL LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _dma_then_bad, [x, 64])
    with pytest.raises(SimError, match="element counts differ") as e:
        _run(monkeypatch, reference, _dma_then_bad, [x, 65])
    assert f"{HERE}:{_line('# DMA LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _tensor_tensor_at, [x, 32, False])   # from 32: legal
    with pytest.raises(SimError, match="must start at partition 0, 32, 64 or 96") as e:
        _run(monkeypatch, reference, _tensor_tensor_at, [x, 16, False])  # from 16: illegal
    assert f"{HERE}:{_line('# TT LINE')}:" in str(e.value)
    with pytest.raises(SimError, match="cannot both be in PSUM") as e:
        _run(monkeypatch, reference, _tensor_tensor_at, [x, 0, True])    # seen shapes, PSUM x2
    assert f"{HERE}:{_line('# TT LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _tensor_copy_at, [x, 96, False])    # from 96: legal
    with pytest.raises(SimError, match="must start at partition 0, 32, 64 or 96") as e:
        _run(monkeypatch, reference, _tensor_copy_at, [x, 48, False])  # from 48: illegal
    assert f"{HERE}:{_line('# COPY LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _tensor_copy_at, [x, 0, True], target="trn2")  # ScalarE, v3
    with pytest.raises(SimError, match="no ScalarE tensor_copy on NeuronCore-v2") as e:
        _run(monkeypatch, reference, _tensor_copy_at, [x, 0, True])   # the same shapes on v2
    assert f"{HERE}:{_line('# COPY LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _activation_at, [x, 64, 0.5])      # from 64: legal
    with pytest.raises(SimError, match="must start at partition 0, 32, 64 or 96") as e:
        _run(monkeypatch, reference, _activation_at, [x, 80, 2])      # from 80: illegal
    assert f"{HERE}:{_line('# ACT LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _tensor_reduce_at, [x, 64])        # 64 from 64: legal
    with pytest.raises(SimError, match="must start at partition 0 or 64") as e:
        _run(monkeypatch, reference, _tensor_reduce_at, [x, 32])      # 64 from 32: illegal
    assert f"{HERE}:{_line('# RED LINE')}:" in str(e.value)
    _run(monkeypatch, reference, _alloc_then_bad, [x, 128])    # the last legal partition dim
    with pytest.raises(SimError, match="partition dim exceeds 128") as e:
        _run(monkeypatch, reference, _alloc_then_bad, [x, 129])
    assert f"{HERE}:{_line('# ALLOC LINE')}:" in str(e.value)


# ---- allocations of a seen shape (nl.ndarray's per-shape memo) --------------------------------

def _psum_tiles(x, cols, count):
    import nki.language as nl
    live = []
    for _ in range(count):
        live.append(nl.ndarray((128, cols), nl.float32, buffer=nl.psum))  # PSUM LINE


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("cols, fit", [(100, 8), (512, 8), (513, 4), (1024, 4)])
def test_seen_psum_shape_is_charged_in_whole_banks(reference, cols, fit, monkeypatch):
    """Every PSUM tile of a shape seen before is charged as the first one was: whole 2 KiB
    banks (hw.PSUM_BANK_BYTES), 8 per partition (hw.PSUM_BYTES_PER_PARTITION). ``fit`` live
    tiles are the most that fit; one more is rejected at its line."""
    x = sim.placeholder((128, 64), "float32")
    r = _run(monkeypatch, reference, _psum_tiles, [x, cols, fit], report=False)
    assert r.peak_psum_bytes == 16384
    with pytest.raises(SimError, match="PSUM capacity exceeded") as e:
        _run(monkeypatch, reference, _psum_tiles, [x, cols, fit + 1], report=False)
    assert f"{HERE}:{_line('# PSUM LINE')}:" in str(e.value)


# what Alloc.__init__ and new_tensor set (the rest are caches of later calls, e.g. regions)
_ALLOC_FIELDS = ("id", "buffer", "mem", "shape", "dtype", "name", "pfree", "pstride",
                 "strides0", "data", "scope", "pool", "charged")


def test_seen_shape_allocation_has_the_reference_fields(monkeypatch):
    """A cost-only nl.ndarray of a seen shape sets the fields Alloc.__init__ sets (id, buffer,
    shape, dtype, per-partition sizes, strides, loop scope, pool and bytes charged), equal to
    the reference path's; spilling SBUF tiles warn and plan the same spills."""
    made: list = []

    def kernel(x):
        import nki.isa as nisa
        import nki.language as nl
        for _i in nl.affine_range(2):
            for _ in range(3):
                t = nl.ndarray((128, 16384), nl.float32, buffer=nl.sbuf)   # 64 KiB/partition
                nisa.dma_copy(dst=t[:, 0:64], src=x)
                made.append(t)
            made.append(nl.ndarray((64, 4, 8), nl.float32, buffer=nl.psum))
        made.append(nl.ndarray((64, 4, 8), nl.float32, buffer=nl.psum))

    x = sim.placeholder((128, 64), "float32")
    got = []
    for reference in (False, True):
        made.clear()
        r = _run(monkeypatch, reference, kernel, [x])
        fields = []
        for t in made:
            a = {k: v for k, v in vars(t.alloc).items() if k in _ALLOC_FIELDS}
            if "scope" in a:            # running loop ids: numbered anew by each run
                a["scope"] = len(a["scope"])
            fields.append((t.offset, t.shape, t.strides, a.pop("pool").mem, a))
        got.append((fields, r.warnings, r.peak_sbuf_bytes, r.peak_psum_bytes, list(r.instrs),
                    r.report))
    fast, ref = got
    assert fast[:5] == ref[:5]
    assert any("spill" in w for w in fast[1])          # the SBUF overflow was reached
    assert len({f[4]["id"] for f in fast[0]}) == len(fast[0]) == 9
    assert all(f[4]["scope"] for f in fast[0][:-1]) and "scope" not in fast[0][-1][4]
    assert all(len(f[4]) == len(_ALLOC_FIELDS) - 1 - ("scope" not in f[4]) for f in fast[0])
    _same_report(fast[5], ref[5])


def _matmul_perf(x, double):
    import nki.isa as nisa
    a, b, ps = _mm_tiles()
    for i in range(3):
        mode_ = nisa.matmul_perf_mode.double_row if double and i == 2 else \
            nisa.matmul_perf_mode.none
        nisa.nc_matmul(ps, a, b, perf_mode=mode_)  # PERF LINE


@pytest.mark.parametrize("reference", [False, True])
def test_matmul_memo_tells_perf_modes_apart(reference, monkeypatch):
    """nc_matmul's per-shape memo keys perf_mode by its Enum class and member name: the same
    operand shapes passed with perf_mode=none still fail with double_row on NeuronCore-v2,
    at the line of that call."""
    x = sim.placeholder((128, 64), "float32")
    _run(monkeypatch, reference, _matmul_perf, [x, False])
    with pytest.raises(SimError, match="double_row is not supported on NeuronCore-v2") as e:
        _run(monkeypatch, reference, _matmul_perf, [x, True])
    assert f"{HERE}:{_line('# PERF LINE')}:" in str(e.value)
