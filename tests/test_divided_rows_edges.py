"""Boundaries of the divided-row gathers (nkigen/codegen/revrows.py ``divided_rows``, gather.py
``_check_fp32_exact_rows``), pinned where the mutation benchmark (benchmarks/mutate.py, helper
kill10) found them unpinned.

A counted divisor (``x[m // 3, n]``) forms its row ids in fp32 on VectorE (S25
general/nki/api/nki/isa/__init__.py tensor_tensor: inputs cast to float32, SDK 2.25): exact
only while every row id is at most 2**24 (hw.FP32_EXACT_INT) at the sizes' max: the ids count
rows of the gathered dimension (the DMA scales them by its stride, gather._check_table_rows),
not elements (fuzz17). At exactly 2**24 rows the gather is used; one row more and the row
lowering's other forms take the read (still correct, slower)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.hw import FP32_EXACT_INT  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

THIRDS = """nkigen: 1
name: thirds
doc: d
sizes:
  M: {min: 1, max: MMAX}
  N: {min: 1, max: NMAX}
  G: {value: (M + 2) // 3}
inputs:
  x: {shape: [G, N], dtype: float32}
  z: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m // 3, n] + z[m, n]
tests:
  cases:
    - {M: 7, N: 5}
"""


@pytest.mark.parametrize("mmax,nmax,counted", [
    (190, 262144, True),        # G = 64 rows of 2**18: 2**24 elements
    (289, 172961, True),        # G = 97 rows of 257 * 673: 2**24 + 1 elements, 97 row ids
    (3 * 2 ** 24, 5, True),     # G = 2**24 rows: the last exact row id
    (3 * 2 ** 24 + 1, 5, False),    # G = 2**24 + 1 rows
])
def test_counted_rows_only_for_fp32_exact_tables(mmax, nmax, counted):
    assert ((mmax + 2) // 3 <= FP32_EXACT_INT) is counted
    spec = load_spec_text(THIRDS.replace("MMAX", str(mmax)).replace("NMAX", str(nmax)))
    src = generate(spec, target="trn2")
    assert ("nisa.tensor_reduce(" in src) is counted, src
    check_case(spec, {"M": 7, "N": 5}, target="trn2", src=src)



SHIFTED_FREE = """nkigen: 1
name: shf
doc: d
sizes:
  M: {min: 1, max: 256}
  N: {min: 1, max: 4096}
  H: {value: N // 2 + 1}
inputs:
  x: {shape: [M, H], dtype: float32}
  z: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, (n + 1) // 2] + z[m, n]
tests:
  cases:
    - {M: 3, N: 300}
"""


def test_a_shifted_division_of_the_free_index_reads_the_shifted_columns():
    # (n + 1) // 2 is not n // 2 expanded (tilexpr._free_division takes f // c alone)
    spec = load_spec_text(SHIFTED_FREE)
    src = generate(spec, target="trn2")
    for n in (2, 5, 300):
        check_case(spec, {"M": 3, "N": n}, target="trn2", src=src)


OUTER_FREE = """nkigen: 1
name: outf
doc: d
sizes:
  M: {min: 1, max: 32}
  N: {min: 1, max: 32}
  G: {value: (M + 1) // 2}
inputs:
  x: {shape: [N, G], dtype: float32}
  z: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[n, m // 2] * z[m, n]
tests:
  cases:
    - {M: 7, N: 5}
"""


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_a_divided_row_index_inside_the_free_index_is_not_gathered_row_by_row(dialect, target):
    # x[n, m // 2]: the partition's row is the inner dimension, below the free index n (too
    # small a table to be turned first, codegen/turned.MIN_ELEMENTS): one gathered row per
    # partition cannot hold it (revrows.divided_rows), another form reads it
    spec = load_spec_text(OUTER_FREE)
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"M": 7, "N": 5}, {"M": 32, "N": 3}):
        check_case(spec, sizes, target=target, src=src)
