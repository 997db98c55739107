"""Documented fast TensorE modes in generated kernels (issue 14): fp8 ``perf_mode=double_row``
on NeuronCore-v3+ in the nki dialect (S29 nki/api/nki/isa/__init__.py nc_matmul, nki 0.3) and
``is_stationary_onezero`` on col_sum's fp32 ones column (both API versions, S25/S29)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkigen.codegen import generate
from nkigen.frontend import load_spec
from tests.codegen_check import check_case

SPECS = Path(__file__).resolve().parent.parent / "specs"
DOUBLE = "perf_mode=nisa.matmul_perf_mode.double_row"


def test_fp8_matmul_uses_double_row_on_trn2_nki_only():
    spec = load_spec(SPECS / "matmul_fp8.yaml")
    assert DOUBLE in generate(spec, target="trn2", dialect="nki")
    assert "perf_mode=" not in generate(spec, target="trn1", dialect="nki")        # NC-v2
    assert "perf_mode=" not in generate(spec, target="trn2", dialect="neuronxcc")  # not in S25


@pytest.mark.parametrize("K", [128, 256, 384])      # no pair; one pair; a pair and a tail
def test_fp8_double_row_kernel_matches_reference(K):
    spec = load_spec(SPECS / "matmul_fp8.yaml")
    src = generate(spec, target="trn2", dialect="nki")
    check_case(spec, {"M": 128, "K": K, "N": 200}, target="trn2", src=src)


BF16 = """nkigen: 1
name: mm
sizes: {M: {multiple_of: 128}, K: {multiple_of: 128}, N: {}}
inputs: {a: {shape: [M, K], dtype: DT}, b: {shape: [K, N], dtype: DT}}
outputs: {c: {shape: [M, N], dtype: float32}}
compute:
  - c[m, n] += a[m, k] * b[k, n]
"""


def test_double_row_needs_fp8_and_full_k_tiles(tmp_path):
    p = tmp_path / "mm.yaml"
    p.write_text(BF16.replace("DT", "bfloat16"))
    assert "perf_mode=" not in generate(load_spec(p), target="trn2")
    p.write_text(BF16.replace("DT", "float8_e5m2"))
    assert DOUBLE in generate(load_spec(p), target="trn2")
    # K not known to be a multiple of 128: a ragged k tile cannot be paired
    p.write_text(BF16.replace("DT", "float8_e5m2").replace("K: {multiple_of: 128}",
                                                             "K: {multiple_of: 64}"))
    assert "perf_mode=" not in generate(load_spec(p), target="trn2")


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_col_sum_ones_column_is_flagged_onezero(dialect):
    src = generate(load_spec(SPECS / "col_sum.yaml"), target="trn2", dialect=dialect)
    calls = [ln for ln in src.splitlines() if "nc_matmul(" in ln]
    assert calls and all("is_stationary_onezero=True" in ln for ln in calls)
