"""Copies that interleave short digits into an output row (pixel shuffle) as whole rows.

Stage: plan (Statement -> plan nodes). Input: a plain copy ``y[..] = x[..]`` of an input into
an output of the same dtype whose read is affine in the left-hand indices, such as the pixel
shuffle

    y[c, h, a, w, b] = x[4 * c + 2 * a + b, h, w]

where ``a`` and ``b`` are short constant indices (at most :data:`SHORT` values) and ``w`` is
the long index that is contiguous in ``x`` (step 1) but strided in ``y`` (step 2 here). The
row lowering streams ``y``'s last index along the free axis: ``b``, two elements per DMA
descriptor and per tile (6,160.76 us modelled for 8.4 MB at 64^3 on trn2, fuzz10).

Here the partition index ``p`` is the long index before ``w`` in ``y`` (``h``); everything
after it in ``y`` (``a``, ``w``, ``b``) is one contiguous output row per partition. For each
value of the short indices after ``p`` one DMA loads ``x``'s contiguous ``w`` runs, ``[psz,
W]``, into its slot of an SBUF tile; an engine copy writes the slot into the output row tile
through a stepped free-axis view (step = ``y``'s step of ``w``); one DMA stores the rows.
Indices before ``p`` are outer loops.

Docs: DMA access patterns on HBM tensors (SH nki/deep-dives/nki-aps.rst, nki 0.3; S25
general/nki/programming_model.rst "Advanced Tensor Indexing"); on-chip operands may be strided
along their free dimension with ``start:stop:step`` slices (SH
nki/get-started/about/indexing-overview.rst "Case #1 - Tensor split to even and odd columns",
nki 0.3; S25 general/nki/programming_model.rst "Advanced Tensor Indexing" case 1, SDK 2.25),
and ``tensor_copy`` reads and writes SBUF tiles (SH nki/api/nki/isa/__init__.py, nki 0.3);
DMA overheads are per transfer and amortised by long contiguous runs (SH
nki/deep-dives/nki-dma-bandwidth-guide.rst).

Anything else returns None (the row lowering handles it): expressions other than one read,
casts, reductions, a long index after ``p`` other than ``w``, ``w`` already contiguous in ``y``
(the row lowering streams it), rows over :data:`ROW_BYTES`.
"""

from __future__ import annotations

import itertools

import sympy

from nkigen.analysis.sizes import at_max
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.codegen.symcache import Max, Min
from nkigen.codegen.tilexpr import strides
from nkigen.hw import PMAX
from nkigen.ir import Access, AssignOp, Role, Statement, index_symbol

ZERO, ONE = sympy.Integer(0), sympy.Integer(1)
SHORT = 8              # a left-hand index over at most this many values is a short digit
MAX_SLOTS = 64         # value combinations of the short digits after p (one load each)
ROW_BYTES = 32 * 1024  # bytes per partition of one output row tile at the largest sizes
MID_ELEMS = 4096       # output elements per partition of a block of middle-index rows


def _flat(b: Build, st: Statement, rhs: Access) -> dict[str, sympy.Expr] | None:
    """The step of each left-hand index in ``x``'s flat offset (None: not affine with number
    coefficients)."""
    xs = strides(tuple(sympy.sympify(s) for s in b.spec.tensor(rhs.tensor).shape))
    syms = {i: index_symbol(i) for i in st.lhs}
    step: dict[str, sympy.Expr] = {i: ZERO for i in st.lhs}
    for d, e in enumerate(rhs.indices):
        e = sympy.expand(sympy.sympify(e))
        for i, s in syms.items():
            k = e.coeff(s)
            if not k.is_Integer or int(k) < 0:
                return None
            step[i] = sympy.expand(step[i] + k * xs[d])
        rest = sympy.expand(e - sum(e.coeff(s) * s for s in syms.values()))
        if rest.free_symbols & set(syms.values()) or not (rest.is_Integer and int(rest) == 0):
            return None
    return step


def _placement(b: Build, st: Statement, longs: list[str], short: set[str],
               ext: dict[str, sympy.Expr]) -> tuple[str, str | None] | None:
    """``(p, mid)``: the partition index and the long index between it and the last long
    index ``f`` in ``y`` (None: none). Every index after ``p`` (``mid`` aside) is ``f`` or
    short. With a middle index, ``p`` is the long index before it and each partition holds
    blocks of whole ``mid`` rows (contiguous runs of ``mid`` x row on both sides when ``x``
    keeps ``mid`` and ``f`` adjacent); it is taken when ``p`` fills at least as many partitions
    as ``mid`` would at the largest sizes."""
    lhs = st.lhs
    f = longs[-1]
    cands: list[tuple[str, str | None]] = [(longs[-2], None)]
    if len(longs) >= 3 and lhs.index(longs[-2]) == lhs.index(longs[-3]) + 1:
        cands.insert(0, (longs[-3], longs[-2]))
    for p, mid in cands:
        after = lhs[lhs.index(mid if mid else p) + 1:]
        if any(i != f and i not in short for i in after):
            continue
        if mid:
            top_p, top_m = at_max(b.spec, ext[p]), at_max(b.spec, ext[mid])
            if top_p is None or top_m is None or min(top_p, PMAX) < min(top_m, PMAX):
                continue
        return p, mid
    return None


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    rhs = st.rhs
    if st.op is not AssignOp.ASSIGN or st.sum_indices or not isinstance(rhs, Access) \
            or rhs.indirect or rhs.tensor == st.target or len(set(st.lhs)) != len(st.lhs):
        return None
    x, y = b.spec.tensor(rhs.tensor), b.spec.tensor(st.target)
    if x.role is not Role.INPUT or y.role is not Role.OUTPUT or y.view_of \
            or x.dtype != y.dtype or len(y.shape) != len(st.lhs):
        return None
    if any(sympy.sympify(b.extents[i]) != sympy.sympify(n) for i, n in zip(st.lhs, y.shape)):
        return None        # an index that does not cover its dimension
    xstep = _flat(b, st, rhs)
    if xstep is None:
        return None
    ystep = dict(zip(st.lhs, strides(tuple(sympy.sympify(s) for s in y.shape))))
    ext = {i: sympy.sympify(b.extents[i]) for i in st.lhs}
    short = {i for i in st.lhs if ext[i].is_Integer and int(ext[i]) <= SHORT}
    longs = [i for i in st.lhs if i not in short]
    runs = [i for i in longs if xstep[i] == 1]
    if len(longs) < 2 or not runs or runs[-1] != longs[-1]:
        return None
    f = longs[-1]
    if ystep[f] == 1:
        return None        # contiguous on both sides: the row lowering streams it
    plan = _placement(b, st, longs, short, ext)
    if plan is None:
        return None
    p, mid = plan
    after = st.lhs[st.lhs.index(mid if mid else p) + 1:]
    slots = [i for i in after if i != f]
    combos = list(itertools.product(*(range(int(ext[i])) for i in slots)))
    if len(combos) > MAX_SLOTS:
        return None
    R = sympy.expand(ystep[mid] if mid else ystep[p])   # one output row: every index after
    r_max = at_max(b.spec, R)
    if r_max is None or r_max * y.dtype.itemsize > ROW_BYTES:
        return None
    outer = [i for i in st.lhs[:st.lhs.index(p)]]
    n, S = b.namer, b.sym
    env = {i: S(n.fresh(f"i_{i}")) for i in outer}
    pt, p0, psz = n.fresh(f"{p}t"), n.fresh(f"{p}0"), n.fresh(f"{p}sz")
    b.const("TILE_P", PMAX, "output rows per tile: one per partition", "pmax", (pt, p0, psz))
    F = ext[f]
    xin, rows = n.fresh(f"{x.name}_t"), n.fresh(f"{y.name}_rows")
    base_x = sympy.expand(sum((xstep[i] * env[i] for i in outer), ZERO) + xstep[p] * S(p0))
    base_y = sympy.expand(sum((ystep[i] * env[i] for i in outer), ZERO) + ystep[p] * S(p0))
    nslot = sympy.Integer(len(combos))
    if mid:
        # blocks of ``nb`` rows of the middle index per tile: MID_ELEMS output elements per
        # partition (long contiguous runs on both sides)
        mb, m0, msz, nb_n = (n.fresh(f"{mid}b"), n.fresh(f"{mid}0"), n.fresh(f"{mid}sz"),
                             n.fresh("nb"))
        b.const("MID_ELEMS", MID_ELEMS, "output elements per partition a block of rows aims at "
                "(nb = MID_ELEMS // row rows): long contiguous DMA runs", None, (nb_n,),
                owned_only=True)
        NB = S(nb_n)
        M0, MSZ = S(m0), S(msz)
        base_x = sympy.expand(base_x + xstep[mid] * M0)
        base_y = sympy.expand(base_y + ystep[mid] * M0)
    else:
        NB, MSZ = ONE, ONE
    # with a middle index the tiles are [P, rows, run]; without one, plain [P, run] rows
    mrow = (P.Slice(ZERO, MSZ),) if mid else ()
    head: list = [
        P.Alloc(xin, (sympy.Integer(PMAX), nslot * NB, F) if mid
                else (sympy.Integer(PMAX), nslot * F), x.dtype, P.Mem.SBUF),
        P.Alloc(rows, (sympy.Integer(PMAX), NB, R) if mid else (sympy.Integer(PMAX), R),
                y.dtype, P.Mem.SBUF)]
    loads: list = []
    copies: list = []
    for k, vals in enumerate(combos):
        off_x = sympy.expand(base_x + sum((xstep[i] * v for i, v in zip(slots, vals)), ZERO))
        off_y = sympy.expand(sum((ystep[i] * v for i, v in zip(slots, vals)), ZERO))
        slot = (P.Slice(ZERO, S(psz)), P.Slice(sympy.expand(k * NB), MSZ), P.Slice(ZERO, F)) \
            if mid else (P.Slice(ZERO, S(psz)), P.Slice(sympy.expand(k * F), F))
        loads.append(P.Dma(P.Ref(xin, slot),
                           P.ApRef(checked(x.name, "tensor"), off_x,
                                   ((xstep[p], S(psz)),)
                                   + (((xstep[mid], MSZ),) if mid else ()) + ((ONE, F),))))
        # an integer copy names VectorE: bit-accurate for equal dtypes, while ScalarE copies
        # through float32 (int32 beyond 2**24 would round: S25 general/nki/api/nki/isa/
        # __init__.py tensor_copy, SDK 2.25; SH nki/api/nki/isa/__init__.py tensor_copy, nki
        # 0.3; review 8 R8-4, review 13 R13-2); float copies keep the compiler's choice
        copies.append(P.TensorCopy(
            P.Ref(rows, (P.Slice(ZERO, S(psz)),) + mrow + (P.Slice(off_y, F, ystep[f]),)),
            P.Ref(xin, slot), P.Eng.VECTOR if y.dtype.is_integer else None))
    store = P.Dma(P.ApRef(checked(y.name, "tensor"), base_y,
                          ((ystep[p], S(psz)),) + (((R, MSZ),) if mid else ()) + ((ONE, R),)),
                  P.Ref(rows, (P.Slice(ZERO, S(psz)),) + mrow + (P.Slice(ZERO, R),)))
    work = [*head, *loads, *copies, store]
    if mid:
        work = [P.Loop(mb, sympy.ceiling(ext[mid] / NB), P.LoopKind.PARALLEL, (
            P.Let(m0, S(mb) * NB), P.Let(msz, Min(NB, ext[mid] - S(m0))), *work))]
    body: list = [
        P.Let(p0, S(pt) * PMAX),
        P.Let(psz, Min(sympy.Integer(PMAX), ext[p] - S(p0))),
        *work,
    ]
    nodes: list = [P.Loop(pt, sympy.ceiling(ext[p] / PMAX), P.LoopKind.PARALLEL, tuple(body))]
    if mid:
        nodes = [P.Let(nb_n, Max(ONE, Min(ext[mid], sympy.floor(MID_ELEMS / R)))), *nodes]
    for i in reversed(outer):
        nodes = [P.Loop(str(env[i]), ext[i], P.LoopKind.PARALLEL, tuple(nodes))]
    stage = P.StagePlan(
        statements=(st.position,), strategy="shuffle", partition=p,
        free=((mid,) if mid else ()) + tuple(after), loops=tuple(outer), tiles=((p, PMAX),),
        blocks=(), engines=("dma", "vector"),
        notes=(f"{len(combos)} contiguous {x.name} runs per row tile, interleaved on chip "
               f"into whole {y.name} rows (step {ystep[f]} of {f})",))
    return nodes, stage
