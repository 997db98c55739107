"""Derived test cases for a generated kernel's trace-time size branches (nkigen.library.autocase,
nkigen.library.branches): a user spec whose cases never take one side of a branch gets a
derived case reaching it, verified by the build like a declared one (a mutant breaking only
that side fails the build); covered and unreachable sides get none; a case over the element
cap is reported unverified; both dialects; manifest; determinism."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from nkigen.codegen import generate
from nkigen.frontend import load_spec
from nkigen.library import autocase
from nkigen.library.autocase import MAX_ELEMENTS, derive
from nkigen.library.branches import NotSizeValue, evaluate, find_branches, reaches

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / f"{name}.yaml"
    p.write_text(text)
    return p


def _small_layernorm(tmp: Path, name: str = "ln_small") -> Path:
    """specs/layernorm.yaml with one small case only (D = 512: the fused pass), double-buffered
    (the form with a trace-time fuse test; the tuner may pick single buffers, which fuse at
    every allowed D), with the default 128-row tile as a hint: the decode-shaped split form
    (codegen/rowsplit.py) is not planned under tile hints, so the fuse test stays the kernel's
    only size branch."""
    text = (SPECS / "layernorm.yaml").read_text()
    text = text.replace("name: layernorm\n", f"name: {name}\n")
    text = text.replace("\ntests:\n", "\nschedule: {buffers: 2, tiles: {m: 128}}\ntests:\n")
    text = text.replace("    - {M: 200, D: 1000}\n", "")
    # the split-form case and its comment's continuation line
    text = re.sub(r"    - \{M: 3, D: 8000\}.*\n(?:      #.*\n)?", "", text)
    assert f"name: {name}" in text and "D: 8000}" not in text.split("tests:")[1]
    return _write(tmp, name, text)


def _fuse_test(src: str) -> ast.If:
    """The first trace-time fuse test ``if <peak> < <budget + 1>:`` of a generated source."""
    return min((n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.If)
                and isinstance(n.test, ast.Compare) and isinstance(n.test.ops[0], ast.Lt)
                and isinstance(n.test.comparators[0], ast.Constant)
                and not isinstance(n.test.left, ast.Constant)), key=lambda n: n.lineno)


# ---- the evaluator --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["__import__('os').system('true')", "x.shape[0]",
                                  "(lambda: 1)()", "'a' * 3", "open('f')", "[1][0]"])
def test_evaluator_refuses_anything_but_size_arithmetic(text):
    with pytest.raises(NotSizeValue):
        evaluate(ast.parse(text, mode="eval").body, {"x": 1})


def test_evaluator_arithmetic_and_limits():
    e = lambda t: evaluate(ast.parse(t, mode="eval").body, {"N": 2049})  # noqa: E731
    assert e("0 < -(-N // 2048) - 1") is True
    assert e("min(N, 512) + max(N, 4) % 7 if N > 3 else 0") == 512 + 2049 % 7
    assert e("1 < N <= 2049 and not N == 3") is True
    assert e("N ** 64") == 2049 ** 64                        # at the exponent cap
    with pytest.raises(NotSizeValue):
        e("N ** 65")                                          # one past it
    with pytest.raises(NotSizeValue):
        e("N // (N - 2049)")                                  # division by zero
    with pytest.raises(NotSizeValue):
        e("M + 1")                                            # unknown size


# ---- the walk: nesting, helpers, loops --------------------------------------------------------

SYNTH_SPEC = """\
nkigen: 1
name: k
doc: scale
sizes:
  N: {min: 1, max: 65536}
inputs:
  x: {shape: [N], dtype: float32}
outputs:
  y: {shape: [N], dtype: float32}
compute:
  - y[n] = x[n] * 2.0
tests:
  cases:
    - {N: 100}
"""

SYNTH_SRC = """\
import nki.language as nl
FREE = 2048
TILE = nl.tile_size.pmax


def _inner(N, c):
    if N < 8:
        pass
    if c < 3:
        pass


def k(x):
    N = x.shape[0]
    if 0 < -(-N // FREE) - 1:
        _inner(N, 0)
    for i in range(N):
        _inner(N, i)
    for j in range(N // 4096):
        y = 1 if N % 2 else 2
    if N < TILE:
        pass
    return x
"""


def test_walk_follows_helpers_loops_and_nesting(tmp_path):
    spec = load_spec(_write(tmp_path, "k", SYNTH_SPEC))
    bs = find_branches(SYNTH_SRC, "k", {"N"})
    assert [(b.line, b.kind, b.text) for b in bs] == [
        (7, "if", "N < 8"), (15, "if", "0 < -(-N // FREE) - 1"), (20, "ifexp", "N % 2"),
        (21, "if", "N < TILE")]
    # `c < 3` is no size branch: c is a loop index at one of the helper's call sites
    inner = bs[0]
    assert len(inner.paths) == 2                 # called under the outer if, and in a loop
    assert bs[3].sizes_text == "N < 128"         # nl.tile_size.pmax read from the simulator
    cov = derive(spec, SYNTH_SRC, "nki", [{"N": 100}], kernel="k")
    got = [(d.branch.line, d.outcome, d.sizes) for d in cov.derived]
    # N < 8 else: N >= 8 in the loop (N = 100 covers it); N < 8 then: N = 100 does not;
    # the loop context reaches it (no outer condition there), at N = 7 and below: the fewest
    # elements win
    assert got[0] == (7, True, {"N": 2})     # shrunk to SHRINK_FLOOR (2), not to 1
    assert (15, True, {"N": 2049}) in got        # the multi-chunk side: first N past 2048
    assert (20, True, {"N": 4097}) in got        # the odd arm under `range(N // 4096)`
    assert (20, False, {"N": 4096}) in got       # the even arm
    assert len(got) == 4 and not cov.unverified and not cov.unreachable
    for b, outcome, sizes in got:
        br = next(x for x in bs if x.line == b)
        assert reaches(br, outcome, sizes)


def test_inner_branch_only_reached_through_its_outer_side(tmp_path):
    """Without the loop call site, `N < 8` is only reached when N > 2048: its then side is
    unreachable (recorded, no case); a case N = 7 is never derived for it."""
    spec = load_spec(_write(tmp_path, "k", SYNTH_SPEC))
    src = SYNTH_SRC.replace("    for i in range(N):\n        _inner(N, i)\n", "")
    cov = derive(spec, src, "nki", [{"N": 100}], kernel="k")
    assert [(s.branch.text, s.outcome) for s in cov.unreachable] == [("N < 8", True)]
    assert "were found (one and two sizes moved" in cov.unreachable[0].why   # 65,536 values
    assert {"N": 7} not in [d.sizes for d in cov.derived]
    sides = autocase.sides(cov, spec, [("N100", {"N": 100})] +
                           [(f"N{d.sizes['N']}", d.sizes) for d in cov.derived])
    assert [s.status for s in sides if s.branch.text == "N < 8"] == ["unreachable", "verified"]


def test_unreachable_side_within_the_declared_range(tmp_path):
    """max 2048: `0 < -(-N // 2048) - 1` never holds -> dead, no derived case, not an error."""
    spec = load_spec(_write(tmp_path, "k", SYNTH_SPEC.replace("max: 65536", "max: 2048")))
    src = "FREE = 2048\n\ndef k(x):\n    N = x.shape[0]\n    if 0 < -(-N // FREE) - 1:\n" \
          "        pass\n    return x\n"
    cov = derive(spec, src, "nki", [{"N": 100}], kernel="k")
    assert not cov.derived and not cov.unverified
    assert [(s.branch.line, s.outcome) for s in cov.unreachable] == [(5, True)]
    assert cov.unreachable[0].why.startswith("no legal sizes reach it: all 2,048 size ")
    # one more legal value and the side is reachable
    spec2 = load_spec(_write(tmp_path, "k", SYNTH_SPEC.replace("max: 65536", "max: 2049")))
    assert [d.sizes for d in derive(spec2, src, "nki", [{"N": 100}], kernel="k").derived] == \
        [{"N": 2049}]


def test_multiple_of_and_derived_size_constraints(tmp_path):
    """A derived case is a legal case: multiple_of respected, checked like declared cases."""
    text = SYNTH_SPEC.replace("N: {min: 1, max: 65536}", "N: {multiple_of: 96, max: 65536}")
    text = text.replace("{N: 100}", "{N: 96}")
    spec = load_spec(_write(tmp_path, "k", text))
    src = "def k(x):\n    N = x.shape[0]\n    if 2048 < N:\n        pass\n    return x\n"
    (d,) = derive(spec, src, "nki", [{"N": 96}], kernel="k").derived
    assert d.sizes == {"N": 2112}                 # 22 * 96: the first multiple past 2048


# ---- the element cap ------------------------------------------------------------------------

def test_element_cap_boundary(tmp_path):
    spec = load_spec(_write(tmp_path, "k", SYNTH_SPEC.replace("max: 65536", "max: 4194304")))
    # x and y of N elements: a case reaching `N >= T` has 2 T elements
    half = MAX_ELEMENTS // 2
    src = "def k(x):\n    N = x.shape[0]\n    if {t} <= N:\n        pass\n    return x\n"
    at = derive(spec, src.format(t=half), "nki", [{"N": 100}], kernel="k")
    assert [(d.sizes, d.elements) for d in at.derived] == [({"N": half}, MAX_ELEMENTS)]
    over = derive(spec, src.format(t=half + 1), "nki", [{"N": 100}], kernel="k")
    assert not over.derived
    (u,) = over.unverified
    assert u.sizes == {"N": half + 1} and u.elements == MAX_ELEMENTS + 2
    assert f"over the {MAX_ELEMENTS:,}" in u.why
    # the cap itself: MAX_ELEMENTS is simulated, one more element is not
    assert autocase._too_big(spec, {"N": 1}, MAX_ELEMENTS) is None
    assert autocase._too_big(spec, {"N": 1}, MAX_ELEMENTS + 1) is not None


# ---- generated kernels, both dialects ------------------------------------------------------

@pytest.mark.parametrize("dialect, target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_small_layernorm_gets_the_split_form_case(tmp_path, dialect, target):
    """(classic layernorm fits the SBUF single-buffered on trn2: no fuse test there)"""
    spec = load_spec(_small_layernorm(tmp_path))
    src = generate(spec, target, dialect)
    fuse = _fuse_test(src)
    cov = derive(spec, src, dialect, [{"M": 128, "D": 512}])
    (d,) = cov.derived
    assert d.branch.line == fuse.lineno and d.outcome is False
    assert not cov.unverified and not cov.unreachable
    # the nearest D over the budget, with M shrunk to SHRINK_FLOOR (2; a size of 1 can make a
    # reduction an exact cancellation): the boundary of the generated test
    peak = compile(ast.Expression(fuse.test.left), "<t>", "eval")
    bound = fuse.test.comparators[0].value
    at = lambda D: eval(peak, {}, {"D": D}) < bound  # noqa: E731, S307 - the test's own check
    assert autocase.SHRINK_FLOOR == 2
    assert d.sizes["M"] == 2 and not at(d.sizes["D"]) and at(d.sizes["D"] - 1)
    again = derive(spec, src, dialect, [{"M": 128, "D": 512}])
    assert [(x.sizes, x.branch.key, x.outcome) for x in again.derived] == \
        [(x.sizes, x.branch.key, x.outcome) for x in cov.derived]      # deterministic


@pytest.mark.parametrize("dialect, target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_shipped_layernorm_cases_cover_both_sides(dialect, target):
    """The shipped cases cover both sides of the fuse test; the decode-shaped split form of
    codegen/rowsplit.py (rows of a multiple of 128, D >= 512 M: no shipped case; in the fused
    pass and in the split stages' first) is the only branch derived cases reach."""
    spec = load_spec(SPECS / "layernorm.yaml")
    src = generate(spec, target, dialect)
    cov = derive(spec, src, dialect, [dict(c) for c in spec.tests.cases])
    assert cov.branches and not cov.unverified and not cov.unreachable
    assert cov.derived and all("SPLIT_ROW_ELEMS" in d.branch.text and d.outcome
                               for d in cov.derived)


# ---- the build ------------------------------------------------------------------------------

def _mutant_generate(spec, target, dialect, schedule):
    """The real generator, then one edit in the split form only: its last stage adds
    ``beta`` with the wrong sign (the fused stage is untouched)."""
    from nkigen.library.stages import _generate

    src, rec = _generate(spec, target, dialect, schedule)
    head, sep, tail = src.partition(f"def _{spec.name}_stage2(")
    assert sep and tail.count("op1=nl.add") == 1
    return head + sep + tail.replace("op1=nl.add", "op1=nl.subtract"), rec


def _build(specs, out, stages=None, **kw):
    from nkigen.library.build import BuildOptions, build

    return build(BuildOptions(specs=tuple(map(str, specs)), out=str(out), progress=False, **kw),
                 stages=stages)


@pytest.mark.parametrize("dialect, target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_build_verifies_and_records_the_derived_case(tmp_path, dialect, target):
    from nkigen.library import manifest
    from nkigen.library.progress import summary

    spec_path = _small_layernorm(tmp_path)
    rep = _build([spec_path], tmp_path / "lib", dialect=dialect, target=target)
    assert rep.ok, [r.diagnostics for r in rep.results]
    man = json.loads((tmp_path / "lib" / "manifest.json").read_text())
    manifest.validate(man)
    (k,) = man["kernels"]
    names = [c["name"] for c in k["cases"]]
    assert names[0] == "M128_D512" and len(names) == 2
    derived = k["cases"][1]
    assert derived["derived"]["outcome"] == "else" and derived["status"] == "passed"
    assert derived["derived"]["at"].startswith("kernels/ln_small.py:")
    assert (tmp_path / "lib" / derived["golden"]).is_file()
    assert repr(derived["name"]) in (tmp_path / "lib" / "tests" / "test_ln_small.py").read_text()
    by_side = {(b["line"], o["outcome"]): o for b in k["branches"] for o in b["outcomes"]}
    assert all(o["status"] == "verified" for o in by_side.values())
    assert {tuple(o["cases"]) for o in by_side.values()} == {("M128_D512",), (derived["name"],)}
    text = summary(list(rep.results))
    assert f"+1 case for the branch at {derived['derived']['at']}" in text
    assert "+1 derived case for kernel branches" in text
    # the README's and summary's "largest case" stays the spec's own
    readme = (tmp_path / "lib" / "README.md").read_text()
    assert "M128_D512" in readme.split("|")[-2]
    assert f"M128_D512, {derived['name']} (derived)" in readme
    if dialect == "nki":     # deterministic: the same library again, byte for byte
        assert _build([spec_path], tmp_path / "lib2", dialect=dialect, target=target).ok
        for rel in ("manifest.json", f"golden/ln_small/{derived['name']}.npz",
                    "tests/test_ln_small.py"):
            assert (tmp_path / "lib" / rel).read_bytes() == (tmp_path / "lib2" / rel).read_bytes()


def test_a_mutant_of_the_split_form_fails_the_build(tmp_path, monkeypatch):
    from nkigen.library.stages import real_stages

    stages = replace(real_stages(), generate=_mutant_generate)
    spec_path = _small_layernorm(tmp_path)
    rep = _build([spec_path], tmp_path / "lib", stages)
    assert not rep.ok
    text = "\n".join(rep.failed[0].diagnostics)
    assert "tests (case derived for the else side of kernels/ln_small.py:" in text
    assert "differs from the float64 reference in case M2_D" in text
    # without the derived case the same mutant is "verified": the gap this closes
    monkeypatch.setattr(autocase, "derive", lambda *a, **k: autocase.Coverage((), (), (), ()))
    assert _build([spec_path], tmp_path / "lib2", stages).ok


def test_manifest_schema_checks_the_new_fields():
    import jsonschema

    from nkigen.library import manifest

    side = {"outcome": "then", "status": "verified", "cases": ["N1"]}
    branch = {"at": "kernels/k.py:3", "line": 3, "kind": "if", "condition": "N < 8",
              "over_sizes": "N < 8", "outcomes": [side, {**side, "outcome": "else"}]}
    check = jsonschema.Draft202012Validator(
        {"$ref": "#/$defs/branch", "$defs": manifest.schema()["$defs"]}).is_valid
    assert check(branch)
    assert not check({**branch, "outcomes": [side]})                       # both sides
    assert not check({**branch, "outcomes": [side, {**side, "status": "verified",
                                                    "cases": []}]})       # verified by none
    assert check({**branch, "outcomes": [side, {"outcome": "else", "status": "unverified",
                                                "cases": [], "sizes": {"N": 9},
                                                "elements": 18, "why": "too big"}]})
    assert not check({**branch, "at": "kernels/../k.py:3"})


def test_explain_lists_the_branches_and_their_cases(tmp_path, capsys):
    from nkigen.cli import main

    assert main(["explain", str(_small_layernorm(tmp_path))]) == 0
    out = capsys.readouterr().out.split("trace-time size branches of the nki kernel")[1]
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if "< 202335" in ln)
    assert lines[at].startswith("  kernels/ln_small.py:") and "if 26 * D + 28 < 202335" in lines[at]
    assert lines[at + 1] == "    then: M128_D512"
    assert lines[at + 2].startswith("    else: M2_D") and lines[at + 2].endswith(" (derived)")


@pytest.mark.parametrize("top, proven", [(autocase.EXHAUSTIVE, True),
                                         (autocase.EXHAUSTIVE + 1, False)])
def test_unreachable_is_proven_on_small_size_spaces_only(tmp_path, top, proven):
    spec = load_spec(_write(tmp_path, "k", SYNTH_SPEC.replace("max: 65536", f"max: {top}")))
    src = "def k(x):\n    N = x.shape[0]\n    if N < 0:\n        pass\n    return x\n"
    (side,) = derive(spec, src, "nki", [{"N": 100}], kernel="k").unreachable
    assert side.why.startswith(f"no legal sizes reach it: all {top:,} size assignments"
                               if proven else "no legal sizes reaching it were found")


def test_a_side_only_reachable_over_the_cap_is_reported_not_verified(tmp_path):
    """M at least 300: the split side needs 300 rows of D = 7782 (over 2**21 elements): the build
    does not simulate it, records it unverified and says so; the library is still written."""
    from nkigen.library.progress import summary

    text = _small_layernorm(tmp_path).read_text().replace(
        "M: {min: 1, max: 65536}", "M: {min: 300, max: 65536}").replace(
        "{M: 128, D: 512}", "{M: 300, D: 512}")
    rep = _build([_write(tmp_path, "ln_small", text)], tmp_path / "lib")
    assert rep.ok
    (k,) = json.loads((tmp_path / "lib" / "manifest.json").read_text())["kernels"]
    assert [c["name"] for c in k["cases"]] == ["M300_D512"]
    bad = [(b["at"], o) for b in k["branches"] for o in b["outcomes"]
           if o["status"] == "unverified"]
    assert bad and all(o["sizes"]["M"] == 300 and o["elements"] > MAX_ELEMENTS
                       for _, o in bad)
    out = summary(list(rep.results))
    assert f"{len(bad)} branch sides NOT verified" in out
    assert any(line.startswith("warning: ln_small: the ") and "is NOT verified" in line
               and bad[0][0] in line for line in out.splitlines())


def test_a_derived_case_keeps_the_test_inputs_drawable(tmp_path):
    """ids drawn in [2, N - 1]: the smallest N reaching `N < 8` is 3, not 1 (low > high)."""
    text = SYNTH_SPEC.replace("  x: {shape: [N], dtype: float32}\n",
                              "  x: {shape: [N], dtype: float32}\n"
                              "  ids: {shape: [N], dtype: int32}\n")
    text = text.replace("x[n] * 2.0", "x[n] * ids[n]")
    text += "  inputs:\n    ids: {dist: integers, low: 2, high: \"N - 1\"}\n"
    spec = load_spec(_write(tmp_path, "k", text))
    src = "def k(x, ids):\n    N = x.shape[0]\n    if N < 8:\n        pass\n    return x\n"
    (d,) = derive(spec, src, "nki", [{"N": 100}], kernel="k").derived
    assert d.sizes == {"N": 3}


LOG_SOFTMAX_COLUMNS = """nkigen: 1
name: lsm0
doc: log-softmax down columns
sizes:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n] - log(sum(exp(x[j, n]), j))
tests:
  cases:
    - {M: 300, N: 500}
  inputs:
    x: {dist: uniform, low: -2, high: 2}
"""


def test_a_derived_case_is_not_shrunk_to_a_degenerate_one_row_reduction(tmp_path):
    # shrunk to M = 1 the derived case's reference is x - log(exp(x)) = 0 exactly, which no
    # float32 kernel matches within the tolerance of an all-zero reference (the classic
    # kernel failed the build there); SHRINK_FLOOR keeps two rows
    import nkigen
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "lsm0.yaml").write_text(LOG_SOFTMAX_COLUMNS)
    res = nkigen.build(tmp_path / "specs", tmp_path / "out", dialect="neuronxcc", target="trn2")
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    derived = [c for k in man["kernels"] for c in k["cases"] if c.get("derived")]
    assert derived and all(c["sizes"]["M"] >= 2 for c in derived), derived
    assert res is not None
