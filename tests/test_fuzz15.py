"""Valid specs of the fuzz15 campaign (corpus /tmp/fuzz15: transformer, LLM, vision and SSM
kernels) that built a wrong kernel or failed. Each test generates the minimal spec in the four
dialect/target combinations and checks the kernel against the float64 reference in the
simulator; limits are pinned at their boundaries.
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

ADAM = """nkigen: 1
name: adam_moments
sizes:
  M: {min: 1, max: 65536}
  N: {min: 1, max: 8192}
inputs:
  g: {shape: [M, N], dtype: float32}
  m1: {shape: [M, N], dtype: float32}
outputs:
  mn: {shape: [M, N], dtype: float32}
  wn: {shape: [M, N], dtype: float32}
compute:
  - mn[m, n] = 0.9 * m1[m, n] + 0.1 * g[m, n]
  - wn[m, n] = mn[m, n] * 2.0
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_an_output_read_by_a_later_flat_statement_is_still_stored(dialect, target):
    # the current API runs an all-element-wise spec over flat views (codegen/flatten.py,
    # mn_f = mn.reshape(...)), temps of the rewritten spec; the fused row pass kept every
    # temp a later statement reads on chip, so the output mn (read by wn's statement) was
    # never stored: NaN in the simulator (the AdamW update, moments then weights)
    spec = load_spec_text(ADAM)
    src = generate(spec, target=target, dialect=dialect)
    assert "mn" in src.split("def adam_moments(")[0].split("_stage0(")[1].split(")")[0] \
        or dialect == "neuronxcc"
    for sizes in ({"M": 1, "N": 1}, {"M": 129, "N": 513}):
        check_case(spec, sizes, target=target, src=src)


MOE = """nkigen: 1
name: moe_gathered_weight
sizes:
  T: {{min: 1, max: 256}}
  E: {{min: 1, max: 8}}
  K: {{min: 1, max: 256}}
  N: {{min: 1, max: 256}}
inputs:
  x: {{shape: [T, K], dtype: float32}}
  eid: {{shape: [T], dtype: int32}}
  w: {{shape: [E, K, N], dtype: float32}}
outputs:
  y: {{shape: [T, N], dtype: float32}}
compute:
  - {stmt}
tests:
  inputs:
    eid: {{dist: integers, low: 0, high: "E - 1"}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("stmt", ["y[t, n] = sum(x[t, k] * w[eid[t], k, n], k)",
                                  "y[t, n] += x[t, k] * w[eid[t], k, n]"])
def test_a_contraction_with_a_gathered_operand_is_not_a_matmul_of_row_zero(
        dialect, target, stmt):
    # a gathered access keeps the placeholder 0 in its indexed dimension (nkigen.ir.Access);
    # the TensorE contraction matcher took w[eid[t], k, n] as w[0, k, n] (600 of 800 outputs
    # wrong). A contraction with a gathered operand is now left to the row lowering, which
    # gathers per partition
    spec = load_spec_text(MOE.format(stmt=stmt))
    src = generate(spec, target=target, dialect=dialect)
    assert "nc_matmul" not in src
    for sizes in ({"T": 1, "E": 1, "K": 1, "N": 1}, {"T": 130, "E": 3, "K": 129, "N": 40}):
        check_case(spec, sizes, target=target, src=src)


ALIBI = """nkigen: 1
name: alibi_scores
sizes:
  H: {min: 1, max: 16}
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
  D: {min: 1, max: 128}
inputs:
  q: {shape: [H, M, D], dtype: bfloat16}
  k: {shape: [H, N, D], dtype: bfloat16}
  slope: {shape: [H], dtype: float32}
outputs:
  s: {shape: [H, M, N], dtype: float32}
temps:
  acc: {shape: [H, M, N], dtype: float32}
compute:
  - acc[h, m, n] += q[h, m, d] * k[h, n, d]
  - s[h, m, n] = where(n <= m, 0.125 * acc[h, m, n] - (m - n) * slope[h], -30000.0)
"""

INDEX_NUMBER = """nkigen: 1
name: index_number
sizes:
  M: {{min: 1, max: 512}}
  N: {{min: 1, max: {nmax}}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [{yshape}], dtype: float32}}
compute:
  - {stmt}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_an_index_difference_is_a_number_in_the_alibi_bias(dialect, target):
    # spec language: an index expression of left-hand indices used as a number (it was a
    # parse error, "index 'm' is used as a value"): one GpSimd iota per tile, here in the
    # matmul's eviction epilogue
    spec = load_spec_text(ALIBI)
    src = generate(spec, target=target, dialect=dialect)
    assert "iota" in src
    for sizes in ({"H": 1, "M": 1, "N": 1, "D": 1}, {"H": 2, "M": 130, "N": 131, "D": 64}):
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("yshape,stmt", [
    ("M, N", "y[m, n] = x[m, n] + m"),                          # partition index: a column
    ("M, N", "y[m, n] = x[m, n] * exp(-0.001 * (n + 1))"),      # free index, in a function
    ("M, N", "y[m, n] = x[m, n] * (n % 2) + n // 4"),           # divided free index
    ("M, N", "y[m, n] = x[m, N - 1 - n] * (N - 1 - n)"),        # reversed
    ("M", "y[m] = sum(x[m, j] * j, j)"),                        # a reduction-bound index
    ("M, N", "y[m, n] = 2 * m + n"),                            # no tensor read at all
    ("M, N", "y[m, n] = where(x[m, n] > 0.001 * (m - n), 1.0, 0.0)"),   # a float factor
    ("M, N", "y[m, n] = 0.5 * y[m, n - 1] + x[m, n] + n"),      # in a recurrence
    ("M", "y[m] = max(x[m, n] + n, n)"),                        # in a row reduction
    ("M, N", "y[m, n] = x[m, n] * (m // 4 - 3 * (n % 8) + 7)"), # two divided terms: two iotas
    ("M, N", "y[m, n] = x[m, n] + 0.001 * (m - n) * (m + n)"),  # a product of index values
])
def test_index_values_in_arithmetic(dialect, target, yshape, stmt):
    spec = load_spec_text(INDEX_NUMBER.format(nmax=4096, yshape=yshape, stmt=stmt))
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"M": 1, "N": 1}, {"M": 130, "N": 2100}):
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_an_index_number_is_fp32_exact_up_to_two_to_the_24(dialect):
    # the engines read the iota tile converted to float32: n up to 2**24 (N max 2**24 + 1)
    # is exact, one more is refused, located, with the value reached and a fix
    from nkigen.diagnostics import NkigenError
    stmt = "y[m, n] = x[m, n] * n"
    generate(load_spec_text(INDEX_NUMBER.format(nmax=2 ** 24 + 1, yshape="M, N", stmt=stmt)),
             target="trn2", dialect=dialect)
    with pytest.raises(NkigenError) as ei:
        generate(load_spec_text(INDEX_NUMBER.format(nmax=2 ** 24 + 2, yshape="M, N",
                                                    stmt=stmt)), target="trn2", dialect=dialect)
    (d,) = ei.value.diagnostics
    assert d.loc is not None and d.field == "compute[0]"
    assert "used as a number" in d.rule and "reaches N - 1" in d.rule and "max on N" in d.fix


def test_an_index_that_is_not_a_left_hand_index_is_no_number():
    # a summed or misspelt name is not an index value: the located errors of before
    from nkigen.diagnostics import NkigenError
    # (tests/malformed/t_undefined_param.yaml: a misspelt param stays an undefined name)
    with pytest.raises(NkigenError) as ei:
        load_spec_text(INDEX_NUMBER.format(nmax=64, yshape="M", stmt="y[m] += x[m, k] * k"))
    assert "index 'k' is used as a value" in str(ei.value)
    assert "sum(e * k, k)" in str(ei.value)



MASK = """nkigen: 1
name: window_mask
sizes:
  M: {{min: 1, max: 1024}}
  N: {{min: 1, max: 1024}}
params:
  W: 8
  G: 3
inputs:
  s: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = where({cond}, s[m, n], -30000.0)
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("cond", ["n <= m and m - n < W",
                                  "n < G or not (n > m or m - n >= W)",
                                  "s[m, n] > 0.0 and n <= m and n + W > m"])
def test_where_conditions_combine_comparisons_with_and_or_not(dialect, target, cond):
    # the sliding-window mask spelled with `and` was a parse error ("must be a comparison");
    # it is the nested where it means
    spec = load_spec_text(MASK.format(cond=cond))
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"M": 1, "N": 1}, {"M": 130, "N": 129}):
        check_case(spec, sizes, target=target, src=src)


PICK = """nkigen: 1
name: label_pick
sizes:
  B: {{min: 1, max: {bmax}}}
  C: {{min: 1, max: 32768}}
inputs:
  x: {{shape: [B, C], dtype: int32}}
  lab: {{shape: [B], dtype: int32}}
outputs:
  y: {{shape: [B], dtype: int32}}
compute:
  - y[b] = x[b, lab[b]]
tests:
  inputs:
    x: {{dist: arange}}
    lab: {{dist: integers, low: "C - 2", high: "C - 1"}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_label_pick_adds_its_row_offset_in_int32_past_two_to_the_24(dialect, target):
    # x[b, lab[b]] reads flat element b * C + lab[b]; the row offset was added in float32 on
    # VectorE, exact only for tables of 2**24 elements, so the cross-entropy of a 32k
    # vocabulary was refused from B = 513 on. It is an int32 GpSimd add now: at B = 520,
    # C = 32768 the picked flat indices reach 17,039,359 (odd, over 2**24: float32 would round
    # them to a neighbour, which the arange data would show)
    import numpy as np
    from codegen_check import load_source

    import nkigen.sim as sim
    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs

    spec = load_spec_text(PICK.format(bmax=65536))
    src = generate(spec, target=target, dialect=dialect)
    sizes = {"B": 520, "C": 32768}
    inputs = make_inputs(spec, sizes)
    got = sim.simulate(load_source(src, spec.name), target)(*inputs.values())
    # exact: integer outputs of integer arithmetic (a relative tolerance would pass the
    # float32 neighbour, as `nkigen build` knows: docs/spec-language.md section 10)
    assert np.array_equal(np.asarray(got), evaluate(spec, inputs, sizes)["y"])


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_a_label_pick_table_is_bounded_by_int32_flat_indices(dialect):
    # 65536 * 32768 = 2**31 elements: every flat index fits int32; one row more is refused,
    # located, with the count and a fix
    from nkigen.diagnostics import NkigenError
    generate(load_spec_text(PICK.format(bmax=65536)), target="trn2", dialect=dialect)
    with pytest.raises(NkigenError) as ei:
        generate(load_spec_text(PICK.format(bmax=65537)), target="trn2", dialect=dialect)
    (d,) = ei.value.diagnostics
    assert d.loc is not None and d.field == "compute[0]"
    assert "2147516416 elements, more than the 2147483648" in d.rule and "lower the max" in d.fix


TEMP_IDS = """nkigen: 1
name: temp_ids
sizes:
  T: {{min: 1, max: 1024}}
  E: {{min: 1, max: 64}}
  D: {{min: 1, max: 512}}
inputs:
  lg: {{shape: [T, E], dtype: float32}}
  emb: {{shape: [E, D], dtype: float32}}
  w: {{shape: [T], dtype: float32}}
outputs:
  y: {{shape: [{yshape}], dtype: float32}}
temps:
  idx: {{shape: [T], dtype: int32}}
compute:
  - idx[t] = argmax(lg[t, e], e)
  - {stmt}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("yshape,stmt", [
    ("T, D", "y[t, d] = w[t] * emb[idx[t], d]"),          # MoE top-1: the chosen expert's row
    ("D", "y[d] = sum(emb[idx[t], d] * w[t], t)"),        # ids reduced away (gathered.py)
])
def test_an_integer_temp_gives_the_ids_of_a_gather(dialect, target, yshape, stmt):
    # the ids of an indexed read had to be an input ("'idx' gives the ids of an indexed read
    # but is not an input"): the router's argmax then the expert gather is one spec now
    spec = load_spec_text(TEMP_IDS.format(yshape=yshape, stmt=stmt))
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"T": 1, "E": 1, "D": 1}, {"T": 130, "E": 8, "D": 64}):
        check_case(spec, sizes, target=target, src=src)
