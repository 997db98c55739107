"""Build summary: each kernel's bound resource, its utilisation and the < 50 % warning
(nkigen.library.bound, progress.summary, manifest fields)."""

from __future__ import annotations

import types
from array import array
from pathlib import Path

from nkigen.frontend import load_spec
from nkigen.hw import Engine
from nkigen.library import bound
from nkigen.library.progress import summary
from nkigen.library.unit import UnitResult

SPECS = Path(__file__).parent.parent / "specs"


def _rep(busy: dict, hfu: float = 0.0, mbu: float = 0.0, timeline=None):
    return types.SimpleNamespace(engine_busy=busy, hfu=hfu, mbu=mbu, timeline=timeline)


def test_bound_is_busiest_resource_with_its_own_utilisation_measure():
    assert bound.bound(_rep({"tensor": 0.9, "dma": 0.5}, hfu=0.7)) == ("tensor", 0.7)
    assert bound.bound(_rep({"vector": 0.3, "dma": 0.8}, mbu=0.05)) == ("dma", 0.05)
    assert bound.bound(_rep({"vector": 0.95, "scalar": 0.4, "dma": 0.6})) == ("vector", 0.95)
    # a tie goes to the resource listed first (deterministic)
    assert bound.bound(_rep({"vector": 0.5, "scalar": 0.5}))[0] == "vector"


def _case(util: float, blame: str | None = None) -> dict:
    c = {"name": "M128", "bound": "dma", "bound_util": util, "latency_us": 1.0,
         "sizes": {"M": 128}}
    if blame:
        c["blame"] = blame
    return c


def test_warning_boundary_at_half():
    assert bound.warning("k", _case(0.5)) is None
    w = bound.warning("k", _case(0.4999, "specs/k.yaml:12"))
    assert w is not None and "DMA (MBU) at 49.9 %" in w
    assert "k is bound by DMA (MBU)" in w and "specs/k.yaml:12" in w
    assert bound.warning("k", {"name": "M128"}) is None      # an old manifest: no fields


SOURCE = '''import nki


def _k_stage0(x, y):
    """[0] t[m] = sum(x[m, n], n)

    body"""
    nisa.a()
    nisa.b()


def _k_stage1(x, y):
    """[1] y[m, n] = x[m, n] * t[m]; [2] z[m] = max(y[m, n], n)

    body"""
    nisa.c()


@nki.jit
def k(x):
    _k_stage0(x, y)
'''


def test_blame_names_the_stage_longest_on_the_bound_resource():
    # lines 8, 9 are in stage0 ([0]); line 16 in stage1 ([1], [2]); line 21 in the jit body
    ins = [types.SimpleNamespace(engine=Engine.VECTOR, line=ln) for ln in (8, 9, 16, 21)]
    tl = types.SimpleNamespace(instrs=ins, start=array("d", [0, 10, 20, 40]),
                               busy=array("d", [10, 20, 35, 100]))
    spec = types.SimpleNamespace(statements=[
        types.SimpleNamespace(loc=types.SimpleNamespace(path="s.yaml", line=10 + i))
        for i in range(3)])
    rep = _rep({"vector": 0.3}, timeline=tl)
    # stage0: 10 + 10 = 20 ns, stage1: 15 ns (the jit-body line belongs to no stage)
    assert bound.blame(rep, "vector", SOURCE, spec) == "s.yaml:10"
    tl.busy[2] = 60.0                                   # now stage1: 40 ns
    assert bound.blame(rep, "vector", SOURCE, spec) == "s.yaml:11-12"
    assert bound.describe(rep, SOURCE, spec) == {
        "bound": "vector", "bound_util": 0.3, "blame": "s.yaml:11-12"}
    # at or above the threshold no blame is stored
    assert bound.describe(_rep({"vector": 0.5}, timeline=tl), SOURCE, spec) == {
        "bound": "vector", "bound_util": 0.5}


def test_real_kernel_statement_positions_map_to_spec_lines():
    from nkigen.pipeline import generate
    spec = load_spec(SPECS / "rmsnorm.yaml")
    src = generate(spec, dialect="nki")
    stage = bound._stage_of_line(src)
    assert set(stage.values()) == {(0, 1)}
    lines = [spec.statements[p].loc.line for p in (0, 1)]
    assert lines == sorted(lines) and lines[0] > 0


def test_summary_shows_bound_column_and_warnings():
    entry = {"name": "k", "cases": [_case(0.2, "specs/k.yaml:7")]}
    ok = {"name": "j", "cases": [{**_case(0.8), "bound": "vector"}]}
    res = [UnitResult(spec="k.yaml", key="a", name="k", status="built", seconds=0.1, entry=entry),
           UnitResult(spec="j.yaml", key="b", name="j", status="built", seconds=0.1, entry=ok)]
    text = summary(res)
    assert "bound" in text.splitlines()[0]
    assert "dma 20.0 %" in text and "vector 80.0 %" in text
    warns = [ln for ln in text.splitlines() if ln.startswith("warning:")]
    assert len(warns) == 1 and "k is bound" in warns[0] and "specs/k.yaml:7" in warns[0]
