"""Classic dialect: raw HBM access patterns are printed as N-D views indexed per axis
(codegen/classic_index.py ViewRef), never as a flattened 1-D reshape indexed by one expression
that carries both a partition and a free ``nl.arange``.

The docs index an HBM tensor with one arange per dimension: S25 (aws-neuron-sdk v2.25.0)
general/nki/programming_model.rst "Advanced Tensor Indexing" (``i_p = nl.arange(..)[:, None]``,
``i_f = nl.arange(..)[None, :]``, ``t[i_p, i_f]``), and the rmsnorm tutorial
general/nki/examples/rmsnorm/rmsnorm_nki_kernels.py reshapes a 1-D weight to a 2-D view first
(``g_tensor.reshape((1, g_tensor.shape[0]))[iw, iy]``); tensor.reshape returns "a new view, no
copy" (general/nki/api/nki/__init__.py). A 1-D index mixing both axes is shown nowhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import shipped
import sympy

from nkigen.codegen import classic_index as CI
from nkigen.codegen import plan as P

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


def _placement(sub: ast.Subscript) -> int | None:
    """The grid axis of ``nl.arange(n)[..., :, ...]`` (the position of its ``:``), else None."""
    v = sub.value
    if not (isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute)
            and v.func.attr == "arange"):
        return None
    elts = sub.slice.elts if isinstance(sub.slice, ast.Tuple) else [sub.slice]
    axes = [k for k, e in enumerate(elts) if isinstance(e, ast.Slice)]
    return axes[0] if len(axes) == 1 else None


def _axes(expr: ast.AST, tiles: dict[str, int]) -> set[int]:
    """The arange grid axes an index expression reads (inline or through a named index tile);
    a nested subscript (a gather's ``ids_t[i_p, 0]``) counts as its own index."""
    out: set[int] = set()
    for x in ast.walk(expr):
        if isinstance(x, ast.Subscript) and (a := _placement(x)) is not None:
            out.add(a)
        elif isinstance(x, ast.Name) and x.id in tiles:
            out.add(tiles[x.id])
    return out


def mixed_flat_views(src: str) -> list[tuple[int, str]]:
    """(line, text) of every subscript of a ``.reshape(...)`` view whose index is a single
    expression (one index for a 1-D view) or one index component reading aranges of two grid
    axes; and of every view index with fewer/more components than the view has dims."""
    tree = ast.parse(src)
    tiles: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Subscript) \
                and (a := _placement(node.value)) is not None:
            tiles[node.targets[0].id] = a
    bad = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "reshape"):
            continue
        comps = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        shape = node.value.args[0] if node.value.args else None
        rank = len(shape.elts) if isinstance(shape, ast.Tuple) else None
        read = set().union(*(_axes(c, tiles) for c in comps))
        if (len(read) > 1 and len(comps) == 1) \
                or any(len(_axes(c, tiles)) > 1 for c in comps) \
                or (rank is not None and rank != len(comps)):
            bad.append((node.lineno, ast.unparse(node)[:120]))
    return bad


OLD_ROW_SUM = """
def k(y, acc, p0):
    nisa.dma_copy(dst=y.reshape((math.prod(y.shape),))[p0 + 1 * nl.arange(TILE_P)[:, None]
                  + 1 * nl.arange(1)[None, :]], src=acc[0:TILE_P, 0:1])
"""


def test_checker_flags_the_flattened_form_and_passes_the_per_axis_one():
    """The check can fail: the row_sum store of main 5c89b4d is flagged (the 48 classic
    kernels of that commit: 32 such views in 24 specs); the per-axis view of the same store, a
    gather's nested index and a component that mixes axes through named tiles are told apart."""
    assert len(mixed_flat_views(OLD_ROW_SUM)) == 1
    good = ("i_p = nl.arange(TILE_P)[:, None]\ni_col = nl.arange(1)[None, :]\n"
            "nisa.dma_copy(dst=y.reshape((y.shape[0], 1))[p0 + i_p, i_col], src=acc)\n"
            "nisa.dma_copy(dst=t, src=w.reshape((N, D))[ids[0 + nl.arange(P)[:, None], 0], "
            "f0 + nl.arange(F)[None, :]])\n")
    assert mixed_flat_views(good) == []
    named = "i_p = nl.arange(4)[:, None]\ni_f = nl.arange(2)[None, :]\n" \
        "z = y.reshape((8, 1))[p0 + i_p + i_f, 0]\n"
    assert len(mixed_flat_views(named)) == 1                   # one component, two axes
    assert len(mixed_flat_views("z = y.reshape((8, 1))[i]\n")) == 1   # rank 2, one index


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_no_classic_kernel_indexes_a_flattened_reshape_with_two_axes(path):
    spec = shipped.spec(path)
    src = shipped.source(path, "neuronxcc")
    assert mixed_flat_views(src) == [], spec.name
    assert "math.prod" not in src, spec.name


def _ap(offset, pattern):
    return P.ApRef("x", sympy.sympify(offset),
                   tuple((sympy.sympify(s), sympy.sympify(n)) for s, n in pattern))


def test_view_of_an_access_pattern_at_its_boundaries():
    """The partition step must be the extent of a run of trailing dims (or a multiple of one);
    the offset splits into the row (terms that are multiples of the step) and the column; a
    partition step of 1 gives
    the (N, 1) column view only for a one-element free axis; a one-row (or partition-broadcast)
    pattern is the tutorial's (1, N) view; else no view (the flat form stays)."""
    M, C, R, p0, c0 = sympy.symbols("M C R p0 c0", integer=True, positive=True)
    # (F, C, R) weight, partition step C*R: the (F, C*R) view, row p0, column R*c0
    v = CI.as_view(_ap(R * c0 + C * R * p0, [(C * R, 128), (1, 64)]), (M, C, R))
    assert v.view == ((0,), (1, 2)) and v.dims == (P.Slice(p0, 128), P.Slice(R * c0, 64))
    # a 2-D tensor whose row is the step: the tensor's own axes, no reshape
    v = CI.as_view(_ap(c0 + C * p0, [(C, 128), (1, 64)]), (M, C))
    assert v.view == () and v.dims[0].start == p0 and v.dims[1].start == c0
    # the step is c >= 2 times a trailing product (rows read with a step): the same view, its
    # partition index stepping by c (review 9 R9-8); a step that is no multiple of one: no view
    v = CI.as_view(_ap(C * p0, [(2 * C, 128), (1, 64)]), (M, C))
    assert v.view == () and v.dims == (P.Slice(p0, 128, 2), P.Slice(0, 64))
    assert CI.as_view(_ap(C * p0, [(C + 1, 128), (1, 64)]), (M, C)) is None
    assert CI.as_view(_ap(0, [(C, 128), (1, 64)]), None) is None
    # step 1: the column view, free extent 1 (last legal) / 2 (first illegal)
    v = CI.as_view(_ap(p0, [(1, 128), (1, 1)]), (M,))
    assert v.view == ((0,), ()) and v.dims == (P.Slice(p0, 128), P.Slice(0, 1))
    assert CI.as_view(_ap(p0, [(1, 128), (1, 2)]), (M,)) is None
    # one row / a partition broadcast: the (1, N) view of the whole tensor
    v = CI.as_view(_ap(c0, [(0, 1), (1, 64)]), (M, C))
    assert v.view == ((), (0, 1)) and v.bcast == () and v.dims[1].start == c0
    v = CI.as_view(_ap(0, [(0, 128), (1, 64)]), (C,))
    assert v.bcast == (128, 64)
    # a three-pair pattern: no 2-D view (flat)
    assert CI.as_view(_ap(0, [(C, 2), (1, 4), (1, 1)]), (M, C)) is None


def step_slices(src: str) -> list[tuple[int, str]]:
    """(line, text) of every basic slice with a step (``a:b:2``)."""
    return [(n.lineno, ast.unparse(n)) for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Slice) and n.step is not None]


def test_step_slice_checker_can_fail():
    """The conv1d moving operand of main 5c89b4d is flagged (28 step slices in 5 specs:
    conv2d 9, avgpool2x2 8, conv1d 6, maxpool1d 3, avgpool2_rows 2); its arange spelling is
    not."""
    assert len(step_slices("z = x_blk[0:TILE_K, ct1, 1:2 * osz:2]\n")) == 1
    assert step_slices("z = x_blk[0:TILE_K, ct1, 1 + 2 * i_f]\n") == []


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_no_classic_kernel_spells_a_stride_with_a_step_slice(path):
    """A free-axis stride is an arange index (``2 * i_f``), as S25
    general/nki/programming_model.rst "Advanced Tensor Indexing" shows it (review12 F10)."""
    spec = shipped.spec(path)
    assert step_slices(shipped.source(path, "neuronxcc")) == [], spec.name


def test_a_strided_view_becomes_an_index_view_and_a_unit_one_stays_a_slice():
    """Step 2 (first strided) -> LaneRef printed ``start + 2 * i``; step 1 stays a Ref."""
    x1 = P.Ref("t", (P.Slice(sympy.Integer(0), sympy.Integer(128)),
                     P.Slice(sympy.Integer(1), sympy.Integer(64))))
    x2 = P.Ref("t", (P.Slice(sympy.Integer(0), sympy.Integer(128)),
                     P.Slice(sympy.Integer(1), sympy.Integer(64), sympy.Integer(2))))
    assert type(CI._views(x1, {})) is P.Ref
    assert type(CI._views(x2, {})) is CI.LaneRef
