"""Rank-1 element-wise statements over long vectors as rows of a 2-D grid (current API).

Stage: plan (helper of :func:`nkigen.codegen.rows.lower_statement`). The row lowering puts the
one index of a rank-1 statement (``y[i] = a[i] * sigmoid(g[i])``) on the partitions with
nothing on the free axis: 128 elements per tile, one element per partition and per DMA
descriptor, every instruction's fixed cost paid per 128 elements (418.04 us modelled for
49,152 float32 elements on trn2).

Here the vector is read as a grid of rows of ``F`` consecutive elements, ``i = F * q + r``,
with ``q`` on the partitions and ``r`` on the free axis: ``F = max(1, min(FREE_TILE, I //
256))`` (128 for a fused group; a trace-time expression of the sizes, :data:`ROWS_FOR`), so a
vector of at least 256 elements fills every partition in two row tiles and a long one moves
``FREE_TILE`` contiguous elements per partition and descriptor. The ``I // F`` whole rows are
one pass; the ``I % F`` elements left (fewer than ``F``) are a second pass of one row. Every
access ``x[e(i)]`` is read at ``x[e(F * q + r)]``, one HBM access pattern whose partition and
free steps are ``F`` times and once the index's coefficient (SH
nki/api/nki/language/__init__.py ``NkiTensor.ap``, nki/deep-dives/nki-aps.rst: ``.ap``
expresses any pattern of the tensor's storage, nki 0.3): the classic dialect has no such
pattern (its flattened axis indexed by two aranges is undocumented, review 8 R8-6) and keeps
the row lowering.

Applied to statements whose right-hand side is element-wise (no reduction, scan, gather or
index used as a value) with every index affine in ``i``, at extents that can exceed 128 (at the
spec's largest sizes). Values are computed by the same instructions on the same elements, so
the reference is unchanged; the build verifies the kernel against it as always.
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.symcache import Max, Min
from nkigen.hw import PMAX
from nkigen.ir import (
    Access,
    AssignOp,
    Expr,
    IndexValue,
    Reduce,
    Scan,
    Statement,
    accesses,
    index_symbol,
    walk,
)

FREE_TILE = 2048    # the row lowering's free chunk (rows.FREE_CHUNK): the longest row used
# rows of the grid aimed at. One statement: 2 x 128, so a vector of up to 2048 x 256 elements
# makes two row tiles, whose loads and stores the pipeline overlaps (one tile of 128 rows
# cannot overlap). Measured in the cost model on trn2 (add 256 x 1000, sgd_step 300 x 700,
# silu_ragged 129 x 2049, a 49,152-element vector): 128 rows made add 13.95 us (10.54 on the
# row lowering) and sgd_step 13.62 (11.93); 256 rows none slower than the row lowering (10.54,
# 11.22, 6.69, 7.45 us); 512 and 1024 rows slower. A fused group of statements overlaps its
# statements' streams already, and longer rows pay more: 128 rows (glu 3 x 16384: 7.21 us
# against 9.28 with 256; a 3-statement bf16 group at 49,152: 11.55 against 15.22; an Adam
# step at 65,536: 12.07 against 21.21)
ROWS_FOR = 256
ROWS_FOR_GROUP = 128


def applies(b: Build, st: Statement, rhs: Expr) -> bool:
    """Whether :func:`lower` takes ``st`` (see the module docstring)."""
    if b.classic or len(st.lhs) != 1 or st.op is AssignOp.ACCUMULATE and st.sum_indices:
        return False
    if any(isinstance(x, (Reduce, Scan, IndexValue)) for x in walk(rhs)):
        return False
    i = index_symbol(st.lhs[0])
    for a in accesses(rhs):
        if a.indirect:
            return False
        for e in a.indices:
            e = sympy.sympify(e)
            if e.atoms(sympy.floor, sympy.Mod, sympy.ceiling):
                return False
            if i in e.free_symbols and sympy.Poly(e, i).degree() > 1:
                return False
    from nkigen.codegen.layout import largest_sizes
    big = largest_sizes(b.spec)
    ext = sympy.sympify(b.extents[st.lhs[0]])
    if big is not None:
        ext = ext.subs({s: big[s.name] for s in ext.free_symbols if s.name in big})
    return not ext.is_Number or int(ext) > PMAX


def lower(b: Build, st: Statement, rhs: Expr) -> list | None:
    """The two passes (whole rows, then the last partial row) of ``st``, or None when the row
    lowering keeps it (:func:`applies`, or a form the passes cannot emit)."""
    return lower_items(b, [(st, rhs)], set(), set())


def lower_items(b: Build, items: list[tuple[Statement, Expr]], resident: set[str],
                nostore: set[str]) -> list | None:
    """The passes of one statement or of a fused group of them (``resident``: tensors written
    in the group and read again inside it, bound on chip; ``nostore``: temps never stored),
    every statement's index read as ``F * q + r``; None as :func:`lower`."""
    if not items or not all(applies(b, st, rhs) for st, rhs in items):
        return None
    ext = {sympy.simplify(b.extents[st.lhs[0]]) for st, _ in items}
    if len(ext) != 1:
        return None
    from nkigen.codegen.prepass import rebuild
    from nkigen.codegen.rows import Placement, _emit_group
    from nkigen.codegen.tilexpr import Unsupported
    from nkigen.diagnostics import NkigenError

    name = items[0][0].lhs[0]
    (extent,) = ext
    # (an expression, not a Let: a fused group's SBUF peak is evaluated at the sizes by the
    # planner, and its trace-time choice reads it before any stage binds a name)
    rows_for = ROWS_FOR if len(items) == 1 else ROWS_FOR_GROUP
    width = Max(sympy.Integer(1), Min(sympy.Integer(FREE_TILE), sympy.floor(extent / rows_for)))
    out: list = []
    # (a failed attempt takes back its constants too: the mark comes first)
    mark, extents0, resident0 = len(b.consts), dict(b.extents), set(b.resident)
    b.const("FREE_TILE", FREE_TILE, "elements per partition of one streamed tile: large DMAs "
            "(8 KiB of fp32 per partition), small enough to double-buffer every operand")
    whole = sympy.floor(extent / width)
    passes = ((whole, width, sympy.Integer(0)),
              (sympy.Integer(1), extent - width * whole, width * whole))
    try:
        for rows_n, cols, base in passes:
            q, r = b.namer.fresh(f"{name}_q"), b.namer.fresh(f"{name}_r")
            qr = (index_symbol(q), index_symbol(r))
            at = sympy.expand(base + width * qr[0] + qr[1])
            group = []
            for st, rhs in items:
                isym = index_symbol(st.lhs[0])

                def visit(e, isym=isym, at=at, qr=qr):
                    if not isinstance(e, Access):
                        return None
                    if e.tensor in resident:
                        # a tile of this pass, read where it was written (rows.bound_access)
                        if tuple(sympy.sympify(x) for x in e.indices) != (isym,):
                            raise Unsupported(f"{e.tensor} read away from where it is written")
                        return Access(e.tensor, qr, e.loc)
                    return Access(e.tensor, tuple(sympy.expand(sympy.sympify(x).xreplace(
                        {isym: at})) for x in e.indices), e.loc, e.indirect)

                body = rebuild(rhs, visit)
                st2 = dataclasses.replace(st, lhs=(q, r), rhs=body, op=AssignOp.ASSIGN,
                                          sum_indices=())
                b.store_at[st2] = (at,)
                group.append((st2, body, Placement(q, r, ())))
            b.extents[q], b.extents[r] = rows_n, cols
            nodes = _emit_group(b, group, resident, chunk=len(group) == 1, strict=False,
                                nostore=nostore)
            if base != 0:       # the last partial row: none when F divides the extent
                nodes = [P.If(sympy.Integer(0), cols, tuple(nodes), (), P.Cmp.LT)]
            out += nodes
    except (Unsupported, NkigenError):
        b.extents.clear()
        b.extents.update(extents0)
        b.resident = resident0
        del b.consts[mark:]
        return None
    return out
