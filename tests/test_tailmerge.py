"""Outputs with a short last dimension (codegen/tailmerge.py): ``y[M, K, c]`` with ``c <= 8``
is written through the view ``y.reshape((M, K * c))`` in the current API, so a tile streams
``K * c`` elements per partition instead of ``c``.

Before (trn2, current API, 130 x 77): stacking two matrices along a new last axis 137.63 us,
interleaved RGB 254.30 us, an interleaved complex multiply 257.50 us.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import tailmerge  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

COMBOS = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


def _spec(name: str, last: int, inputs: str, stmt: str, extra: str = "") -> str:
    return f"""nkigen: 1
name: {name}
doc: d
sizes:
  M: {{min: 1, max: 1024}}
  K: {{min: 1, max: 1024}}
inputs:
{inputs}outputs:
  y: {{shape: [M, K, {last}], dtype: float32}}
{extra}compute:
  - {stmt}
"""


PAIR = "  a: {shape: [M, K], dtype: float32}\n  b: {shape: [M, K], dtype: float32}\n"
STACK = _spec("stack", 2, PAIR, "y[m, q, r] = where(r == 0, a[m, q], b[m, q])")
RGB = _spec("rgb", 3, PAIR + "  c: {shape: [M, K], dtype: float32}\n",
            "y[m, q, r] = where(r == 0, a[m, q], where(r == 1, b[m, q], c[m, q]))")
CPLX = "  a: {shape: [M, K, 2], dtype: float32}\n  b: {shape: [M, K, 2], dtype: float32}\n"
CMUL = _spec("cmul", 2, CPLX, "y[m, k, r] = where(r == 0, a[m, k, 0] * b[m, k, 0] - a[m, k, 1]"
             " * b[m, k, 1], a[m, k, 0] * b[m, k, 1] + a[m, k, 1] * b[m, k, 0])")
SCALE = _spec("scale", 4, "  x: {shape: [M, K, 4], dtype: bfloat16}\n"
              "  w: {shape: [4], dtype: float32}\n",
              "y[m, k, r] = x[m, k, r] * w[r] + a[m, k]").replace(
                  "  w: {shape: [4]", "  a: {shape: [M, K], dtype: float32}\n  w: {shape: [4]")


def _merged(text: str) -> bool:
    spec = load_spec_text(text)
    return tailmerge.rewrite(spec) is not spec


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("text,sizes", [
    pytest.param(STACK, {"M": 1, "K": 1}, id="stack-1x1"),
    pytest.param(STACK, {"M": 130, "K": 77}, id="stack-130x77"),
    pytest.param(RGB, {"M": 130, "K": 77}, id="rgb-130x77"),
    pytest.param(RGB, {"M": 2, "K": 700}, id="rgb-2x700"),     # 2100 columns: two chunks
    pytest.param(CMUL, {"M": 130, "K": 77}, id="cmul-130x77"),
    pytest.param(SCALE, {"M": 3, "K": 300}, id="scale-3x300")])
def test_merged_outputs_match_the_reference(dialect, target, text, sizes):
    spec = load_spec_text(text)
    check_case(spec, sizes, target=target, src=generate(spec, target=target, dialect=dialect))


def test_the_merged_view_streams_the_rows():
    src = generate(load_spec_text(STACK), target="trn2")
    assert "y_m = y.reshape((M, 2 * K))" in src
    assert "dst=y_m[p0:p0 + psz, f0:f0 + fsz]" in src
    classic = generate(load_spec_text(STACK), target="trn2", dialect="neuronxcc")
    assert "y_m = y.reshape((M, 2 * K,))" in classic      # S25 tensor.reshape: no copy
    assert "dst=y_m[p0 + i_p, f0 + i_f_free_tile]" in classic   # whole rows per DMA


@pytest.mark.parametrize("text,shapes,before", [
    pytest.param(STACK, [(130, 77), (130, 77)], 137.63, id="stack"),
    pytest.param(RGB, [(130, 77)] * 3, 254.30, id="rgb"),
    pytest.param(CMUL, [(130, 77, 2)] * 2, 257.50, id="cmul")])
def test_merged_outputs_cost_what_their_bytes_cost(text, shapes, before):
    import nkigen.sim as sim
    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target="trn2"), spec.name)
    res = sim.run(kernel, [sim.placeholder(s, "float32") for s in shapes], target="trn2",
                  numerics=False)
    assert res.report.latency_us < before / 10


def test_what_qualifies():
    assert _merged(STACK) and _merged(RGB) and _merged(CMUL) and _merged(SCALE)
    # the last dimension: 8 elements are short, 9 are not
    eight = _spec("e", 8, PAIR, "y[m, q, r] = where(r == 0, a[m, q], b[m, q])")
    assert _merged(eight) and not _merged(eight.replace("[M, K, 8]", "[M, K, 9]"))
    assert not _merged(STACK.replace("y[m, q, r] =", "y[m, q, r] +="))
    # q and r in one dimension as the flat read 2 q + r (or its pair swapped, 2 q + 1 - r)
    # merge (tests/test_slow16.py); in another proportion, 3 q + r, no view form
    assert _merged(_spec("c", 2, "  x: {shape: [M, 2 * K], dtype: float32}\n",
                         "y[m, q, r] = x[m, 2 * q + r]"))
    assert not _merged(_spec("c", 2, "  x: {shape: [M, 3 * K], dtype: float32}\n",
                             "y[m, q, r] = x[m, 3 * q + r]"))
    # q and r in neighbouring dimensions of a tensor whose last dimension is not 2 long
    assert not _merged(_spec("n", 2, "  x: {shape: [M, K, 3], dtype: float32}\n",
                             "y[m, q, r] = x[m, q, r]"))
    # a rank-2 output is already a row statement
    two = STACK.replace("y: {shape: [M, K, 2]", "y: {shape: [M, 2]").replace(
        "y[m, q, r] = where(r == 0, a[m, q], b[m, q])", "y[m, r] = where(r == 0, a[m, 0], b[m, 0])")
    assert not _merged(two)
    # an output a later statement reads keeps its own layout
    read = STACK.replace("outputs:\n  y: {shape: [M, K, 2], dtype: float32}\n",
                         "outputs:\n  y: {shape: [M, K, 2], dtype: float32}\n"
                         "  z: {shape: [M, K], dtype: float32}\n") + \
        "  - z[m, q] = y[m, q, 0] + y[m, q, 1]\n"
    assert not _merged(read)
    spec = load_spec_text(STACK)
    assert tailmerge.rewrite(spec, keep=True) is spec
