"""Library findings of the fuzz7 campaign: the generated suite must pass on what the build
verified.

An ``int32`` input beyond +-2**24 was stored in its golden file as float32, so the generated
suite fed the kernel other (rounded) inputs than the build had verified and its exact
comparison failed (``y[n, m] = x[m, n]`` with values near 1e8: off by up to 4).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_build_suite import run_suite  # noqa: E402

from nkigen.library import golden  # noqa: E402
from nkigen.library.build import BuildOptions, build  # noqa: E402

TRANSPOSE = """nkigen: 1
name: transpose_int32
doc: d
sizes:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: int32}
outputs:
  y: {shape: [N, M], dtype: int32}
compute:
  - y[n, m] = x[m, n]
tests:
  cases:
    - {M: 3, N: 5}
  inputs:
    x: {dist: integers, low: LOW, high: HIGH}
"""


def test_golden_inputs_are_stored_losslessly():
    # 2**24 is the last float32-exact integer of the run: float32 kept; 2**24 + 1 is not
    exact = np.array([-(2 ** 24), 0, 2 ** 24], dtype=np.int32)
    assert golden.golden_arrays({"x": exact}, {})["input.x"].dtype == np.float32
    wide = np.array([2 ** 24 + 1, -(2 ** 31), 2 ** 31 - 1], dtype=np.int32)
    stored = golden.golden_arrays({"x": wide}, {})["input.x"]
    assert stored.dtype == np.float64
    np.testing.assert_array_equal(stored.astype(np.int32), wide)


@pytest.mark.parametrize("low,high", [(-100000000, 100000000), (2 ** 24 + 1, 2 ** 24 + 1)])
def test_the_generated_suite_passes_on_wide_int32_inputs(tmp_path, low, high):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "t.yaml").write_text(
        TRANSPOSE.replace("LOW", str(low)).replace("HIGH", str(high)))
    lib = tmp_path / "lib"
    rep = build(BuildOptions((str(specs),), str(lib)))
    assert rep.ok, [r.diagnostics for r in rep.failed]
    r = run_suite(lib, tmp_path, plugin=False)
    assert r.returncode == 0, r.stdout + r.stderr


ARGMAX8 = """nkigen: 1
name: am8
doc: d
sizes:
  M: {min: 1, max: 64}
  N: {min: 1, max: NMAX}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  i: {shape: [M], dtype: int8}
compute:
  - i[m] = argmax(x[m, n], n)
tests:
  cases:
    - {M: 3, N: 5}
"""


@pytest.mark.parametrize("nmax,ok", [(128, True), (129, False)])
def test_build_rejects_what_check_rejects_an_argmax_into_int8(tmp_path, nmax, ok):
    # indices up to N - 1: int8 holds them up to N = 128; check rejected 129, build built it
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "am8.yaml").write_text(ARGMAX8.replace("NMAX", str(nmax)))
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib")))
    assert rep.ok is ok
    if not ok:
        text = "\n".join(str(d) for r in rep.failed for d in r.diagnostics)
        assert "am8.yaml:12:5: compute[0]:" in text and "cannot hold" in text, text


@pytest.mark.parametrize("command", ["gen", "explain", "tune", "check"])
@pytest.mark.parametrize("nmax,ok", [(128, True), (129, False)])
def test_every_command_refuses_what_check_refuses_an_argmax_into_int8(tmp_path, capsys,
                                                                      command, nmax, ok):
    # `nkigen gen` generated the argmax-into-int8 kernel that check and build reject (fuzz7);
    # the analysis now raises it, so every command shares the rule and its boundary
    from cli_helpers import run

    spec = tmp_path / "am8.yaml"
    spec.write_text(ARGMAX8.replace("NMAX", str(nmax)))
    extra = ["-q", "--sizes", "M=3,N=5"] if command == "tune" else []
    code, _, err = run(capsys, command, str(spec), *extra)
    assert (code == 0) is ok, err
    if not ok:
        assert f"{spec}:12:5: compute[0]:" in err and "cannot hold" in err, err


def test_duplicate_kernel_names_are_located_at_name_in_a_build_too(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    text = TRANSPOSE.replace("LOW", "0").replace("HIGH", "9")
    (specs / "a.yaml").write_text(text)
    (specs / "b.yaml").write_text(text)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib")))
    msgs = [d for r in rep.results for d in r.diagnostics]
    assert len(msgs) == 2 and not rep.ok
    # as `nkigen check` reports it: the `name:` value, line 2 column 7
    assert msgs[0].startswith(f"{specs / 'a.yaml'}:2:7: name: kernel names must be unique"), msgs


GATHER = """nkigen: 1
name: g
doc: d
sizes:
  T: {min: 1, max: 1024}
  V: {min: 1, max: 1024}
  D: {min: 1, max: 64}
inputs:
  ids: {shape: [T], dtype: int32}
  table: {shape: [V, D], dtype: float32}
outputs:
  out: {shape: [T, D], dtype: float32}
  am: {shape: [T], dtype: int32}
compute:
  - out[t, d] = table[ids[t], d]
  - am[t] = argmax(table[ids[t], d], d)
tests:
  cases:
    - {T: 3, V: 5, D: 4}
  inputs:
    ids: {dist: uniform, low: 0.0, high: 3.0}
"""


def test_gather_ids_outside_a_derived_case_s_table_are_located_at_their_distribution(tmp_path):
    # ids drawn in [0, 3] fit the declared case (V = 5) but not the case derived for the
    # argmax's D < 8 branch (V = 2): reported at the file's first character before
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "g.yaml").write_text(GATHER)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib")))
    text = "\n".join(d for r in rep.results for d in r.diagnostics)
    assert not rep.ok
    assert f"{specs / 'g.yaml'}:21:10: tests (case derived for the" in text, text
