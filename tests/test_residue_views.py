"""Divided partition indices write a reshaped view of the output (nkigen/codegen/residue.py).

``y[r, n] = x[r // 2, n]`` put ``n`` on the partitions with nothing on the free axis, one
element per DMA descriptor: 477.61 us modelled at 130 x 300 bfloat16 on trn2; writing ``y``
viewed as ``[M, 2, N]`` takes 3.85 us.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import residue, revrows  # noqa: E402
from nkigen.codegen.classic_index import _integer_poly  # noqa: E402
from nkigen.diagnostics import NkigenError  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.ir import accesses, index_symbol, size_symbol  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SPEC = """nkigen: 1
name: ups
doc: d
sizes:
  M: MDECL
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [XSHAPE, N], dtype: DTYPE}
  z: {shape: [ROWS, N], dtype: float32}
outputs:
  y: {shape: [ROWS, N], dtype: DTYPE}
compute:
  - STATEMENT
tests:
  cases:
    - CASE
"""
UPSAMPLE = "y[r, n] = x[r // 2, n]"
MIXED = "y[r, n] = x[r // 2, n] * z[r, n]"
PHASES = "y[r, n] = x[r % 4, n] * z[r, n]"
MASKED = "y[r, n] = where(r < n, x[r // 2, n] + z[r, n], 0.0)"
SCANNED = "y[r, n] = cumsum(x[r // 2, n] * z[r, n], n)"


def _spec(statement: str, rows: str = '"2 * M"', xshape: str = "M", mdecl: str = "{min: 1, "
          "max: 1024}", dtype: str = "float32", case: str = "{M: 130, N: 300}"):
    text = (SPEC.replace("STATEMENT", statement).replace("ROWS", rows).replace("XSHAPE", xshape)
            .replace("MDECL", mdecl).replace("DTYPE", dtype).replace("CASE", case))
    return load_spec_text(text)


def _views(spec) -> list[tuple[str, str, tuple, tuple]]:
    """(view, its base, its shape, the statement's new left-hand side) per view added."""
    new = residue.rewrite(spec, "trn2")
    views = {t.name: t for t in new.temps if t.view_of}
    return [(v.name, v.view_of, v.shape, st.lhs) for st in new.statements
            for v in [views.get(st.target)] if v is not None]


def test_a_divided_partition_index_writes_a_view_of_the_output():
    m = size_symbol("M")
    for statement in (UPSAMPLE, MIXED, MASKED, SCANNED):
        assert _views(_spec(statement)) == [("y_v", "y", (m, 2, size_symbol("N")),
                                             ("r_q", "r_r", "n"))], statement
    # a size declared a multiple of the divisor: M // 4 rows of 4
    got = _views(_spec(PHASES, rows="M", xshape="4", mdecl="{multiple_of: 4, min: 4, max: 4096}"))
    assert got == [("y_v", "y", (sympy.floor(m / 4), 4, size_symbol("N")), ("r_q", "r_r", "n"))]


def test_where_the_view_does_not_apply():
    # the rows must be a multiple of the divisor at every allowed size: multiple_of 4 (above)
    # passes; multiple_of 2, or none, with r % 4 does not
    for mdecl in ("{multiple_of: 2, min: 2, max: 4096}", "{min: 1, max: 4096}"):
        assert _views(_spec(PHASES, rows="M", xshape="4", mdecl=mdecl,
                            case="{M: 8, N: 3}")) == []
    assert _views(_spec(UPSAMPLE, rows='"2 * M + 1"', case="{M: 8, N: 3}")) == []  # odd rows
    assert _views(_spec("y[r, n] = x[r // 2, n] + z[r % 4, n]",
                        case="{M: 8, N: 3}")) == []      # r divided by 2 and by 4
    assert _views(_spec("y[r, n] = z[r, n] * x[r // 2, n % 2]",
                        case="{M: 8, N: 3}")) == []      # n stays divided
    assert _views(_spec("y[r, n] = z[r, n] + 1.0")) == []     # nothing divided
    # the output read by a later statement: both split (the reader reads the view)
    reread = SPEC.replace("  - STATEMENT", f"  - {UPSAMPLE}\n  - t[r, n] = 2.0 * y[r, n]").replace(
        "outputs:\n", "outputs:\n  t: {shape: [ROWS, N], dtype: float32}\n")
    reread = reread.replace("ROWS", '"2 * M"').replace("XSHAPE", "M").replace(
        "MDECL", "{min: 1, max: 64}").replace("DTYPE", "float32").replace("CASE", "{M: 8, N: 3}")
    assert [v for v, *_ in _views(load_spec_text(reread))] == ["y_v", "t_v"]
    check_case(load_spec_text(reread), {"M": 8, "N": 3})


RANK1 = """nkigen: 1
name: r1
sizes:
  M: {min: 1, max: 4096}
inputs:
  x: {shape: [M, K], dtype: float32}
  z: {shape: ["2 * M"], dtype: float32}
outputs:
  y: {shape: ["2 * M"], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 300, K: 70}
"""


@pytest.mark.parametrize("statement", ["y[r] = 3.0 * x[r // 2, 0]",
                                       "y[r] = z[r] + sum(x[r // 2, k], k)"])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_rank_one_targets_split_into_rows_of_pairs(statement, dialect, target):
    """``y[r] = ... x[r // 2]``: a build error before (``//`` of the tiled index); the view
    ``[M, 2]`` puts ``r // 2`` on the partitions and ``r % 2`` on the free axis, and ``z[r]``
    reads ``z[2 * r_q + r_r]``: one dimension stepping on both axes."""
    text = RANK1.replace("STATEMENT", statement).replace(
        "  M: {min: 1, max: 4096}", "  M: {min: 1, max: 4096}\n  K: {min: 1, max: 512}")
    spec = load_spec_text(text)
    assert [lhs for *_, lhs in _views(spec)] == [("r_q", "r_r")]
    check_case(spec, {"M": 300, "K": 70}, target=target,
               src=generate(spec, target=target, dialect=dialect))


WINDOW = """nkigen: 1
name: win
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
  L: {value: "M + N - 1"}
inputs:
  b: {shape: [L], dtype: float32}
  s: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 130, N: 300}
"""


@pytest.mark.parametrize("statement", ["y[i, j] = s[i, j] * b[i + j]",
                                       "y[i, j] = s[i, j] + b[i - j + N - 1]"])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_one_dimension_read_along_both_tile_axes(statement, target):
    """A Hankel read ``b[i + j]`` and a relative-position bias ``b[i - j + N - 1]`` index one
    dimension with the partition and the free index: a build error before ("mixes i and j
    in one dimension"); in the current API one access pattern whose steps are the two
    coefficients (the reversed one loaded ascending and reversed on chip,
    codegen/revrows.py). The classic dialect keeps the located error: its form would index
    one flattened axis with two aranges, which no classic doc shows (review 8 R8-6)."""
    spec = load_spec_text(WINDOW.replace("STATEMENT", statement))
    check_case(spec, {"M": 130, "N": 300}, target=target, src=generate(spec, target=target))
    with pytest.raises(NkigenError, match="mixes i and j in one dimension"):
        generate(spec, target=target, dialect="neuronxcc")


@pytest.mark.parametrize("statement,dtype", [(UPSAMPLE, "bfloat16"), (MIXED, "float32"),
                                             (MASKED, "float32"), (SCANNED, "float32")])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_view_kernels_match_the_reference(statement, dtype, dialect, target):
    spec = _spec(statement, dtype=dtype)
    src = generate(spec, target=target, dialect=dialect)
    assert "y_v = y.reshape((M, 2, N" in src
    if dialect == "nki":        # raw access patterns on the tensor nl.ndarray returned
        assert "y_v.ap(" not in src
    check_case(spec, {"M": 130, "N": 300}, target=target, src=src)


@pytest.mark.parametrize("dialect,target", [("nki", "trn1"), ("neuronxcc", "trn2")])
def test_row_phase_kernels_match_the_reference(dialect, target):
    spec = _spec(PHASES, rows="M", xshape="4", mdecl="{multiple_of: 4, min: 4, max: 4096}",
                 case="{M: 256, N: 300}")
    src = generate(spec, target=target, dialect=dialect)
    assert "y_v = y.reshape((M // 4, 4, N" in src
    for sizes in ({"M": 256, "N": 300}, {"M": 4, "N": 1}):
        check_case(spec, sizes, target=target, src=src)


def test_the_view_is_far_cheaper_in_the_cost_model(monkeypatch):
    import nkigen.sim as sim

    def latency() -> float:
        spec = _spec(UPSAMPLE, dtype="bfloat16")
        kernel = load_source(generate(spec, target="trn2"), spec.name)
        res = sim.run(kernel, [sim.placeholder((130, 300), "bfloat16"),
                               sim.placeholder((260, 300), "float32")], target="trn2",
                      numerics=False)
        return res.report.latency_us

    fast = latency()
    monkeypatch.setattr(residue, "rewrite", lambda spec, target: spec)
    gathered = latency()        # rows gathered one per partition (codegen/revrows.py)
    monkeypatch.setattr(revrows, "divided_rows", lambda c, ctx, a: None)
    slow = latency()            # the row lowering's scalar loop
    assert fast * 20 < slow and fast <= gathered, (fast, gathered, slow)


def test_classic_views_take_size_floors_as_integers():
    """A term with the ``H // 2`` of a shape goes to the row of a classic view, and so does a
    whole number of rows that takes a floor of an index (codegen/classic_index.py; it went
    to the columns, past the row's end: tests/test_classic_view_rows.py); half a row does
    not."""
    i, m = index_symbol("i_b"), index_symbol("m")
    h = size_symbol("H")
    assert _integer_poly(2 * i * sympy.floor(h / 2))
    assert _integer_poly(i * sympy.Mod(h, 3) + 1)
    assert _integer_poly(2 * sympy.floor(m / 3))
    assert not _integer_poly(i / 2)
    assert not _integer_poly(sympy.floor(m / 3) / 2)


MATMUL = """nkigen: 1
name: mm_up
sizes:
  M: {min: 1, max: 1024}
  K: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
inputs:
  x: {shape: [M, K], dtype: bfloat16}
  w: {shape: [K, N], dtype: bfloat16}
outputs:
  y: {shape: ["2 * M", N], dtype: float32}
compute:
  - y[r, n] += x[r // 2, k] * w[k, n]
tests:
  cases:
    - {M: 128, K: 256, N: 512}
"""


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_a_contraction_with_upsampled_rows_takes_the_matmul_lowering(dialect, target,
                                                                     monkeypatch):
    """``y[r, n] += x[r // 2, k] * w[k, n]``: 993.56 us modelled on trn2 through the row
    lowering; on the view the matmul lowering takes it (12.52 us)."""
    import nkigen.sim as sim
    spec = load_spec_text(MATMUL)
    src = generate(spec, target=target, dialect=dialect)
    assert "y_v = y.reshape((M, 2, N" in src and "nc_matmul" in src
    check_case(spec, {"M": 128, "K": 256, "N": 512}, target=target, src=src)

    def latency(text: str) -> float:
        kernel = load_source(text, spec.name)
        res = sim.run(kernel, [sim.placeholder((128, 256), "bfloat16"),
                               sim.placeholder((256, 512), "bfloat16")], target=target,
                      numerics=False)
        return res.report.latency_us

    fast = latency(src)
    monkeypatch.setattr(residue, "rewrite", lambda spec, target: spec)
    assert fast * 20 < latency(generate(spec, target=target, dialect=dialect))


FREE = """nkigen: 1
name: colup
sizes:
  M: {min: 1, max: 2048}
  W: {min: 1, max: 1024}
inputs:
  x: {shape: [M, XW], dtype: float32}
outputs:
  y: {shape: [M, YW], dtype: float32}
compute:
  - y[m, w] = x[m, w // 2]
tests:
  cases:
    - {M: 256, W: 300}
"""
PLANES = """nkigen: 1
name: up2d
sizes:
  C: {min: 1, max: 64}
  H: {min: 1, max: 128}
  W: {min: 1, max: 128}
inputs:
  x: {shape: [C, H, W], dtype: bfloat16}
outputs:
  y: {shape: [C, "2 * H", "2 * W"], dtype: bfloat16}
compute:
  - y[c, h, w] = x[c, h // 2, w // 2]
tests:
  cases:
    - {C: 4, H: 32, W: 32}
"""


def _latency(spec, target: str, shapes, dtype: str, src: str) -> float:
    import nkigen.sim as sim
    kernel = load_source(src, spec.name)
    res = sim.run(kernel, [sim.placeholder(s, dtype) for s in shapes], target=target,
                  numerics=False)
    return res.report.latency_us


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("nki", "trn1"),
                                            ("neuronxcc", "trn2")])
def test_a_divided_free_index_is_expanded_on_chip(dialect, target, monkeypatch):
    """``y[m, w] = x[m, w // 2]``: 1,011.44 us modelled on trn2 with ``w`` in a scalar loop
    (887.46 us classic); 5.75 us loading contiguous rows and copying them twice with a free
    step of 2."""
    from nkigen.codegen import tilexpr
    spec = load_spec_text(FREE.replace("XW", "W").replace("YW", '"2 * W"'))
    src = generate(spec, target=target, dialect=dialect)
    assert ("x_e[0:psz, 1:2 * (fsz // 2):2]" if dialect == "nki" else
            "x_e[i_p, 1 + 2 * i_f_1024] = nisa.tensor_copy(") in src
    for sizes in ({"M": 256, "W": 300}, {"M": 3, "W": 1}, {"M": 130, "W": 1025 - 1}):
        check_case(spec, sizes, target=target, src=src)
    fast = _latency(spec, target, [(256, 300)], "float32", src)
    monkeypatch.setattr(tilexpr.Compiler, "expanded_load", lambda self, ctx, a: None)
    slow = _latency(spec, target, [(256, 300)], "float32",
                    generate(spec, target=target, dialect=dialect))
    assert fast * 20 < slow, (fast, slow)


@pytest.mark.parametrize("tile,expanded", [(None, True), (30, True), (31, False)])
def test_the_expansion_needs_chunks_starting_on_a_multiple_of_the_divisor(tile, expanded):
    # N columns (N odd allowed): expanded too since the ragged extents (tests/test_divided_rows
    # .py), as long as every free chunk starts on a multiple of the divisor: a free tile of 31
    # columns (schedule hint) starts the second chunk mid-pair, so the scalar loop stays
    text = """nkigen: 1
name: colodd
sizes:
  M: {min: 1, max: 2048}
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [M, N], dtype: float32}
  z: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - y[m, n] = x[m, n // 2] + z[m, n]
tests:
  cases:
    - {M: 20, N: 31}
"""
    if tile is not None:
        text = text.replace("tests:", f"schedule:\n  tiles: {{n: {tile}}}\ntests:")
    spec = load_spec_text(text)
    src = generate(spec)
    assert ("x_e" in src) is expanded, src
    check_case(spec, {"M": 20, "N": 31}, src=src)
    check_case(spec, {"M": 20, "N": 65}, src=src)


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_planes_upsampled_on_both_axes(dialect, target):
    """``y[c, h, w] = x[c, h // 2, w // 2]``: 319.27 us modelled on trn2 (615.71 us classic),
    3.97 us with the rows viewed as pairs and the columns expanded on chip."""
    spec = load_spec_text(PLANES)
    src = generate(spec, target=target, dialect=dialect)
    assert "y_v = y.reshape((C, H, 2, 2 * W" in src and "x_e" in src
    check_case(spec, {"C": 4, "H": 32, "W": 32}, target=target, src=src)
    assert _latency(spec, target, [(4, 32, 32)], "bfloat16", src) < 10.0


CHAIN = """nkigen: 1
name: chain
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
inputs:
  x: {shape: [M, N], dtype: float32}
  z: {shape: ["2 * M", N], dtype: float32}
TEMPS
outputs:
  y: {shape: ["2 * M", N], dtype: float32}
OUTS
compute:
  - t[r, n] = x[r // 2, n] + 1.0
  - CONSUMER
tests:
  cases:
    - {M: 70, N: 300}
"""


def _chain(consumer: str, temp: bool):
    t = '  t: {shape: ["2 * M", N], dtype: float32}'
    text = CHAIN.replace("CONSUMER", consumer).replace(
        "TEMPS", "temps:\n" + t if temp else "").replace("OUTS", "" if temp else t)
    return load_spec_text(text)


@pytest.mark.parametrize("temp", [True, False])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_a_view_and_its_reader_split_together(temp, dialect, target):
    """``t[r, n] = x[r // 2, n]`` read back by ``y[r, n] = t[r, n] * z[r, n]``: both write
    views and the reader reads ``t``'s (485.58 us modelled on trn2 for the temp form before,
    13.54 us after; 258.88 -> 7.37 us with t an output)."""
    spec = _chain("y[r, n] = t[r, n] * z[r, n]", temp)
    got = _views(spec)
    assert [(v, base, lhs) for v, base, _, lhs in got] == [
        ("t_v", "t", ("r_q", "r_r", "n")), ("y_v", "y", ("r_q2", "r_r2", "n"))]
    reader = residue.rewrite(spec, "trn2").statements[1]
    assert {a.tensor for a in accesses(reader.rhs)} == {"t_v", "z_v"}   # z viewed too
    check_case(spec, {"M": 70, "N": 300}, target=target,
               src=generate(spec, target=target, dialect=dialect))


def test_a_reader_that_cannot_split_keeps_both_as_they_were():
    # the column sum reduces over r: its target has no r to split, so the producer is left
    # alone too (a view of t read through r // 2 and r % 2 would cliff the sum instead)
    spec = _chain("y[r, n] = t[r, n] * z[r, n]", temp=True)
    summed = load_spec_text(CHAIN.replace("CONSUMER", "s[n] = sum(t[r, n], r)").replace(
        "TEMPS", 'temps:\n  t: {shape: ["2 * M", N], dtype: float32}').replace(
        "OUTS", "  s: {shape: [N], dtype: float32}").replace(
        '  y: {shape: ["2 * M", N], dtype: float32}\n', ""))
    assert _views(summed) == []
    check_case(summed, {"M": 70, "N": 300})
    assert _views(spec) != []


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_int32_expansion_copies_are_pinned_to_vector_and_exact(dialect, target):
    """Review 8 R8-4: an expansion copy left to the compiler could run on ScalarE, which
    copies through float32 (SH nki/api/nki/isa/__init__.py tensor_copy): 2**24 + 1 is the
    first int32 it would round. The copies name VectorE, bit-accurate for equal dtypes."""
    import numpy as np

    import nkigen.sim as sim
    spec = load_spec_text(FREE.replace("XW", "W").replace("YW", '"2 * W"').replace(
        "float32", "int32"))
    src = generate(spec, target=target, dialect=dialect)
    copies = [ln for ln in src.splitlines() if "x_e[" in ln and "tensor_copy" in ln]
    assert len(copies) == 2 and all(
        ("nisa.engine.vector" if dialect == "nki" else "nisa.vector_engine") in ln
        for ln in copies)
    x = (np.arange(130 * 300, dtype=np.int64).reshape(130, 300) * 3 + 2**24 + 1).astype(
        np.int32)
    res = sim.run(load_source(src, spec.name), [x], target=target, report=False)
    np.testing.assert_array_equal(res.outputs[0], np.repeat(x, 2, axis=1))


def test_work_independent_of_the_residue_is_done_once():
    """Review 8 R8-8: the row lowering computes a split statement once per residue. A
    contraction or reduction whose value does not depend on ``r % c`` is computed once per
    ``r // c`` into a temp and copied ``c`` times (mm_up 1024^3 trn2: 84.27 -> 77.29 us;
    a softmax of upsampled rows 1024 x 2048: 240.01 -> 198.41 us); cheap element-wise work is
    not (its temp's round trip costs more: x[r // 2, n] * 2.0 stays one statement)."""
    def made(text):
        new = residue.rewrite(load_spec_text(text), "trn2")
        return [(s.target, s.lhs) for s in new.statements]
    assert made(MATMUL) == [("y_u", ("r_q", "n")), ("y_v", ("r_q", "r_r", "n"))]
    soft = _spec("y[r, n] = x[r // 2, n] - max(x[r // 2, j], j)")
    assert [(s.target, s.lhs) for s in residue.rewrite(soft, "trn2").statements] == [
        ("y_u", ("r_q", "n")), ("y_v", ("r_q", "r_r", "n"))]
    check_case(soft, {"M": 130, "N": 300})
    check_case(soft, {"M": 130, "N": 300}, target="trn1",
               src=generate(soft, target="trn1", dialect="neuronxcc"))
    assert made(SPEC.replace("STATEMENT", "y[r, n] = x[r // 2, n] * 2.0").replace(
        "ROWS", '"2 * M"').replace("XSHAPE", "M").replace("MDECL", "{min: 1, max: 1024}")
        .replace("DTYPE", "float32").replace("CASE", "{M: 8, N: 3}")) == [
        ("y_v", ("r_q", "r_r", "n"))]
    # depends on r % 2 through z[r, n]: one statement
    assert [s.target for s in residue.rewrite(_spec(
        "y[r, n] = z[r, n] - max(x[r // 2, j], j)"), "trn2").statements] == ["y_v"]


PERIODIC = """nkigen: 1
name: modfree
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 512}
  N4: {value: "4 * N"}
inputs:
  x: {shape: [M, N4], dtype: float32}
  w: {shape: [4], dtype: float32}
outputs:
  y: {shape: [M, N4], dtype: float32}
compute:
  - y[m, n] = x[m, n] * w[n % 4]
tests:
  cases:
    - {M: 130, N: 75}
"""


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_a_period_along_the_free_axis_is_repeated_on_chip(target, monkeypatch):
    """``x[m, n] * w[n % 4]``: 410.72 us modelled on trn2 with ``n`` in a scalar loop (one
    element per partition); 4.97 us loading the 4 elements once and repeating them along the
    chunk with one VectorE copy through a zero-step SBUF view (current API; classic keeps its
    form). The free extent is a derived size, 4 * N."""
    from nkigen.codegen import tilexpr
    spec = load_spec_text(PERIODIC)
    src = generate(spec, target=target)
    assert "src=w_t.ap([[4, psz], [0, fsz // 4], [1, 4]], offset=0), engine=nisa.engine.vector" \
        in src
    for sizes in ({"M": 130, "N": 75}, {"M": 1, "N": 1}, {"M": 129, "N": 513 - 1}):
        check_case(spec, sizes, target=target, src=src)
    fast = _latency(spec, target, [(130, 300), (4,)], "float32", src)
    monkeypatch.setattr(tilexpr.Compiler, "periodic_load", lambda self, ctx, a: None)
    assert fast * 20 < _latency(spec, target, [(130, 300), (4,)], "float32",
                                generate(spec, target=target))


@pytest.mark.parametrize("tile,repeated", [(None, True), (32, True), (30, False)])
def test_a_period_needs_chunks_starting_on_a_period(tile, repeated):
    # N columns (any N): repeated too since the ragged extents (tests/test_divided_rows.py),
    # as long as every free chunk starts on a multiple of 4: a free tile of 30 columns
    # (schedule hint) starts the second chunk mid-period, so the scalar loop stays
    text = PERIODIC.replace("  N4: {value: \"4 * N\"}\n", "").replace(
        "N: {min: 1, max: 512}", "N: {min: 1, max: 2048}").replace("N4]", "N]").replace(
        "{M: 130, N: 75}", "{M: 3, N: 7}")
    if tile is not None:
        text = text.replace("tests:", f"schedule:\n  tiles: {{n: {tile}}}\ntests:")
    odd = load_spec_text(text)
    src = generate(odd)
    assert ("w_e" in src) is repeated, src
    check_case(odd, {"M": 3, "N": 7}, src=src)
    check_case(odd, {"M": 3, "N": 67}, src=src)
