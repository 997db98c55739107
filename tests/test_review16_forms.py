"""Review 16 (docs/review-kernels-16.md): the fix, pinned on both sides.

R16-1: a statement that reads a 2-D input only as the ids of a gather along its partition
index (T5 relative-position bias, ``y[m, n, h] = s[m, n, h] + table[bucket[m, n], h]``) got a
turned copy of the ids (codegen/turned.py: ``bucket_t[n, m] = bucket[m, n]``, a DMA or VectorE
transpose into an HBM scratch tensor) that no stage read: the gather loads its id column
straight from the input (codegen/gather.py), and the substitution does not reach inside a
gather's ids. The copy is no longer made for an access read only as ids; an access that is
also read as a value keeps it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]

T5 = """nkigen: 1
name: t5_bucket
sizes:
  H: {{min: 1, max: 32}}
  M: {{min: 1, max: 1024}}
  N: {{min: 1, max: 1024}}
  NB: {{min: 1, max: 64}}
inputs:
  table: {{shape: [NB, H], dtype: float32}}
  bucket: {{shape: [M, N], dtype: int32}}
  s: {{shape: [M, N, H], dtype: float32}}
outputs:
  y: {{shape: [M, N, H], dtype: float32}}
compute:
  - y[m, n, h] = s[m, n, h] + table[bucket[m, n], h]{extra}
tests:
  cases:
    - {{H: 1, M: 1, N: 1, NB: 1}}
  inputs:
    bucket: {{dist: integers, low: 0, high: "NB - 1"}}
"""
SIZES = [{"H": 1, "M": 1, "N": 1, "NB": 1}, {"H": 4, "M": 130, "N": 70, "NB": 32}]
TURNED = ("bucket_t[n, m] = bucket[m, n]", "dma_transpose(", "nc_transpose(", "nl.hbm")


@pytest.mark.parametrize("dialect,target", ALL4)
def test_ids_read_only_by_a_gather_are_not_turned(dialect, target):
    spec = load_spec_text(T5.format(extra=""))
    src = generate(spec, target=target, dialect=dialect)
    assert not [w for w in TURNED if w in src], [w for w in TURNED if w in src]
    for sizes in SIZES:
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_ids_also_read_as_a_value_keep_their_turned_copy(dialect, target):
    # the boundary: bucket[m, n] read as a number too is a transposed read of an input, and
    # its turned copy is made and read (the ids still come from the input)
    spec = load_spec_text(T5.format(extra=" + bucket[m, n]"))
    src = generate(spec, target=target, dialect=dialect)
    assert "bucket_t[n, m] = bucket[m, n]" in src
    assert src.count("bucket_t[") > 2      # written, then read by the statement
    for sizes in SIZES:
        check_case(spec, sizes, target=target, src=src)
