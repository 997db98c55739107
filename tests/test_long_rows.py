"""Rows longer than one instruction or one SBUF partition takes: argmax / argmin past the 16384
elements of a max8 / nc_find_index8 operand, and scans past one partition's SBUF.

- argmax / argmin (codegen/argext.py ``_chunked``): a row whose declared max exceeds 16384 is
  reduced in ``ARG_CHUNK`` pieces, each by max8 / nc_find_index8 (8..16384 elements per
  partition: SH nki/api/nki/isa/__init__.py, nki 0.3; S25 general/nki/api/nki/isa/__init__.py,
  SDK 2.25), folded into a running best value (a later chunk wins only when strictly
  greater) and a float32 index (exact below 2**24). The reference is NumPy's first index of
  the extreme, so the rows below put the extreme in two chunks, at a chunk's first and last
  element, in a ragged last chunk (of fewer than 8 elements too: padded with -inf), in the
  last element alone, and fill rows with -inf / +inf; each must return exactly the
  reference's index, in both dialects and on both targets.
- scans (codegen/rows.py ``scan_chunks``, codegen/scan.py): a row whose operands and result
  overflow one partition at the declared max (17748 fp32 on trn2, 15018 on trn1) is scanned in
  ``SCAN_TILE`` chunks, each ``tensor_tensor_scan`` started from the previous chunk's last
  value (its ``initial``, a [P, 1] tile: SH/S25 tensor_tensor_scan). The engine computes in
  float32 and the carry is the fp32 running value, so the chunked kernel returns the
  whole-row kernel's bits where both exist, and matches the float64 reference within the
  spec's tolerance at sizes straddling the chunk and the partition limit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import assert_matches_reference, load_source  # noqa: E402

from nkigen.codegen.argext import ARG_CHUNK, MAX8_MAX  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.reference import evaluate  # noqa: E402

COMBOS = [(d, t) for d in ("nki", "neuronxcc") for t in ("trn2", "trn1")]
INF = np.inf

ARG = """\
nkigen: 1
name: longarg
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: {top}}}
inputs:
  x: {{shape: [M, N], dtype: {dt}}}
outputs:
  y: {{shape: [M], dtype: int32}}
compute:
  - y[m] = {fn}(x[m, n], n)
"""
NP_DT = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}


def _kernel(text: str, dialect: str, target: str):
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    return spec, src, load_source(src, spec.name)


def _arg_rows(n: int, fn: str, dt: str) -> np.ndarray:
    """130 rows of length n (a ragged second partition tile) that trip a wrong cross-chunk
    tie rule, a lost offset or a bad pad: the extreme (5.0, or +inf) placed in two chunks, at
    chunk boundaries, in the ragged last chunk and in the last element; rows of -inf / +inf;
    then small random integers (ties everywhere). For argmin every row is negated."""
    c = ARG_CHUNK
    last = n - 1
    rng = np.random.default_rng(n)
    rows = []

    def row(fill: float, **at: float) -> None:
        r = np.full(n, fill)
        for k, v in at.items():
            i = int(k[1:])
            if i < n:
                r[i] = v
        rows.append(r)

    row(-INF)                                             # all -inf: index 0
    row(INF)                                              # all +inf: index 0
    row(0.0, **{f"i{100}": 5.0, f"i{c + 7}": 5.0})        # the max in two chunks: the first
    row(0.0, **{f"i{c - 1}": 5.0, f"i{last}": 5.0})       # chunk 0's last vs the row's last
    row(0.0, **{f"i{c}": 5.0})                            # chunk 1's first element only
    row(0.0, **{f"i{last}": 5.0})                         # the last element only
    row(-INF, **{f"i{last}": -3.0})                       # one finite value, last, after -inf
    row(-INF, **{f"i{c}": -INF, f"i{last}": INF})         # +inf in the last element
    row(0.0, **{f"i{5}": INF, f"i{c + 3}": INF})          # +inf in two chunks
    row(-1.0, **{f"i{2 * c}": 0.0, f"i{last}": 0.0})      # ties in the ragged last chunk
    row(1.0)                                              # all equal: index 0
    filler = rng.integers(-2, 3, size=(130 - 2 * len(rows), n)).astype(np.float64)
    x = np.vstack(rows + [filler] + rows[::-1])
    if fn == "argmin":
        x = -x
    return x.astype(NP_DT[dt])


def _check_arg(spec, kernel, target: str, x: np.ndarray) -> None:
    import nkigen.sim as sim
    m, n = x.shape
    want = evaluate(spec, {"x": x}, {"M": m, "N": n})["y"]
    got = np.asarray(sim.simulate(kernel, target)(x), dtype=np.float64)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"N={n}: rows {bad[:6].tolist()} got {got[bad[:6]].tolist()}, "
                           f"want {want[bad[:6]].tolist()}")


@pytest.mark.parametrize("dialect, target", COMBOS)
@pytest.mark.parametrize("fn, dt", [("argmax", "float32"), ("argmin", "bfloat16")])
def test_chunked_arg_reduction_returns_the_first_index(fn, dt, dialect, target):
    """Declared max 262144 (a 256k vocabulary): N = 1 and 7 (one padded chunk), 16384 (one
    full chunk: the max8 limit), 16385 (a second chunk of one element, padded), 2 * 16384 + 5
    (a ragged third chunk under 8) and 40000; every row returns the reference's index."""
    assert ARG_CHUNK == MAX8_MAX == 16384
    spec, src, kernel = _kernel(ARG.format(top=262144, dt=dt, fn=fn), dialect, target)
    assert "ARG_CHUNK" in src and "max8(" in src and "nc_find_index8(" in src
    for n in (1, 7, MAX8_MAX, MAX8_MAX + 1, 2 * ARG_CHUNK + 5, 40000):
        _check_arg(spec, kernel, target, _arg_rows(n, fn, dt))


@pytest.mark.parametrize("dialect, target", COMBOS[::3])
@pytest.mark.parametrize("body", ["x[m, n] * 2.0 - 1.0", "where(x[m, n] > 4.0, 0.0, x[m, n])"])
def test_chunked_argmax_of_a_computed_row(body, dialect, target):
    """A computed fp32 chunk is padded in place, not copied (its tile is ARG_CHUNK wide: only a
    last chunk under 8 elements gets -inf columns; the bf16 argmin above takes the copy);
    N = 7, 16385 and 2 * 16384 + 5."""
    text = ARG.format(top=100000, dt="float32", fn="argmax").replace(
        "argmax(x[m, n], n)", f"argmax({body}, n)")
    spec, src, kernel = _kernel(text, dialect, target)
    assert "ARG_CHUNK" in src and "arow" not in src
    for n in (7, MAX8_MAX + 1, 2 * ARG_CHUNK + 5):
        _check_arg(spec, kernel, target, _arg_rows(n, "argmax", "float32"))


@pytest.mark.parametrize("dialect, target", COMBOS)
def test_argmax_of_a_128k_vocabulary(dialect, target):
    """Greedy decoding over a 128k vocabulary, 4 x 131072 fp32 logits (8 chunks), random
    normal logits with the maximum copied into a later chunk of two rows (first index wins)."""
    spec, _, kernel = _kernel(ARG.format(top=262144, dt="float32", fn="argmax"), dialect,
                              target)
    x = np.random.default_rng(7).normal(size=(4, 131072)).astype(np.float32)
    for r, later in ((1, 5 * ARG_CHUNK + 3), (2, 131071)):
        x[r, later] = x[r].max()
    _check_arg(spec, kernel, target, x)


def test_arg_reduction_at_the_max8_limit_keeps_one_operand():
    """A row declared at most 16384 long stays one max8 operand (no chunk loop: the shipped
    row_argmax form); one declared 16385 streams."""
    for top, chunked in ((MAX8_MAX, False), (MAX8_MAX + 1, True)):
        src = generate(load_spec_text(ARG.format(top=top, dt="float32", fn="argmax")))
        assert ("ARG_CHUNK" in src) == chunked
        assert src.count("max8(") == 1


def test_chunked_arg_reduction_in_a_fused_group_runs_as_its_own_statement():
    """A fused row pass keeps whole rows on chip, which a chunked argmax does not: the
    statement leaves the group (lower_group falls back) and streams its row on its own."""
    text = ARG.format(top=100000, dt="float32", fn="argmax").replace(
        "  y: {shape: [M], dtype: int32}\n",
        "  y: {shape: [M], dtype: int32}\n  s: {shape: [M], dtype: float32}\n").replace(
        "  - y[m] = argmax(x[m, n], n)\n",
        "  - y[m] = argmax(x[m, n], n)\n  - s[m] = sum(x[m, n], n)\n")
    spec = load_spec_text(text)
    for dialect, target in COMBOS[::3]:
        src = generate(spec, target=target, dialect=dialect)
        assert "ARG_CHUNK" in src
        kernel = load_source(src, spec.name)
        import nkigen.sim as sim
        x = _arg_rows(MAX8_MAX + 9, "argmax", "float32")
        x = np.where(np.isinf(x), 0.0, x).astype(np.float32)     # a finite sum
        got = sim.simulate(kernel, target)(x)
        assert_matches_reference(spec, {"M": 130, "N": MAX8_MAX + 9}, got, inputs={"x": x})


# ---- scans --------------------------------------------------------------------------------

CUMSUM = """\
nkigen: 1
name: longscan
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: {top}}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = cumsum(x[m, n], n)
"""

RECUR = """\
nkigen: 1
name: longrec
sizes:
  C: {{min: 1, max: 300}}
  T: {{min: 1, max: {top}}}
inputs:
  a: {{shape: [C, T], dtype: float32}}
  x: {{shape: [C, T], dtype: bfloat16}}
  h0: {{shape: [C], dtype: bfloat16}}
outputs:
  h: {{shape: [C, T], dtype: {out}, initial: h0}}
compute:
  - h[c, t] = a[c, t] * h[c, t - 1] + x[c, t]
tests:
  inputs:
    a: {{dist: uniform, low: 0.5, high: 1.0}}
"""

# the whole-row limits (R12-6: two operand rows, the result row and an initial column in one
# partition, 212984 B on trn2, 180224 B on trn1): 12 B per element for the cumsum (fp32 ones,
# x, result), 8 for the recurrence (fp32 a, bf16 x, bf16 result) and its bf16 h0 column
LAST_FIT = {"trn2": 17748, "trn1": 15018}
LAST_FIT_RECUR = {"trn2": (212984 - 2) // 8, "trn1": (180224 - 2) // 8}


def _run(spec, kernel, target, sizes):
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs
    inputs = make_inputs(spec, sizes)
    out = sim.simulate(kernel, target)(*inputs.values())
    return inputs, (out,) if len(spec.outputs) == 1 else out


@pytest.mark.parametrize("dialect, target", COMBOS)
def test_chunked_cumsum_matches_the_reference_across_the_limits(dialect, target):
    """N = 1, 2048 (one whole chunk), 2049 (a chunk of one more), 4097, the target's last
    whole-row fit and one past it, in a kernel declared up to 200000 (chunked), 130 rows."""
    spec, src, kernel = _kernel(CUMSUM.format(top=200000), dialect, target)
    assert "SCAN_TILE" in src and "initial=carry" in src.replace(", carry[", ", initial=carry[")
    last = LAST_FIT[target]
    for m, n in ((130, 1), (130, 2048), (130, 2049), (3, 4097), (2, last), (2, last + 1)):
        inputs, out = _run(spec, kernel, target, {"M": m, "N": n})
        assert_matches_reference(spec, {"M": m, "N": n}, out, inputs=inputs)


@pytest.mark.parametrize("dialect, target", COMBOS)
def test_chunked_scan_gives_the_whole_row_kernels_bits(dialect, target):
    """At the target's last whole-row size both forms exist: the kernel declared up to that
    size (one tensor_tensor_scan per row) and the one declared one further (chunks carried
    through ``initial``) return the same bits, for a cumsum and for a recurrence with a row
    coefficient, a bf16 initial column and a bf16 output (the carry stays fp32)."""
    for text, last, name in ((lambda top: CUMSUM.format(top=top), LAST_FIT[target], "M"),
                             (lambda top: RECUR.format(top=top, out="bfloat16"),
                              LAST_FIT_RECUR[target], "C")):
        sizes = {name: 3, "N" if name == "M" else "T": last}
        outs = []
        for top, chunked in ((last, False), (last + 1, True)):
            spec, src, kernel = _kernel(text(top), dialect, target)
            assert ("SCAN_TILE" in src) == chunked
            inputs, out = _run(spec, kernel, target, sizes)
            assert_matches_reference(spec, sizes, out, inputs=inputs)
            outs.append(np.asarray(out[0]).view(np.uint16 if out[0].dtype.itemsize == 2
                                                else np.uint32))
        assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dialect, target", COMBOS)
def test_chunked_recurrence_with_an_initial_column(dialect, target):
    """h[c, t] = a[c, t] * h[c, t - 1] + x[c, t] from h0[c], fp32 output, T up to 100000:
    T = 1, 2049 and 9000 (chunks of 2048, the last ragged) on 130 channels; the carry is set
    from the loaded h0 column (a VectorE copy widening bf16 to fp32) once per row tile."""
    spec, src, kernel = _kernel(RECUR.format(top=100000, out="float32"), dialect, target)
    assert "SCAN_TILE" in src and "h0" in src
    for t in (1, 2049, 9000):
        sizes = {"C": 130, "T": t}
        inputs, out = _run(spec, kernel, target, sizes)
        assert_matches_reference(spec, sizes, out, inputs=inputs)


def test_chunked_scan_of_a_rank3_statement_keeps_its_outer_loop():
    """y[b, c, t] = cumsum(x[b, c, t], t) with T up to 50000: the outer index stays a loop
    around the row tiles and their chunk loops; B = 2, C = 130, T = 2050."""
    text = """\
nkigen: 1
name: cs3
sizes:
  B: {min: 1, max: 8}
  C: {min: 1, max: 300}
  T: {min: 1, max: 50000}
inputs:
  x: {shape: [B, C, T], dtype: float32}
outputs:
  y: {shape: [B, C, T], dtype: float32}
compute:
  - y[b, c, t] = cumsum(x[b, c, t], t)
"""
    for dialect, target in COMBOS[::3]:
        spec, src, kernel = _kernel(text, dialect, target)
        assert "SCAN_TILE" in src
        sizes = {"B": 2, "C": 130, "T": 2050}
        inputs, out = _run(spec, kernel, target, sizes)
        assert_matches_reference(spec, sizes, out, inputs=inputs)


def test_mamba_selective_scan_over_a_long_sequence():
    """specs/mamba_scan.yaml with T up to 100000 (shipped: 2048): the recurrence along t,
    with the coefficient exp(delta[c, t] * A[c, s]) a computed row and s an outer loop, is
    scanned in chunks, the contraction over s runs as its own stage; T = 4100 (three chunks,
    the last ragged) matches the reference."""
    text = (Path(__file__).resolve().parent.parent / "specs" / "mamba_scan.yaml").read_text()
    assert "T: {min: 1, max: 2048}" in text
    text = text.replace("T: {min: 1, max: 2048}", "T: {min: 1, max: 100000}")
    for dialect, target in COMBOS[::3]:
        spec, src, kernel = _kernel(text, dialect, target)
        assert "SCAN_TILE" in src
        sizes = {"C": 3, "S": 2, "T": 4100}
        inputs, out = _run(spec, kernel, target, sizes)
        assert_matches_reference(spec, sizes, out, inputs=inputs)
