"""Valid specs of the fuzz13 campaign (corpus /tmp/fuzz13) that failed to build or verify.
Each test generates the spec in the dialect/target combinations concerned and checks the kernel
against the float64 reference in the simulator; the limits are pinned at their boundaries.
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

RECIP = """nkigen: 1
name: recip_shift
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: 300}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = {rhs}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("rhs", ["reciprocal(1.0 + abs(x[m, n]))",
                                 "tanh(x[m, n]) + reciprocal(2.0 * abs(x[m, n]) + 0.5)"])
def test_a_shifted_reciprocal_takes_no_activation_bias_on_trn1(dialect, target, rhs):
    # NeuronCore-v2's reciprocal activation takes no bias (SH nki/api/nki.isa.activation,
    # nki-engine-sel; S25 nki.isa.activation): the f(scale * x + bias) fusion gave it one and
    # the simulator refused the trn1 kernel
    spec = load_spec_text(RECIP.format(rhs=rhs))
    src = generate(spec, target=target, dialect=dialect)
    lines = [ln for ln in src.splitlines() if "reciprocal" in ln and "activation" in ln]
    if target == "trn1":
        assert lines and all("bias=" not in ln for ln in lines), lines
    else:   # NeuronCore-v3 keeps the free bias (the boundary of the rule)
        assert any("bias=" in ln for ln in lines), lines
    for sizes in ({"M": 1, "N": 1}, {"M": 129, "N": 67}):
        check_case(spec, sizes, target=target, src=src)


MM = """nkigen: 1
name: mm_narrow_block
sizes:
  M: {{min: 1, max: 512}}
  K: {{min: 1, max: 300}}
  N: {{min: 1, max: 300}}
inputs:
  a: {{shape: [M, K], dtype: float32}}
  b: {{shape: [K, N], dtype: float32}}
outputs:
  c: {{shape: [M, N], dtype: float32}}
compute:
  - c[m, n] += a[m, k] * b[k, n]
schedule:
  tiles: {{m: {tm}, n: 128, k: 128}}
  block: {{m: {bm}, n: 1, k: 1}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("tm,bm", [(1, 1), (96, 2), (64, 3), (128, 1), (128, 2)])
def test_a_stationary_block_narrower_than_or_ragged_against_128_rows_transposes_in_bounds(
        dialect, target, tm, bm):
    # a[m, k] is the stationary operand stored k-minor; on TensorE it is transposed in row
    # chunks. The chunks were 128 rows: a classic kernel clips the last chunk with mask=, not
    # its slice, so a block of 1 row or of 2 x 96 rows was sliced past its end (the simulator's
    # "slice out of bounds"). The chunk now divides the block (128 when it can: 128 and 256 rows
    # keep their 128-row chunks).
    spec = load_spec_text(MM.format(tm=tm, bm=bm))
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"M": 1, "K": 1, "N": 1}, {"M": min(512, 2 * tm * bm + 1), "K": 129, "N": 130}):
        check_case(spec, sizes, target=target, src=src)


MIX = """nkigen: 1
name: mm_mixed
sizes:
  M: {{min: 1, max: 300}}
  K: {{min: 1, max: 300}}
  N: {{min: 1, max: 300}}
inputs:
  a: {{shape: {ashape}, dtype: {a}}}
  b: {{shape: {bshape}, dtype: {b}}}
outputs:
  c: {{shape: [M, N], dtype: float32}}
compute:
  - c[m, n] += {rhs}
"""
LAYOUTS = {"plain": ("[M, K]", "[K, N]", "a[m, k] * b[k, n]"),
           "turned": ("[K, M]", "[N, K]", "a[k, m] * b[n, k]")}


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("a,b", [("bfloat16", "float32"), ("float32", "float16"),
                                 ("float8_e4m3", "float32"), ("float32", "uint8"),
                                 ("int32", "bfloat16"), ("int8", "float32")])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_contraction_of_float32_with_a_narrow_dtype_widens_the_narrow_operand(
        dialect, target, a, b, layout):
    # spec language §Statements: a contraction takes any input dtypes. TensorE pairs float32
    # only with float32 (SH nc_matmul "Data types"): check refused the pair; now the narrow
    # operand is widened to float32 by its loading DMA (exact), transposed on TensorE when
    # stored k-minor (dma_transpose cannot cast)
    ash, bsh, rhs = LAYOUTS[layout]
    spec = load_spec_text(MIX.format(a=a, b=b, ashape=ash, bshape=bsh, rhs=rhs))
    src = generate(spec, target=target, dialect=dialect)
    narrow = "a" if b in ("float32", "int32") else "b"
    assert not [ln for ln in src.splitlines()
                if "dma_transpose" in ln and f"src={narrow}[" in ln.replace(" ", "")]
    for sizes in ({"M": 1, "K": 1, "N": 1}, {"M": 129, "K": 131, "N": 257}):
        check_case(spec, sizes, target=target, src=src)


def test_a_pair_of_16_bit_operands_keeps_its_dtype_and_its_dma_transpose():
    # the boundary: bf16 x bf16 (no float32 partner) is not widened; on trn2 the k-minor
    # stationary is still turned by the DMA transpose unit
    spec = load_spec_text(MIX.format(a="bfloat16", b="bfloat16", ashape="[M, K]",
                                     bshape="[K, N]", rhs="a[m, k] * b[k, n]"))
    src = generate(spec, target="trn2", dialect="nki")
    assert "dma_transpose" in src
    assert "dtype=nl.bfloat16" in src.split("s_blk = ")[1].split("\n")[0]
    check_case(spec, {"M": 129, "K": 131, "N": 257}, target="trn2", src=src)


DIVIDED = """nkigen: 1
name: divided_sum
sizes:
  M: {min: 1, max: 300}
  N: {min: 1, max: 2000}
ranges:
  j: "2 * N"
inputs:
  x: {shape: [M, N], dtype: float32}
  p: {shape: [4], dtype: float32}
outputs:
  y: {shape: [M], dtype: float32}
compute:
  - y[m] = sum(x[m, j // 2] * p[j % 4], j)
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_reduction_over_a_divided_and_periodic_read_lowers_in_every_dialect(dialect, target):
    # spec language 1.1 "floor division, modulo by constants": the classic dialect refused
    # x[m, j // 2] * p[j % 4] summed over j (its reduction chunk had no loop index for the
    # period reads); the loop is now static there, its masks trace-time
    spec = load_spec_text(DIVIDED)
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"M": 1, "N": 1}, {"M": 129, "N": 499}, {"M": 2, "N": 1025}):
        check_case(spec, sizes, target=target, src=src)


def test_every_statement_error_carries_a_fix():
    from nkigen.codegen.tilexpr import DEFAULT_FIX, stmt_error
    st = load_spec_text(DIVIDED).statements[0]
    assert stmt_error(st, "some refusal").diagnostics[0].fix == DEFAULT_FIX
    assert stmt_error(st, "some refusal", "do this").diagnostics[0].fix == "do this"


INNER_DIV = """nkigen: 1
name: inner_div
sizes:
  M: {min: 1, max: 300}
  N: {min: 1, max: 9000}
  K: {min: 1, max: 64}
ranges:
  j: "2 * K"
inputs:
  x: {shape: [M, N], dtype: float32}
  w: {shape: [M, K], dtype: float32}
  p: {shape: [4], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n] * sum(w[m, j // 2] * p[j % 4], j)
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_divided_read_in_a_reduction_inside_free_chunks_matches_the_reference(dialect, target):
    # the reduction over j ran in the context of the enclosing free-chunk loop and inherited
    # its chunk index (fvar), by which the classic divided/periodic reads place their periods:
    # from the second free chunk on (N > 2048) they read the wrong periods (NaN). The reduction
    # chunk now carries its own index, and the classic loop whose masks name it is static
    spec = load_spec_text(INNER_DIV)
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"M": 3, "N": 8999, "K": 5}, {"M": 129, "N": 2049, "K": 64}):
        check_case(spec, sizes, target=target, src=src)


COLSUM_PERIODIC = """nkigen: 1
name: colsum_periodic
sizes:
  M: {{min: 1, max: 3000}}
  N: {{min: 1, max: 3000}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
  p: {{shape: [{c}], dtype: float32}}
outputs:
  s: {{shape: [N], dtype: float32}}
compute:
  - s[n] = sum(x[m, n] * p[n % {c}], m)
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_column_sum_of_a_periodic_read_takes_the_tensore_column_reduction(dialect, target):
    # the column reduction's context had no chunk loop index (fvar) for the classic periodic
    # read, so the classic kernel fell back to a per-element form (4,754 us modelled at
    # M 2999 x N 2050 on trn2, against 272 us)
    spec = load_spec_text(COLSUM_PERIODIC.format(c=2))
    src = generate(spec, target=target, dialect=dialect)
    assert "nc_matmul" in src
    for sizes in ({"M": 1, "N": 1}, {"M": 129, "N": 1025}):
        check_case(spec, sizes, target=target, src=src)


ARGMAX_DIVIDED = """nkigen: 1
name: argmax_divided
sizes:
  M: {min: 1, max: 300}
  N: {min: 1, max: 3000}
ranges:
  j: "2 * N"
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  idx: {shape: [M], dtype: int32}
compute:
  - idx[m] = argmax(x[m, j // 2], j)
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_a_refused_divided_read_names_the_divided_expression_and_a_fix(dialect):
    # README "Errors: rule + actual value + fix": the refusal of // or % on a tile's index
    # (an argmax row of symbolic width here, left open) had neither value nor fix
    from nkigen.diagnostics import NkigenError
    with pytest.raises(NkigenError) as ei:
        generate(load_spec_text(ARGMAX_DIVIDED), target="trn2", dialect=dialect)
    (d,) = ei.value.diagnostics
    assert d.loc is not None and d.field == "compute[0]"
    assert d.got is None and "(got floor(j/2))" in d.rule and d.fix
    assert ("--dialect nki" in d.fix) == (dialect == "neuronxcc")
