"""The prover takes one floor/ceiling of integers beside an integer exactly
(analysis/prover.py ``exact_floor``): ``w[m // 5]`` of a ``[205]`` table is in bounds for every
``M <= 1025`` (``floor(1024 / 5) = 204``) and not at 1026; bounding the floor by its argument
proved it only up to ``M <= 1021`` (review 14's note)."""

from __future__ import annotations

import itertools

import pytest
import sympy

from nkigen.analysis import prover
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text
from nkigen.pipeline import analyze

M, K = sympy.symbols("M K", integer=True, positive=True)
DOM = prover.SizeDomain(free=((M, 1, 1, 64), (K, 1, 1, 64)), derived=())


@pytest.mark.parametrize("kind", [sympy.floor, sympy.ceiling])
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("q", [2, 3, 5])
def test_exact_floor_is_the_same_condition(kind, sign, q):
    # +-kind((M - 7) / q) + (K - 9) >= 0 and its rewrite agree at every M, K of a grid
    # whose numerators cross zero
    e = sign * kind((M - 7) / q) + K - 9
    ex = prover.exact_floor(e, DOM)
    assert ex is not None and not ex.atoms(sympy.floor, sympy.ceiling)
    for m, k in itertools.product(range(1, 30), range(1, 20)):
        at = {M: m, K: k}
        assert (e.subs(at) >= 0) == (ex.subs(at) >= 0), (kind, sign, q, m, k, ex)


def test_exact_floor_needs_one_unit_floor_and_an_integer_rest():
    f = sympy.floor((M - 1) / 5)
    assert prover.exact_floor(2 * f - K, DOM) is None            # coefficient 2
    assert prover.exact_floor(f - K / 2, DOM) is None            # not an integer beside it
    assert prover.exact_floor(f + sympy.floor(K / 3), DOM) is None   # two floors
    assert prover.exact_floor(M - K, DOM) is None                # no floor


def _spec(mmax: int) -> str:
    return f"""nkigen: 1
name: p
sizes:
  M: {{min: 1, max: {mmax}}}
  N: {{min: 1, max: 4096}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
  w: {{shape: [205], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = x[m, n] * w[m // 5]
"""


@pytest.mark.parametrize("mmax", [1024, 1025])
def test_a_divided_read_is_proven_up_to_its_last_legal_size(mmax):
    analyze(load_spec_text(_spec(mmax)))


def test_one_size_more_runs_past_the_table():
    with pytest.raises(NkigenError, match=r"cannot prove floor\(m/5\) <= 204"):
        analyze(load_spec_text(_spec(1026)))
