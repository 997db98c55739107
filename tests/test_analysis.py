"""analyze: extents, access maps, bounds and exactly-once proofs, located errors."""

from __future__ import annotations

import pytest
import sympy
from analysis_builders import conv1d, matmul, size_symbol
from analysis_builders import spec as build_spec

from nkigen.analysis import ExtentSource, IndexRole, LoopKind, analyze, format_analysis
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text

M, K, N, H, R, O = (size_symbol(n) for n in "MKNHRO")

MATMUL = """\
nkigen: 1
name: mm
sizes:
  M: {multiple_of: 128}
  K: {multiple_of: 128}
  N: {min: 1, max: 16384}
inputs:
  a: {shape: [M, K], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] += a[m, k] * b[k, n]
"""

CONV = """\
nkigen: 1
name: conv
sizes:
  H: {min: 1}
  R: {min: 1, max: 7}
  O: {value: "(H - R) // S + 1"}
params:
  S: 2
inputs:
  x: {shape: [H], dtype: float32}
  w: {shape: [R], dtype: float32}
outputs:
  y: {shape: [O], dtype: float32}
ranges:
  r: R
compute:
  - y[o] += x[o * S + r] * w[r]
"""


def messages(e: pytest.ExceptionInfo) -> list[str]:
    return [str(d) for d in e.value.diagnostics]


def test_matmul_extents_loops_and_maps():
    a = analyze(load_spec_text(MATMUL, "mm.yaml"))
    assert a.extent("m") == M and a.extent("k") == K and a.extent("n") == N
    info = {e.name: e for e in a.extent_info}
    assert info["k"].source is ExtentSource.DIRECT and info["k"].where == "a[m, k] dim 1"
    sa = a.statements[0]
    assert [(li.name, li.kind) for li in sa.loop_indices] == [
        ("m", LoopKind.LHS), ("n", LoopKind.LHS), ("k", LoopKind.SUM)]
    b = sa.rhs[1]
    assert b.tensor == "b" and b.columns == ("m", "n", "k")
    assert b.matrix == sympy.ImmutableMatrix([[0, 0, 1], [0, 1, 0]])
    assert b.offset == sympy.ImmutableMatrix([[0], [0]])
    assert b.coeffs(0) == {"k": 1} and b.const(1) == 0
    assert all(p.proven for p in sa.bounds) and len(sa.bounds) == 6
    assert sa.exactly_once.proven and "bijection" in sa.exactly_once.argument
    assert a.role("k") is IndexRole.PARTITION
    assert a.role("m") is IndexRole.STATIONARY and a.role("n") is IndexRole.MOVING


def test_conv1d_bounds_proven_through_floor():
    a = analyze(load_spec_text(CONV, "conv.yaml"))
    assert a.extent("r") == R
    x = a.statements[0].rhs[0]
    assert x.coeffs(0) == {"o": 2, "r": 1}
    proof = next(p for p in a.statements[0].bounds if p.tensor == "x")
    assert proof.proven
    assert any("(H - R) // 2 <= H/2 - R/2" in s for s in proof.argument)
    assert a.size_info("O").derived and a.derived_order == ("O",)


def test_conv1d_out_of_bounds_is_reported_with_condition():
    text = CONV.replace("x[o * S + r]", "x[o * S + r + 1]")
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "conv.yaml"))
    (msg,) = messages(e)
    assert "x[2*o + r + 1] dim 0: cannot prove 2*o + r + 1 <= H - 1 for all allowed sizes" in msg
    assert msg.startswith("conv.yaml:17:")


def test_negative_offset_is_out_of_bounds():
    text = CONV.replace("x[o * S + r]", "x[o * S + r - 1]")
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "conv.yaml"))
    assert any("cannot prove 0 <= 2*o + r - 1" in m for m in messages(e))


def test_too_small_derived_size_is_proven_in_bounds():
    # O one smaller than the maximum legal output length: still in bounds
    a = analyze(conv1d(out_value="floor((H - R) / 2)"))
    assert all(p.proven for p in a.statements[0].bounds)


def test_too_large_derived_size_fails():
    with pytest.raises(NkigenError) as e:
        analyze(conv1d(out_value="floor((H - R) / 2) + 2"))
    assert any("cannot prove 2*o + r <= H - 1" in m for m in messages(e))


def test_disagreeing_extents_are_located_at_second_use():
    with pytest.raises(NkigenError) as e:
        analyze(matmul(b_shape=("N", "N")))
    (msg,) = messages(e)
    assert "b[k, n] dim 0: index k ranges over N here but over K at a[m, k] dim 1" in msg
    assert msg.startswith("t.yaml:20:3:")


def test_missing_range_names_index_and_suggests_entry():
    with pytest.raises(NkigenError) as e:
        analyze(conv1d(ranges=(), x_extra=" + q"))
    msgs = messages(e)
    assert any("index q has no extent" in m and "ranges: {q:" in m for m in msgs)


def test_range_disagreeing_with_direct_use():
    text = CONV.replace("  r: R\n", "  r: H\n")
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "conv.yaml"))
    (msg,) = messages(e)
    assert msg.startswith("conv.yaml:15:") and "range of r disagrees with its direct use" in msg


def test_derived_sizes_agree_symbolically():
    text = MATMUL.replace("  N: {min: 1, max: 16384}\n", "  N: {min: 1, max: 16384}\n"
                          "  K2: {value: K}\n").replace("b: {shape: [K, N]", "b: {shape: [K2, N]")
    a = analyze(load_spec_text(text, "mm.yaml"))
    assert a.extent("k") == K


def test_undetermined_size():
    text = MATMUL.replace("  N: {min: 1, max: 16384}\n", "  N: {min: 1, max: 16384}\n  Z: {}\n")
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "mm.yaml"))
    assert any("size Z is not determined" in m for m in messages(e))


@pytest.mark.parametrize("m, needle", [
    ({"min": 10, "max": 5}, "min 10 is greater than max 5"),
    ({"multiple_of": 128, "max": 100}, "no multiple of 128 lies in [1, 100]"),
])
def test_unsatisfiable_constraints_hand_built(m, needle):
    with pytest.raises(NkigenError) as e:
        analyze(matmul(M=m))
    assert any(needle in x and x.startswith("t.yaml:3:") for x in messages(e))


def test_no_multiple_between_min_and_max():
    text = MATMUL.replace("  M: {multiple_of: 128}\n",
                          "  M: {multiple_of: 128, min: 130, max: 200}\n")
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "mm.yaml"))
    (msg,) = messages(e)
    assert msg.startswith("mm.yaml:4:") and "no multiple of 128 lies in [130, 200]" in msg


def test_fixed_value_breaking_its_constraint():
    text = CONV.replace("  R: {min: 1, max: 7}\n", "  R: {value: 9, max: 7}\n")
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "conv.yaml"))
    assert any("fixed size R = 9 breaks max 7" in m for m in messages(e))


def test_bad_test_case_located_at_case():
    text = MATMUL + "tests:\n  cases:\n    - {M: 256, K: 128, N: 5}\n    - {M: 100, K: 128, N: 5}\n"
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "mm.yaml"))
    (msg,) = messages(e)
    assert msg.startswith("mm.yaml:17:")
    assert "tests.cases[1].M: size M = 100 breaks multiple_of 128" in msg
    assert "pass a multiple of 128" in msg


def test_all_problems_reported_at_once():
    text = CONV.replace("x[o * S + r]", "x[o * S + r + 1]") + \
        "tests:\n  cases:\n    - {H: 10, R: 8}\n"
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text, "conv.yaml"))
    msgs = messages(e)
    assert any("cannot prove" in m for m in msgs)
    assert any("tests.cases[0].R: size R = 8 breaks max 7" in m for m in msgs)


def test_reductions_bind_their_indices():
    text = """\
nkigen: 1
name: sm
sizes:
  M: {}
  N: {}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M], dtype: float32}
compute:
  - y[m] = sum(x[m, n], n) + max(x[m, j], j)
"""
    a = analyze(load_spec_text(text, "sm.yaml"))
    loops = a.statements[0].loop_indices
    assert [(li.name, li.kind, li.reduce_ordinal) for li in loops] == [
        ("m", LoopKind.LHS, None), ("n", LoopKind.REDUCE, 0), ("j", LoopKind.REDUCE, 1)]
    assert loops[2].reduce is not None and loops[2].reduce.op.value == "max"
    assert a.role("m") is IndexRole.PARTITION


def test_format_analysis_has_every_section():
    text = format_analysis(analyze(load_spec_text(CONV, "conv.yaml")))
    for needle in ("sizes", "params", "index extents", "statement 0", "access maps",
                   "bounds proofs", "exactly once (proven)", "tiling", "per-tile maps",
                   "O  derived", "S  =  2", "x[2*o + r]"):
        assert needle in text, needle


def test_spec_built_by_hand_matches_yaml():
    hand = analyze(build_spec(*_conv_parts()))
    assert hand.extent("o") == O


def _conv_parts():
    s = conv1d()
    return s.sizes, s.inputs, s.outputs, s.statements, (), s.params, (("r", "R"),)
