"""`nkigen build` warns (never fails) when a spec's tiling hints make its kernel modelled more
than 4x slower than the planner's defaults at the largest test case
(nkigen.library.hints.SLOWDOWN_WARN), naming the hint, both estimates and the fix."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run

from nkigen.frontend import load_spec_text
from nkigen.library import hints

SCALE = """nkigen: 1
name: slow_hint
doc: d
sizes: {M: {min: 1, max: 4096}, N: {min: 1, max: 4096}}
inputs: {a: {shape: [M, N], dtype: float32}}
outputs: {y: {shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = a[m, n] * 2.0
schedule: HINT
tests:
  cases: [{M: 128, N: 64}, {M: 128, N: 128}]
"""


def _build(capsys, tmp_path, hint: str) -> tuple[int, str, dict]:
    p = tmp_path / "s.yaml"
    p.write_text(SCALE.replace("HINT", hint))
    code, out, err = run(capsys, "build", str(p), "-o", str(tmp_path / "lib"))
    manifest = json.loads((tmp_path / "lib" / "manifest.json").read_text())
    return code, out + err, manifest["kernels"][0]     # (the summary's warnings: stdout)


def test_a_hint_far_slower_than_the_defaults_warns(capsys, tmp_path):
    code, err, entry = _build(capsys, tmp_path, "{tiles: {n: 1}}")
    assert code == 0                                       # a warning, not an error
    slow = entry["schedule"]["hint_slowdown"]
    assert slow["case"] == "M128_N128" and slow["ratio"] > hints.SLOWDOWN_WARN
    case = next(c for c in entry["cases"] if c["name"] == "M128_N128")
    assert slow["hinted_us"] == pytest.approx(case["latency_us"], abs=1e-3)   # (0.001 us)
    line = next(ln for ln in err.splitlines() if "hinted kernel" in ln)
    assert line.startswith(f"{tmp_path / 's.yaml'}:9:23: warning: schedule.tiles.n: the hinted "
                           "kernel is modelled ")
    assert f"({slow['hinted_us']:,.2f} us against {slow['default_us']:,.2f} us, cost model, " \
        "trn2), over the 4x this warning allows (got tiles.n: 1); drop the hint" in line


def test_the_hinted_estimate_is_the_cost_only_estimate(capsys, tmp_path):
    # the build compares the latency its numeric verification measured; a cost-only run of
    # the same kernel (what the default kernel gets) models the same time
    from nkigen.pipeline import generate
    from nkigen.tune.measure import simulate_source

    _, _, entry = _build(capsys, tmp_path, "{tiles: {n: 1}}")
    spec = load_spec_text(SCALE.replace("HINT", "{tiles: {n: 1}}"))
    got = simulate_source(spec, generate(spec, target="trn2"), {"M": 128, "N": 128}, "trn2")
    assert got["latency_us"] == pytest.approx(entry["schedule"]["hint_slowdown"]["hinted_us"],
                                              abs=1e-3)


def test_a_hint_near_the_defaults_does_not_warn(capsys, tmp_path):
    code, err, entry = _build(capsys, tmp_path, "{tiles: {m: 128}}")
    assert code == 0 and "hint_slowdown" not in entry["schedule"]
    assert "hinted kernel" not in err


@pytest.mark.parametrize("hinted,warns", [(4.0, False), (4.001, True)])
def test_the_threshold_is_4x(hinted, warns):
    spec = load_spec_text(SCALE.replace("HINT", "{tiles: {n: 1}, buffers: 2}"), "s.yaml")
    got = hints.slowdown(spec, {"name": "c"}, hinted, lambda s: (1.0, {}), "trn2")
    assert (got is not None) == warns
    if warns:
        assert got["hints"] == "tiles.n: 1, buffers: 2" and got["ratio"] == 4.0
        assert got["warning"].startswith("s.yaml:9:23: warning: schedule: the hinted kernel")
        assert "drop the hints (schedule: auto lets nkigen build tune the spec) or raise " \
            "them" in got["warning"]


def test_a_spec_without_hints_is_never_compared():
    spec = load_spec_text(SCALE.replace("schedule: HINT\n", ""))
    called = []
    assert hints.slowdown(spec, {"name": "c"}, 1e9, lambda s: called.append(s) or (1.0, {}),
                          "trn2") is None
    assert called == []
    auto = load_spec_text(SCALE.replace("HINT", "auto"))
    assert not hints.has_hints(auto)


def test_the_default_is_planned_without_the_hints():
    spec = load_spec_text(SCALE.replace("HINT", "{tiles: {n: 1}}"))
    seen = []
    hints.slowdown(spec, {"name": "c"}, 100.0, lambda s: seen.append(s.schedule) or (1.0, {}),
                   "trn2")
    assert seen and seen[0].auto and not seen[0].tiles
