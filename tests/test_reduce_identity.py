"""Codegen (row reductions): the accumulator of a max/min reduction starts at the operator's
identity (-inf / +inf), so a row of infinities reduces to that infinity as np.max / np.min do.

A -FLT_MAX start (the previous lowering) returned -3.4e38 for a row of -inf: a wrong result for
a masked row (every logit -inf), which is an ordinary input of a row max. memset takes any
value of the tile's dtype (SH/S29 nki/api/nki/isa/__init__.py memset, nki 0.3; S25
general/nki/api/nki/isa/__init__.py memset, SDK 2.25); the infinities print as ``-math.inf`` /
``math.inf`` (nkigen.codegen.pyexpr; the kernels import math).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from codegen_check import load_source

from nkigen import sim
from nkigen.codegen import generate
from nkigen.frontend import load_spec, load_spec_text

SPECS = Path(__file__).resolve().parents[1] / "specs"
FMAX = np.finfo(np.float32).max

REDUCE = """\
nkigen: 1
name: {name}
sizes:
  M: {{min: 1, max: 4096}}
  N: {{min: 1, max: 8192}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [{out}], dtype: float32}}
compute:
  - {expr}
tests:
  cases: [{{M: 3, N: 5}}]
"""


def _run(spec, dialect: str, x: np.ndarray) -> tuple[str, np.ndarray]:
    src = generate(spec, dialect=dialect)
    return src, sim.simulate(load_source(src, spec.name))(x)


def _rows(n: int) -> np.ndarray:
    """Rows of -inf, +inf, the finite extremes and a mix: every row's max/min is an edge."""
    rows = [[-np.inf] * n, [np.inf] * n, [-FMAX] * n, [FMAX] * n,
            [-np.inf] * (n - 1) + [-FMAX], [np.inf] * (n - 1) + [FMAX],
            list(np.linspace(-3.0, 4.0, n))]
    return np.array(rows, np.float32)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("n", [5, 2048, 2049])     # one chunk, a full chunk, a second chunk
def test_row_max_of_infinities(dialect: str, n: int) -> None:
    spec = load_spec(SPECS / "row_max.yaml")
    x = _rows(n)
    src, y = _run(spec, dialect, x)
    np.testing.assert_array_equal(y, x.max(axis=1))
    assert "3.4028234663852886e+38" not in src      # no finite stand-in for the identity
    assert "-math.inf" in src


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name,out,expr,ref", [
    ("row_min", "M", "y[m] = min(x[m, n], n)", lambda x: x.min(axis=1)),
    ("col_max", "N", "y[n] = max(x[m, n], m)", lambda x: x.max(axis=0)),
    ("col_min", "N", "y[n] = min(x[m, n], m)", lambda x: x.min(axis=0)),
])
def test_min_and_column_reductions_of_infinities(dialect, name, out, expr, ref) -> None:
    spec = load_spec_text(REDUCE.format(name=name, out=out, expr=expr))
    x = _rows(6)
    x = x if out == "M" else np.ascontiguousarray(x.T)
    _, y = _run(spec, dialect, x)
    np.testing.assert_array_equal(y, ref(x))
