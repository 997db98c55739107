"""Decode-shaped row groups: few long rows, each spread over the 128 partitions.

Stage: plan (a fused row group -> plan nodes). Input: the statements :func:`rows.lower_group`
fuses over one row tile (or one statement), when they are row statistics
``s[m] = f(sum|mean|max|min(body(x[m, d]), d))``
and element-wise rows ``y[m, d] = g(x[m, d], w[d], s[m], ..)`` over one ``[M, D]`` extent.
Output: the nodes of the split form, which the planner runs instead of the one-row-per-partition
pass when the trace-time sizes call for it (:func:`condition`).

One row per partition uses ``M`` of 128 partitions: at M = 1 every VectorE/ScalarE instruction
walks the whole row on one lane. The split form views each row as ``[128, D / 128]``
(``x.reshape((M, 128, D // 128))``: a view of the row-major storage, no data movement; HBM
tensors are reshaped before indexing in both APIs: SH nki/api/nki/language/__init__.py
NkiTensor ``reshape``, nki 0.3; S25 general/nki/api/nki/__init__.py ``tensor.reshape``, SDK
2.25) and loops over the rows. Per row:

1. each reduction's body is evaluated on the ``[128, D / 128]`` tile and summed along the free
   axis into a ``[128, 1]`` float32 column of partial sums (the row lowering's own
   :class:`~nkigen.codegen.tilexpr.Compiler`, so the same engines and fusions);
2. the partials are summed across the partitions on TensorE, ``ones[128, 128]^T @ partial``:
   every partition of the ``[128, 1]`` float32 PSUM result holds the total (the stationary
   operand's free size is the result's partition count, at most 128; the moving operand's
   free size 1 <= 512; float32 operands need a float32 partner and TensorE accumulates in
   float32 into a float32 PSUM tile: SH nki/api/nki/isa/__init__.py nc_matmul "Data types",
   "Tile size", nki 0.3; S25 general/nki/api/nki/isa/__init__.py nc_matmul, SDK 2.25);
3. ScalarE evicts it to SBUF, times ``1 / D`` for a mean (as :mod:`nkigen.codegen.colreduce`);
4. the statistics and the element-wise statements run on the ``[128, D / 128]`` view with
   that broadcast column, and store through the same view.

Sums and means (float32 partials; the summation order changes, which the spec's tolerance
covers: tests/test_rowsplit.py) on both targets; maxima and minima (softmax, log_softmax,
row_max) on NeuronCore-v3 only (:func:`_extreme`: two TensorE transposes, bit-accurate there).
Only ``D`` a multiple of 128 (the reshape); other row lengths, arg-reductions and any statement
outside the forms above keep the one-row-per-partition pass.
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen.codegen import peephole
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.codegen.pipeline import prefetch
from nkigen.codegen.prepass import rebuild
from nkigen.codegen.rows import FREE_CHUNK
from nkigen.codegen.tilexpr import F32, ONE, ZERO, Bound, Compiler, Kind, TileCtx, Unsupported
from nkigen.hw import PMAX, PSUM_BANKS
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    Call,
    Const,
    Neg,
    ParamRef,
    Reduce,
    ReduceKind,
    Role,
    SizeRef,
    Statement,
    TensorDecl,
    index_symbol,
    walk,
)

# The split form is taken when D >= elems * M (and D % 128 == 0), ``elems`` the row length
# per row the split form needs to repay its fixed cost per row. Set from the cost model: the
# split form costs a fixed time per row (its instructions' issue and DMA latencies: ~0.5 us on
# trn2 for rmsnorm, ~1.5 us for layernorm), the one-row-per-partition pass a time per element of
# the row (~1.8 ns, ~5.2 ns), in a ratio of ~280-400 elements per row for each normalisation
# shipped (ROW_ELEMS_PER_ROW). A group of reductions alone (row_sum, row_mean) makes one pass
# over the row, so it needs longer rows: at 512 per row row_sum on trn1 was modelled 3 % slower
# at M = 1, D = 512 (REDUCE_ELEMS_PER_ROW). tests/test_rowsplit.py pins the boundaries and
# checks the split form is modelled faster there, each spec, target and dialect.
ROW_ELEMS_PER_ROW = 512
REDUCE_ELEMS_PER_ROW = 1024
# A max or min combines through two TensorE transposes, a reduce and a copy (:func:`_extreme`):
# a longer chain per row, which needs twice the row length (softmax on trn2 at 512 per row was
# modelled 10 % slower at M = 1, D = 512; at 1024 per row 1.33x faster at the boundary)
EXTREME_FACTOR = 2
# and only while a row's [128, D / 128] tiles stay small: at most FREE_CHUNK (the row
# lowering's streamed chunk, 8 KiB of float32 per partition) elements per partition, and
# within the SBUF budget (:func:`fit_cap`: a group with many row-length tiles, e.g. many
# per-column weights, is capped lower; its rows are not chunked)
_EXPR_NODES = (Access, BinOp, Neg, Call, Const, ParamRef, SizeRef, Reduce)
_EXTREMES = {ReduceKind.MAX: P.AluOp.MAXIMUM, ReduceKind.MIN: P.AluOp.MINIMUM}
_COMBINED = (ReduceKind.SUM, ReduceKind.MEAN, *_EXTREMES)


@dataclasses.dataclass(frozen=True)
class _Shape:
    """The group's row extent ``M`` and row length ``D`` (size symbols)."""

    M: sympy.Symbol
    D: sympy.Symbol


def _shape(b: Build, group: list[Statement]) -> _Shape | None:
    ms, ds = set(), set()
    for st in group:
        if st.op is not AssignOp.ASSIGN or st.sum_indices or len(st.lhs) not in (1, 2):
            return None
        ms.add(sympy.sympify(b.extents[st.lhs[0]]))
        if len(st.lhs) == 2:
            ds.add(sympy.sympify(b.extents[st.lhs[1]]))
        for x in walk(st.rhs):
            if not isinstance(x, _EXPR_NODES):
                return None
            if isinstance(x, Reduce):
                if len(x.indices) != 1 or x.op not in _COMBINED:
                    return None
                if x.op in _EXTREMES and b.target.nc_version < 3:
                    return None     # (its TensorE transposes are bit-accurate from NC-v3 on)
                ds.add(sympy.sympify(b.extents[x.indices[0]]))
    if len(ms) != 1 or len(ds) != 1:
        return None
    m, d = ms.pop(), ds.pop()
    if not (isinstance(m, sympy.Symbol) and isinstance(d, sympy.Symbol)):
        return None
    return _Shape(m, d)


def elems_per_row(group: list[Statement]) -> int:
    """The row length per row from which ``group`` takes the split form."""
    base = ROW_ELEMS_PER_ROW if any(len(st.lhs) == 2 for st in group) else REDUCE_ELEMS_PER_ROW
    extreme = any(isinstance(x, Reduce) and x.op in _EXTREMES for st in group
                  for x in walk(st.rhs))
    return base * EXTREME_FACTOR if extreme else base


def psum_tiles(group: list[Statement]) -> int:
    """PSUM tiles the split form allocates per row: one per sum or mean (the ones matmul's
    ``[128, 1]`` result), two per max or min (the turned ``[1, 128]`` row and the turned-back
    column). Each is a bank of its own (2 KiB per partition; a matmul or TensorE transpose
    result lives in one bank: SH nki/api/nki/isa/__init__.py nc_matmul "Tile size", nki 0.3,
    512 float32 per PSUM bank; S25 general/nki/api/nki/language/__init__.py tile_size
    ``psum_fmax``, SDK 2.25), of ``PSUM_BANKS`` = 8 per partition (16 KiB)."""
    return sum(2 if x.op in _EXTREMES else 1 for st in group for x in walk(st.rhs)
               if isinstance(x, Reduce))


def condition(shape: _Shape, elems: int, dmax: int, cap: int = PMAX * FREE_CHUNK) -> sympy.Expr:
    """Zero exactly when the split form is taken: ``D % 128 == 0``, ``elems * M <= D`` and
    ``D <= cap`` (at most ``128 * FREE_CHUNK``, less where the split form's SBUF peak is over
    the budget: :func:`fit_cap`; written only when ``dmax``, the largest allowed ``D``, is
    over it); each term a non-negative integer at trace time."""
    got = sympy.Mod(shape.D, PMAX) + PMAX * sympy.floor(elems * shape.M / (shape.D + 1))
    if dmax > cap:
        got += PMAX * sympy.floor(shape.D / (cap + 1))
    return got


def fit_cap(b: Build, split: list, shape: _Shape, elems: int, dmax: int) -> int:
    """The largest row length (a multiple of 128, at most ``min(dmax, 128 * FREE_CHUNK)``)
    at which the split form's pipelined SBUF peak (:func:`nkigen.codegen.rows.peak`, the
    ``[128, D / 128]`` tiles of a row and of the next one, at the most rows taking the form
    there, ``M = D // elems``) stays within the planner's fused-pass budget, or 0.

    Review 18 R18-2: the split form's rows are not chunked, so a group with many row-length
    temps at a long allowed ``D`` overflowed SBUF (current API: live tiles over the usable
    SBUF, spilled to HBM and reloaded by the compiler) where the one-row-per-partition pass
    streams its rows in chunks."""
    from nkigen.codegen.planner import FUSED_SBUF_SHARE
    from nkigen.codegen.rows import peak
    budget = int(FUSED_SBUF_SHARE * b.target.sbuf_bytes_per_partition)
    pk = peak(split, classic=b.classic)
    rq = next(n.name for n in split if isinstance(n, P.Let))
    syms = {x.name: x for x in pk.free_symbols}

    def fits(q: int) -> bool:
        subs = {syms[k]: v for k, v in ((rq, q), (shape.D.name, PMAX * q),
                                        (shape.M.name, max(1, PMAX * q // elems)))
                if k in syms}
        return int(pk.subs(subs)) <= budget

    hi = min(dmax, PMAX * FREE_CHUNK) // PMAX
    if fits(hi):
        return hi * PMAX
    lo = 0          # fits(lo) (none), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo * PMAX


def choose(b: Build, group: list[Statement], nodes: list) -> tuple[list, bool]:
    """``nodes`` (the one-row-per-partition pass of ``group``) behind a trace-time choice of
    the split form when it lowers ``group``, and whether it does."""
    got = try_lower(b, group)
    if got is None:
        return nodes, False
    # the per-row length read by name (``SPLIT_ROW_ELEMS * M``), not as an equal constant of
    # the stage's other arithmetic (render.consts: owners tell constants of one value apart)
    b.const("SPLIT_ROW_ELEMS", got.elems, "elements per row from which each row is "
            "spread over the partitions (codegen/rowsplit.py, a trace-time choice)", None,
            (checked(got.shape.M.name, "size"),))
    return [P.If(condition(got.shape, got.elems, got.dmax, got.cap), ZERO, tuple(got.nodes),
                 tuple(nodes), P.Cmp.EQ)], True


class _Rewriter:
    """Statements of the group rewritten onto the split tile: ``sp`` the partition index,
    ``sq`` the free one; a row tensor ``x[m, d]`` read through its view ``x_rs[m, sp, sq]``, a
    per-column ``w[d]`` through ``w_rs[sp, sq]``, a tensor written earlier in the group from
    the chip (``s[sp]``, ``h[sp, sq]``)."""

    def __init__(self, b: Build, shape: _Shape, sp: str, sq: str, rq: sympy.Expr):
        self.b, self.shape, self.sp, self.sq, self.rq = b, shape, sp, sq, rq
        self.views: dict[str, TensorDecl] = {}      # tensor -> its split view
        self.onchip: dict[str, int] = {}             # tensor written in the group -> rank

    def view(self, name: str) -> str:
        if name not in self.views:
            t = self.b.spec.tensor(name)
            shape = (self.shape.M, sympy.Integer(PMAX), self.rq) if t.rank == 2 \
                else (sympy.Integer(PMAX), self.rq)
            vname = self.b.namer.fresh(f"{checked(name, 'tensor')}_rs")
            self.views[name] = TensorDecl(vname, Role.TEMP, shape, t.dtype, view_of=name)
        return self.views[name].name

    def access(self, a: Access, m: str, col: str | None) -> Access:
        if a.indirect:
            raise Unsupported("gather")
        msym = index_symbol(m)
        idx = tuple(sympy.sympify(e) for e in a.indices)
        t = self.b.spec.tensor(a.tensor)
        shp = tuple(sympy.sympify(s) for s in t.shape)
        P_, Q = index_symbol(self.sp), index_symbol(self.sq)
        if a.tensor in self.onchip:
            if self.onchip[a.tensor] == 1 and idx == (msym,):
                return Access(a.tensor, (P_,))
            if col is not None and self.onchip[a.tensor] == 2 and \
                    idx == (msym, index_symbol(col)):
                return Access(a.tensor, (P_, Q))
            raise Unsupported(f"on-chip {a.tensor} read at {idx}")
        if col is not None and idx == (msym, index_symbol(col)) and \
                shp == (self.shape.M, self.shape.D):
            return Access(self.view(a.tensor), (msym, P_, Q))
        if col is not None and idx == (index_symbol(col),) and shp == (self.shape.D,):
            return Access(self.view(a.tensor), (P_, Q))
        raise Unsupported(f"access {a.tensor}{list(idx)}")

    def expr(self, e, m: str, col: str | None):
        def visit(x):
            if isinstance(x, Access):
                return self.access(x, m, col)
            if isinstance(x, Reduce):
                raise Unsupported("nested reduction")
            return None
        return rebuild(e, visit)


@dataclasses.dataclass(frozen=True)
class Split:
    """The split form of a group: its nodes (run when :func:`condition` is zero), the group's
    shape, row length per row, largest allowed ``D`` and SBUF cap (:func:`fit_cap`)."""

    nodes: list
    shape: _Shape
    elems: int
    dmax: int
    cap: int


def try_lower(b: Build, group: list[Statement]) -> Split | None:
    """The split form of ``group``, or None."""
    sched = b.schedule
    if sched is not None and (sched.tiles or sched.block or sched.order):
        # a spec (or a tuned candidate) that sets its tiles gets the planner's form for them
        # (the hints name the one-row-per-partition pass's indices); a buffers hint keeps the
        # split form (one buffer: its row loop is not prefetched, as in the classic dialect,
        # where the per-row lengths below hold too)
        return None
    shape = _shape(b, group)
    if shape is None or not any(isinstance(x, Reduce) for st in group for x in walk(st.rhs)):
        return None
    from nkigen.codegen.rows import _least_rows, at_sizes
    least = _least_rows(b, shape.M)
    dmax = at_sizes(b, shape.D)
    elems = elems_per_row(group)
    if least is None or dmax is None or elems * least > dmax or elems * least > PMAX * FREE_CHUNK:
        return None     # never taken at the allowed sizes
    names, resident, mark = b.namer.state(), set(b.resident), len(b.consts)
    try:
        split = _lower(b, group, shape)
        cap = fit_cap(b, split, shape, elems, dmax)
        if cap < elems * least:
            raise Unsupported("the split form's SBUF peak is over the budget at every length")
        return Split(split, shape, elems, dmax, cap)
    except Unsupported:
        b.namer.restore(names)
        b.resident = resident
        del b.consts[mark:]
        return None


def _read_elsewhere(b: Build, group: list[Statement]) -> set[str]:
    """Tensors a statement outside ``group`` reads. (Not by ``Statement.position``: the
    statements a pre-pass adds share the position of the one they came from, so the hoisted
    global mean's per-row part ``y_mean_rows[i]`` looked read by no later statement, was kept
    on chip, and the next stage read a name nothing allocated.)"""
    inside = {id(st) for st in group}
    return {x.tensor for st in b.spec.statements if id(st) not in inside
            for x in walk(st.rhs) if isinstance(x, Access)}


def _lower(b: Build, group: list[Statement], shape: _Shape) -> list:
    n_ = b.namer
    S = b.sym
    sp, sq = n_.fresh("sp"), n_.fresh("sq")
    rq, row = n_.fresh("rq"), n_.fresh("row")
    rqs, rows = S(rq), S(row)
    rw = _Rewriter(b, shape, sp, sq, rqs)
    ext = dict(b.extents)
    ext[sp], ext[sq] = sympy.Integer(PMAX), rqs
    elsewhere = _read_elsewhere(b, group)
    stored = {st.target for st in group
              if not (b.is_temp(st.target) and st.target not in elsewhere)}
    # rewrite every statement first (Unsupported before any node is made)
    plan: list[tuple[Statement, object]] = []
    for st in group:
        if b.writers(st.target) != 1 or st.target in rw.onchip:
            raise Unsupported("a target written twice")
        t = b.spec.tensor(st.target)
        m = st.lhs[0]
        if len(st.lhs) == 2:
            if tuple(sympy.sympify(s) for s in t.shape) != (shape.M, shape.D):
                raise Unsupported("target shape")
            if any(isinstance(x, Reduce) for x in walk(st.rhs)):
                raise Unsupported("a reduction in a row statement")
            rhs = rw.expr(st.rhs, m, st.lhs[1])
            if st.target in stored:
                rw.view(st.target)
        else:
            if tuple(sympy.sympify(s) for s in t.shape) != (shape.M,):
                raise Unsupported("target shape")

            def top(x, m=m):
                if isinstance(x, Reduce):
                    return Reduce(x.op, rw.expr(x.body, m, x.indices[0]), (sq,))
                if isinstance(x, Access):
                    return rw.access(x, m, None)
                return None
            rhs = rebuild(st.rhs, top)
        plan.append((st, rhs))
        rw.onchip[st.target] = len(st.lhs)
    if psum_tiles(group) > PSUM_BANKS - 1:
        # review 18 R18-1: each combine of a row holds a PSUM tile of its own (a bank each),
        # all of a row's live together, and one more bank is held while they are: the
        # pipelined loop allocates the next row's first tile before its name lets the last
        # row's go, the classic ``ps[...] += nisa.nc_matmul(..)`` result is a tile of its own
        # until accumulated. So at most PSUM_BANKS - 1 = 7 per row (softmax has 3)
        raise Unsupported(f"{psum_tiles(group)} PSUM tiles per row")
    spec2 = dataclasses.replace(b.spec, temps=b.spec.temps + tuple(rw.views.values()))
    pre: list = [P.Let(rq, sympy.floor(shape.D / PMAX))]
    for name, decl in rw.views.items():
        pre.append(P.Alloc(decl.name, decl.shape, decl.dtype, P.Mem.HBM,
                           view_of=checked(name, "tensor")))
    ones = n_.fresh("ones")
    full = P.Slice(ZERO, sympy.Integer(PMAX))
    if any(isinstance(x, Reduce) and x.op not in _EXTREMES for st in group for x in walk(st.rhs)):
        # the stationary operand holds only 1.0: is_stationary_onezero (S25
        # general/nki/api/nki/isa/__init__.py nc_matmul, SDK 2.25; SH
        # nki/api/nki/isa/__init__.py nc_matmul, nki 0.3), as colreduce's ones column
        pre += [P.Alloc(ones, (sympy.Integer(PMAX), sympy.Integer(PMAX)), F32, P.Mem.SBUF),
                P.Memset(P.Ref(ones, (full, full)), sympy.Float(1.0))]
    body: list = []
    post: list = []
    bound: dict[str, Bound] = {}
    cache: dict = {}
    load: dict = {}
    for st, rhs in plan:
        c = Compiler(spec2, n_, ext, st, b.target, classic=b.classic)
        c.trace_env = not b.classic
        t = b.spec.tensor(st.target)
        rank2 = len(st.lhs) == 2
        ctx = TileCtx(sp, ZERO, sympy.Integer(PMAX), sq if rank2 else None, ZERO,
                      rqs if rank2 else ONE, rqs if rank2 else ONE,
                      env={st.lhs[0]: rows}, bound=bound, out=body, hoist=pre, hoist_ok=True,
                      cache=cache, load=load)
        if not rank2:
            rhs = _combine(b, c, ctx, rhs, shape, ones, bound)
        v = c.compile(ctx, rhs, want=t.dtype)
        for k in c.declared:
            b.const(k.name, k.value, k.why, k.tile_size, k.owners, k.owned_only, k.expr)
        kind = Kind.ROW if rank2 else Kind.COL
        if v.kind is not kind or v.dtype != t.dtype or v.buf is None or v.step != 1 \
                or (rank2 and st.target not in stored and not v.temp):
            v = c.materialize(ctx, v, kind, t.dtype)
        assert v.buf is not None
        bound[st.target] = Bound(v.buf, kind, t.dtype, v.off)
        if st.target not in stored:
            b.resident.add(st.target)
            continue
        tname = checked(st.target, "tensor")
        if rank2:
            dst: P.AnyRef = P.Ref(rw.views[st.target].name,
                                  (P.Index(rows), full, P.Slice(ZERO, rqs)))
            body.append(P.Dma(dst, c.ref(ctx, v)))
        else:
            # every partition holds the row's value: partition 0's goes to column ``row`` of
            # a [1, M] row, stored once after the loop (one DMA, not one per row: each pays
            # the fixed DMA cost, 1.3 us on trn1)
            res = n_.fresh(f"{tname}_row")
            pre.append(P.Alloc(res, (sympy.Integer(PMAX), shape.M), t.dtype, P.Mem.SBUF))
            body.append(P.TensorCopy(P.Ref(res, (P.Slice(ZERO, ONE), P.Slice(rows, ONE))),
                                     P.Ref(v.buf, (P.Slice(ZERO, ONE), P.Slice(v.off, ONE)))))
            post.append(P.Dma(P.ApRef(tname, ZERO, ((ONE, ONE), (ONE, shape.M))),
                              P.Ref(res, (P.Slice(ZERO, ONE), P.Slice(ZERO, shape.M)))))
    body = _hoist_columns(body, pre, {d.name for d in rw.views.values() if len(d.shape) == 2})
    loop = P.Loop(row, shape.M, P.LoopKind.PARALLEL, tuple(peephole.optimize(body)))
    hbm = {t.name for t in spec2.tensors}
    if b.buffers() >= 2:
        return [*pre, *prefetch(loop, n_, hbm, skew=True), *post]
    return [*pre, loop, *post]


def _combine(b: Build, c: Compiler, ctx: TileCtx, rhs, shape: _Shape, ones: str,
             bound: dict[str, Bound]):
    """``rhs`` with each of its (split) reductions replaced by a read of the row's total,
    broadcast to every partition: the partial sums of the ``[128, D / 128]`` tile, then
    ``ones^T @ partial`` on TensorE into PSUM, evicted (times ``1 / D`` for a mean) by
    ScalarE."""
    def visit(x):
        if not isinstance(x, Reduce):
            return None
        if x.op in _EXTREMES:
            return _extreme(b, c, ctx, x, bound)
        part = c.compile(ctx, Reduce(ReduceKind.SUM, x.body, x.indices))
        if part.kind is not Kind.COL or part.dtype is not F32 or part.buf is None:
            raise Unsupported("a partial sum that is not a float32 column")
        n_ = b.namer
        ps, tot = n_.fresh("ps"), n_.fresh("tot")
        full = P.Slice(ZERO, sympy.Integer(PMAX))
        col = P.Slice(ZERO, ONE)
        scale = ONE / shape.D if x.op is ReduceKind.MEAN else sympy.Float(1.0)
        ctx.out += [
            P.Alloc(ps, (sympy.Integer(PMAX), ONE), F32, P.Mem.PSUM),
            P.Matmul(P.Ref(ps, (full, col)), P.Ref(ones, (full, full)),
                     P.Ref(part.buf, (full, P.Slice(part.off, ONE))), stationary_onezero=True),
            P.Alloc(tot, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
            P.Activation(P.Ref(tot, (full, col)), P.ActFunc.COPY, P.Ref(ps, (full, col)),
                         P.Scalar(scale)),
        ]
        bound[tot] = Bound(tot, Kind.COL, F32)
        return Access(tot, (index_symbol(ctx.p),))
    return rebuild(rhs, visit)


def _extreme(b: Build, c: Compiler, ctx: TileCtx, x: Reduce, bound: dict[str, Bound]):
    """The row's max (min) broadcast to every partition, NeuronCore-v3 only: the partial
    extremes ``[128, 1]`` turned into a ``[1, 128]`` PSUM row on TensorE, reduced along the
    free axis on VectorE into one value, written into a ``[1, 128]`` row (a zeroed row plus
    the value: exact) and turned back into a ``[128, 1]`` column. TensorE transposes are
    bit-accurate from NeuronCore-v3 on, NaN/Inf included (SH nki/api/nki/isa/__init__.py
    nc_transpose, nki 0.3: "Starting NeuronCore-v3, all Tensor Engine transpose is
    bit-accurate"; the output has the input's dtype: float32 throughout); a max is exact in
    any order, so the result is the one-row-per-partition pass's."""
    part = c.compile(ctx, x)
    if part.kind is not Kind.COL or part.buf is None:
        raise Unsupported("a partial extreme that is not a column")
    if part.dtype is not F32:
        part = c.materialize(ctx, part, Kind.COL, F32)
    assert part.buf is not None
    n_ = b.namer
    turned, one, row, back, tot = (n_.fresh("turned"), n_.fresh("extreme"),
                                   n_.fresh("spread"), n_.fresh("back"), n_.fresh("tot"))
    P_, full = sympy.Integer(PMAX), P.Slice(ZERO, sympy.Integer(PMAX))
    col, first = P.Slice(ZERO, ONE), P.Slice(ZERO, ONE)
    ctx.out += [
        P.Alloc(turned, (ONE, P_), F32, P.Mem.PSUM),
        P.PeTranspose(P.Ref(turned, (first, full)),
                      P.Ref(part.buf, (full, P.Slice(part.off, ONE)))),
        P.Alloc(one, (P_, ONE), F32, P.Mem.SBUF),
        P.TensorReduce(P.Ref(one, (first, col)), _EXTREMES[x.op], P.Ref(turned, (first, full))),
        P.Alloc(row, (P_, P_), F32, P.Mem.SBUF),
        P.Memset(P.Ref(row, (first, full)), sympy.Float(0.0), P.Eng.VECTOR),
        P.TensorScalar(P.Ref(row, (first, full)), P.Ref(row, (first, full)), P.AluOp.ADD,
                       P.Ref(one, (first, col))),
        P.Alloc(back, (P_, ONE), F32, P.Mem.PSUM),
        P.PeTranspose(P.Ref(back, (full, col)), P.Ref(row, (first, full))),
        P.Alloc(tot, (P_, ONE), F32, P.Mem.SBUF),
        P.TensorCopy(P.Ref(tot, (full, col)), P.Ref(back, (full, col)), P.Eng.VECTOR),
    ]
    bound[tot] = Bound(tot, Kind.COL, F32)
    return Access(tot, (index_symbol(ctx.p),))


def _hoist_columns(body: list, pre: list, colviews: set[str]) -> list:
    """``body`` without the loads of per-column operands (``w_rs[sp, sq]``: the same for
    every row), which go to ``pre``, before the row loop, with their tiles."""
    moved: set[str] = set()
    for n in body:
        if isinstance(n, P.Dma) and isinstance(n.src, P.Ref) and n.src.name in colviews \
                and isinstance(n.dst, P.Ref):
            moved.add(n.dst.name)
    if not moved:
        return body
    keep: list = []
    for n in body:
        if (isinstance(n, P.Alloc) and n.name in moved) or \
                (isinstance(n, P.Dma) and isinstance(n.dst, P.Ref) and n.dst.name in moved):
            pre.append(n)
        else:
            keep.append(n)
    return keep


NOTE = ("rows of a multiple of 128 elements, at least 512 (a reduction alone: 1024; twice that "
        "with a max/min) per row (a trace-time choice): each row as [128, D / 128] across the "
        "partitions, partial sums combined by ones^T @ partial on TensorE, partial maxima by "
        "two TensorE transposes")
