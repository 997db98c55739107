"""Review 11 R11-7: an index value compared on VectorE (a divided block mask ``n // 64 <= m //
64``, a label match ``lab[b] == c``) is converted to float32 by the comparison (SH
nki/api/nki.api.shared.rst "Supported Math Operators": comparisons are arithmetic operators),
exact only up to 2**24. The generator refuses, located, when the bound prover cannot show
every compared value within +-2**24 at every allowed size; pinned at the boundary."""

from __future__ import annotations

import pytest
import sympy

from nkigen.codegen.select import _within, value_range
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text
from nkigen.hw import FP32_EXACT_INT
from nkigen.ir import index_symbol, size_symbol
from nkigen.pipeline import generate

MASK = """nkigen: 1
name: blockmask
doc: d
sizes: {M: {min: 1, max: 4096}, N: {min: 1NMAX}}
inputs: {a: {shape: [M, N], dtype: float32}}
outputs: {y: {shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = where(n // 64 <= m // 64, a[m, n], -30000.0)
"""

PICK = """nkigen: 1
name: pickc
doc: d
sizes: {B: {min: 1, max: 64}, C: {min: 1CMAX}}
inputs: {x: {shape: [B, C], dtype: float32}, lab: {shape: [B], dtype: int32}}
outputs: {y: {shape: [B, C], dtype: float32}}
compute:
  - y[b, c] = where(lab[b] == c, x[b, c], 0.0)
"""

# n // 64 reaches (N - 1) // 64: 2**24 at N = 2**30 + 64, 2**24 + 1 at N = 2**30 + 65
MASK_LAST = 2 ** 30 + 64
# c reaches C - 1: 2**24 at C = 2**24 + 1
PICK_LAST = FP32_EXACT_INT + 1


def _gen(text: str, dialect: str) -> str:
    return generate(load_spec_text(text, "s.yaml"), target="trn2", dialect=dialect)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("text,key,last,value", [
    (MASK, "NMAX", MASK_LAST, "n // 64"),
    (PICK, "CMAX", PICK_LAST, "c"),
])
def test_compared_index_values_stop_at_2_24(dialect, text, key, last, value):
    src = _gen(text.replace(key, f", max: {last}"), dialect)
    assert "iota" in src     # the compared value is an int32 iota tile
    with pytest.raises(NkigenError) as e:
        _gen(text.replace(key, f", max: {last + 1}"), dialect)
    msg = str(e.value)
    assert msg.startswith("s.yaml:8:5: compute[0]: statement 0 `y[")
    assert f"the index value {value} is compared on VectorE" in msg
    assert "convert their inputs to float32 (SH nki/api/nki.api.shared.rst" in msg
    assert f"not provably within +-{FP32_EXACT_INT}" in msg
    size = key[0]
    assert f"give a max on {size} so that {value} stays within {FP32_EXACT_INT}" in msg


@pytest.mark.parametrize("text,key", [(MASK, "NMAX"), (PICK, "CMAX")])
def test_an_unbounded_compared_index_is_refused(text, key):
    with pytest.raises(NkigenError) as e:
        _gen(text.replace(key, ""), "nki")
    assert "reaches" in str(e.value) and f"give a max on {key[0]}" in str(e.value)


def test_a_batch_offset_counts_in_the_bound():
    # m // 64 + b: (M - 1) // 64 + B - 1 = 63 + B - 1 with M = 4096: B = 2**24 - 62 the last
    text = """nkigen: 1
name: bblock
doc: d
sizes: {B: {min: 1, max: BMAX}, M: {min: 1, max: 4096}, N: {min: 1, max: 4096}}
inputs: {a: {shape: [B, M, N], dtype: float32}}
outputs: {y: {shape: [B, M, N], dtype: float32}}
compute:
  - y[b, m, n] = where(n // 64 <= m // 64 + b, a[b, m, n], -30000.0)
"""
    last = FP32_EXACT_INT - 63 + 1
    src = _gen(text.replace("BMAX", str(last)), "neuronxcc")
    assert "op0=nl.right_shift" in src and "affine_select" not in src
    # one more: the VectorE comparison is refused, and the planner takes the placement whose
    # condition GpSimd affine_select evaluates (b on the partitions, m and n outer loops)
    src = _gen(text.replace("BMAX", str(last + 1)), "neuronxcc")
    assert "op0=nl.right_shift" not in src and "nisa.affine_select(" in src


def test_value_range_of_index_forms():
    n, b = index_symbol("n"), index_symbol("b")
    N, B = size_symbol("N"), size_symbol("B")
    ext = {"n": N, "b": B}
    assert value_range(sympy.floor(n / 4) + 1, ext) == (1, sympy.floor((N - 1) / 4) + 1)
    assert value_range(sympy.Mod(n, 8), ext) == (0, 7)
    assert value_range(N * b + n, ext) == (0, N * (B - 1) + N - 1)
    assert value_range(-2 * n, ext) == (-2 * (N - 1), 0)
    assert value_range(n ** 2, ext) is None                  # a power: no bound known
    assert value_range(sympy.floor(n / N), ext) is None      # a size divisor: no bound


def test_within_is_exact_at_the_max_for_floors():
    from nkigen.analysis.prover import SizeDomain

    N = size_symbol("N")
    e = FP32_EXACT_INT - sympy.floor((N - 1) / 2)
    assert _within(e, SizeDomain(((N, 1, 1, 2 ** 25 + 2),), ()))
    assert not _within(e, SizeDomain(((N, 1, 1, 2 ** 25 + 3),), ()))
    assert not _within(e, SizeDomain(((N, 1, 1, None),), ()))
