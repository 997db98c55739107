"""analyze (tiling): per-tile maps enumerate every point exactly once and stay in bounds."""

from __future__ import annotations

import itertools

import numpy as np
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.analysis import analyze, tile_maps
from nkigen.analysis.sizes import complete_sizes
from nkigen.frontend import load_spec_text
from nkigen.ir import index_symbol, size_symbol

CONV = """\
nkigen: 1
name: conv
sizes:
  C: {max: 64}
  H: {min: 1, max: 64}
  R: {min: 1, max: 5}
  O: {value: "(H - R) // S + 1"}
  M: {multiple_of: 8, max: 64}
params:
  S: 2
inputs:
  x: {shape: [C, H], dtype: float32}
  w: {shape: [M, C, R], dtype: float32}
outputs:
  y: {shape: [M, O], dtype: float32}
ranges:
  r: R
compute:
  - y[m, o] += w[m, c, r] * x[c, o * S + r]
"""

ANALYSIS = analyze(load_spec_text(CONV, "conv.yaml"))


def _eval(e, env):
    return int(sympy.sympify(e).xreplace({size_symbol(k): v for k, v in env.items()}))


def test_exact_tiles_from_multiple_of():
    tm = tile_maps(ANALYSIS, 0, {"m": 8, "o": 4})
    m, o = tm.index("m"), tm.index("o")
    assert not m.partial and m.count == size_symbol("M") / 8
    assert o.partial and isinstance(o.count, sympy.ceiling)
    x = next(t for t in tm.accesses if t.map.tensor == "x")
    assert x.dims[1].coeffs == (("o_t", 8), ("r", 1), ("o_o", 2))
    assert tm.columns == ("m_t", "o_t", "c", "r", "m_o", "o_o")


def test_tile_of_16_on_multiple_of_8_is_partial():
    assert tile_maps(ANALYSIS, 0, {"m": 16}).index("m").partial


@settings(max_examples=25, deadline=None)
@given(
    C=st.integers(1, 6), H=st.integers(5, 24), R=st.integers(1, 5), M8=st.integers(1, 3),
    tiles=st.fixed_dictionaries({}, optional={
        "m": st.integers(1, 20), "o": st.integers(1, 9), "c": st.integers(1, 4),
        "r": st.integers(1, 3)}),
)
def test_tiles_cover_index_space_once_and_stay_in_bounds(C, H, R, M8, tiles):
    sizes = complete_sizes(ANALYSIS.spec, {"C": C, "H": H, "R": R, "M": 8 * M8})
    tm = tile_maps(ANALYSIS, 0, tiles)
    sa = ANALYSIS.statements[0]
    names = [li.name for li in sa.loop_indices]
    extents = {n: _eval(ANALYSIS.extent(n), sizes) for n in names}
    # enumerate (outer, inner) per index, in tiled coordinates
    per_index = {}
    for n in names:
        if n in tiles:
            t = tm.index(n)
            count = _eval(t.count, sizes)
            last = _eval(t.last, sizes)
            pairs = [(k, i) for k in range(count)
                     for i in range(_eval(t.inner_extent(sympy.Integer(k)), sizes))]
            assert len({k * t.tile + i for k, i in pairs}) == len(pairs)
            if not t.partial:
                assert extents[n] % t.tile == 0
            assert last == extents[n] - (count - 1) * t.tile and 1 <= last <= t.tile
            per_index[n] = [{t.outer: k, t.inner: i} for k, i in pairs]
        else:
            per_index[n] = [{n: v} for v in range(extents[n])]
    points = [dict(kv for d in combo for kv in d.items())
              for combo in itertools.product(*per_index.values())]
    original = np.array([[sympy.sympify(tm.substitution.get(index_symbol(n), index_symbol(n)))
                          .xreplace({index_symbol(k): v for k, v in p.items()}) for n in names]
                         for p in points], dtype=np.int64).reshape(-1, len(names))
    expected = np.array(list(itertools.product(*[range(extents[n]) for n in names])),
                        dtype=np.int64).reshape(-1, len(names))
    assert len(original) == len(expected)
    assert np.array_equal(np.unique(original, axis=0), np.unique(expected, axis=0))
    for ta in tm.accesses:
        shape = [_eval(d, sizes) for d in ta.map.shape]
        for dim, dm in enumerate(ta.dims):
            f = sympy.lambdify([index_symbol(c) for c in ta.columns],
                               dm.expr.xreplace({size_symbol(k): v for k, v in sizes.items()}),
                               "numpy")
            cols = [np.array([p[c] for p in points], dtype=np.int64) for c in ta.columns]
            vals = np.broadcast_to(np.asarray(f(*cols)), (len(points),))
            assert vals.min(initial=0) >= 0 and vals.max(initial=0) < shape[dim]
            orig = sympy.lambdify([index_symbol(n) for n in names],
                                  ta.map.dims[dim].expr, "numpy")
            ref = np.broadcast_to(np.asarray(orig(*original.T)), (len(points),))
            assert np.array_equal(vals, ref)
