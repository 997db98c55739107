"""Rank-1 element-wise statements over long vectors run as rows of a 2-D grid
(nkigen/codegen/flatmap.py, current API).

``y[i] = a[i] * sigmoid(g[i])`` put ``i`` on the partitions with nothing on the free axis: one
element per partition and per DMA descriptor, 418.04 us modelled for 49,152 float32 elements
on trn2. As rows of ``F = max(1, min(2048, I // 256))`` elements, ``i = F * q + r``: 7.45 us.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import flatmap  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

ONE = """nkigen: 1
name: v1
doc: d
sizes:
  T: {min: 1, max: TMAX}
inputs:
  a: {shape: [T], dtype: float32}
  g: {shape: [T], dtype: float32}
outputs:
  y: {shape: [T], dtype: float32}
compute:
  - y[i] = a[i] * sigmoid(g[i])
tests:
  cases:
    - {T: 100}
"""

GROUP = """nkigen: 1
name: v2
doc: d
sizes:
  T: {min: 1, max: 300000}
params:
  lr: 0.01
inputs:
  p: {shape: [T], dtype: bfloat16}
  g: {shape: [T], dtype: float32}
  s: {shape: [1], dtype: float32}
outputs:
  y: {shape: [T], dtype: bfloat16}
  z: {shape: [T], dtype: float32}
compute:
  - y[i] = p[i] - lr * g[i] * s[0]
  - z[i] = where(g[i] > 0.0, g[i], 0.1 * g[i])
  - z[i] += y[i]
tests:
  cases:
    - {T: 1001}
"""


def _latency(spec, sizes: dict, target: str = "trn2") -> float:
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs
    kernel = load_source(generate(spec, target=target), spec.name)
    args = [sim.placeholder(a.shape, a.dtype) for a in make_inputs(spec, sizes).values()]
    return sim.run(kernel, args, target=target, numerics=False).report.latency_us


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_a_long_vector_is_read_as_rows(target):
    spec = load_spec_text(ONE.replace("TMAX", "1048576"))
    src = generate(spec, target=target)
    assert "a.ap([[max(1, min(FREE_TILE, T // 256)), psz], [1, fsz]]" in src, src
    # below one row per partition, at 128 / 129 (F = 1), a partial last row, F = 2048 with a
    # second row tile and a tail
    for t in (1, 127, 128, 129, 1001, 262144 + 2048 * 3 + 5):
        check_case(spec, {"T": t}, target=target, src=src)


def test_the_rows_are_far_cheaper_in_the_cost_model(monkeypatch):
    spec = load_spec_text(ONE.replace("TMAX", "1048576"))
    fast = _latency(spec, {"T": 49152})
    monkeypatch.setattr(flatmap, "applies", lambda b, st, rhs: False)
    slow = _latency(spec, {"T": 49152})
    assert fast * 20 < slow, (fast, slow)


@pytest.mark.parametrize("tmax,rows", [(128, False), (129, True)])
def test_only_vectors_longer_than_the_partitions(tmax, rows):
    # at most 128 elements at every allowed size: one tile either way, the row lowering stays
    spec = load_spec_text(ONE.replace("TMAX", str(tmax)))
    src = generate(spec)
    assert ("max(1, min(" in src) is rows, src
    check_case(spec, {"T": tmax}, src=src)


def test_the_classic_dialect_keeps_the_row_lowering():
    # one HBM dimension indexed by two aranges has no classic document (review 8 R8-6)
    spec = load_spec_text(ONE.replace("TMAX", "1048576"))
    src = generate(spec, dialect="neuronxcc")
    assert "max(1, min(" not in src
    check_case(spec, {"T": 300}, target="trn1", src=src)


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_a_fused_group_of_vector_statements(target):
    # a scalar operand s[0], a param, a where on values, += of an earlier statement's target
    spec = load_spec_text(GROUP)
    src = generate(spec, target=target)
    assert "max(1, min(" in src, src
    for t in (1, 129, 1001, 262144 + 77):
        check_case(spec, {"T": t}, target=target, src=src)
    if target == "trn2":
        assert _latency(spec, {"T": 49152}) < 30


def test_what_stays_in_the_row_lowering():
    # an index used as a value, a reduction, a divided index: not element-wise maps
    for statement in ("y[i] = a[i] * g[i] + 0.0 * where(i < 7, 1.0, 0.0)",
                      "y[i] = a[i // 2] + g[i]"):
        spec = load_spec_text(ONE.replace("TMAX", "4096").replace(
            "y[i] = a[i] * sigmoid(g[i])", statement))
        assert "max(1, min(" not in generate(spec), statement


@pytest.mark.parametrize("reads_y", [True, False])
def test_an_output_read_later_counts_as_an_intermediate_in_the_tolerance(reads_y):
    # z[i] += y[i] with y bfloat16: one bf16 storage flip of y (kernel and reference round
    # differently near a tie) reaches z, where it can cancel to near zero; atol counts y's
    # epsilon like a temp's (v2 at T = 262221 failed by 10.6x on the row lowering too)
    from nkigen.dtypes import DType
    from nkigen.testdata import STORE_FLIPS, tolerance
    text = GROUP if reads_y else GROUP.replace("  - z[i] += y[i]\n", "")
    spec = load_spec_text(text)
    _, atol = tolerance(spec, {"T": 1001})
    from nkigen.reference import evaluate
    from nkigen.testdata import computed, finite_rms, make_inputs
    ref = evaluate(spec, make_inputs(spec, {"T": 1001}), {"T": 1001})
    rms = max(finite_rms(computed(spec, t.name, ref[t.name])) for t in spec.outputs)
    assert (atol >= STORE_FLIPS * DType.bfloat16.eps * rms) is reads_y, (atol, rms)


MAPS = """nkigen: 1
name: maps
doc: d
sizes:
  M: {min: 1, max: 64}
  N: {min: 1, max: 16384}
inputs:
  a: {shape: [M, N], dtype: bfloat16}
  g: {shape: [M, N], dtype: float32}
  s: {shape: [2], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
  t: {shape: [M, N], dtype: bfloat16}
compute:
  - y[m, n] = a[m, n] * sigmoid(g[m, n]) + s[1]
  - t[m, n] = minimum(maximum(2 * tanh(g[m, n]), -1), 1)
  - y[m, n] += g[m, n]
tests:
  cases:
    - {M: 3, N: 16384}
"""


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_maps_over_few_rows_run_as_one_long_vector(target):
    # few long rows (decode-time [B, D]): the row lowering used M of 128 partitions (glu at
    # 3 x 16384: 74.25 us on trn2); over flat views every partition works
    spec = load_spec_text(MAPS)
    src = generate(spec, target=target)
    # every access reaches the flat views through their bases' patterns: no reshape line left
    assert "codegen/flatten.py" in src and "y.ap([[" in src and "reshape" not in src, src
    for sizes in ({"M": 3, "N": 16384}, {"M": 1, "N": 1}, {"M": 64, "N": 257},
                  {"M": 5, "N": 2049}):
        check_case(spec, sizes, target=target, src=src)


def test_flat_maps_are_far_cheaper_in_the_cost_model(monkeypatch):
    from nkigen.codegen import flatten
    spec = load_spec_text(MAPS)
    fast = _latency(spec, {"M": 3, "N": 16384})
    monkeypatch.setattr(flatten, "rewrite", lambda spec, keep=False: spec)
    slow = _latency(spec, {"M": 3, "N": 16384})
    assert fast * 4 < slow, (fast, slow)


@pytest.mark.parametrize("statement", ["u[m] = sum(g[m, n], n)",          # a reduction
                                       "u[m] = g[m, 0] * 2.0",              # not a map
                                       ])
def test_a_spec_with_any_other_statement_keeps_its_rows(statement):
    # whole-spec only: a statement that is not an element-wise map (it would read a flat temp
    # from HBM instead of the tile its fused group keeps on chip)
    out_t = "  t: {shape: [M, N], dtype: bfloat16}\n"
    text = MAPS.replace(out_t, out_t + "  u: {shape: [M], dtype: float32}\n")
    text = text.replace("  - y[m, n] += g[m, n]\n", f"  - y[m, n] += g[m, n]\n  - {statement}\n")
    spec = load_spec_text(text)
    src = generate(spec)
    assert "codegen/flatten.py" not in src
    check_case(spec, {"M": 3, "N": 300}, src=src)


def test_the_classic_dialect_keeps_its_rows_for_maps():
    spec = load_spec_text(MAPS)
    src = generate(spec, dialect="neuronxcc", target="trn1")
    assert "codegen/flatten.py" not in src
    check_case(spec, {"M": 3, "N": 300}, target="trn1", src=src)


@pytest.mark.parametrize("hint,flat", [("", True), ("schedule:\n  tiles: {m: 64}\n", False)])
def test_tiling_hints_keep_the_rows(hint, flat):
    # hints name the statement's own indices (m), which the flat maps do not have
    spec = load_spec_text(MAPS.replace("tests:", hint + "tests:"))
    assert ("codegen/flatten.py" in generate(spec)) is flat
