"""`nkigen check` reports every refusal `nkigen build` makes from the spec alone (no data drawn,
nothing simulated), with build's own diagnostics: the planner's (a block hint over the SBUF
budget, per target; a gathered table over 2**24 elements; a form no lowering takes, per
dialect) and the budgets of derived test cases. Each limit is pinned at its boundary."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import run

BLOCKS = """nkigen: 1
name: mm_blocks
doc: d
sizes: {M: {min: 1, max: 4096}, K: {min: 1, max: 4096}, N: {min: 1, max: 4096}}
inputs: {a: {shape: [M, K], dtype: bfloat16}, b: {shape: [K, N], dtype: bfloat16}}
outputs: {c: {shape: [M, N], dtype: bfloat16}}
compute:
  - c[m, n] += a[m, k] * b[k, n]
schedule: {block: BLOCK}
tests:
  cases: [{M: 128, K: 128, N: 128}]
"""

# B * C table elements gathered by a label pick (codegen/gather.py: int32 flat index)
PICK = """nkigen: 1
name: pick_total
doc: d
sizes: {B: {min: 1, max: BMAX}, C: {min: 1, max: 8192}}
inputs: {x: {shape: [B, C], dtype: float32}, lab: {shape: [B], dtype: int32},
         w: {shape: [B], dtype: float32}}
outputs: {tot: {shape: [1], dtype: float32}}
compute:
  - tot[z] = sum(x[b, lab[b]] * w[b], b)
tests:
  cases: [{B: 3, C: 5}]
  inputs:
    lab: {dist: integers, low: 0, high: "C - 1"}
"""

# no tests.cases: the derived case (N at its min) runs N tiles of n: 1
TILES = """nkigen: 1
name: derived_tiles
doc: d
sizes: {M: {value: 1}, N: {min: NMIN, max: 262144}}
inputs: {a: {shape: [M, N], dtype: float32}}
outputs: {y: {shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = a[m, n] * 2.0
schedule: {tiles: {n: 1}}
"""


def _check(capsys, tmp_path, text: str, *opts: str) -> tuple[int, str]:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    code, _, err = run(capsys, "check", *opts, str(p))
    return code, err


@pytest.mark.parametrize("target,legal,illegal", [
    ("trn2", "{m: 8, n: 4, k: 8}", "{m: 16, n: 4, k: 8}"),
    ("trn1", "{m: 4, n: 4, k: 8}", "{m: 8, n: 4, k: 8}"),
])
def test_a_block_hint_over_the_sbuf_budget_fails_check(capsys, tmp_path, target, legal,
                                                       illegal):
    code, err = _check(capsys, tmp_path, BLOCKS.replace("BLOCK", legal), "--target", target)
    assert code == 0, err
    code, err = _check(capsys, tmp_path, BLOCKS.replace("BLOCK", illegal), "--target", target)
    assert code == 1
    assert "s.yaml:9:11: schedule.block: blocks need" in err
    assert f"over the {target} budget" in err and f"e.g. block: {legal}" in err


def test_check_plans_for_the_specs_target_by_default(capsys, tmp_path):
    # trn2's budget holds m: 8, trn1's does not: the spec's own target decides, as in build
    text = BLOCKS.replace("BLOCK", "{m: 8, n: 4, k: 8}")
    assert _check(capsys, tmp_path, text)[0] == 0
    code, err = _check(capsys, tmp_path, text.replace("doc: d\n", "doc: d\ntarget: trn1\n"))
    assert code == 1 and "over the trn1 budget" in err


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_a_gathered_table_over_2_31_elements_fails_check(capsys, tmp_path, dialect):
    # 262144 * 8192 = 2**31 elements: the last table whose flat index fits int32 (the row
    # offset is added on GpSimd in native int32, fuzz15; it was 2**24 in float32 on VectorE);
    # 262145 * 8192 is over
    code, err = _check(capsys, tmp_path, PICK.replace("BMAX", "262144"), "--dialect", dialect)
    assert code == 0, err
    code, err = _check(capsys, tmp_path, PICK.replace("BMAX", "262145"), "--dialect", dialect)
    assert code == 1
    assert "s.yaml:9:5: compute[0]:" in err and \
        "2147491840 elements, more than the 2147483648" in err


def test_no_plan_stops_after_the_analysis(capsys, tmp_path):
    code, err = _check(capsys, tmp_path, PICK.replace("BMAX", "262145"), "--no-plan")
    assert code == 0, err


MASK = """nkigen: 1
name: div_mask
doc: d
sizes: {M: {min: 1, max: 1024}, N: {min: 1, max: 1024}}
inputs: {a: {shape: [M, N], dtype: float32}}
outputs: {y: {shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = where(n // D <= m // D, a[m, n], -30000.0)
"""


def test_a_form_no_lowering_takes_fails_check(capsys, tmp_path):
    code, err = _check(capsys, tmp_path, MASK.replace("D", "3"))
    assert code == 1 and "s.yaml:8:5: compute[0]: statement 0 `y[m, n] = where(n // 3" in err
    assert "divides the tile's indices by 3, which is not a power of two" in err
    assert _check(capsys, tmp_path, MASK.replace("D", "4"))[0] == 0


def test_a_derived_case_over_the_tile_budget_fails_check(capsys, tmp_path):
    # 65,536 tiles is the budget (analysis/checktime.CASE_TILE_BUDGET)
    code, err = _check(capsys, tmp_path, TILES.replace("NMIN", "65536"))
    assert code == 0, err
    code, err = _check(capsys, tmp_path, TILES.replace("NMIN", "65537"))
    assert code == 1
    assert "tests: schedule.tiles make one statement run 65,537 tiles at this case, over the " \
        "65,536" in err


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nkigen", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("text,opts", [
    (BLOCKS.replace("BLOCK", "{m: 16, n: 4, k: 8}"), ()),
    (BLOCKS.replace("BLOCK", "{m: 8, n: 4, k: 8}"), ("--target", "trn1")),
    (PICK.replace("BMAX", "524288"), ("--dialect", "neuronxcc")),
    (TILES.replace("NMIN", "131072"), ()),
    (MASK.replace("D", "3"), ("--dialect", "neuronxcc", "--target", "trn1")),
])
@pytest.mark.slow    # one check and one build process per spec (the slow tier; CI runs it)
def test_check_prints_what_build_prints(tmp_path, text, opts):
    (tmp_path / "s.yaml").write_text(text)
    chk = _cli("check", *opts, "s.yaml", cwd=tmp_path)
    bld = _cli("build", *opts, "s.yaml", "-o", "lib", cwd=tmp_path)
    assert chk.returncode == bld.returncode == 1
    built = [ln for ln in bld.stderr.splitlines() if ln.startswith("s.yaml:")]
    assert built and chk.stderr.splitlines() == built
    assert not (tmp_path / "lib").exists()


# an integers range given by size expressions is evaluated at each case (spec language 1.1)
RANGE = """nkigen: 1
name: ids_range
doc: d
sizes: {B: {min: 1, max: 64}, C: {min: 1, max: 1024}}
inputs: {x: {shape: [B, C], dtype: float32}, lab: {shape: [B], dtype: int32}}
outputs: {y: {shape: [B], dtype: float32}}
compute:
  - y[b] = x[b, lab[b]]
tests:
  cases: [{B: 4, C: CVAL}]
  inputs:
    lab: {dist: integers, low: 5, high: "C - 1"}
"""


def test_an_empty_integers_range_at_a_case_fails_check(capsys, tmp_path):
    # low 5, high C - 1: C = 6 is the last case with data to draw, C = 5 the first without
    assert _check(capsys, tmp_path, RANGE.replace("CVAL", "6"))[0] == 0
    code, err = _check(capsys, tmp_path, RANGE.replace("CVAL", "5"))
    assert code == 1
    assert "s.yaml:12:10: tests.inputs.lab: the integers range of lab is empty (low > high) " \
        "at tests.cases[0] (B=4, C=5), so its test data cannot be drawn (got low 5, high " \
        "C - 1 = 4)" in err


def test_build_refuses_the_empty_range_with_checks_message(tmp_path):
    (tmp_path / "s.yaml").write_text(RANGE.replace("CVAL", "5"))
    chk = _cli("check", "s.yaml", cwd=tmp_path)
    bld = _cli("build", "s.yaml", "-o", "lib", cwd=tmp_path)
    built = [ln for ln in bld.stderr.splitlines() if ln.startswith("s.yaml:")]
    assert bld.returncode == 1 and built and chk.stderr.splitlines() == built
