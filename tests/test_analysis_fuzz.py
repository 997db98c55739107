"""analyze end to end on random affine accesses: never a Python error, and every access it
proves in bounds is in bounds when enumerated at small sizes (soundness)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.analysis import analyze, check_sizes
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text

TEMPLATE = """\
nkigen: 1
name: fuzz
sizes:
  M: {{min: {mmin}}}
  J: {{min: 1, max: {jmax}}}
inputs:
  x: {{shape: ["{shape}"], dtype: float32}}
  z: {{shape: [M, J], dtype: float32}}
outputs:
  y: {{shape: [M], dtype: float32}}
ranges:
  j: J
compute:
  - y[i] = sum(x[{index}] * z[i, j], j)
"""


def _term(c: int, name: str) -> str:
    return f"{c} * {name}"


@settings(max_examples=25, deadline=None)
@given(a=st.integers(0, 3), b=st.integers(-1, 2), c=st.integers(-2, 2),
       p=st.integers(1, 3), q=st.integers(0, 2), r=st.integers(-1, 2),
       mmin=st.integers(1, 3), jmax=st.integers(1, 4))
def test_proven_accesses_are_in_bounds(a, b, c, p, q, r, mmin, jmax):
    index = f"{a} * i + {b} * j + {c}"
    shape = f"{p} * M + {q} * J + {r}"
    text = TEMPLATE.format(mmin=mmin, jmax=jmax, shape=shape, index=index)
    try:
        spec = load_spec_text(text, "fuzz.yaml")
    except NkigenError:
        return                      # the front end rejected it (e.g. a zero coefficient)
    try:
        analyze(spec)
    except NkigenError as e:
        assert all(d.loc is not None for d in e.diagnostics)
        return
    for m, jj in itertools.product(range(mmin, mmin + 6), range(1, jmax + 1)):
        if check_sizes(spec, {"M": m, "J": jj}):
            continue
        size = p * m + q * jj + r
        for i, j in itertools.product(range(m), range(jj)):
            assert 0 <= a * i + b * j + c < size, (index, shape, m, jj, i, j)


def test_in_bounds_linear_access_is_proven():
    text = TEMPLATE.format(mmin=1, jmax=4, shape="2 * M + J", index="2 * i + j")
    analyze(load_spec_text(text, "fuzz.yaml"))


CONV = """\
nkigen: 1
name: conv
sizes:
  H: {{min: 1, max: 40}}
  R: {{min: 1, max: 5}}
  O: {{value: "(H - {d} * (R - 1) - 1 + {pad}) // S + {k}"}}
params:
  S: {s}
inputs:
  x: {{shape: [H], dtype: float32}}
  w: {{shape: [R], dtype: float32}}
outputs:
  y: {{shape: [O], dtype: float32}}
ranges:
  r: R
compute:
  - y[o] += x[o * S + {d} * r + {off}] * w[r]
"""


@settings(max_examples=25, deadline=None)
@given(s=st.integers(1, 3), d=st.integers(1, 2), k=st.integers(0, 2), pad=st.integers(-1, 1),
       off=st.integers(-1, 1))
def test_derived_floor_sizes_proofs_are_sound(s, d, k, pad, off):
    spec = load_spec_text(CONV.format(s=s, d=d, k=k, pad=pad, off=off), "conv.yaml")
    try:
        analyze(spec)
    except NkigenError:
        return
    for h, r in itertools.product(range(1, 41), range(1, 6)):
        if check_sizes(spec, {"H": h, "R": r}):
            continue
        o_ext = (h - d * (r - 1) - 1 + pad) // s + k
        for o, rr in itertools.product(range(o_ext), range(r)):
            assert 0 <= o * s + d * rr + off < h, (s, d, k, pad, off, h, r, o, rr)


def test_dilated_strided_conv_is_proven():
    analyze(load_spec_text(CONV.format(s=2, d=2, k=1, pad=0, off=0), "conv.yaml"))
