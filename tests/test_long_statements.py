"""A long element-wise statement plans in time linear in its accesses (codegen/coalesce.py).

``coalesce._sibling_offsets`` enumerates the other reads of the same tensor for each read; with a
repeated access (the fuzz13 corpus's 91-term ``x[m, n] + x[m, n] + ...``) that was quadratic in
the statement's length: 16,562 ``hbm_view`` calls and 14.7 s of planning for one statement. A
repeated access has the offsets of its first occurrence, so each distinct access is viewed once
(``python -m nkigen build h_long_sum.yaml``: 16.5 s -> 5.0 s wall; the kernel is byte-identical).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import tilexpr  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402


def _spec(terms: int) -> str:
    # two tensors, each read many times at the same element
    rhs = " + ".join("x[m, n]" if i % 3 else "0.5 * z[m, n]" for i in range(terms))
    return f"""nkigen: 1
name: long{terms}
doc: d
sizes:
  M: {{min: 1, max: 512}}
  N: {{min: 1, max: 512}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
  z: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = {rhs}
"""


def _views(monkeypatch, terms: int) -> tuple[int, str]:
    calls = []
    real = tilexpr.Compiler.hbm_view

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tilexpr.Compiler, "hbm_view", counted)
    src = generate(load_spec_text(_spec(terms)), target="trn2", dialect="nki")
    return len(calls), src


def test_planning_views_grow_linearly_with_repeated_accesses(monkeypatch):
    n20, _ = _views(monkeypatch, 20)
    n80, _ = _views(monkeypatch, 80)
    # linear: four times the terms, at most four times the views (quadratic gave ~16x)
    assert n80 <= 4 * n20, (n20, n80)


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_long_repeated_statement_matches_the_reference(dialect, target):
    spec = load_spec_text(_spec(61))
    src = generate(spec, target=target, dialect=dialect)
    load_source(src, "long61")
    for sizes in ({"M": 1, "N": 1}, {"M": 130, "N": 257}):
        check_case(spec, sizes, target=target, src=src)
