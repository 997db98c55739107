"""Codegen perf/readability fixes from review4 (F3-F7): the generated kernels issue fewer
instructions or allocations for the same results. The numerics of every changed kernel are
checked by ``nkigen build`` (tests/test_codegen_golden.py pins the text)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import shipped

from nkigen.frontend import load_spec
from nkigen.pipeline import generate

# the slow tier (pytest -m slow; CI runs it): README's test command stays under 4 minutes
pytestmark = pytest.mark.slow

SPECS = Path(__file__).parent.parent / "specs"
DIALECTS = ("nki", "neuronxcc")


def _gen(name: str, dialect: str, target: str | None = None) -> str:
    return shipped.source(name, dialect, target)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rsqrt_scale_loads_v_once_per_tile(dialect):
    """F3: v feeds both statements of the fused group; one DMA per row tile reads it."""
    src = _gen("rsqrt_scale", dialect)
    v_loads = [ln for ln in src.splitlines() if "dma_copy" in ln and re.search(r"src=v[.\[]", ln)]
    assert len(v_loads) == 1, v_loads
    x_loads = [ln for ln in src.splitlines() if "dma_copy" in ln and re.search(r"src=x[.\[]", ln)]
    assert len(x_loads) == 1, x_loads


@pytest.mark.parametrize("dialect", DIALECTS)
def test_row_argmax_runs_max8_on_the_loaded_tile(dialect):
    """F7: no VectorE copy of x into a padded row: only the pad columns (n < 8) are filled,
    and max8 / nc_find_index8 read the loaded tile."""
    src = _gen("row_argmax", dialect)
    assert "tensor_scalar" not in src and "arow" not in src
    assert "if N < 8:" in src
    assert re.search(r"max8\((dst=top8\[[^\]]*\], )?src=x_t", src)


ARG_SPEC = """\
nkigen: 1
name: argk
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: 40}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  i: {{shape: [M], dtype: int32}}
  s: {{shape: [M], dtype: float32}}
compute:
  - i[m] = {fn}({body}, n)
  - s[m] = sum(x[m, n], n)
tests:
  cases:
    - {{M: 1, N: 1}}
    - {{M: 130, N: 7}}
    - {{M: 129, N: 8}}
    - {{M: 200, N: 40}}
"""


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("fn,body", [("argmax", "x[m, n]"), ("argmax", "x[m, n] * 2.0 - 1.0"),
                                     ("argmin", "x[m, n]")])
def test_arg_reductions_around_the_pad_boundary_build_and_verify(fn, body, dialect, tmp_path,
                                                                 capsys):
    """The in-place pad (argmax of a loaded or computed fp32 row) and the copied row
    (argmin) both match the reference at n = 1, 7 (padded), 8 (no pad) and 40, with x also
    read by a second statement of the same row group."""
    from cli_helpers import run

    spec = tmp_path / "argk.yaml"
    spec.write_text(ARG_SPEC.format(fn=fn, body=body))
    code, out, err = run(capsys, "build", str(spec), "-o", str(tmp_path / "lib"),
                         "--dialect", dialect)
    assert code == 0, out + err
    assert "1 built" in out


F6_SPECS = ["layernorm", "layernorm3d", "rmsnorm", "residual_rmsnorm", "mamba_scan",
            "matmul_bias_gelu", "matmul_int8_dequant", "mlp_gelu_tanh", "scale_bias_relu",
            "sgd_step"]


@pytest.mark.parametrize("name", F6_SPECS)
def test_classic_broadcast_load_binds_its_name_without_a_dead_allocation(name):
    """F6: a partition-broadcast load that rebinds a tile name names its dtype itself, and no
    nl.ndarray of that name precedes it in the same block (the allocation was never read)."""
    lines = _gen(name, "neuronxcc").splitlines()
    loads = [(k, m.group(1)) for k, ln in enumerate(lines)
             if (m := re.match(r"\s*(\w+) = nl\.load\(.*\)\.broadcast_to\(", ln))]
    assert loads, "no broadcast load"
    for k, tile in loads:
        assert re.search(r"dtype=nl\.\w+[,)]", lines[k]), lines[k]
        assert f"dtype={tile}.dtype" not in lines[k]
        indent = len(lines[k]) - len(lines[k].lstrip())
        before = lines[:k]
        for ln in reversed(before):        # back to the start of the block
            if ln.strip() and len(ln) - len(ln.lstrip()) < indent:
                break
            assert not ln.lstrip().startswith(f"{tile} = nl.ndarray("), ln


def test_classic_broadcast_into_a_tile_already_read_keeps_the_allocation():
    """The allocation stays when something reads the tile before the load rebinds it (only
    a never-read nl.ndarray is dropped): checked on the renderer's block analysis."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.dtypes import DType

    render = importlib.import_module("nkigen.codegen.render")   # the package exports render()

    S = sympy.Integer
    full = (P.Slice(S(0), S(128)), P.Slice(S(0), S(8)))
    alloc = P.Alloc("g", (S(128), S(8)), DType.float32, P.Mem.SBUF)
    bcast = P.Dma(P.Ref("g", full), P.ApRef("gamma", S(0), ((S(0), S(128)), (S(1), S(8)))))
    read = P.TensorCopy(P.Ref("h", full), P.Ref("g", full))
    render._WHOLE.clear()
    render._WHOLE["g"] = (S(128), S(8))
    try:
        assert set(render._dead_allocs((alloc, bcast), False)) == {id(alloc), id(bcast)}
        assert render._dead_allocs((alloc, read, bcast), False) == {}
        assert render._dead_allocs((alloc, bcast), True) == {}     # inside an if: no rebind
    finally:
        render._WHOLE.clear()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_embedding_lookup_stores_the_gathered_tile(dialect):
    """F4 (current API): the gathered rows are stored from the gather's own tile (same
    dtype), no ScalarE copy, and the gather is prefetched one tile ahead with its ids. The
    classic kernel (not pipelined) keeps its copy: the cost model rates it faster there."""
    src = _gen("embedding_lookup", dialect)
    store = [ln for ln in src.splitlines() if re.search(r"dma_copy\(dst=out[\[.]", ln)]
    assert len(store) == 1, store
    if dialect == "nki":
        assert "activation" not in src and "tensor_copy" not in src
        assert "src=table_g" in store[0], store
        head = src[src.index("def _embedding_lookup_stage0_head"):]
        head = head[:head.index("\n\n\n")]
        assert "vector_offset=ids_t" in head


def test_classic_streamed_rows_load_their_columns_once_per_row_tile():
    """The classic streamed loop nests (row tile, free chunk): a column read per row (the ids
    of embedding_lookup's gather) is loaded in the row-tile loop, once, not once per chunk
    of FREE_CHUNK elements (D > 2048: 2 chunks at D = 2049, the first size with a second
    chunk); it matches the reference at both sides of the chunk boundary. The current API's
    flat (row tile, chunk) loop keeps one ids load per iteration: it prefetches both a tile
    ahead (nesting it measured 4.22 -> 4.76 us at T=300 D=96 on trn2)."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from codegen_check import check_case

    from nkigen.codegen.rows import FREE_CHUNK

    spec = load_spec(SPECS / "embedding_lookup.yaml")
    src = generate(spec, dialect="neuronxcc")
    body = src[src.index("for pt in"):]
    ids_load = body.index("src=ids.")
    assert ids_load < body.index("for fc in")          # outside the chunk loop
    assert body.count("src=ids.") == 1
    for d in (FREE_CHUNK, FREE_CHUNK + 1):
        check_case(spec, {"T": 130, "V": 7, "D": d}, target="trn2", src=src)


COPY_SPEC = """\
nkigen: 1
name: copyk
sizes:
  T: {min: 1, max: 300}
  V: {min: 1, max: 50}
  D: {min: 1, max: 3000}
inputs:
  ids: {shape: [T], dtype: int32}
  table: {shape: [V, D], dtype: float32}
  x: {shape: [T, D], dtype: float32}
outputs:
  g: {shape: [T, D], dtype: float32}
  y: {shape: [T, D], dtype: float32}
  z: {shape: [T, D], dtype: float32}
compute:
  - g[t, d] = table[ids[t], d]
  - y[t, d] = x[t, d]
  - z[t, d] = g[t, d] * 2.0 + x[t, d]
tests:
  cases:
    - {T: 1, V: 1, D: 1}
    - {T: 130, V: 50, D: 2100}
  inputs:
    ids: {dist: integers, low: 0, high: "V - 1"}
"""


@pytest.mark.parametrize("dialect", DIALECTS)
def test_pure_copies_stored_in_place_build_and_verify(dialect, tmp_path, capsys):
    """A gather and a plain load stored as they are, next to a statement that reads the
    gathered output again and x again, over two column chunks: results match the
    reference."""
    from cli_helpers import run

    spec = tmp_path / "copyk.yaml"
    spec.write_text(COPY_SPEC)
    code, out, err = run(capsys, "build", str(spec), "-o", str(tmp_path / "lib"),
                         "--dialect", dialect)
    assert code == 0, out + err
    assert "1 built" in out


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_rope_half_unrolls_its_halves(dialect):
    """The two halves (s in 0..1) are written out inside the row-tile loop (rows.unrolled_envs):
    x, cos and sin are loaded once per row tile (4 loads, not 4 per half), each half's
    ``where(s == 0, -sin, sin)`` is decided at plan time (select.fold_where: no affine_select,
    no Python ``if``, no -sin tile) and the first half's sign rides on one
    scalar_tensor_tensor: 3 VectorE instructions per half."""
    src = _gen("rope_half", dialect)
    assert "affine_select" not in src and "if i_s" not in src and "i_s" not in src
    assert "scale=-1.0" not in src
    assert len(re.findall(r"dma_copy\(dst=\w+\[[^\]]*\], src=(x|cos|sin)\[", src)) == 4
    assert len(re.findall(r"dma_copy\(dst=y\[", src)) == 2
    assert len(re.findall(r"nisa\.(tensor_tensor|scalar_tensor_tensor)\(", src)) == 6
    assert "operand0=-1.0, op1=nl.add" in src


UNROLL_SPEC = """\
nkigen: 1
name: unr
sizes:
  M: {{min: 1, max: 300}}
  H: {{min: 1, max: 40}}
inputs:
  x: {{shape: [M, {n}, H], dtype: float32}}
outputs:
  y: {{shape: [M, {n}, H], dtype: float32}}
compute:
  - y[m, s, h] = where(s == 0, -x[m, s, h], x[m, s, h]) * x[m, s, h]
"""


def _gen_text(text: str, dialect: str, target: str | None = None) -> str:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "unr.yaml"
        p.write_text(text)
        return generate(load_spec(p), target=target, dialect=dialect)


def test_unrolled_loops_stop_at_their_limit():
    """rows.UNROLL_MAX outer iterations are unrolled (the last legal count), one more keeps
    the loop."""
    from nkigen.codegen.rows import UNROLL_MAX
    for n, unrolled in ((UNROLL_MAX, True), (UNROLL_MAX + 1, False)):
        src = _gen_text(UNROLL_SPEC.format(n=n), "nki")
        assert ("for i_s in range(" not in src) is unrolled, n


SEL_SPEC = """\
nkigen: 1
name: selk
sizes:
  M: {{min: 1, max: 300}}
  H: {{min: 1, max: 40}}
inputs:
  x: {{shape: [M, {n}, H], dtype: float32}}
  c: {{shape: [M], dtype: float32}}
outputs:
  y: {{shape: [M, {n}, H], dtype: float32}}
compute:
  - y[m, s, h] = where({cond}, x[m, s, h] * 2.0, {other}) + x[m, s, h]
tests:
  cases:
    - {{M: 1, H: 1}}
    - {{M: 130, H: 17}}
"""


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("cond,other,n", [
    ("s == 1", "c[m]", 3), ("s != 1", "-x[m, s, h]", 3), ("s < 1", "c[m]", 3),
    ("s <= 1", "3.0", 3), ("s > 1", "c[m]", 3), ("s >= 1", "-x[m, s, h]", 3),
    ("s == 1", "c[m]", 5), ("s >= 1", "-x[m, s, h]", 5)])
def test_trace_time_where_on_a_loop_index_builds_and_verifies(cond, other, n, dialect,
                                                              tmp_path, capsys):
    """Every comparison on a scalar-loop index, with a row, column or constant branch,
    matches the reference (s = 0, 1, 2 takes each side of every comparison): decided at plan
    time where the s loop is unrolled (3 <= rows.UNROLL_MAX), at trace time where it is kept
    (5)."""
    from cli_helpers import run

    spec = tmp_path / "selk.yaml"
    spec.write_text(SEL_SPEC.format(cond=cond, other=other, n=n))
    code, out, err = run(capsys, "build", str(spec), "-o", str(tmp_path / "lib"),
                         "--dialect", dialect)
    assert code == 0, out + err
    assert "1 built" in out
    src = (tmp_path / "lib" / "kernels" / "selk.py").read_text()
    assert ("i_s" not in src) is (n == 3)                  # unrolled: no loop index at all
    if dialect == "nki":
        assert "affine_select" not in src
        assert ("if i_s " in src) is (n == 5)


def test_fold_where_decides_fixed_conditions_and_pulls_signs_out_of_products():
    """select.fold_where: a where on indices fixed by the environment takes its branch; a
    taken negation inside a product becomes a trailing * -1 (two cancel); a condition on an
    index the environment leaves free is kept."""
    import sympy

    from nkigen.codegen.select import fold_where
    from nkigen.ir import (
        Access,
        BinOp,
        BinOpKind,
        CmpOp,
        Compare,
        Const,
        IndexValue,
        Neg,
        Where,
        index_symbol,
    )

    s, h = index_symbol("s"), index_symbol("h")
    a, b = Access("a", (h,)), Access("b", (h,))
    w = Where(Compare(CmpOp.EQ, IndexValue(s), Const(0.0)), Neg(a), a)
    e = BinOp(BinOpKind.MUL, w, b)
    mul = BinOpKind.MUL
    assert fold_where(e, {"s": sympy.Integer(0)}) == BinOp(mul, BinOp(mul, a, b), Const(-1.0))
    assert fold_where(e, {"s": sympy.Integer(1)}) == BinOp(mul, a, b)
    both = BinOp(mul, Where(Compare(CmpOp.LT, IndexValue(s), Const(5.0)), Neg(a), a), Neg(b))
    assert fold_where(both, {"s": sympy.Integer(4)}) == BinOp(mul, a, b)
    assert fold_where(e, {"s": sympy.Symbol("i_s")}) == e       # not fixed: kept
    assert fold_where(e, {}) == e
