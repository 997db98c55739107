"""Classic per-axis HBM views (codegen/classic_index.py): an index term that is a whole number
of rows goes to the row axis even when it takes ``%`` or ``//`` of a trace-time loop index
(fuzz9's pixel shuffle read ``x[4 * c + 2 * (i % 2) + j % 2, ..]`` put ``2 * H * W * (i % 2)``
on the columns, past the row's end: the simulator refused the kernel), and a free index that
steps a whole column axis or more gets the flat index instead of a view that runs past its row
(``y[h, w, b] = x[b, h, w]`` read ``x.reshape((B * H, W))[.., w + H * W * i_f]``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.codegen import plan as P  # noqa: E402
from nkigen.codegen.classic_index import _integer_poly, as_view  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SHUFFLE = """nkigen: 1
name: shuffle
doc: pixel shuffle by 2
sizes:
  C: {min: 1, max: 256}
  H: {min: 1, max: 128}
  W: {min: 1, max: 128}
  C4: {value: "4 * C"}
  H2: {value: "2 * H"}
  W2: {value: "2 * W"}
inputs:
  x: {shape: [C4, H, W], dtype: float32}
outputs:
  y: {shape: [C, H2, W2], dtype: float32}
compute:
  - y[c, i, j] = x[4 * c + 2 * (i % 2) + j % 2, i // 2, j // 2]
"""

CHANNELS_LAST = """nkigen: 1
name: channels_last
doc: planes to channels-last
sizes:
  B: {min: 1, max: 9}
  H: {min: 1, max: 256}
  W: {min: 1, max: 256}
inputs:
  x: {shape: [B, H, W], dtype: float32}
outputs:
  y: {shape: [H, W, B], dtype: float32}
compute:
  - y[h, w, b] = x[b, h, w]
"""


@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("text,cases", [
    (SHUFFLE, [{"C": 1, "H": 1, "W": 1}, {"C": 33, "H": 5, "W": 6}]),
    (CHANNELS_LAST, [{"B": 9, "H": 5, "W": 7}, {"B": 3, "H": 130, "W": 20}]),
], ids=["shuffle", "channels_last"])
def test_classic_views_stay_inside_their_rows(target, text, cases):
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect="neuronxcc")
    for sizes in cases:
        check_case(spec, sizes, target=target, src=src)


def test_a_mod_of_a_loop_index_is_an_integer_term():
    i, h = sympy.Symbol("i_i", integer=True, nonnegative=True), sympy.Symbol("H", positive=True)
    assert _integer_poly(2 * sympy.Mod(i, 2))
    assert _integer_poly(sympy.floor(i / 2) + 3 * h)
    assert not _integer_poly(i / 2)                    # half a row is not a row


def test_a_free_step_of_a_whole_column_axis_has_no_view():
    b, h, w = (sympy.Symbol(n, positive=True, integer=True) for n in "BHW")
    shape = (b, h, w)
    # partition step W (rows of [B * H, W]); free step H * W: past the row's end
    wide = P.ApRef("x", sympy.Integer(0), ((w, sympy.Integer(128)), (h * w, sympy.Integer(4))))
    assert as_view(wide, shape) is None
    # the boundary: a free step of 1 keeps its per-axis view
    plain = P.ApRef("x", sympy.Integer(0), ((w, sympy.Integer(128)), (sympy.Integer(1), w)))
    assert as_view(plain, shape) is not None
