"""Integer sums accumulate in float32 on chip (review 12 R12-4): ``nkigen check`` warns, located,
when a sum into an integer tensor can pass 2**24 at the sizes' maxima (nkigen/analysis/
checktime.py ``integer_sum_diagnostics``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nkigen.analysis.checktime import integer_sum_diagnostics, warnings_of
from nkigen.frontend import load_spec_text


def _matvec(kmax: str, a: str = "int8", y: str = "int32") -> str:
    return f"""nkigen: 1
name: mv
doc: d
sizes:
  M: {{min: 1, max: 64}}
  K: {{min: 1{kmax}}}
inputs:
  a: {{shape: [M, K], dtype: {a}}}
  v: {{shape: [K], dtype: {a}}}
outputs:
  y: {{shape: [M], dtype: {y}}}
compute:
  - y[m] += a[m, k] * v[k]
"""


@pytest.mark.parametrize("kmax,warned", [(", max: 1024", False), (", max: 1025", True),
                                         ("", True)])
def test_int8_products_pass_2_24_above_1024_terms(kmax, warned):
    # |int8 x int8| <= 128 * 128 = 16,384; 1,024 of them make exactly 2**24, still exact
    diags = integer_sum_diagnostics(load_spec_text(_matvec(kmax)))
    assert bool(diags) is warned
    if warned:
        assert diags[0].field == "compute[0]" and "2**24" in diags[0].rule


def test_float_sums_and_float_targets_are_not_warned():
    assert not integer_sum_diagnostics(load_spec_text(_matvec(", max: 4096", "float32",
                                                              "float32")))
    assert not integer_sum_diagnostics(load_spec_text(_matvec(", max: 4096", "int8",
                                                              "float32")))


def test_an_int32_cumsum_is_warned():
    text = """nkigen: 1
name: cs
doc: d
sizes:
  M: {min: 1, max: 8}
  N: {min: 1, max: 8}
inputs:
  x: {shape: [M, N], dtype: int32}
outputs:
  y: {shape: [M, N], dtype: int32}
compute:
  - y[m, n] = cumsum(x[m, n], n)
"""
    diags = integer_sum_diagnostics(load_spec_text(text))
    assert len(diags) == 1 and "8 terms of up to 2,147,483,648" in str(diags[0].got)
    assert any("2**24" in str(w) for w in warnings_of(load_spec_text(text)))


def test_check_prints_the_warning_and_passes(tmp_path):
    p = tmp_path / "mv.yaml"
    p.write_text(_matvec(", max: 4096"))
    r = subprocess.run([sys.executable, "-m", "nkigen", "check", str(p)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert f"{p}:13:5: warning: compute[0]: an integer sum into y" in r.stdout + r.stderr
