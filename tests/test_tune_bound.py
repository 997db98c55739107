"""Tuner branch and bound: the plan's latency bound never exceeds the simulated latency, and the
pruned search picks exactly what the exhaustive search picks."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from nkigen.analysis import analyze
from nkigen.frontend import load_spec
from nkigen.ir import Schedule
from nkigen.testdata import cases
from nkigen.tune import search as tsearch
from nkigen.tune import tune
from nkigen.tune.bound import latency_bound_us
from nkigen.tune.measure import plan_candidate

# the slow tier (pytest -m slow; CI runs it): README's test command stays under 4 minutes
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIG = {"M": 2048, "K": 2048, "N": 2048}    # compute-bound: the bound is tight and prunes
# (spec, sizes: None = its largest test case); the matmul-strategy specs, fp32 and fp8 included
SPECS = [
    ("matmul_lhst_bf16", BIG),
    ("matmul_bf16", None),
    ("matmul_f32", None),
    ("matmul_fp8", None),
    ("matmul_int8_dequant", None),
    ("bmm", None),
    ("causal_scores", None),
    ("mlp_gelu_tanh", None),
    ("swiglu", None),
]
TARGET = "trn2"


def _sizes(spec, sizes):
    return sizes or max(cases(spec), key=lambda c: sum(c.values()))


@cache
def _run(name: str):
    """(spec, sizes, exhaustive result, pruned result) of one spec, tuned once per test process
    (each spec on its own: an xdist worker tunes only the specs of the tests it runs)."""
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    at = _sizes(spec, dict(SPECS)[name])
    full = tune(spec, target=TARGET, sizes=at, cache_dir=None, prune=False)
    pruned = tune(spec, target=TARGET, sizes=at, cache_dir=None)
    return spec, at, full, pruned


@pytest.mark.parametrize("name", [n for n, _ in SPECS])
def test_bound_holds_and_pruning_changes_no_pick(name):
    """One exhaustive and one pruned search per spec, asserted on together (both searches are
    the expensive part): the bound never exceeds a simulated latency, the pruned search picks
    what the exhaustive one picks; at 2048^3 (matmul_lhst_bf16) the bound prunes and the table
    lists what it pruned."""
    _check_bound_never_exceeds_the_simulated_latency(name)
    _check_pruned_search_picks_what_the_exhaustive_search_picks(name)
    if name == "matmul_lhst_bf16":
        _check_pruning_happens_where_the_bound_bites(name)
        _check_table_lists_pruned_candidates_with_their_bound(name)


def _check_bound_never_exceeds_the_simulated_latency(name):
    spec, at, full, _ = _run(name)
    analysis = analyze(spec, target=TARGET)
    phases = [(full.candidates, dict(full.sizes))]
    if full.proxy_sizes is not None:
        phases.append((full.explored, dict(full.proxy_sizes)))
    checked = 0
    for cands, sizes in phases:
        for c in cands:
            assert not c.pruned          # the exhaustive search simulates everything
            if not c.legal:
                continue
            plan, _, _ = plan_candidate(analysis, c.schedule, TARGET, "nki")
            bound = latency_bound_us(analysis, plan, sizes, TARGET)
            assert bound > 0.0, c.key    # every matmul-strategy candidate gets a bound
            assert bound <= c.latency_us, (c.key, bound, c.latency_us)
            checked += 1
    assert checked >= 5


def test_bound_is_tight_when_tensore_bound():
    """At 2048^3 the bf16 matmul is TensorE-bound: the bound is within 10 % of the best
    latency (a weak bound would prune nothing)."""
    spec = load_spec(ROOT / "specs" / "matmul_lhst_bf16.yaml")
    analysis = analyze(spec, target=TARGET)
    plan, _, _ = plan_candidate(analysis, Schedule(auto=True), TARGET, "nki")
    bound = latency_bound_us(analysis, plan, BIG, TARGET)
    r = tsearch.Searcher(analysis, BIG, TARGET, "nki", None).measure([Schedule(auto=True)])[0]
    assert 0.9 * r.latency_us <= bound <= r.latency_us


def test_no_bound_outside_the_matmul_strategy():
    spec = load_spec(ROOT / "specs" / "softmax.yaml")
    analysis = analyze(spec, target=TARGET)
    plan, _, _ = plan_candidate(analysis, Schedule(auto=True), TARGET, "nki")
    assert latency_bound_us(analysis, plan, _sizes(spec, None), TARGET) == 0.0
    assert latency_bound_us(analysis, None, _sizes(spec, None), TARGET) == 0.0


def _check_pruned_search_picks_what_the_exhaustive_search_picks(name):
    _, _, full, pruned = _run(name)
    assert pruned.best.key == full.best.key
    assert pruned.best.latency_us == full.best.latency_us
    assert (pruned.best.hfu, pruned.best.mbu) == (full.best.hfu, full.best.mbu)
    assert pruned.default.latency_us == full.default.latency_us
    # every candidate the pruned search simulated has the exhaustive search's figures
    # (phase by phase: a candidate explored at the proxy sizes has the same key as at the
    # tuned sizes, with another latency)
    for mine, theirs in ((pruned.candidates, full.candidates), (pruned.explored, full.explored)):
        ref = {c.key: c for c in theirs}
        for c in mine:
            if c.pruned:
                assert c.bound_us > 0.0 and not c.legal and c.reason.startswith(tsearch.PRUNED)
                assert ref[c.key].legal and ref[c.key].latency_us >= c.bound_us
            else:
                assert (c.legal, c.latency_us) == (ref[c.key].legal, ref[c.key].latency_us)
    assert pruned.simulated <= full.simulated


def _check_pruning_happens_where_the_bound_bites(name):
    _, _, full, pruned = _run(name)
    n = sum(c.pruned for c in pruned.candidates + pruned.explored)
    assert n >= 1
    assert pruned.simulated < full.simulated


def test_prune_limit_is_strict(monkeypatch):
    """A candidate whose bound equals the limit is simulated (it may tie and win the tie);
    one just above is not."""
    spec = load_spec(ROOT / "specs" / "matmul_lhst_bf16.yaml")
    analysis = analyze(spec, target=TARGET)
    sizes = {"M": 128, "K": 128, "N": 512}
    monkeypatch.setattr("nkigen.tune.bound.latency_bound_us", lambda *a: 10.0)
    s = tsearch.Searcher(analysis, sizes, TARGET, "nki", None)
    at = s.measure([Schedule(auto=True)], prune_above=10.0)[0]
    assert at.legal and not at.pruned
    n256 = Schedule(auto=False, tiles=(("n", 256),))       # another kernel than the default's
    above = s.measure([n256], prune_above=10.0 - 1e-9)[0]
    assert above.pruned and above.bound_us == 10.0 and above.latency_us is None
    assert s.simulated == 1
    # a limit computed on demand is asked for only when a bound exceeds the floor
    asked = []
    s2 = tsearch.Searcher(analysis, sizes, TARGET, "nki", None)
    s2.measure([n256], floor=10.0, prune_above=lambda: asked.append(1) or 0.0)
    assert asked == [] and s2.simulated == 1
    s2.measure([Schedule(auto=True)], floor=10.0 - 1e-9,
               prune_above=lambda: asked.append(1) or 0.0)
    assert asked == [1] and s2.simulated == 1 and s2.seen["default"].pruned


def _check_table_lists_pruned_candidates_with_their_bound(name):
    from nkigen.tune import format_table

    _, _, full, pruned = _run(name)
    shown = format_table(pruned)
    n = sum(c.pruned for c in pruned.candidates + pruned.explored)
    assert f"{pruned.simulated} simulated, {n} ruled out by a latency lower bound" in shown
    assert shown.count("pruned: " + tsearch.PRUNED) == n
    assert "ruled out" not in format_table(full) and "pruned: " not in format_table(full)


@pytest.mark.parametrize("flag,prune", [([], True), (["--exhaustive"], False)])
def test_cli_exhaustive_flag_turns_pruning_off(flag, prune, monkeypatch, capsys):
    import nkigen.tune
    from nkigen.cli import main

    seen = []
    real = nkigen.tune.tune

    def spy(*a, **k):
        seen.append(k["prune"])
        return real(*a, **k)

    monkeypatch.setattr(nkigen.tune, "tune", spy)
    spec = str(ROOT / "specs" / "matmul_lhst_bf16.yaml")
    assert main(["tune", spec, "--sizes", "M=128,K=128,N=512", "-j", "1", "--no-cache", "-q",
                 *flag]) == 0
    assert seen == [prune] and "best" in capsys.readouterr().out


def _die(*args):
    import os

    os._exit(3)


def test_a_dead_worker_is_a_located_error_not_a_hang(monkeypatch):
    from nkigen.diagnostics import NkigenError

    spec = load_spec(ROOT / "specs" / "matmul_lhst_bf16.yaml")
    monkeypatch.setattr(tsearch, "simulate_source", _die)
    with pytest.raises(NkigenError) as e:
        tune(spec, target=TARGET, sizes={"M": 128, "K": 128, "N": 512}, cache_dir=None, jobs=2)
    text = str(e.value)
    assert "failed in its worker" in text and "-j 1" in text


def test_pool_gives_the_in_process_result():
    """-j 2 (one pool: parallel planning, real-size defaults simulated beside the proxy search)
    ranks exactly what -j 1 ranks, with the same simulation count."""
    spec = load_spec(ROOT / "specs" / "matmul_lhst_bf16.yaml")
    sizes = {"M": 512, "K": 512, "N": 2048}
    one, two = (tune(spec, target=TARGET, sizes=sizes, cache_dir=None, jobs=j, proxy_cap=256)
                for j in (1, 2))
    assert one.proxy_sizes is not None and one.explored

    def rows(r):
        return [(c.key, c.legal, c.latency_us, c.hfu, c.mbu, c.bound_us)
                for c in r.candidates + r.explored]
    assert rows(two) == rows(one)
    assert (two.best.key, two.simulated) == (one.best.key, one.simulated)
