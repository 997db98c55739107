"""Library findings of the fuzz9 campaign.

A spec whose sizes are all fixed (``M: {value: 1}``, or literal shapes only) has one test case
with no free size to name; its case name was the empty string, which broke the manifest schema
(``^[A-Za-z0-9_]+$``), so ``nkigen build --keep-going`` wrote no library at all, and the golden
file would have been ``.npz``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_build_suite import run_suite  # noqa: E402

from nkigen.library import golden  # noqa: E402
from nkigen.library.build import BuildOptions, build  # noqa: E402

FIXED = """nkigen: 1
name: fixed_sizes
doc: d
sizes:
  M: {value: 1}
inputs:
  x: {shape: [M], dtype: float32}
  y: {shape: [1], dtype: float32}
outputs:
  z: {shape: [M], dtype: float32}
compute:
  - z[i] = x[i] * y[0] + 1.0
"""


def test_case_names():
    assert golden.case_name({"M": 3, "N": 5}, ["M", "N"]) == "M3_N5"
    assert golden.case_name({"N": 1}, ["M", "N"]) == "N1"       # one free size left
    assert golden.case_name({}, ["M"]) == golden.FIXED_CASE == "fixed"   # none left


def test_a_spec_with_only_fixed_sizes_builds_into_a_library(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "f.yaml").write_text(FIXED)
    lib = tmp_path / "lib"
    rep = build(BuildOptions((str(specs),), str(lib)))
    assert rep.ok and rep.written, [r.diagnostics for r in rep.failed]
    man = json.loads((lib / "manifest.json").read_text())
    assert man["kernels"][0]["cases"][0]["name"] == "fixed", man["kernels"][0]["cases"]
    assert (lib / "golden" / "fixed_sizes" / "fixed.npz").is_file()
    r = run_suite(lib, tmp_path, plugin=False)
    assert r.returncode == 0, r.stdout + r.stderr
