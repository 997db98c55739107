"""Conditions and reads that take ``%`` / ``//`` of the free index (interleaves, RoPE in one
interleaved output, alternating signs) lower to tiles instead of a scalar loop per column.

* ``where(n % 2 == 0, ...)``: one GpSimd ``affine_select`` whose access pattern walks the chunk
  as ``[fsz // c, c]`` (SH nki.isa affine_select, nki 0.3: up to four pattern dimensions whose
  sizes multiply to the elements per partition); a free extent that need not be a multiple of
  ``c`` takes its last ``fsz % c`` columns with a one-dimensional pattern (codegen/select.py).
* ``x[t, d // 2, d % 2]``: the two digits of ``d`` in neighbouring dimensions read as the flat
  index ``d`` (codegen/tilexpr.merge_digits; an ``.ap`` access pattern in the current API).
* A condition that divides a tile index no longer refuses the spec in either dialect: the
  placement that moves the divided index to a scalar loop is tried too (codegen/rows.py).

Before (trn2, current API): interleave 184.09 us, RoPE interleaved 181.57 us, the alternating
sign over an odd extent refused; each now verifies in every dialect and target.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

COMBOS = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]

INTERLEAVE = """nkigen: 1
name: interleave
doc: d
sizes:
  M: {min: 1, max: 4096}
  K: {min: 1, max: 2048}
  N: {value: "2 * K"}
inputs:
  a: {shape: [M, K], dtype: float32}
  b: {shape: [M, K], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = where(n % 2 == 0, a[m, n // 2], b[m, n // 2])
"""
ROPE = """nkigen: 1
name: rope_il
doc: d
sizes:
  T: {min: 1, max: 4096}
  D2: {min: 1, max: 128}
  D: {value: "2 * D2"}
inputs:
  x: {shape: [T, D2, 2], dtype: float32}
  cos: {shape: [T, D2], dtype: float32}
  sin: {shape: [T, D2], dtype: float32}
outputs:
  y: {shape: [T, D], dtype: float32}
compute:
""" + ("  - y[t, d] = x[t, d // 2, d % 2] * cos[t, d // 2]"
       " + where(d % 2 == 0, -x[t, d // 2, 1], x[t, d // 2, 0]) * sin[t, d // 2]\n")
SIGNS = """nkigen: 1
name: signs
doc: d
sizes:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
inputs:
  a: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = where(n % 2 == 0, a[m, n], -a[m, n])
"""
THIRDS = """nkigen: 1
name: thirds
doc: d
sizes:
  M: {min: 1, max: 4096}
  K: {min: 1, max: 2048}
  N: {value: "3 * K"}
inputs:
  a: {shape: [M, K], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = where(n % 3 == 1, a[m, n // 3], 0.0)
"""
BAND = SIGNS.replace("name: signs", "name: band").replace(
    "where(n % 2 == 0, a[m, n], -a[m, n])", "where(n // 2 <= m + n % 2, a[m, n], -1.0)")
BLOCK = SIGNS.replace("name: signs", "name: block").replace(
    "where(n % 2 == 0, a[m, n], -a[m, n])", "where(n // 64 <= m // 64 + 1, a[m, n], -30000.0)")
CHECKER = SIGNS.replace("name: signs", "name: checker").replace("n % 2 == 0", "(m + n) % 2 == 0")
SKEW = SIGNS.replace("name: signs", "name: skew").replace("n % 2 == 0", "(n - m) % 4 == 1")

# the second digit's dimension is longer than the period: no flat read (stride 3, not 2)
LOOSE = ROPE.replace("name: rope_il", "name: loose").replace("[T, D2, 2]", "[T, D2, 3]")


def _latency(text: str, shapes: list[tuple], target: str = "trn2",
             dialect: str = "nki") -> float:
    import nkigen.sim as sim
    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    res = sim.run(kernel, [sim.placeholder(s, "float32") for s in shapes], target=target,
                  numerics=False)
    return res.report.latency_us



def _case(name: str, text: str, sizes: dict):
    return pytest.param(text, sizes, id=name + "-" + "_".join(f"{k}{v}" for k, v in sizes.items()))


CASES = [
    _case("interleave", INTERLEAVE, {"M": 1, "K": 1}),
    _case("interleave", INTERLEAVE, {"M": 130, "K": 77}),
    _case("rope", ROPE, {"T": 1, "D2": 1}), _case("rope", ROPE, {"T": 129, "D2": 32}),
    _case("signs", SIGNS, {"M": 1, "N": 1}), _case("signs", SIGNS, {"M": 130, "N": 77}),
    _case("thirds", THIRDS, {"M": 130, "K": 77}), _case("loose", LOOSE, {"T": 129, "D2": 32}),
    _case("band", BAND, {"M": 1, "N": 1}), _case("band", BAND, {"M": 130, "N": 77}),
    _case("block", BLOCK, {"M": 300, "N": 200}), _case("checker", CHECKER, {"M": 130, "N": 77}),
    _case("skew", SKEW, {"M": 130, "N": 77})]
# two free chunks (the second starts at 2048, ragged for signs): the current API's forms (the
# classic dialect runs these as a scalar loop per column, checked at the sizes above)
WIDE = [_case("interleave", INTERLEAVE, {"M": 3, "K": 1025}),
        _case("signs", SIGNS, {"M": 2, "N": 2049}), _case("band", BAND, {"M": 3, "N": 2049})]


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("text,sizes", CASES)
def test_periodic_forms_match_the_reference(dialect, target, text, sizes):
    spec = load_spec_text(text)
    check_case(spec, sizes, target=target, src=generate(spec, target=target, dialect=dialect))


@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("text,sizes", WIDE)
def test_periodic_forms_over_two_chunks(target, text, sizes):
    spec = load_spec_text(text)
    check_case(spec, sizes, target=target, src=generate(spec, target=target))


def test_parity_condition_is_one_two_dimensional_affine_select():
    src = generate(load_spec_text(INTERLEAVE), target="trn2")
    assert "pattern=[[0, fsz // 2], [1, 2]]" in src
    assert "for i_n in range(N)" not in src                 # no scalar loop per column
    # the classic predicate is one affine nl.arange comparison: no period form there
    assert "[1, 2]]" not in generate(load_spec_text(INTERLEAVE), target="trn2",
                                     dialect="neuronxcc")


def test_a_ragged_extent_takes_whole_periods_then_the_rest():
    src = generate(load_spec_text(SIGNS), target="trn2")
    assert "if 0 < 2 * (fsz // 2):" in src and "if 0 < fsz - 2 * (fsz // 2):" in src
    assert "pattern=[[1, fsz - 2 * (fsz // 2)]]" in src
    # n // 2 of the last columns is the chunk's whole periods past f0 // 2
    band = generate(load_spec_text(BAND), target="trn2")
    assert "pattern=[[1, fsz // 2], [-1, 2]], channel_multiplier=-1" in band
    assert "offset=f0 // 2 + fsz // 2 - p0)" in band


def test_a_divided_condition_of_both_tile_indices_compares_shifted_iotas():
    src = generate(load_spec_text(BLOCK), target="trn2")
    assert src.count("op0=nl.right_shift, operand0=6") == 2
    assert "op0=nl.less_equal, operand0=" in src and "tensor_copy_predicated" in src
    assert "op0=nl.bitwise_and, operand0=1" in generate(load_spec_text(CHECKER), target="trn2")
    # a value that may be negative is not shifted (undocumented for negative int32)
    from nkigen.diagnostics import NkigenError
    with pytest.raises(NkigenError, match="may be negative"):
        generate(load_spec_text(BLOCK.replace("n // 64 <=", "(n - m) // 64 <=")), target="trn2")
    # ... while a modulo of one is its two's-complement AND (Python's floor modulo)
    assert "op0=nl.bitwise_and, operand0=3" in generate(load_spec_text(SKEW), target="trn2")


def test_the_digits_of_an_index_read_as_the_flat_index():
    src = generate(load_spec_text(ROPE), target="trn2")
    assert "src=x.ap([[2 * D2, psz], [1, fsz]], offset=f0 + 2 * D2 * p0)" in src
    assert "[1, fsz]], offset=f0" not in generate(load_spec_text(LOOSE), target="trn2")


@pytest.mark.parametrize("text,shapes,before", [
    pytest.param(INTERLEAVE, [(130, 77), (130, 77)], 184.09, id="interleave"),
    pytest.param(ROPE, [(129, 32, 2), (129, 32), (129, 32)], 181.57, id="rope")])
def test_periodic_forms_cost_what_their_bytes_cost(text, shapes, before):
    # before: a scalar loop over the output columns, one element per partition per DMA
    assert _latency(text, shapes) < before / 10
