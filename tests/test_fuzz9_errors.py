"""Bad-input handling found by the fuzz9 campaign: a wrongly typed mapping or list field
(``schedule: {tiles: [128]}``, ``tests: [1]``, ``params: [1]``, ...) was reported with its
location, rule and value but no fix; ``outputs.y.initial: [1]`` suggested a tensor declaration.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

BASE = """nkigen: 1
name: k
sizes:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n]
"""

CASES = {
    "tiles": (BASE + "schedule:\n  tiles: [128]\n", 13, 10, "schedule.tiles",
              "must be a mapping (got a list)", "tiles: {m: 128, n: 512}"),
    "block": (BASE + "schedule:\n  block: [2]\n", 13, 10, "schedule.block",
              "must be a mapping (got a list)", "block: {n: 2}"),
    "tests": (BASE + "tests: [1]\n", 12, 8, "tests", "must be a mapping (got a list)",
              "tests: {cases: [{M: 256}]}"),
    "cases": (BASE + "tests:\n  cases: {M: 1}\n", 13, 10, "tests.cases",
              "must be a list (got a mapping)", "cases: [{M: 256, K: 384}]"),
    "tolerance": (BASE + "tests:\n  tolerance: [1]\n", 13, 14, "tests.tolerance",
                  "must be a mapping (got a list)", "tolerance: {rtol:"),
    "test_inputs": (BASE + "tests:\n  inputs: [1]\n", 13, 11, "tests.inputs",
                    "must be a mapping (got a list)", "inputs: {x: {dist: uniform"),
    "params": (BASE.replace("inputs:", "params: [1]\ninputs:"), 6, 9, "params",
               "must be a mapping (got a list)", "params: {alpha: 0.5}"),
    "ranges": (BASE.replace("compute:", "ranges: [r]\ncompute:"), 10, 9, "ranges",
               "must be a mapping (got a list)", "ranges: {r: 3}"),
    "initial": (BASE.replace("y: {shape: [M, N], dtype: float32}",
                             "y: {shape: [M, N], dtype: float32, initial: [1]}"), 9, 47,
                "outputs.y.initial", "(got a list)", "'initial: h0'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_wrongly_typed_field_is_located_with_a_fix(tmp_path, case):
    text, line, col, field, rule, fix = CASES[case]
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(text)
    r = subprocess.run([sys.executable, "-m", "nkigen", "check", str(spec)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out, out
    first = out.splitlines()[0]
    assert first.startswith(f"{spec}:{line}:{col}: {field}: "), first
    assert rule in first, first
    m = re.search(r"\(got [^)]*\); (.+)$", first)
    assert m and fix in m.group(1), first


FP8 = """nkigen: 1
name: fp8_clamp
doc: d
sizes:
  M: {min: 1, max: 64}
inputs:
  x: {shape: [M], dtype: float32}
outputs:
  q: {shape: [M], dtype: float8_e4m3}
compute:
  - q[m] = minimum(maximum(x[m] * 1000.0, -LIMIT), LIMIT)
tests:
  cases:
    - {M: 8}
"""


@pytest.mark.parametrize("limit,ok", [("240.0", True), ("248.0", False)])
def test_an_output_beyond_its_float8_range_names_the_range(tmp_path, limit, ok):
    # float8_e4m3 is IEEE-style here (largest finite 240; 248, halfway to 256, rounds to
    # inf): the reference output is inf, which was reported as an input-domain problem
    from nkigen.library.build import BuildOptions, build
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "q.yaml").write_text(FP8.replace("LIMIT", limit))
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib")))
    assert rep.ok is ok, [str(d) for r in rep.failed for d in r.diagnostics]
    if not ok:
        text = str(rep.failed[0].diagnostics[0])
        assert "q.yaml:14:7: tests.cases[0]: the reference output 'q' is not finite" in text
        assert "keep q within +-240, the largest finite float8_e4m3" in text, text


GATHER = """nkigen: 1
name: g
sizes:
  T: {min: 1, max: 64}
  V: {min: 1, max: 64}
  D: {min: 1, max: 64}
inputs:
  ids: {shape: [T], dtype: int32}
  table: {shape: [V, D], dtype: float32}
outputs:
  out: {shape: [T, D], dtype: float32}
compute:
  - out[t, d] = table[INDEX, d]
"""


@pytest.mark.parametrize("index,ok", [("ids[t]", True), ("ids[t] + 1", False)])
def test_an_offset_gather_index_says_the_ids_are_the_whole_index(tmp_path, index, ok):
    # was: "unsupported syntax in an integer expression (got 'ids[t]'); use names, integers,
    # + - * // % and parentheses", which reads as if ids[t] itself were not allowed
    spec = tmp_path / "g.yaml"
    spec.write_text(GATHER.replace("INDEX", index))
    r = subprocess.run([sys.executable, "-m", "nkigen", "check", str(spec)],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) is ok, r.stdout + r.stderr
    if not ok:
        first = (r.stdout + r.stderr).splitlines()[0]
        assert first.startswith(f"{spec}:13:23: compute[0]: a tensor read inside an index "
                                "expression"), first
        assert "(got 'ids[t]'); write e.g. table[ids[t], d] and offset the ids" in first, first
