"""analyze (prover): floors whose arguments differ by an integer (fuzz7).

``g: [(M + 3) // 4]`` read as ``g[m // 4]`` (one scale per group of 4 rows, the last group
ragged) needs ``floor(M/4 - 1/4) <= floor(M/4 + 3/4) - 1``, an equality: the prover bounded
each floor on its own and failed, so ``nkigen check`` rejected a valid spec.
"""

from __future__ import annotations

import sympy
from analysis_builders import matmul

from nkigen.analysis.prover import prove_nonneg
from nkigen.analysis.sizes import size_domain
from nkigen.frontend import load_spec_text
from nkigen.ir import size_symbol

M = size_symbol("M")
DOM = size_domain(matmul(M={"min": 1, "max": 4096}))


def test_floors_an_integer_apart_are_compared_exactly():
    assert prove_nonneg(sympy.floor((M + 3) / 4) - 1 - sympy.floor((M - 1) / 4), DOM).proven
    assert prove_nonneg(sympy.ceiling((M - 5) / 3) + 2 - sympy.ceiling((M + 1) / 3), DOM).proven
    # one more is false (M = 1: 0 <= -1), and a floor a non-integer apart is not the same
    assert not prove_nonneg(sympy.floor((M + 3) / 4) - 2 - sympy.floor((M - 1) / 4), DOM).proven
    assert not prove_nonneg(sympy.floor((M + 2) / 4) - 1 - sympy.floor((M - 1) / 4), DOM).proven


SPEC = """nkigen: 1
name: k
sizes:
  M: {min: 1, max: 2048}
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [M, N], dtype: float32}
  g: {shape: ["(M + SHIFT) // 4"], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n] * g[m // 4]
tests:
  cases:
    - {M: 4, N: 1}
"""


def test_a_ceil_div_group_scale_spec_checks():
    from nkigen.analysis import analyze
    from nkigen.diagnostics import NkigenError

    analyze(load_spec_text(SPEC.replace("SHIFT", "3")))     # ceil(M / 4) groups: in bounds
    try:
        analyze(load_spec_text(SPEC.replace("SHIFT", "2")))  # M = 1 gives no group at all
    except NkigenError as e:
        assert "cannot prove floor(m/4) <= floor(M/4 + 1/2) - 1" in str(e)
    else:
        raise AssertionError("(M + 2) // 4 groups passed the bounds proof")


INITIAL = """nkigen: 1
name: k
sizes:
  C: {min: 1, max: 128}
  T: {min: 1, max: 64}
inputs:
  x: {shape: [C, T], dtype: float32}
outputs:
  h: {shape: [C, T], dtype: float32, initial: 1.0}
compute:
  - STATEMENT
"""


def test_an_initial_no_recurrence_reads_is_a_located_warning():
    from nkigen.analysis.checktime import warnings_of

    def ws(statement: str) -> list[str]:
        spec = load_spec_text(INITIAL.replace("STATEMENT", statement), "w.yaml")
        return [str(w) for w in warnings_of(spec)]

    got = ws("h[c, t] = 2.0 * x[c, t]")      # 'initial:' silently ignored before (fuzz7)
    assert len(got) == 1 and got[0].startswith(
        "w.yaml:9:47: warning: outputs.h.initial: 'initial:' of h has no effect"), got
    assert ws("h[c, t] = 0.5 * h[c, t - 1] + x[c, t]") == []
