"""Numbers no later stage can represent are rejected at load time, each at its position."""

from __future__ import annotations

import pytest

from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text

BASE = """\
nkigen: 1
name: k
sizes:
  M: {multiple_of: 128}
  N: {min: 1, max: 1024}
params:
  alpha: 0.5
inputs:
  a: {shape: [M, N], dtype: float32}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] = relu(alpha * a[m, n])
tests:
  cases:
    - {M: 128, N: 8}
  inputs:
    a: {dist: normal, mean: 0, std: 1}
"""
BIG = "9" * 400


@pytest.mark.parametrize("old,new,line,words", [
    ("relu(alpha * a[m, n])", f"a[m, n] * {BIG}", 13, "not a finite float64"),
    ("relu(alpha * a[m, n])", "a[m, n] * 1e400", 13, "not a finite float64"),
    ("relu(alpha * a[m, n])", "a[m, n] * -1.5e309", 13, "not a finite float64"),
    ("relu(alpha * a[m, n])", "a[m, n + 9223372036854775808]", 13, "64 bits"),
    ("relu(alpha * a[m, n])", "a[m, n + 4611686018427387904 * 2]", 13, "exceeds 64 bits"),
    ("alpha: 0.5", f"alpha: {BIG}", 7, "64 bits"),
    ("alpha: 0.5", "alpha: 9223372036854775808", 7, "64 bits"),
    ("alpha: 0.5", "alpha: 1e400", 7, "finite"),
    ("{M: 128, N: 8}", "{M: 128000000000000000000000000000000, N: 8}", 16, "at most 2147483647"),
    ("{M: 128, N: 8}", "{M: 1.28e32, N: 8}", 16, "at most 2147483647"),
    ("{M: 128, N: 8}", "{M: 128, N: 2147483648}", 16, "at most 2147483647"),
    ("max: 1024", "max: 2147483648", 5, "at most 2147483647"),
    ("multiple_of: 128", f"multiple_of: {BIG}", 4, "at most 2147483647"),
    ("shape: [M, N], dtype: float32}\noutputs", "shape: [M, 4294967296], dtype: float32}\noutputs",
     9, "at most 2147483647"),
    ("shape: [M, N], dtype: float32}\noutputs", "shape: [M, 'N * 99999999999999999999'], "
     "dtype: float32}\noutputs", 9, "64 bits"),
    ("mean: 0", f"mean: {BIG}", 18, "finite"),
])
def test_unrepresentable_numbers_are_located(old, new, line, words):
    assert old in BASE
    with pytest.raises(NkigenError) as ei:
        load_spec_text(BASE.replace(old, new, 1), "n.yaml")
    hits = [d for d in ei.value.diagnostics if words in d.rule]
    assert hits, [str(d) for d in ei.value.diagnostics]
    assert hits[0].loc is not None and hits[0].loc.line == line, str(hits[0])
    assert all(len(str(d)) < 400 for d in ei.value.diagnostics)


@pytest.mark.parametrize("old,new", [
    ("relu(alpha * a[m, n])", "a[m, n] * 1e308"),
    ("relu(alpha * a[m, n])", "a[m, n] * 9223372036854775807"),
    ("alpha: 0.5", "alpha: 1.0e300"),
    ("alpha: 0.5", "alpha: 9223372036854775807"),
    ("{M: 128, N: 8}", "{M: 2147483520, N: 8}"),
    ("max: 1024", "max: 2147483647"),
])
def test_large_but_representable_numbers_are_accepted(old, new):
    load_spec_text(BASE.replace(old, new, 1), "n.yaml")
