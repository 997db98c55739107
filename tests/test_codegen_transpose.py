"""Spec-level layout cliffs of issue 14. 2-D transposes lower to turned 128 x 128 blocks
(nkigen.codegen.transpose), not to element-strided DMA: numerics at ragged sizes in both
dialects, both turning engines, and the statements the lowering must leave to the row lowering.
A [B, S, D] layernorm puts rows on the partitions and loops over B (nkigen.codegen.rows)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import pytest

from nkigen.codegen import generate, plan_kernel
from nkigen.frontend import load_spec

sys.path.insert(0, str(Path(__file__).parent))
from codegen_check import check_case  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"

SPEC = """
nkigen: 1
name: tr
sizes: {{M: {{min: 1, max: 4096}}, N: {{min: 1, max: 4096}}}}
inputs: {{x: {{shape: [M, N], dtype: {dt}}}}}
outputs: {{y: {{shape: [N, M], dtype: {out}}}}}
compute:
  - {stmt}
"""


def _spec(stmt: str = "y[n, m] = x[m, n]", dt: str = "float32", out: str | None = None):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tr.yaml"
        p.write_text(SPEC.format(stmt=stmt, dt=dt, out=out or dt))
        return load_spec(p)


@pytest.mark.parametrize("sizes", [{"M": 1, "N": 1}, {"M": 128, "N": 128},
                                   {"M": 129, "N": 513}, {"M": 700, "N": 300}])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_transpose_matches_reference_at_ragged_sizes(sizes, dialect):
    spec = _spec()
    src = generate(spec, target="trn2", dialect=dialect)
    assert "nc_transpose" in src or "dma_transpose" in src
    check_case(spec, sizes, target="trn2", src=src)


# trn2: the DMA transpose for 2- and 4-byte data with the target's documented small-row DMA
# efficiency (hw.Target.dma_small_row_eff; float32 took TensorE under the trn1-fitted curve);
# trn1 has no DMA transpose unit. TensorE on trn2: the casting case below.
@pytest.mark.parametrize("dt,target,engine", [("float32", "trn2", "dma_transpose"),
                                              ("bfloat16", "trn2", "dma_transpose"),
                                              ("bfloat16", "trn1", "nc_transpose"),
                                              ("float32", "trn1", "nc_transpose")])
def test_turning_engine_follows_choose_transpose(dt, target, engine):
    spec = _spec(dt=dt)
    src = generate(spec, target=target, dialect="nki")
    assert engine in src
    check_case(spec, {"M": 200, "N": 260}, target=target, src=src)


def test_cast_on_the_way_uses_tensore_and_psum_in_input_dtype():
    # dma_transpose cannot cast; nc_transpose's PSUM tile keeps the data dtype (nki 0.3)
    spec = _spec(dt="bfloat16", out="float32")
    src = generate(spec, target="trn2", dialect="nki")
    assert "dma_transpose" not in src
    assert re.search(r"turned_psum = nl\.ndarray\(\(TILE, TILE\), dtype=nl\.bfloat16, "
                     r"buffer=nl\.psum\)", src)
    check_case(spec, {"M": 130, "N": 70}, target="trn2", src=src)


def test_every_dma_moves_whole_rows():
    src = generate(load_spec(SPECS / "transpose.yaml"), target="trn2", dialect="nki")
    for line in src.splitlines():
        if "dma_copy" in line:
            assert ".ap(" not in line            # no raw (element-strided) access pattern


@pytest.mark.parametrize("stmt", ["y[n, m] = 2.0 * x[m, n]", "y[n, m] = x[m, n] + x[m, n]"])
def test_other_statements_are_not_taken(stmt):
    # the statement itself is lowered by rows; the only transpose is the turned copy of x that
    # codegen/turned.py gives its transposed read
    plan = plan_kernel(_spec(stmt=stmt), None, "trn2")
    assert [s.strategy for s in plan.stages] == ["transpose", "rows"]
    assert any("a turned copy of x" in n for n in plan.stages[0].notes)


def test_layernorm3d_puts_rows_on_partitions_and_loops_over_batch():
    # issue 14's cliff: B on the partitions and D looped element by element
    from nkigen.analysis import analyze
    spec = load_spec(SPECS / "layernorm3d.yaml")
    plan = plan_kernel(spec, analyze(spec), "trn2")
    for st in plan.stages:
        assert st.partition != "b"
    src = generate(spec, target="trn2", dialect="nki")
    assert "for i_b" in src                   # b is an outer loop
    assert "x[i_b" in src                     # each load is one b's rows, D contiguous
    for sizes in ({"B": 3, "S": 130, "D": 64}, {"B": 1, "S": 1, "D": 1}):
        check_case(spec, sizes, target="trn2", src=src)


@pytest.mark.parametrize("name,sizes", [("matvec", {"M": 300, "K": 200}),
                                        ("matmul_bf16", {"M": 256, "K": 384, "N": 512}),
                                        ("attention", {"M": 130, "N": 200, "D": 64})])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_trn1_tensore_transposes_are_float32(name, sizes, dialect):
    """NeuronCore-v2 has no TensorE transpose mode, so a transpose writes float32 PSUM (SH
    nki/guides/architecture/trainium2_arch.rst "Built-in Transpose Support"; nkigen.sim rule
    nc_transpose.tensor_v2_fp32): on trn1 no transpose PSUM tile is 16-bit, and the kernels
    still match the reference; trn2 keeps 16-bit transposes (transpose mode)."""
    spec = load_spec(SPECS / f"{name}.yaml")
    src = generate(spec, target="trn1", dialect=dialect)
    assert "nc_transpose" in src
    assert not re.search(r"dtype=nl\.(bfloat16|float16|float8_\w+), buffer=nl\.psum", src)
    check_case(spec, sizes, target="trn1", src=src)
    if name == "matvec":        # trn2 turns w by DMA (choose_transpose), or in 16-bit PSUM
        src2 = generate(spec, target="trn2", dialect=dialect)
        assert "dma_transpose(" in src2 or re.search(r"dtype=nl\.bfloat16, buffer=nl\.psum",
                                                       src2)


BATCHED = """
nkigen: 1
name: btr
sizes: {B: {min: 1, max: 4}, H: {min: 1, max: 8}, M: {min: 1, max: 1024}, N: {min: 1, max: 512}}
inputs: {x: {shape: [B, H, M, N], dtype: DT}}
outputs: {y: {shape: [B, H, N, M], dtype: DT}}
compute:
  - y[b, h, n, m] = x[b, h, m, n]
"""


@pytest.mark.parametrize("dt,target", [("float32", "trn2"), ("bfloat16", "trn2"),
                                       ("float32", "trn1")])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_batched_transpose_turns_blocks_per_batch_index(dt, target, dialect):
    # a 4-d swap of the last two axes: one transpose stage looping over b and h (it was the
    # row lowering's element-strided reads: 376.64 us for [2, 256, 256] fp32 on trn2)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "btr.yaml"
        p.write_text(BATCHED.replace("DT", dt))
        spec = load_spec(p)
    plan = plan_kernel(spec, None, target, dialect=dialect)
    assert [(s.strategy, s.loops) for s in plan.stages] == [("transpose", ("b", "h"))]
    src = generate(spec, target=target, dialect=dialect)
    for line in src.splitlines():
        if "dma_copy" in line:
            assert ".ap(" not in line
    check_case(spec, {"B": 2, "H": 3, "M": 130, "N": 70}, target=target, src=src)


def test_a_batch_index_must_stay_in_place():
    # swapping a batch axis too is not a last-two-axes transpose
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "btr.yaml"
        p.write_text(BATCHED.replace("DT", "float32").replace(
            "y[b, h, n, m] = x[b, h, m, n]", "y[h, b, n, m] = x[b, h, m, n]").replace(
            "[B, H, N, M]", "[H, B, N, M]"))
        spec = load_spec(p)
    assert all(s.strategy != "transpose" for s in plan_kernel(spec, None, "trn2").stages)
