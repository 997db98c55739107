"""Flat maps (nkigen/codegen/flatmap.py, flatten.py): the forms they must leave to the row
lowering, pinned where the mutation benchmark (benchmarks/mutate.py, helper kill10) found them
unpinned. Where a form is left alone, the kernel is the row lowering's, byte for byte."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.codegen import flatmap  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

VEC = """nkigen: 1
name: vec
doc: d
sizes:
  T: {min: 1, max: 100000}
inputs:
  a: {shape: [T], dtype: float32}
  g: {shape: [T], dtype: float32}
  ids: {shape: [T], dtype: int32}
outputs:
  y: {shape: [T], dtype: float32}
  z: {shape: [T], dtype: float32}
compute:
  - y[i] = a[i] * 2.0
  - z[i] = STMT
tests:
  cases:
    - {T: 300}
  inputs:
    ids: {dist: integers, low: 0, high: "T - 1"}
"""


def _row_lowering(monkeypatch, spec, **kw) -> str:
    with monkeypatch.context() as mp:
        mp.setattr(flatmap, "applies", lambda b, st, rhs: False)
        return generate(spec, **kw)


@pytest.mark.parametrize("stmt", ["y[T - 1 - i] + g[i]", "y[i] + g[i]"])
def test_a_group_reads_its_own_rows_only_where_they_were_written(stmt):
    # z reads y, written in the same group: bound on chip only where read at y[i]
    spec = load_spec_text(VEC.replace("STMT", stmt))
    src = generate(spec)
    check_case(spec, {"T": 301}, src=src)   # F = 2: 150 whole rows and a last row of one


def test_a_gathered_read_keeps_the_row_lowering(monkeypatch):
    spec = load_spec_text(VEC.replace("STMT", "a[ids[i]] * g[i]"))
    src = generate(spec)
    assert src == _row_lowering(monkeypatch, spec)
    check_case(spec, {"T": 300}, src=src)


def test_the_classic_dialect_gets_the_row_lowering_byte_for_byte(monkeypatch):
    # no flat attempt at all in the classic dialect (its flattened axis indexed by two aranges
    # has no document, review 8 R8-6): the kernel is the row lowering's, names included
    spec = load_spec_text(VEC.replace("STMT", "y[i] + g[i]"))
    src = generate(spec, dialect="neuronxcc", target="trn1")
    assert src == _row_lowering(monkeypatch, spec, dialect="neuronxcc", target="trn1")


def test_rows_per_grid_one_statement_and_a_fused_group():
    # one statement aims at 256 grid rows, a fused group at 128 (flatmap.ROWS_FOR*)
    one = generate(load_spec_text(VEC.replace("  - z[i] = STMT\n", "").replace(
        "  z: {shape: [T], dtype: float32}\n", "")))
    assert "min(FREE_TILE, T // 256)" in one and "T // TILE_P" not in one
    group = generate(load_spec_text(VEC.replace("STMT", "y[i] + g[i]")))
    assert "min(FREE_TILE, T // TILE_P)" in group and "T // 256" not in group


MAP2 = """nkigen: 1
name: map2
doc: d
sizes:
  M: {min: 1, max: 64}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = STMT
tests:
  cases:
    - {M: 3, N: 200}
"""


@pytest.mark.parametrize("stmt", ["cumsum(x[m, n], n)", "where(m < n, x[m, n], 0.0)"])
def test_a_statement_with_a_scan_or_an_index_value_keeps_its_rows(stmt):
    # every access reads x[m, n], but the scan runs along n within a row and m < n compares
    # the indices: neither survives the flat view
    spec = load_spec_text(MAP2.replace("STMT", stmt))
    src = generate(spec)
    assert "codegen/flatten.py" not in src
    check_case(spec, {"M": 3, "N": 200}, src=src)
