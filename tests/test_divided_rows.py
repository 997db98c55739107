"""Divided partition indices on rows that are not a multiple of the divisor are gathered row by
row (nkigen/codegen/revrows.py ``divided_rows``).

The residue views (tests/test_residue_views.py) need the rows to be a multiple of the divisor.
Otherwise the row lowering moved the divided index into a scalar loop, one element per
partition and per DMA: ``y[m, n] = x[m, n] * g[m // 4]`` modelled 694.66 us at 256 x 300 on trn2.
Now GpSimd ``iota`` writes each partition's row, one VectorE bitvec ``tensor_scalar`` divides it
(``>> 2``) or takes its residue (``& 3``), and one vector-indirect DMA reads the rows: 8.06 us.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import revrows  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SPEC = """nkigen: 1
name: dr
doc: d
sizes:
  B: {min: 1, max: 4}
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
  G: {value: GROWS}
inputs:
  x: {shape: XSHAPE, dtype: DTYPE}
  z: {shape: [B, M, N], dtype: float32}
outputs:
  y: {shape: [B, M, N], dtype: DTYPE}
compute:
  - STATEMENT
tests:
  cases:
    - {B: 2, M: 130, N: 300}
"""
# (statement, rows of the table G, the table's shape)
COLUMN = ("y[b, m, n] = z[b, m, n] * x[b, m // 4, 0]", "(M + 3) // 4", "[B, G, 1]")
ROWS = ("y[b, m, n] = x[b, m // 2, n] + z[b, m, n]", "(M + 1) // 2", "[B, G, N]")
SHIFTED = ("y[b, m, n] = x[b, (m + 1) // 2, n] + z[b, m, n]", "M // 2 + 1", "[B, G, N]")
PHASES = ("y[b, m, n] = x[b, m % 4, n] * z[b, m, n]", "4", "[B, G, N]")
PHASES_SHIFTED = ("y[b, m, n] = x[b, (m + 3) % 8, n] + z[b, m, n]", "8", "[B, G, N]")
THIRDS = ("y[b, m, n] = x[b, m // 3, n] + z[b, m, n]", "(M + 2) // 3", "[B, G, N]")


def _spec(case: tuple[str, str, str], dtype: str = "float32"):
    statement, rows, shape = case
    return load_spec_text(SPEC.replace("STATEMENT", statement).replace("GROWS", rows)
                          .replace("XSHAPE", shape).replace("DTYPE", dtype))


@pytest.mark.parametrize("case,op", [(COLUMN, "nl.right_shift, operand0=2"),
                                     (ROWS, "nl.right_shift, operand0=1"),
                                     (SHIFTED, "nl.right_shift, operand0=1"),
                                     (PHASES, "nl.bitwise_and, operand0=3"),
                                     (PHASES_SHIFTED, "nl.bitwise_and, operand0=7")])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1"),
                                            ("nki", "trn1"), ("neuronxcc", "trn2")])
def test_divided_rows_are_gathered_and_match_the_reference(case, op, dialect, target):
    spec = _spec(case, "bfloat16" if case is ROWS else "float32")
    src = generate(spec, target=target, dialect=dialect)
    assert "nisa.iota(" in src and f"op0={op}," in src, src
    # rows 130 (two tiles, the second ragged, not a multiple of any divisor) and a single row
    for sizes in ({"B": 2, "M": 130, "N": 300}, {"B": 1, "M": 1, "N": 7}):
        check_case(spec, sizes, target=target, src=src)


THIRD_PHASES = ("y[b, m, n] = x[b, (m + 2) % 3, n] * z[b, m, n]", "3", "[B, G, N]")


@pytest.mark.parametrize("case", [THIRDS, THIRD_PHASES])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_a_divisor_that_is_not_a_power_of_two_is_counted(case, target):
    # r // 3 has no ALU operator (no divide, no modulo: SH nki/api/nki.api.shared.rst
    # tbl-aluop): both dialects count it from the tile's trace-time phase (iota, compare,
    # reduce); in the classic dialect the row loop whose phase the count needs is an
    # nl.static_range (its index a Python int while tracing: S25 general/nki/api/nki/language/
    # __init__.py static_range), where it was a scalar loop over the rows before
    spec = _spec(case)
    classic = generate(spec, target=target, dialect="neuronxcc")
    assert "nisa.tensor_reduce(" in classic and "nl.static_range(" in classic, classic
    for src in (generate(spec, target=target), classic):
        assert "nisa.tensor_reduce(" in src and "nisa.iota(" in src, src
        for sizes in ({"B": 2, "M": 130, "N": 3}, {"B": 1, "M": 1, "N": 5},
                      {"B": 1, "M": 257, "N": 2}):
            check_case(spec, sizes, target=target, src=src)


def test_power_of_two_boundary():
    assert revrows._power_of_two(revrows.sympy.Integer(2)) == 1
    assert revrows._power_of_two(revrows.sympy.Integer(1 << 30)) == 30
    for c in (0, 1, 3, 6, 12):
        assert revrows._power_of_two(revrows.sympy.Integer(c)) is None, c


def _latency(spec, sizes: dict, monkeypatch=None, dialect: str = "nki") -> float:
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs
    kernel = load_source(generate(spec, target="trn2", dialect=dialect), spec.name)
    args = [sim.placeholder(a.shape, a.dtype) for a in make_inputs(spec, sizes).values()]
    return sim.run(kernel, args, target="trn2", numerics=False).report.latency_us


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("case", [COLUMN, PHASES, THIRDS, THIRD_PHASES])
def test_the_gather_is_far_cheaper_in_the_cost_model(case, dialect, monkeypatch):
    # classic r // 3 and r % 3 were the scalar loop until the counted form took the classic
    # dialect too (x[m, n] * w[m % 3] at 130 x 300 on trn2: 104.41 -> 3.04 us)
    spec = _spec(case)
    sizes = {"B": 1, "M": 256, "N": 300}
    fast = _latency(spec, sizes, dialect=dialect)
    monkeypatch.setattr(revrows, "divided_rows", lambda c, ctx, a: None)
    slow = _latency(spec, sizes, dialect=dialect)
    assert fast * 20 < slow, (fast, slow)


PERIODIC = """nkigen: 1
name: per
doc: d
sizes:
  M: {min: 1, max: 512}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
  w: {shape: [WROWS], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n] * w[n % 4]
tests:
  cases:
    - {M: 130, N: 300}
"""


def test_a_period_read_of_a_ragged_free_extent_is_repeated_on_chip():
    # w[n % 4] with N free (not a multiple of 4): 666.11 us modelled at 256 x 300 on trn2 in
    # the scalar loop; now the period is loaded once and repeated by one VectorE copy over
    # whole periods up to the chunk's allocation (the columns past fsz are never read)
    spec = load_spec_text(PERIODIC.replace("WROWS", "4"))
    src = generate(spec, target="trn2")
    assert "[0, -(-fsz // 4)], [1, 4]]" in src, src
    # one column, three, a ragged last period, and a second chunk (2048 + 1)
    for n in (1, 3, 300, 2049):
        check_case(spec, {"M": 3, "N": n}, target="trn2", src=src)
    fast = _latency(spec, {"M": 256, "N": 300})
    assert fast < 20, fast


def test_a_period_read_of_a_table_sized_by_a_size():
    # w of K elements, K declared at least 4: a whole period can be loaded at every size
    text = PERIODIC.replace("WROWS", "K").replace("N: {min: 1, max: 4096}",
                                                  "N: {min: 1, max: 4096}\n  K: {min: 4}")
    spec = load_spec_text(text.replace("{M: 130, N: 300}", "{M: 130, N: 300, K: 5}"))
    src = generate(spec, target="trn2")
    assert "[1, 4]]" in src, src
    check_case(spec, {"M": 3, "N": 3, "K": 5}, target="trn2", src=src)


EXPAND = """nkigen: 1
name: expodd
doc: d
sizes:
  M: {min: 1, max: 256}
  N: {min: 1, max: 4096}
  H: {value: (N + 1) // 2}
inputs:
  x: {shape: [M, H], dtype: float32}
  z: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n // 2] + z[m, n]
tests:
  cases:
    - {M: 130, N: 301}
"""


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1"),
                                            ("nki", "trn1"), ("neuronxcc", "trn2")])
def test_an_expanded_read_of_an_odd_free_extent_is_expanded_on_chip(dialect, target):
    # x[m, n // 2] with N odd: 668.32 us modelled at 256 x 301 on trn2 in the scalar loop
    # (the expansion needed an even extent); now the last chunk reads ceil(fsz / 2) source
    # elements and both copies fill whole periods: 7.42 us
    spec = load_spec_text(EXPAND)
    src = generate(spec, target=target, dialect=dialect)
    assert ("x_e[0:psz, 1:2 * (-(-fsz // 2)):2]" in src) if dialect == "nki" else \
        ("x_e[i_p, 1 + 2 * i_f_1024]" in src), src
    for n in (1, 2, 3, 301, 2049):
        check_case(spec, {"M": 3, "N": n}, target=target, src=src)
    if (dialect, target) == ("nki", "trn2"):
        assert _latency(spec, {"M": 256, "N": 301}) < 20


TURNED = """nkigen: 1
name: tdiv
doc: d
sizes:
  M: {min: 1, max: 1024}
  H: {min: 1, max: 512}
  N: {value: 2 * H}
inputs:
  x: {shape: [H, M], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 256, H: 150}
"""


@pytest.mark.parametrize("statement", ["y[m, n] = x[n // 2, m]", "y[m, n] = x[n // 2, m] * 2.0"])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1"),
                                            ("nki", "trn1"), ("neuronxcc", "trn2")])
def test_a_transposed_divided_read_reads_a_turned_copy(statement, dialect, target):
    # x[n // 2, m] with m on the partitions: one element per descriptor, 111.60 us modelled at
    # M = 256, H = 150 on trn2; now x is turned once (codegen/turned.py, the plain transpose)
    # and x_t[m, n // 2] is expanded along the free axis: 9.39 us
    spec = load_spec_text(TURNED.replace("STATEMENT", statement))
    src = generate(spec, target=target, dialect=dialect)
    assert "a turned copy of x" in src, src
    for sizes in ({"M": 256, "H": 150}, {"M": 1, "H": 1}, {"M": 130, "H": 3}):
        check_case(spec, sizes, target=target, src=src)
    if (dialect, target) == ("nki", "trn2"):
        assert _latency(spec, {"M": 256, "H": 150}) < 20


PERIOD3 = """nkigen: 1
name: per3
doc: d
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
  w: {shape: [M, 3], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n] * w[m, n % 3]
tests:
  cases:
    - {M: 130, N: 100}
"""


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_a_period_of_three_shortens_the_free_chunk_to_a_multiple(target):
    # 2048-element chunks start mid-period for c = 3, so the period read stayed a scalar loop
    # (137.85 us modelled at 130 x 100 on trn2, fuzz9); a chunk of 2046 starts every chunk on
    # a period: 3.29 us
    spec = load_spec_text(PERIOD3)
    src = generate(spec, target=target)
    assert "FREE_TILE = 2046" in src and "[1, 3]]" in src, src
    # one chunk, its last period ragged; the second chunk starting at 2046
    for sizes in ({"M": 3, "N": 1}, {"M": 3, "N": 2046}, {"M": 3, "N": 2047},
                  {"M": 130, "N": 4095}):
        check_case(spec, sizes, target=target, src=src)
    if target == "trn2":
        assert _latency(spec, {"M": 130, "N": 100}) < 10


def test_a_free_chunk_hint_is_kept():
    spec = load_spec_text(PERIOD3.replace("tests:", "schedule:\n  tiles: {n: 512}\ntests:"))
    src = generate(spec)
    assert "FREE_TILE = 2046" not in src and "[1, 3]]" not in src
    check_case(spec, {"M": 3, "N": 700}, src=src)
