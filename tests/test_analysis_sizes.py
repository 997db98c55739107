"""analyze (sizes): bind_sizes, check_sizes, default_cases, invalid_cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkigen.analysis import bind_sizes, check_sizes, default_cases, invalid_cases
from nkigen.analysis.cases import MAX_INVALID_ELEMENTS, _volume
from nkigen.analysis.sizes import complete_sizes
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec, load_spec_text

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))

CONV = """\
nkigen: 1
name: conv
sizes:
  C: {max: 128}
  H: {min: 3}
  R: {value: 3}
  O: {value: "(H - R) // S + 1"}
params:
  S: 2
inputs:
  x: {shape: [C, "H * 2"], dtype: float32}
  w: {shape: [C, R], dtype: float32}
outputs:
  y: {shape: [C, O], dtype: float32}
compute:
  - y[c, o] = sum(x[c, o * S + r] * w[c, r], r)
"""

MM = """\
nkigen: 1
name: mm
sizes:
  M: {multiple_of: 128}
  K: {multiple_of: 128, min: 256}
  N: {min: 1, max: 1000}
inputs:
  a: {shape: [M, K], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] += a[m, k] * b[k, n]
"""


def conv():
    return load_spec_text(CONV, "conv.yaml")


def mm():
    return load_spec_text(MM, "mm.yaml")


def test_bind_solves_linear_shapes_and_derives():
    sizes = bind_sizes(conv(), {"x": (4, 20), "w": (4, 3)})
    assert sizes == {"C": 4, "H": 10, "R": 3, "O": 4}


def test_bind_rejects_indivisible_shape():
    with pytest.raises(NkigenError) as e:
        bind_sizes(conv(), {"x": (4, 21), "w": (4, 3)})
    assert "cannot bind size H: 2*H = 21 has no integer solution" in str(e.value)


def test_bind_rejects_inconsistent_shapes():
    with pytest.raises(NkigenError) as e:
        bind_sizes(conv(), {"x": (4, 20), "w": (5, 3)})
    assert "w dim 0 must be C = 4" in str(e.value)


def test_bind_names_size_value_and_rule():
    with pytest.raises(NkigenError) as e:
        bind_sizes(mm(), {"a": (100, 256), "b": (256, 7)})
    (d,) = e.value.diagnostics
    assert d.rule == "size M = 100 breaks multiple_of 128" and d.fix == "pass a multiple of 128"


def test_bind_checks_derived_sizes_and_fixed_dims():
    with pytest.raises(NkigenError) as e:
        bind_sizes(conv(), {"x": (4, 20), "w": (4, 5)})
    assert "w dim 1 must be R = 3" in str(e.value)
    with pytest.raises(NkigenError) as e:
        bind_sizes(conv(), {"x": (4, 2), "w": (4, 3)})   # H = 1: min 3, and O would be < 1
    assert "size H = 1 breaks min 3" in str(e.value)


def test_check_sizes_lists_every_problem():
    diags = check_sizes(mm(), {"M": 100, "K": 128, "N": 2000}, "tests.cases[0]")
    rules = [d.rule for d in diags]
    assert rules == ["size M = 100 breaks multiple_of 128", "size K = 128 breaks min 256",
                     "size N = 2000 breaks max 1000"]
    assert diags[0].field == "tests.cases[0].M"
    assert check_sizes(mm(), {"M": 128, "K": 256, "N": 3}) == []


def test_check_sizes_unknown_and_missing_and_wrong_derived():
    assert "Z is not a size" in check_sizes(mm(), {"M": 128, "K": 256, "N": 1, "Z": 3})[0].rule
    assert "size N has no value" in check_sizes(mm(), {"M": 128, "K": 256})[0].rule
    d = check_sizes(conv(), {"C": 2, "H": 9, "O": 7})
    assert d and "derived size O is 4" in d[0].rule


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_default_cases_satisfy_constraints(path):
    spec = load_spec(path)
    cases = default_cases(spec)
    assert 1 <= len(cases) <= 2
    for c in cases:
        assert check_sizes(spec, c) == [], c
    if any(not s.derived and s.multiple_of is None for s in spec.sizes):
        ragged = cases[-1]
        assert any(v % 128 for k, v in ragged.items() if spec.size(k).multiple_of is None)


def test_default_cases_are_small():
    for spec in (mm(), conv()):
        for c in default_cases(spec):
            full = complete_sizes(spec, c)
            assert max(full.values()) <= 300, full


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_invalid_cases_are_rejected_with_their_message(path):
    spec = load_spec(path)
    for case, needle in invalid_cases(spec):
        diags = check_sizes(spec, case)
        assert diags and needle in str(diags[0]), (case, needle)


def test_invalid_cases_stay_small_and_reach_large_maxima():
    text = MM.replace("max: 1000", "max: 40000").replace("multiple_of: 128, min: 256",
                                                         "multiple_of: 128")
    spec = load_spec_text(text, "mm.yaml")
    cases = dict((n, c) for c, n in invalid_cases(spec))
    big = cases["size N = 40001 breaks max 40000"]
    assert big == {"M": 128, "K": 128, "N": 40001}     # other sizes at their smallest
    assert _volume(spec, big) <= MAX_INVALID_ELEMENTS


def test_invalid_cases_cover_each_rule():
    needles = [n for _, n in invalid_cases(mm())]
    assert any("breaks multiple_of 128" in n for n in needles)
    assert "size K = 128 breaks min 256" in needles
    assert "size N = 1001 breaks max 1000" in needles


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_bind_sizes_round_trips_default_cases(path):
    from nkigen.analysis.sizes import eval_size_expr

    spec = load_spec(path)
    for case in default_cases(spec) + [dict(c) for c in spec.tests.cases]:
        full = complete_sizes(spec, case)
        shapes = {t.name: tuple(eval_size_expr(d, full) for d in t.shape) for t in spec.inputs}
        assert bind_sizes(spec, shapes) == full
