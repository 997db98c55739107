"""Divided free indices without a column loop: classic period reads, classic merged outputs and
residue conditions (codegen/tilexpr.py ``_classic_periodic``, codegen/tailmerge.py
``_classic_ok``, codegen/select.py ``_residue_operand``).

Before (trn2, 130 x 300 unless stated), each a scalar loop over the output columns:
classic ``x[m, n] * w[n % 3]`` 242.26 us, classic ``where(n % 3 == 0, 0.0, x[m, n])``
244.83 us, classic ``where(n // 3 <= m, ...)`` 244.83 us, ``where((n + 1) % 3 == 0, ...)``
259.47 us in the current API, classic stacked pair ``y[m, q, r]`` 137.63 us (130 x 77),
classic complex multiply 257.50 us (130 x 77), classic RGB scale 72.01 us (130 x 77).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import tailmerge  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

# the two cross combinations run in the slow tier (README test command under 4 minutes)
COMBOS = [("nki", "trn2"), pytest.param("nki", "trn1", marks=pytest.mark.slow),
          pytest.param("neuronxcc", "trn2", marks=pytest.mark.slow), ("neuronxcc", "trn1")]
CLASSIC = [("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


def _spec(name: str, stmt: str, dtype: str = "float32", extra_in: str = "",
          schedule: str = "") -> str:
    return f"""nkigen: 1
name: {name}
doc: d
sizes:
  M: {{min: 1, max: 4096}}
  N: {{min: 1, max: 4096}}
inputs:
  x: {{shape: [M, N], dtype: {dtype}}}
{extra_in}outputs:
  y: {{shape: [M, N], dtype: {dtype}}}
{schedule}compute:
  - {stmt}
"""


PERIOD = _spec("period", "y[m, n] = x[m, n] * w[n % 3]",
               extra_in="  w: {shape: [3], dtype: float32}\n")
PERIOD_BF16 = _spec("period_bf16", "y[m, n] = x[m, n] * w[n % 3]", dtype="bfloat16",
                    extra_in="  w: {shape: [3], dtype: bfloat16}\n")
PERIOD_INT = _spec("period_int", "y[m, n] = x[m, n] * w[n % 3]", dtype="int32",
                   extra_in="  w: {shape: [3], dtype: int32}\n")
MOD3 = _spec("mod3", "y[m, n] = where(n % 3 == 0, 0.0, x[m, n])")
SHIFTED = _spec("shifted", "y[m, n] = where((n + 1) % 3 == 0, x[m, n], -x[m, n])")
FLOOR3 = _spec("floor3", "y[m, n] = where(n // 3 == 7, x[m, n], 0.0)")
BLOCK3 = _spec("block3", "y[m, n] = where(n // 3 <= m, x[m, n], 0.0)")
# (n // 3 <= m is affine since codegen/divcmp.py; an equality far out keeps the floor's iota:
# n = 2049 lies in the second chunk at 3 x 2050, so each chunk's base is needed)
FLOOR_FAR = _spec("floor_far", "y[m, n] = where(n // 3 == 683, x[m, n], 0.0)")
MOD5 = _spec("mod5", "y[m, n] = where(n % 5 + 2 >= 4, x[m, n], 1.0)")
INT_MOD3 = _spec("int_mod3", "y[m, n] = where(n % 3 == 1, x[m, n], 0)", dtype="int32")
SIZES = [{"M": 1, "N": 1}, {"M": 130, "N": 300}, {"M": 3, "N": 2050}]


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("text", [MOD3, SHIFTED, FLOOR3, BLOCK3, MOD5, INT_MOD3, FLOOR_FAR],
                         ids=["mod3", "shifted", "floor3", "block3", "mod5", "int_mod3",
                              "floor_far"])
def test_residue_conditions_match_the_reference(dialect, target, text):
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    for sizes in SIZES:      # 2050 columns: two chunks, the last ending inside a period
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("dialect,target", CLASSIC)
@pytest.mark.parametrize("text", [PERIOD, PERIOD_BF16], ids=["fp32", "bf16"])
def test_classic_period_reads_match_the_reference(dialect, target, text):
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    assert "static_range(N)" not in src
    assert "reverse0=True" in src       # col - 0: the sign of a zero kept
    for sizes in SIZES:
        check_case(spec, sizes, target=target, src=src)


def test_a_negative_zero_period_keeps_its_sign():
    spec = load_spec_text(PERIOD)
    kernel = load_source(generate(spec, target="trn2", dialect="neuronxcc"), spec.name)
    x = np.ones((2, 6), np.float32)
    w = np.array([-0.0, 1.0, 2.0], np.float32)
    from nkigen import sim
    y = np.asarray(sim.simulate(kernel, target="trn2")(x, w))
    assert np.signbit(y[:, 0::3]).all() and not np.signbit(y[:, 1::3]).any()


@pytest.mark.parametrize("dtype", ["int32", "int8", "uint8"])
def test_an_integer_period_read_copies_bits_in_classic(dtype):
    # the float period copy would compute through float32 (an int32 past 2**24 rounds); an
    # integer table is OR-ed into a zeroed chunk instead (0 | col = col), exact for every
    # value: no column loop any more (126.26 us -> 7.00 us for x + w[(n + 2) % 3] int32 at
    # 130 x 300, trn2)
    import nkigen.sim as sim
    text = _spec(f"pint_{dtype}", "y[m, n] = where(x[m, n] > 0, w[n % 3], 0)", dtype=dtype,
                 extra_in=f"  w: {{shape: [3], dtype: {dtype}}}\n")
    spec = load_spec_text(text)
    src = generate(spec, target="trn2", dialect="neuronxcc")
    assert "static_range(N)" not in src and "nl.bitwise_or" in src
    big = {"int32": [2**30 + 1, -2**31, 16777217], "int8": [-128, 127, -1],
           "uint8": [255, 0, 129]}[dtype]
    w = np.array(big, dtype=dtype)
    x = np.ones((3, 2050), dtype=dtype)
    y = sim.simulate(load_source(src, spec.name), "trn2")(x, w)
    assert np.array_equal(y, np.broadcast_to(w[np.arange(2050) % 3], (3, 2050)))
    check_case(spec, {"M": 130, "N": 300}, target="trn2", src=src)


def test_residue_form_needs_chunks_on_whole_periods():
    # a tiling hint of 1000 columns (not a multiple of 3) starts chunks inside a period:
    # the residue form does not apply and the kernel keeps a form that verifies
    text = _spec("hinted", "y[m, n] = where(n % 3 == 0, 0.0, x[m, n])",
                 schedule="schedule:\n  tiles: {n: 1000}\n")
    spec = load_spec_text(text)
    for dialect in ("nki", "neuronxcc"):
        src = generate(spec, target="trn2", dialect=dialect)
        assert "resid" not in src
        check_case(spec, {"M": 2, "N": 2050}, target="trn2", src=src)
    hint999 = load_spec_text(text.replace("n: 1000", "n: 999"))
    assert "resid" in generate(hint999, target="trn2", dialect="neuronxcc")


def _pair(c: int, stmt: str, dtype: str = "float32", extra: str = "") -> str:
    return f"""nkigen: 1
name: pair
doc: d
sizes:
  M: {{min: 1, max: 1024}}
  K: {{min: 1, max: 1024}}
inputs:
  a: {{shape: [M, K], dtype: float32}}
  x: {{shape: [M, K, {c}], dtype: {dtype}}}
{extra}outputs:
  y: {{shape: [M, K, {c}], dtype: {dtype}}}
compute:
  - {stmt}
"""


@pytest.mark.parametrize("c,stmt,extra,dtype", [
    # a value of r: a bitvec AND of an iota (c a power of two) or one iota per residue
    (2, "y[m, k, r] = where(r == 0, a[m, k], x[m, k, r])", "", "float32"),
    (4, "y[m, k, r] = where(r == 3, a[m, k], x[m, k, r])", "", "float32"),
    (3, "y[m, k, r] = where(r == 0, a[m, k], x[m, k, r])", "", "float32"),
    # a period read: float32 arithmetic for a float table, a bitwise OR for an integer one
    (3, "y[m, k, r] = x[m, k, r] * w[r]", "  w: {shape: [3], dtype: float32}\n", "float32"),
    (3, "y[m, k, r] = x[m, k, r] * w[r]", "  w: {shape: [3], dtype: int32}\n", "int32"),
])
def test_classic_merges_what_the_current_api_merges(c, stmt, extra, dtype):
    spec = load_spec_text(_pair(c, stmt, dtype, extra))
    assert tailmerge.rewrite(spec) is not spec
    src = generate(spec, target="trn2", dialect="neuronxcc")
    assert f"y_m = y.reshape((M, {c} * K,))" in src
    check_case(spec, {"M": 130, "K": 77}, target="trn2", src=src)


@pytest.mark.parametrize("dialect,target", CLASSIC)
@pytest.mark.parametrize("c,stmt,extra", [
    (2, "y[m, k, r] = where(r == 0, a[m, k], x[m, k, r])", ""),
    (4, "y[m, k, r] = where(r == 3, a[m, k], x[m, k, r])", ""),
    (3, "y[m, k, r] = where(r == 1, a[m, k], x[m, k, r])", ""),
    (3, "y[m, k, r] = x[m, k, r] * w[r] + a[m, k]", "  w: {shape: [3], dtype: float32}\n"),
])
def test_classic_merged_outputs_match_the_reference(dialect, target, c, stmt, extra):
    spec = load_spec_text(_pair(c, stmt, extra=extra))
    src = generate(spec, target=target, dialect=dialect)
    assert f"y_m = y.reshape((M, {c} * K,))" in src
    for sizes in ({"M": 1, "K": 1}, {"M": 130, "K": 77}, {"M": 2, "K": 700}):
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("text,shapes,before", [
    pytest.param(PERIOD, [(130, 300), (3,)], 242.26, id="period"),
    pytest.param(MOD3, [(130, 300)], 244.83, id="mod3"),
    pytest.param(BLOCK3, [(130, 300)], 244.83, id="block3"),
])
def test_classic_residue_forms_cost_what_their_bytes_cost(text, shapes, before):
    import nkigen.sim as sim
    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target="trn2", dialect="neuronxcc"), spec.name)
    res = sim.run(kernel, [sim.placeholder(s, "float32") for s in shapes], target="trn2",
                  numerics=False)
    assert res.report.latency_us < before / 10
