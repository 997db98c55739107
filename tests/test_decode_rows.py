"""Decode-shaped rows (few rows, long rows): a per-column operand read by every row (``w[d]``,
a bias) is broadcast only to the partitions a row tile uses, ``min(M, TILE_P)``, and once
before the row-tile loop (rows.hoist_rows, the matmul epilogue alike).

Current API: one DMA with a zero partition step over ``min(M, 128)`` partitions, so at M = 1
the weight moves one row from HBM (it moved 128 before). Classic: the load already moves one
row and ``broadcast_to`` widens it on chip; its bytes are pinned too, unchanged.
"""

from __future__ import annotations

import pytest
from codegen_check import assert_matches_reference, load_source

from nkigen.codegen import generate
from nkigen.frontend import load_spec, load_spec_text
from nkigen.testdata import make_inputs

SPECS = "specs"
COMBOS = [(d, t) for d in ("nki", "neuronxcc") for t in ("trn1", "trn2")]

# a matmul + bias + gelu epilogue at any M (specs/matmul_bias_gelu.yaml needs M % 128 == 0)
MM_EPI = """
nkigen: 1
name: mm_epi_any
doc: matmul with a bias + gelu epilogue at any row count
sizes:
  M: {min: 1, max: 4096}
  K: {multiple_of: 128}
  N: {min: 1, max: 4096}
inputs:
  a: {shape: [M, K], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
  bias: {shape: [N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: bfloat16}
temps:
  acc: {shape: [M, N], dtype: float32}
compute:
  - acc[m, n] += a[m, k] * b[k, n]
  - c[m, n] = gelu(acc[m, n] + bias[n])
"""


def _spec(name: str):
    return load_spec_text(MM_EPI) if name == "mm_epi_any" else load_spec(f"{SPECS}/{name}.yaml")


def _sizes(name: str, m: int, d: int) -> dict[str, int]:
    return {"M": m, "K": 128, "N": d} if name == "mm_epi_any" else {"M": m, "D": d}


def _kernel(name: str, dialect: str, target: str):
    spec = _spec(name)
    return spec, load_source(generate(spec, target=target, dialect=dialect), spec.name)


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("name", ["rmsnorm", "layernorm", "residual_rmsnorm", "mm_epi_any"])
def test_decode_rows_match_reference(name, dialect, target):
    """M = 1, 2 (one and two broadcast partitions), 127, 128 (one partial / one whole tile),
    129 (a second tile reading the broadcast hoisted for the first)."""
    import nkigen.sim as sim
    spec, kernel = _kernel(name, dialect, target)
    for m in (1, 2, 127, 128, 129):
        sizes = _sizes(name, m, 96)
        inputs = make_inputs(spec, sizes)
        out = sim.simulate(kernel, target)(*inputs.values())
        outs = (out,) if len(spec.outputs) == 1 else out
        assert_matches_reference(spec, sizes, outs, inputs=inputs)


def _hbm(name: str, dialect: str, target: str, m: int, d: int) -> int:
    import nkigen.sim as sim
    spec, kernel = _kernel(name, dialect, target)
    ins = make_inputs(spec, _sizes(name, m, d))
    return sim.run(kernel, list(ins.values()), target, numerics=False).report.hbm_bytes


D = 4096


def _split(m: int) -> bool:
    """M rows of D take the split form of codegen/rowsplit.py (each row across the partitions,
    tests/test_rowsplit.py): the per-column operand is then loaded once, as [128, D / 128]."""
    from nkigen.codegen.rowsplit import ROW_ELEMS_PER_ROW
    return ROW_ELEMS_PER_ROW * m <= D


@pytest.mark.parametrize("dialect,target", COMBOS)
def test_rmsnorm_weight_bytes(dialect, target):
    """bf16 x, w, y: x and y move M rows; w moves min(M, 128) rows in the current API (one at
    M = 1, two at M = 2, 128 from M = 128 on, once for all row tiles at M = 129), one row in
    the classic API at every M."""
    row = 2 * D
    for m in (1, 2, 128, 129):
        w_rows = min(m, 128) if dialect == "nki" else 1
        if _split(m):
            w_rows = 1
        assert _hbm("rmsnorm", dialect, target, m, D) == (2 * m + w_rows) * row, m


@pytest.mark.parametrize("dialect,target", COMBOS)
def test_layernorm_weight_bytes(dialect, target):
    """fp32 x, gamma, beta, y, one fused pass at D = 4096: gamma and beta move min(M, 128)
    rows each (current API), one row each (classic)."""
    row = 4 * D
    for m in (1, 2, 128):
        w_rows = min(m, 128) if dialect == "nki" else 1
        if _split(m):
            w_rows = 1
        assert _hbm("layernorm", dialect, target, m, D) == (2 * m + 2 * w_rows) * row, m


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_matmul_epilogue_bias_bytes(target):
    """The epilogue's bias broadcast (current API) fills the rows of the output tile: at M = 1
    one bias row per column block, not 128 (a: 1 x 128, b: 128 x N, c: 1 x N, bias: N)."""
    n = 1024
    got = _hbm("mm_epi_any", "nki", target, 1, n)
    assert got == 2 * (128 + 128 * n + n + n)
    assert _hbm("mm_epi_any", "nki", target, 128, n) == 2 * (128 * 128 + 128 * n + 128 * n
                                                               + 128 * n)


def test_whole_tile_broadcast_when_rows_fill_one():
    """A row extent that is a multiple of 128 (specs/matmul_bias_gelu.yaml, M multiple_of 128)
    always fills the tile: its bias broadcast keeps the plain TILE_M partitions, no min();
    rmsnorm's M (min 1) takes min(M, TILE_P)."""
    src = generate(load_spec(f"{SPECS}/matmul_bias_gelu.yaml"), target="trn2")
    assert "bias.ap([[0, TILE_M]" in src and "min(M, TILE_M)" not in src
    src = generate(load_spec(f"{SPECS}/rmsnorm.yaml"), target="trn2")
    assert "w.ap([[0, min(M, TILE_P)]" in src
