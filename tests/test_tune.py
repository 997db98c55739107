"""Tuner: candidate ranking, legality pruning, the disk cache, and the CLI."""

from __future__ import annotations

import json

import pytest

from nkigen.cli import main
from nkigen.frontend import load_spec_text
from nkigen.ir import Schedule
from nkigen.tune import cache as tcache
from nkigen.tune import measure as tevaluate
from nkigen.tune import tune, tuning_sizes
from nkigen.tune.space import schedule_key

MATMUL = """\
nkigen: 1
name: mm
sizes:
  M: {multiple_of: 128}
  K: {multiple_of: 128}
  N: {multiple_of: 512}
inputs:
  a: {shape: [K, M], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: bfloat16}
temps:
  acc: {shape: [M, N], dtype: float32}
compute:
  - acc[m, n] += a[k, m] * b[k, n]
  - c[m, n] = acc[m, n]
schedule:
  tiles: {m: 128, n: 512, k: 128}
"""

SIZES = {"M": 256, "K": 256, "N": 1024}


@pytest.fixture
def spec():
    return load_spec_text(MATMUL, "mm.yaml")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One fresh trn1 tune at SIZES into an empty cache folder: (result, folder). Tests that
    go on from a written cache copy the folder (tuning is deterministic; each test tuned the
    same thing from scratch before)."""
    d = tmp_path_factory.mktemp("tune-cache")
    return tune(load_spec_text(MATMUL, "mm.yaml"), target="trn1", sizes=SIZES, cache_dir=d), d


def _cache_from(tuned, tmp_path):
    """``tmp_path`` holding the cache file the fresh tune wrote; the fresh tune's result."""
    import shutil

    r, d = tuned
    for f in d.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return r


def test_best_is_never_slower_than_default_or_hints(spec, tuned):
    r, _ = tuned
    assert r.best.legal
    assert r.best.latency_us <= r.default.latency_us
    hints = next(c for c in r.candidates if c.key == schedule_key(spec.schedule))
    assert r.best.latency_us <= hints.latency_us
    legal = [c.latency_us for c in r.candidates if c.legal]
    assert legal == sorted(legal)
    assert all(not c.legal for c in r.candidates[len(legal):])


def test_illegal_candidates_carry_a_reason(tuned):
    r, _ = tuned
    for c in r.candidates:
        assert c.legal or c.reason


def test_second_tune_comes_from_the_cache(spec, tuned, tmp_path, monkeypatch):
    first = _cache_from(tuned, tmp_path)
    assert first.simulated > 0
    calls = []
    from nkigen.tune import search

    monkeypatch.setattr(search, "simulate_source", lambda *a, **k: calls.append(a) or {})
    monkeypatch.setattr(search, "prepare", lambda *a, **k: calls.append(a) or {})
    second = tune(spec, target="trn1", sizes=SIZES, cache_dir=tmp_path)
    assert calls == []
    assert second.simulated == 0
    assert second.best.key == first.best.key


def test_adding_a_candidate_keeps_the_others(spec, tuned, tmp_path):
    _cache_from(tuned, tmp_path)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    n = len(data["candidates"])
    c = tcache.TuneCache(tmp_path, spec.sha256, tcache.size_bucket(tuning_sizes(spec, SIZES)),
                         "trn1", "nki")
    assert len(c.entries) == n
    c.put("tiles n=999", {"legal": False, "reason": "test"})
    c.save()
    again = tcache.TuneCache(tmp_path, spec.sha256, tcache.size_bucket(tuning_sizes(spec, SIZES)),
                             "trn1", "nki")
    assert len(again.entries) == n + 1


def test_cache_key_separates_targets(spec, tuned, tmp_path):
    _cache_from(tuned, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1
    tune(spec, target="trn2", sizes=SIZES, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_corrupt_cache_file_is_ignored(spec, tuned, tmp_path):
    _cache_from(tuned, tmp_path)
    (f,) = tmp_path.glob("*.json")
    f.write_text("{not json")
    r = tune(spec, target="trn1", sizes=SIZES, cache_dir=tmp_path)
    assert r.simulated > 0


def test_tuning_sizes_respect_constraints(spec):
    s = tuning_sizes(spec)
    assert s["M"] % 128 == 0 and s["N"] % 512 == 0


def test_hint_over_hardware_limit_is_illegal(spec):
    bad = Schedule(auto=False, tiles=(("k", 256), ("m", 128), ("n", 512)))
    from nkigen.analysis import analyze

    res = tevaluate.evaluate(analyze(spec), bad, SIZES, "trn1", "nki")
    assert res["legal"] is False and "128" in res["reason"]


def test_cli_prints_ranked_table(tmp_path, capsys):
    p = tmp_path / "mm.yaml"
    p.write_text(MATMUL)
    code = main(["tune", str(p), "--sizes", "M=256,K=256,N=1024", "--target", "trn1",
                 "--cache", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert code == 0
    assert "rank" in out and "best" in out and "not measurements" in out


def test_cli_rejects_bad_sizes(tmp_path, capsys):
    p = tmp_path / "mm.yaml"
    p.write_text(MATMUL)
    assert main(["tune", str(p), "--sizes", "M=abc", "--no-cache"]) == 1
    assert main(["tune", str(p), "--sizes", "Q=128", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "--sizes" in err and "Traceback" not in err


def test_identical_kernels_share_one_simulation(tuned):
    r, _ = tuned            # a fresh tune (an empty cache): every simulation counted
    legal = [c for c in r.candidates if c.legal]
    assert r.simulated < len(legal)


def test_large_sizes_explore_at_proxy_then_decide_at_real_sizes(spec, tmp_path):
    big = {"M": 512, "K": 512, "N": 2048}
    r = tune(spec, target="trn1", sizes=big, cache_dir=tmp_path, proxy_cap=256)
    assert r.proxy_sizes == (("K", 256), ("M", 256), ("N", 512))
    assert r.explored and r.sizes == tuple(sorted(big.items()))
    keys = {c.key for c in r.candidates}
    assert "default" in keys and schedule_key(spec.schedule) in keys
    assert r.best.latency_us <= r.default.latency_us
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_proxy_sizes_stay_legal(spec):
    from nkigen.tune import proxy_sizes

    p = proxy_sizes(spec, {"M": 4096, "K": 8192, "N": 8192}, cap=1000)
    assert p == {"M": 896, "K": 896, "N": 512}
