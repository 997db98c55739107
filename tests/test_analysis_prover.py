"""analyze (prover): sound on random size inequalities; proves the usual conv/tiling facts."""

from __future__ import annotations

import sympy
from analysis_builders import conv1d, matmul
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.analysis.prover import prove_equal, prove_nonneg
from nkigen.analysis.sizes import check_sizes, complete_sizes, size_domain
from nkigen.cli import main
from nkigen.ir import size_symbol

H, R, O, M, K = (size_symbol(n) for n in "HROMK")
CONV = conv1d(stride=3)
CONV_DOM = size_domain(CONV)
GRID = [complete_sizes(CONV, {"H": h, "R": r}) for h in range(1, 40) for r in range(1, 9)
        if not check_sizes(CONV, {"H": h, "R": r})]


def test_grid_is_constrained_by_derived_min():
    assert GRID and all(s["H"] >= s["R"] for s in GRID)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=4, max_size=4))
def test_prover_is_sound(coeffs):
    a, b, c, d = coeffs
    e = a * H + b * R + c * O + d
    if prove_nonneg(e, CONV_DOM).proven:
        for s in GRID:
            assert a * s["H"] + b * s["R"] + c * s["O"] + d >= 0, (e, s)


def test_prover_proves_the_conv_corner_and_rejects_one_more():
    assert prove_nonneg(H - 1 - (3 * (O - 1) + R - 1), CONV_DOM).proven
    assert not prove_nonneg(H - 1 - (3 * (O - 1) + R), CONV_DOM).proven


def test_prover_uses_min_multiple_and_max():
    dom = size_domain(matmul(M={"multiple_of": 128}, K={"min": 5, "max": 9}))
    assert prove_nonneg(M - 128, dom).proven
    assert not prove_nonneg(M - 129, dom).proven
    assert prove_nonneg(K - 5, dom).proven
    assert prove_nonneg(9 - K, dom).proven          # from max, through a slack variable
    assert not prove_nonneg(8 - K, dom).proven
    assert prove_nonneg(M * K - 640, dom).proven


def test_prove_equal_uses_derived_definitions():
    assert prove_equal(O, sympy.floor((H - R) / 3) + 1, CONV_DOM)
    assert not prove_equal(O, H, CONV_DOM)


def test_explain_command_prints_sections(capsys, tmp_path):
    spec = tmp_path / "conv.yaml"
    spec.write_text("""\
nkigen: 1
name: conv
sizes:
  H: {min: 3}
  R: {value: 3}
  O: {value: "(H - R) // S + 1"}
params:
  S: 2
inputs:
  x: {shape: [H], dtype: float32}
outputs:
  y: {shape: [O], dtype: float32}
ranges:
  r: R
compute:
  - y[o] = max(x[o * S + r], r)
""")
    assert main(["explain", str(spec)]) == 0
    out = capsys.readouterr().out
    for needle in ("sizes", "O  derived", "index extents", "r  0 .. R - 1  ranges: ranges.r",
                   "x[2*o + r] dim 0: 0 <= 2*o + r <= H - 1  proven", "exactly once (proven)",
                   "per-tile maps"):
        assert needle in out, needle


def test_explain_reports_errors_without_traceback(capsys, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("""\
nkigen: 1
name: bad
sizes:
  N: {}
inputs:
  x: {shape: [N], dtype: float32}
outputs:
  y: {shape: [N], dtype: float32}
compute:
  - y[i] = x[i + 1]
""")
    assert main(["explain", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "cannot prove i + 1 <= N - 1" in err and "Traceback" not in err


def test_floor_prints_in_spec_notation():
    from nkigen.analysis.printing import expr_text

    assert expr_text(sympy.floor((H - R) / 2) + 1) == "(H - R) // 2 + 1"
    assert expr_text(H - 2 * sympy.floor((H - 3) / 2)) == "H - 2*((H - 3) // 2)"


def test_prover_makes_floors_exact_on_multiples():
    """``multiple_of`` turns floor/ceiling/Mod of that size by a divisor of the multiple into
    exact terms: ``floor((M - 1) / 128) == M/128 - 1`` for M a multiple of 128, which the
    floor bounds alone (off by up to 127/128) could not prove."""
    dom = size_domain(matmul(M={"multiple_of": 128}))
    last = sympy.floor((M - 1) / 128)
    assert prove_nonneg(sympy.floor(M / 128) - 1 - last, dom).proven
    assert not prove_nonneg(sympy.floor(M / 128) - 2 - last, dom).proven    # one less: false
    assert prove_equal(sympy.Mod(M, 64), 0, dom)
    assert prove_equal(sympy.ceiling(M / 128), sympy.floor(M / 128), dom)
    # a divisor that is not one of the multiple: no identity, the bound is not proven
    assert not prove_nonneg(sympy.floor(M / 256) - 1 - sympy.floor((M - 1) / 256), dom).proven
    plain = size_domain(matmul())
    assert not prove_nonneg(sympy.floor(M / 128) - 1 - last, plain).proven   # M = 1 breaks it


FLOOR_SPEC = """nkigen: 1
name: pairs
doc: d
sizes:
  H: {multiple_of: 2, min: 2, max: 16}
  N: {min: 2, max: 64}
inputs:
  x: {shape: ["H // 2", N], dtype: float32}
  z: {shape: [H, 2], dtype: float32}
outputs:
  y: {shape: [H, N], dtype: float32}
compute:
  - y[h, n] = x[h // 2, n] * z[h, n % 2]
tests:
  cases:
    - {H: 4, N: 33}
"""


def test_floor_division_by_the_declared_multiple_checks(tmp_path, capsys):
    ok = tmp_path / "pairs.yaml"
    ok.write_text(FLOOR_SPEC)
    assert main(["check", str(ok)]) == 0
    # without the multiple, an odd H really reads past x (h = H - 1 gives (H - 1) // 2 rows)
    bad = tmp_path / "odd.yaml"
    bad.write_text(FLOOR_SPEC.replace("multiple_of: 2, ", ""))
    assert main(["check", str(bad)]) == 1
    assert "odd.yaml:13:15: compute[0]: x[floor(h/2), n] dim 0" in capsys.readouterr().err


def test_floors_an_integer_apart_merge():
    """``floor(x + k) = floor(x) + k`` for integers ``k``: ``x`` of ``(N + 1) // 2`` columns
    read at ``n // 2`` for ``n < N`` is in bounds for every ``N`` (``floor((N - 1) / 2) =
    floor((N + 1) / 2) - 1``), which the floor bounds alone (each off by up to 1/2) could
    not prove; ``N // 2`` columns is out of bounds for odd ``N`` and stays unproven."""
    from nkigen.analysis.prover import merge_floors
    dom = size_domain(matmul())
    half = sympy.Rational(1, 2)
    assert merge_floors(sympy.floor(M / 2 + half) - 1 - sympy.floor(M / 2 - half)) == 0
    assert merge_floors(sympy.ceiling(M / 3 + 2) - sympy.ceiling(M / 3)) == 2
    assert merge_floors(sympy.floor(M / 2) - sympy.floor(M / 3)) == \
        sympy.floor(M / 2) - sympy.floor(M / 3)                     # no integer apart: kept
    assert merge_floors(sympy.floor(M / 2 + half) - sympy.ceiling(M / 2 - half)) != 0
    assert prove_nonneg(sympy.floor((M + 1) / 2) - 1 - sympy.floor((M - 1) / 2), dom).proven
    assert not prove_nonneg(sympy.floor(M / 2) - 1 - sympy.floor((M - 1) / 2), dom).proven
    assert not prove_nonneg(sympy.floor((M + 1) / 2) - 2 - sympy.floor((M - 1) / 2),
                            dom).proven                                  # one less: false


HALF_SPEC = """nkigen: 1
name: halfw
sizes:
  M: {min: 1, max: 2048}
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [M, "(N + 1) // 2"], dtype: float32}
  z: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n // 2] + z[m, n]
tests:
  cases:
    - {M: 20, N: 31}
"""


def test_a_half_width_input_read_at_n_over_2_checks(tmp_path, capsys):
    ok = tmp_path / "halfw.yaml"
    ok.write_text(HALF_SPEC)
    assert main(["check", str(ok)]) == 0
    bad = tmp_path / "floorw.yaml"
    bad.write_text(HALF_SPEC.replace('"(N + 1) // 2"', '"N // 2"'))
    assert main(["check", str(bad)]) == 1
    assert "floorw.yaml:12:15: compute[0]: x[m, floor(n/2)] dim 1" in capsys.readouterr().err
