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
