"""One index rule and one first-use order (nkigen.ir), shared by the front end, the analysis and
the reference."""

from __future__ import annotations

import pytest

from nkigen.analysis.indices import _first_use_order
from nkigen.frontend import load_spec_text
from nkigen.frontend.checks import statement_indices as checked_indices
from nkigen.ir import expr_indices, is_index_name, spec_indices, statement_indices
from nkigen.reference import index_extents

SPEC = """\
nkigen: 1
name: k
sizes: {{M: {{}}, J: {{}}, K: {{}}}}
inputs:
  a: {{shape: [M, J, K], dtype: float32}}
  b: {{shape: [M, K], dtype: float32}}
outputs:
  c: {{shape: [M], dtype: float32}}
compute:
  - {stmt}
"""


@pytest.mark.parametrize("name,ok", [
    ("m", True), ("_k", True), ("k_", True), ("k1", True), ("_", True),
    ("M", False), ("kX", False), ("1k", False), ("k\n", False), ("", False), ("é", False),
])
def test_is_index_name(name, ok):
    assert is_index_name(name) is ok


def test_leading_underscore_index_is_summed():
    s = load_spec_text(SPEC.format(stmt="c[m] += b[m, _k]"))
    (st,) = s.statements
    assert st.sum_indices == ("_k",)
    assert statement_indices(st) == ("m", "_k")


@pytest.mark.parametrize("stmt,order,free", [
    ("c[m] = sum(a[m, j, k], k, j)", ("m", "j", "k"), ("m",)),
    ("c[m] += sum(a[m, j, k], j) * b[m, k]", ("m", "j", "k"), ("m", "k")),
    ("c[m] += b[m, _k] * sum(a[m, j, _k], j)", ("m", "_k", "j"), ("m", "_k")),
])
def test_every_stage_sees_one_order(stmt, order, free):
    s = load_spec_text(SPEC.format(stmt=stmt))
    (st,) = s.statements
    assert statement_indices(st) == order
    assert spec_indices(s.statements) == order
    assert expr_indices(st.rhs, free=True) == free
    assert tuple(checked_indices(s)) == order
    assert tuple(_first_use_order(s)) == order
    ext = index_extents(s, st, {"M": 2, "J": 3, "K": 4})
    assert set(ext) == set(order)
