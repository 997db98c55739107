"""Row lowering: element-wise and reduction statements, alone or fused over one row tile.

Stage: plan (Statement(s) -> plan nodes). Input: statements whose left-hand side is indexed by
plain indices; output: a partition-tile loop (128 rows, the last one partial) in which each
statement's right-hand side is compiled by :mod:`nkigen.codegen.tilexpr` and stored.

Placement: for a left-hand side ``T[..., i, j]`` the partition index is ``i`` and the free index
``j`` (outer indices become scalar loops, written out inside the row-tile loop when short and
fixed: :func:`unrolled_envs`); a rank-1 target puts its index on the partitions. When
that placement would force a reduction to loop element by element, the last index goes on the
partitions instead and the reduction gets its own free axis.

Fusion: consecutive statements over the same partition extent share one pass; the temps they
pass to each other stay on chip (never touching HBM) when the on-chip footprint of one row tile
fits the SBUF budget. Reduction-free single statements stream their free axis in chunks of
``FREE_CHUNK`` elements, so any row length lowers.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from nkigen.codegen import peephole
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.pipeline import prefetch
from nkigen.codegen.symcache import Min
from nkigen.codegen.tilexpr import (
    ONE,
    ZERO,
    Bound,
    Compiler,
    Kind,
    TileCtx,
    Unsupported,
    stmt_error,
)
from nkigen.diagnostics import error
from nkigen.hw import PMAX, SBUF_FMAX_ELEMS
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Expr,
    Reduce,
    ReduceKind,
    Statement,
    accesses,
    division_parts,
    expr_indices,
    index_exprs,
    walk,
)

FREE_CHUNK = 2048          # elements per partition of one streamed element-wise tile
UNROLL_MAX = 4             # outer scalar-loop iterations written out inside the row-tile body


def unrolled_envs(b: Build, loops: tuple[str, ...]) -> list[dict[str, sympy.Expr]] | None:
    """The index values of a group's outer scalar loops when they are short and fixed (the two
    halves of ``x[M, 2, H]``: at most :data:`UNROLL_MAX` iterations in all), else None.

    Such loops are written out inside the row-tile loop instead of around it: the statements
    of every iteration share one pass over the rows, so a load that does not depend on the
    loop index (``cos[m, h]``), or that another iteration also reads (``x[m, 1 - s, h]``),
    is issued once per row tile instead of once per iteration (the tile cache of
    :class:`nkigen.codegen.tilexpr.TileCtx`), and each iteration's ``where`` on the index is
    decided at plan time (:func:`nkigen.codegen.select.fold_where`)."""
    import itertools

    if not loops:
        return None
    exts = [sympy.sympify(b.extents[i]) for i in loops]
    if not all(e.is_Integer for e in exts):
        return None
    total = 1
    for e in exts:
        total *= int(e)
    if total > UNROLL_MAX:
        return None
    return [{i: sympy.Integer(v) for i, v in zip(loops, vals)}
            for vals in itertools.product(*(range(int(e)) for e in exts))]


@dataclass(frozen=True)
class Placement:
    p: str
    f: str | None
    loops: tuple[str, ...]


def effective_rhs(b: Build, st: Statement) -> Expr:
    """The right-hand side with ``+=`` made explicit (einsum sum, add to an earlier value)."""
    rhs = st.rhs
    if st.op is AssignOp.ACCUMULATE:
        if st.sum_indices:
            rhs = Reduce(ReduceKind.SUM, rhs, tuple(st.sum_indices))
        if b.written_before(st):
            rhs = BinOp(BinOpKind.ADD, Access(st.target, tuple(_isym(i) for i in st.lhs)), rhs)
    return rhs


def _isym(name: str) -> sympy.Expr:
    from nkigen.ir import index_symbol
    return index_symbol(name)


def _needs_loop_reduce(c: Compiler, e: Expr, f: str | None) -> bool:
    from nkigen.codegen.coalesce import unrolled
    return any(isinstance(x, Reduce) and c.depends_on(x.body, f) and not unrolled(c, x)
               for x in walk(e))


def placements(b: Build, st: Statement, rhs: Expr) -> list[Placement]:
    """Candidate placements, best first."""
    lhs = st.lhs
    from nkigen.codegen.scan import scan_placement
    sp = scan_placement(lhs, rhs)      # spec language 1.1: the scanned index on the free axis
    if sp is not None:
        p, f, loops = sp
        if loops:
            # of the other indices, the one with the fewest row tiles goes on the partitions
            # (codegen/layout.py): y[b, n, m] scanning m at B = 16, N = 512 puts n there (64
            # row tiles, not 512 with n a loop of one 16-row tile each)
            from nkigen.codegen.layout import best_partition
            rest = (p, *loops)
            p = best_partition(b.spec, b.extents, lhs, p, rest)
            loops = tuple(i for i in rest if i != p)
        return [Placement(p, f, loops)]
    if len(lhs) == 1:
        return [Placement(lhs[0], None, ())]
    from nkigen.codegen.layout import row_partition
    bp = row_partition(b.spec, b.extents, lhs)
    a = Placement(bp, lhs[-1], tuple(i for i in lhs[:-1] if i != bp))
    alt = Placement(lhs[-1], None, tuple(lhs[:-1]))
    c = Compiler(b.spec, b.namer, b.extents, st, b.target, classic=b.classic)
    if _needs_loop_reduce(c, rhs, a.f) and not _needs_loop_reduce(c, rhs, None):
        out = [alt, a]
    else:
        out = [a] + _quasi_affine_fallbacks(rhs, lhs, a)
    out += [pl for pl in _mixed_fallbacks(rhs, lhs, a) if pl not in out]
    gathers = [x for x in accesses(rhs) if x.indirect]
    if gathers and a.f is not None:
        # a gather whose free index moves across the table's rows (table[b, ids[t]] with b on
        # the free axis) has no classic form (codegen/gather.py): the free index then loops
        out.append(Placement(a.p, None, tuple(i for i in lhs if i != a.p)))
    if gathers:
        # a gather needs its ids on the partitions (codegen/gather.py): placements that put
        # an ids index there go first (y[t, h] = sum(table[ids[t], h, d], d) put h there, t a
        # loop: 12,835.77 us at T = 1024, H = 16, D = 256 on trn2, fuzz10)
        ids = {i for x in gathers for _, inner in x.indirect for i in expr_indices(inner)}
        if ids & set(lhs) and not any(pl.p in ids for pl in out):
            p = next(i for i in lhs if i in ids)
            out.append(Placement(p, None, tuple(i for i in lhs if i != p)))
        # then those whose gathered rows are contiguous runs (the tile's free axis on the
        # table's last dimension): a contraction with a gathered weight, y[t, n] += x[t, k] *
        # w[eid[t], k, n], with k on the free axis gathered one element per descriptor (step
        # N) per n: 619.04 us at T 130, K 129, N 40 on trn2 (fuzz15); with n free and k a
        # loop, one run of N elements per partition per k: 90.58 us
        out.sort(key=lambda pl: (pl.p not in ids, _strided_gathers(rhs, gathers, pl),
                                 _needs_loop_reduce(c, rhs, pl.f)))
    return out


def _strided_gathers(rhs: Expr, gathers: list[Access], pl: Placement) -> int:
    """How many of ``gathers`` read their table's last dimension with no index of the tile's
    free axis in it (``pl.f``, else the indices the statement reduces over, which then take
    the free axis): each partition's gathered row is then read with a step."""
    axis = {pl.f} if pl.f is not None else \
        {i for x in walk(rhs) if isinstance(x, Reduce) for i in x.indices}
    return sum(1 for a in gathers if a.indices and
               not {s.name for s in sympy.sympify(a.indices[-1]).free_symbols} & axis)


def _quasi_affine_fallbacks(rhs: Expr, lhs: tuple[str, ...], first: Placement
                            ) -> list[Placement]:
    """Placements that move indices divided by ``//`` / ``%`` (spec language 1.1) off the tile
    axes into outer scalar loops, where the division is evaluated at trace time: the index on
    the partitions is then the last left-hand index not divided anywhere."""
    divided = {s.name for e in index_exprs(rhs)
               for q in sympy.sympify(e).atoms(sympy.floor, sympy.Mod) for s in q.free_symbols}
    if not divided & {first.p, first.f}:
        return []
    plain = [i for i in lhs if i not in divided]
    if not plain:
        return []
    p = plain[-1]
    return [Placement(p, None, tuple(i for i in lhs if i != p))]


def _mixed_fallbacks(rhs: Expr, lhs: tuple[str, ...], first: Placement) -> list[Placement]:
    """A placement whose tile axes index no dimension that mixes several left-hand indices,
    when the first one's do: the classic dialect has no form for one dimension indexed by the
    partition and the free index together (:meth:`Compiler.load`, review 8 R8-6), so the
    pixel shuffle ``y[c, h, a, w, b] = x[4 * c + 2 * a + b, h, w]`` with ``c`` on the
    partitions and ``b`` free failed to build there (fuzz9); ``h`` and ``w`` take the tile
    axes instead, the mixed indices become outer loops."""
    names = set(lhs)
    mixed: set[str] = set()
    for a in accesses(rhs):
        for e in a.indices:
            got = {s.name for s in sympy.sympify(e).free_symbols} & names
            if len(got) > 1:
                mixed |= got
    if not mixed & {first.p, first.f}:
        return []
    plain = [i for i in lhs if i not in mixed]
    if not plain:
        return []
    p, f = (plain[-2], plain[-1]) if len(plain) >= 2 else (plain[-1], None)
    return [Placement(p, f, tuple(i for i in lhs if i not in (p, f)))]


def _row_count(tp: int, pext: sympy.Expr, p0: sympy.Expr) -> sympy.Expr:
    """Rows of the tile starting at row ``p0``: ``min(tp, pext - p0)``; a fixed extent of at
    most one tile is that extent (its one tile starts at 0). Written out, because sympy folds
    ``Min(128, 1 - p0)`` to ``1 - p0`` (p0 >= 0), a size of the loop index that the classic
    dialect cannot trace (codegen/classic_mask.py masks only ``Min(T, E)`` sizes)."""
    pext = sympy.sympify(pext)
    if pext.is_Number and pext <= tp:
        return pext
    return Min(sympy.Integer(tp), pext - p0)


def placement(b: Build, st: Statement, rhs: Expr) -> Placement:
    return placements(b, st, rhs)[0]


def hint_tiles(b: Build, pl: Placement) -> tuple[int, int]:
    """(partition tile, free chunk) from the schedule hints, else (128, FREE_CHUNK)."""
    sched = b.schedule
    tp, tf = PMAX, FREE_CHUNK
    hp = sched.tile(pl.p) if sched is not None else None
    hf = sched.tile(pl.f) if sched is not None and pl.f is not None else None
    if sched is not None and hp is not None:
        tp = int(hp)
        if not 1 <= tp <= PMAX:
            raise error(sched.loc, f"schedule.tiles.{pl.p}",
                        f"partition tile must be 1..{PMAX}", tp, f"use {PMAX}")
    if sched is not None and hf is not None:
        tf = int(hf)
        if not 1 <= tf <= SBUF_FMAX_ELEMS:
            raise error(sched.loc, f"schedule.tiles.{pl.f}",
                        f"free tile must be 1..{SBUF_FMAX_ELEMS}", tf, f"use {FREE_CHUNK}")
    return tp, tf


def check_self_reads(st: Statement, rhs: Expr) -> None:
    """A statement may read its own target only at the point it writes (``T[i, j]`` in
    ``T[i, j] = ...``): tiles are written while later tiles are still being read."""
    own = tuple(_isym(i) for i in st.lhs)
    for a in accesses(rhs):
        if a.tensor == st.target and tuple(sympy.sympify(e) for e in a.indices) != own:
            raise stmt_error(st, f"reads its target {st.target} at other points than it "
                                 "writes (tiles would be overwritten before they are read)",
                             "compute the right-hand side into a temp first")


def lower_statement(b: Build, st: Statement) -> list:
    """One statement on its own: HBM in, HBM out."""
    rhs = effective_rhs(b, st)
    check_self_reads(st, rhs)
    from nkigen.codegen import flatmap
    flat = flatmap.lower(b, st, rhs)     # a rank-1 element-wise statement: rows of a grid
    if flat is not None:
        return flat
    cands = placements(b, st, rhs)
    from nkigen.codegen.scan import ScanRowsTooLong, scans
    if len(cands) == 1 and cands[0].f is not None and scans(rhs):
        names = b.namer.state()
        try:
            return _emit_group(b, [(st, rhs, cands[0])], resident=set(), chunk=True,
                               strict=True)
        except ScanRowsTooLong:
            b.namer.restore(names)
            return scan_chunks(b, st, rhs, cands[0])
        except Unsupported:
            b.namer.restore(names)       # the loop below raises the located error
    for i, pl in enumerate(cands):
        try:
            return _emit_group(b, [(st, rhs, pl)], resident=set(), chunk=True,
                               strict=i + 1 < len(cands))
        except Unsupported:
            continue
    raise AssertionError("unreachable")


def scan_chunks(b: Build, st: Statement, rhs: Expr, pl: Placement) -> list:
    """A scan statement whose whole rows do not fit one SBUF partition
    (:class:`nkigen.codegen.scan.ScanRowsTooLong`): per row tile, the scans' carry columns
    are set from their initial values, then a sequential loop over free chunks of
    ``FREE_CHUNK`` elements (or the schedule's free tile) loads each chunk, scans it from the
    carries, stores it, and copies each scan's last result column into its carry
    (:mod:`nkigen.codegen.scan`). The row-tile loop is parallel (rows are independent), the
    chunk loop sequential (each chunk reads the carry the one before wrote: S25
    general/nki/api/nki/language/__init__.py sequential_range, SDK 2.25). Outer scalar loops
    of a higher-rank statement stay loops."""
    from nkigen.codegen.scan import ScanCarry
    assert pl.f is not None
    pext, fext = b.extents[pl.p], b.extents[pl.f]
    tp, fchunk = hint_tiles(b, pl)
    pt, p0, psz = b.namer.fresh("pt"), b.namer.fresh("p0"), b.namer.fresh("psz")
    fc, f0, fsz = b.namer.fresh("fc"), b.namer.fresh("f0"), b.namer.fresh("fsz")
    rows_n = _row_count(tp, pext, b.sym(p0))
    pszs = rows_n if rows_n.is_Number else b.sym(psz)
    b.const("TILE_P", tp, "rows per tile: one per partition", "pmax" if tp == PMAX else None,
            (pt, p0, psz))
    b.const("SCAN_TILE", fchunk, "elements per partition of one scanned chunk: a row longer "
            "than one SBUF partition holds is scanned chunk by chunk", None, (fc, f0, fsz))
    loops: list[tuple[str, str]] = []
    env: dict[str, sympy.Expr] = {}
    for idx in pl.loops:
        var = b.namer.fresh(f"i_{idx}")
        loops.append((idx, var))
        env[idx] = b.sym(var)
    per_tile: list = []
    carry = ScanCarry(per_tile)
    body: list = [P.Let(f0, b.sym(fc) * fchunk),
                  P.Let(fsz, _row_count(fchunk, fext, b.sym(f0)))]
    c = Compiler(b.spec, b.namer, b.extents, st, b.target, classic=b.classic)
    c.trace_env = not b.classic
    ctx = TileCtx(pl.p, b.sym(p0), pszs, pl.f, b.sym(f0), b.sym(fsz), sympy.Integer(fchunk),
                  env=env, out=body, hoist=None, hoist_ok=False, chunked=True,
                  outer=tuple(pl.loops), row_hoist=per_tile, fvar=b.sym(fc),
                  scan_carry=carry)
    _compile_store(b, c, ctx, st, rhs, set(), strict=False)
    body += carry.updates
    chunks = P.Loop(fc, sympy.ceiling(fext / fchunk), P.LoopKind.SEQUENTIAL,
                    tuple(peephole.optimize(body)))
    # current API: each chunk's loads are issued a chunk ahead (codegen/pipeline.py), so the
    # DMA queues do not wait behind the previous chunk's store; loads only (skew False): no
    # work of chunk i + 1 may pass chunk i's carry update
    rows = P.Loop(pt, sympy.ceiling(pext / tp), P.LoopKind.PARALLEL,
                  (P.Let(p0, b.sym(pt) * tp), P.Let(psz, rows_n), *per_tile,
                   *_pipelined(b, chunks, False)))
    return _in_loops(b, [rows], loops)


def lower_group(b: Build, stmts: list[Statement], skew: bool = True) -> list | None:
    """Several statements fused over one row tile, or None if they cannot share one."""
    items = []
    for st in stmts:
        rhs = effective_rhs(b, st)
        check_self_reads(st, rhs)
        items.append((st, rhs, placement(b, st, rhs)))
    if any(pl.loops for _, _, pl in items):
        # statements of higher rank (``y[b, s, d]``): the flattened row index goes on the
        # partitions, the leading indices become outer loops; the 2-D statements of the group
        # ``mu[b, s] = mean(x[b, s, d], d)`` then take the same placement (s on the
        # partitions, loops over b) instead of putting b on the partitions and looping over
        # d element by element (issue 14's 3-D layernorm cliff)
        pls = [pl if pl.loops or len(st.lhs) != 2
               else Placement(st.lhs[1], None, (st.lhs[0],)) for st, _, pl in items]
        if len({(pl.p, pl.loops) for pl in pls}) != 1:
            return None
        items = [(st, rhs, pl) for (st, rhs, _), pl in zip(items, pls)]
    ext = {sympy.simplify(b.extents[pl.p]) for _, _, pl in items}
    if len(ext) != 1:
        return None
    written = [st.target for st in stmts]
    # a tensor written in the group and read again inside it must be read from the chip (an
    # HBM re-read would cross partition tiles of the same pass): keep it bound there
    inside = {t for k, st in enumerate(stmts) for t in written[:k]
              if any(a.tensor == t for a in accesses(st.rhs))}
    if any(written.count(t) != 1 or b.writers(t) != 1 for t in inside):
        return None
    # temps read only inside the group never touch HBM
    onchip = {t for t in inside if b.is_temp(t) and b.last_reader(t) <= stmts[-1].position}
    from nkigen.codegen import flatmap
    flat = flatmap.lower_items(b, [(st, rhs) for st, rhs, _ in items], inside, onchip)
    if flat is not None:         # rank-1 element-wise statements: rows of a grid
        return flat
    try:
        return _emit_group(b, items, inside, chunk=False, strict=True, skew=skew,
                           nostore=onchip)
    except Unsupported:
        return None


def _emit_group(b: Build, items, resident: set[str], chunk: bool,
                strict: bool = False, skew: bool = True,
                nostore: frozenset[str] | set[str] = frozenset()) -> list:
    st0, _, pl0 = items[0]
    pext = b.extents[pl0.p]
    tp, fchunk = hint_tiles(b, pl0)
    fchunk = _period_chunk(b, items, pl0, fchunk)
    npt = sympy.ceiling(pext / tp)
    pre: list = []
    body: list = []
    pt = b.namer.fresh("pt")
    p0 = b.namer.fresh("p0")
    psz = b.namer.fresh("psz")
    p0s = b.sym(p0)
    rows_n = _row_count(tp, pext, p0s)
    pszs = rows_n if rows_n.is_Number else b.sym(psz)   # one tile of fixed rows: the number
    b.const("TILE_P", tp, "rows per tile: one per partition", "pmax" if tp == PMAX else None,
            (pt, p0, psz))
    bound: dict[str, Bound] = {}
    loops: list[tuple[str, str]] = []     # (index, loop var) outer scalar loops
    env: dict[str, sympy.Expr] = {}
    envs = unrolled_envs(b, pl0.loops)
    if envs is None:
        for idx in pl0.loops:
            var = b.namer.fresh(f"i_{idx}")
            loops.append((idx, var))
            env[idx] = b.sym(var)
    from nkigen.codegen.select import fold_where
    # the (environment, statements) passes of one row tile: one, or one per unrolled iteration
    passes = [(env, items)] if envs is None else [
        (e, [(st, fold_where(rhs, e), pl) for st, rhs, pl in items]) for e in envs]
    cache: dict = {}
    load: dict = {}
    from nkigen.codegen.scan import scans
    if chunk and len(items) == 1 and items[0][2].f is not None and not scans(items[0][1]):
        # one flat loop over (row tile, free chunk) pairs, so loads can be prefetched across
        # both; the classic dialect (no Python-level prefetch) nests them instead, row tile
        # outer, so no loop index needs a floor division or Mod at trace time
        st, rhs, pl = items[0]
        fext = b.extents[pl.f]
        flat = not b.classic
        it = b.namer.fresh("it") if flat else b.namer.fresh("fc")
        nfc = b.namer.fresh("nfc")
        f0, fsz = b.namer.fresh("f0"), b.namer.fresh("fsz")
        width = sympy.Integer(fchunk)
        b.const("FREE_TILE", fchunk, "elements per partition of one streamed tile: large DMAs "
                "(8 KiB of fp32 per partition), small enough to double-buffer every operand",
                None, (it, f0, fsz, nfc))
        pre.append(P.Let(nfc, sympy.ceiling(fext / fchunk)))
        head: list = []
        if flat:
            head += [P.Let(p0, sympy.floor(b.sym(it) / b.sym(nfc)) * tp),
                     P.Let(psz, rows_n),
                     P.Let(f0, sympy.Mod(b.sym(it), b.sym(nfc)) * fchunk)]
        else:
            head.append(P.Let(f0, b.sym(it) * fchunk))
        head.append(P.Let(fsz, _row_count(fchunk, fext, b.sym(f0))))  # (the same fold)
        chunk_syms = {f0, fsz}

        def version(hoist_f: bool) -> tuple[list, list, list]:
            """(hoisted loads, loop body, per-row-tile loads) of the statement; a load that
            does not depend on the partition index goes to the hoisted list (review5 F4),
            one of the free chunk only when ``hoist_f``."""
            vbody: list = list(head)
            hoisted: list = []
            per_tile: list = []
            vbound: dict[str, Bound] = {}
            vcache: dict = {}
            vload: dict = {}
            for penv, ((_, prhs, _),) in passes:
                c = Compiler(b.spec, b.namer, b.extents, st, b.target,
                             classic=b.classic)
                c.trace_env = not b.classic
                # nested loops: a column read per row tile (the ids of a gather) is loaded in
                # the row-tile loop, once, not once per free chunk
                ctx = TileCtx(pl.p, p0s, pszs, pl.f, b.sym(f0), b.sym(fsz), width, env=penv,
                              bound=vbound, out=vbody, hoist=hoisted, hoist_ok=True,
                              hoist_f=hoist_f, hoist_rows_only=True, load=vload,
                              hoist_p=hoist_rows(b, tp, pext), chunked=True,
                              cache=vcache,
                              row_hoist=None if flat else per_tile,
                              fvar=None if flat else b.sym(it))
                _compile_store(b, c, ctx, st, prhs, resident, strict, nostore)
            return hoisted, vbody, per_tile

        def per_chunk(nodes: list) -> bool:
            return any(_names(n) & chunk_syms for n in nodes)

        # current API: a statement reading a tensor an earlier statement writes (the
        # statistics of a split layernorm) keeps its per-tile broadcasts: its first tile waits
        # on that stage's stores, and broadcasts issued up front then queue in front of the
        # first tile's loads (layernorm M=200 D=1000 trn2 modeled 22.00 -> 23.43 us hoisted)
        waits = flat and any(b.writers(a.tensor) for a in accesses(rhs))
        names = b.namer.state()
        hoisted, vbody, per_tile = version(not waits)
        if per_chunk(hoisted) and not flat and per_tile:
            # the classic nest cannot put both the row tiles and the free chunks outside
            b.namer.restore(names)
            hoisted, vbody, per_tile = version(False)
        outer_vars = {var for _, var in loops}
        if per_chunk(hoisted) and flat:
            # one free chunk (the rows fit FREE_TILE): the chunk-dependent loads are issued
            # once before the loop with f0 = 0; else (a trace-time choice unless the spec's
            # maximum settles it) the loop of the statement with those loads in the loop
            one = {b.sym(f0): ZERO, b.sym(fsz): fext}
            from nkigen.codegen.pipeline import _map
            from nkigen.codegen.symcache import xreplace
            once = [_map(n, lambda e: xreplace(e, one), lambda nm: nm) for n in hoisted]
            fmax = at_sizes(b, sympy.sympify(fext))
            single = _flat_nodes(b, pre_lets=[], hoisted=once, body=vbody, it=it,
                                 count=npt * b.sym(nfc), skew=skew, loops=loops,
                                 outer_vars=outer_vars)
            if fmax is not None and fmax <= fchunk:
                return [*pre, *single]
            hoisted2, vbody2, _ = version(False)
            multi = _flat_nodes(b, pre_lets=[], hoisted=hoisted2, body=vbody2, it=it,
                                count=npt * b.sym(nfc), skew=skew, loops=loops,
                                outer_vars=outer_vars)
            return [*pre, P.If(b.sym(nfc), ONE, tuple(single), tuple(multi), P.Cmp.EQ)]
        if flat:
            return [*pre, *_flat_nodes(b, pre_lets=[], hoisted=hoisted, body=vbody, it=it,
                                       count=npt * b.sym(nfc), skew=skew, loops=loops,
                                       outer_vars=outer_vars)]
        # classic: row tiles inside the free chunks when a load depends on the chunk only
        # (one broadcast per chunk: each broadcast_to is a TensorE matmul and a PSUM
        # eviction, S25 general/nki/arch/trainium_inferentia2_arch.rst "Partition
        # Broadcast"), else free chunks inside the row tiles
        dep = _dependents(hoisted, chunk_syms)
        chunk_h = [n for n in hoisted if _names(n) & (chunk_syms | dep)
                   or (isinstance(n, P.Alloc) and n.name in dep)]
        lifted, inv = _lift([n for n in hoisted if not any(n is m for m in chunk_h)],
                            outer_vars)
        rows_lets = (P.Let(p0, b.sym(pt) * tp), P.Let(psz, rows_n))
        if chunk_h:
            fl = [n for n in head if n.name in (f0, fsz)]
            inner = P.Loop(pt, npt, P.LoopKind.PARALLEL,
                           (*rows_lets, *peephole.optimize(vbody[len(head):])))
            loop = P.Loop(it, b.sym(nfc), P.LoopKind.PARALLEL, (*fl, *chunk_h, inner))
        else:
            inner = P.Loop(it, b.sym(nfc), P.LoopKind.PARALLEL, tuple(peephole.optimize(vbody)))
            loop = P.Loop(pt, npt, P.LoopKind.PARALLEL, (*rows_lets, *per_tile, inner))
        return [*lifted, *_in_loops(b, [*pre, *inv, loop], loops)]
    else:
        body += [P.Let(p0, b.sym(pt) * tp),
                 P.Let(psz, rows_n)]
        for penv, pitems in passes:
            for st, rhs, pl in pitems:
                c = Compiler(b.spec, b.namer, b.extents, st, b.target, classic=b.classic)
                c.trace_env = not b.classic
                fext = b.extents[pl.f] if pl.f else ONE
                ctx = TileCtx(pl.p, p0s, pszs, pl.f, ZERO, fext, fext, env=penv, bound=bound,
                              out=body, hoist=pre, hoist_ok=not pl0.loops, cache=cache,
                              load=load, chunked=chunk, outer=tuple(pl0.loops),
                              hoist_p=hoist_rows(b, tp, pext))
                _compile_store(b, c, ctx, st, rhs, resident, strict, nostore)
        loop = P.Loop(pt, npt, P.LoopKind.PARALLEL, tuple(peephole.optimize(body)))
    return _in_loops(b, [*pre, *_pipelined(b, loop, skew)], loops)


def hoist_rows(b: Build, tp: int, pext: sympy.Expr) -> sympy.Expr:
    """Partitions a hoisted partition-broadcast load of a per-column operand (``w[d]`` read by
    every row) fills: the rows a row tile can hold, ``min(TILE_P, rows)``, so a decode-shaped
    call (one row) moves one row of the weight, not 128 (rmsnorm M=1 D=8192 nki trn2:
    2,129,920 -> 49,152 HBM bytes modeled). Current API: the broadcast is one DMA whose source
    access pattern has a zero partition step, ``w.ap([[0, rows], [1, D]])``, any count of
    partitions (SH nki/deep-dives/nki-aps.rst "Semantics of the Access Pattern", nki 0.3:
    ``[step, num]`` pairs of any count; the contiguous-partition rule there binds SBUF/PSUM
    patterns only, so a zero step repeats the HBM row on each destination partition).
    Classic: the load already moves one row from HBM and ``broadcast_to`` widens it on chip
    (S25 general/nki/api/nki.language.rst ``load``, ``broadcast_to``, SDK 2.25); the full
    tile stays, bound whole to its name: a corner written into the allocated tile is a copy
    the modeled kernel pays (layernorm neuronxcc trn1 M=128 D=4096: 31.58 -> 37.93 us)."""
    if b.classic:
        return sympy.Integer(PMAX)
    least = _least_rows(b, pext)
    if least is not None and least >= tp:
        return sympy.Integer(tp)    # every call fills a whole tile (M % 128 == 0 matmuls)
    return Min(sympy.Integer(tp), pext)


def _least_rows(b: Build, pext: sympy.Expr) -> int | None:
    """The fewest rows a plain size extent ``M`` can have: its declared ``min`` raised to its
    ``multiple_of`` (None for any other expression, or a derived size)."""
    e = sympy.sympify(pext)
    if e.is_Integer:
        return int(e)
    if not e.is_Symbol:
        return None
    try:
        decl = b.spec.size(e.name)
    except KeyError:
        return None
    if decl.value is not None:
        return None
    step = decl.multiple_of or 1
    return max(step, -(-max(1, decl.min) // step) * step)


def _names(node) -> set:
    """Symbol names and tensor names a plan node reads or writes."""
    from nkigen.codegen.pipeline import _syms
    return _syms(node) | P.names_used(node)


def _alloc_names(nodes) -> set[str]:
    return {n.name for n in nodes if isinstance(n, P.Alloc)}


def _dependents(nodes: list, names: set[str]) -> set[str]:
    """The buffers ``nodes`` write from something that depends on ``names`` (loop indices,
    chunk symbols), directly or through a buffer written so (the classic period copy of a
    hoisted load reads the load's tile: review 13 R13-3)."""
    dep: set[str] = set()
    grown = True
    while grown:
        grown = False
        for n in nodes:
            dst = getattr(getattr(n, "dst", None), "name", None)
            if isinstance(n, P.Alloc) or dst is None or dst in dep:
                continue
            if _names(n) & (names | dep):
                dep.add(dst)
                grown = True
    return dep


def _lift(hoisted: list, outer_vars: set[str]) -> tuple[list, list]:
    """Split hoisted loads into those that also leave the group's outer scalar loops (they
    read none of their indices, nor a tile written from them) and those that stay inside."""
    dep = _dependents(hoisted, outer_vars)
    if not dep and not any(_names(n) & outer_vars for n in hoisted):
        return list(hoisted), []
    inside = [n for n in hoisted if _names(n) & (outer_vars | dep)
              or (isinstance(n, P.Alloc) and n.name in dep)]
    return [n for n in hoisted if not any(n is m for m in inside)], inside


def _flat_nodes(b: Build, pre_lets: list, hoisted: list, body: list, it: str,
                count: sympy.Expr, skew: bool, loops: list, outer_vars: set[str]) -> list:
    """The flat (row tile, free chunk) loop, prefetched, inside the group's outer loops, with
    the hoisted loads before it (before the outer loops when they read none of their
    indices)."""
    loop = P.Loop(it, count, P.LoopKind.PARALLEL, tuple(peephole.optimize(body)))
    lifted, inside = _lift(hoisted, outer_vars)
    return [*lifted, *_in_loops(b, [*pre_lets, *inside, *_pipelined(b, loop, skew)], loops)]


def _pipelined(b: Build, loop: P.Loop, skew: bool) -> list:
    """``loop`` software-pipelined (its loads a tile ahead) when the plan double-buffers."""
    # (a loop of one iteration has no next tile to fetch: its guard `if it + 1 < 1:` was dead)
    if b.buffers() >= 2 and sympy.sympify(loop.count) != 1:
        return list(prefetch(loop, b.namer, {t.name for t in b.spec.tensors}, skew))
    return [loop]


def _in_loops(b: Build, nodes: list, loops: list) -> list:
    """``nodes`` inside the group's outer loops (outermost first in ``loops``)."""
    for idx, var in reversed(loops):
        nodes = [P.Loop(var, b.extents[idx], P.LoopKind.PARALLEL, tuple(nodes))]
    return nodes


def _period_chunk(b: Build, items, pl: Placement, fchunk: int) -> int:
    """The free chunk, shortened to a multiple of the divisors ``c`` of the free index's
    ``f // c`` / ``f % c`` reads (``x[m, n % 3]``) and conditions (``n % 3 == 1``, one
    two-dimensional ``affine_select``: codegen/select.py) when no schedule hint sets it: the on-chip
    expansions and period copies of :class:`nkigen.codegen.tilexpr.Compiler` need every chunk
    to start on a multiple of ``c`` (2048 is one for powers of two only; ``x[m, n] * w[m, n %
    3]`` modelled 137.85 us at 130 x 100 on trn2 in the scalar loop, fuzz9)."""
    import math
    if pl.f is None or (b.schedule is not None and b.schedule.tile(pl.f) is not None):
        return fchunk
    fsym = _isym(pl.f)
    cs = {int(division_parts(q)[1]) for _, rhs, _ in items for e in index_exprs(rhs)
          for q in sympy.sympify(e).atoms(sympy.floor, sympy.Mod) if fsym in q.free_symbols}
    cs = {c for c in cs if c >= 2}
    step = math.lcm(*cs) if cs else 1
    return fchunk - fchunk % step if step <= fchunk else fchunk


def _compile_store(b: Build, c: Compiler, ctx: TileCtx, st: Statement, rhs: Expr,
                   resident: set[str], strict: bool,
                   nostore: frozenset[str] | set[str] = frozenset()) -> None:
    t = b.spec.tensor(st.target)
    # (current API only: the classic form would index one flattened axis with two aranges,
    # which no classic doc or public kernel shows; review 8 R8-6)
    c.mixed_dims = not strict and not b.classic
    try:
        v = c.compile(ctx, rhs, want=t.dtype)
        for k in c.declared:
            b.const(k.name, k.value, k.why, k.tile_size, k.owners, k.owned_only, k.expr)
    except Unsupported as e:
        if strict:
            raise
        raise stmt_error(st, str(e), e.fix) from None
    kind = Kind.ROW if ctx.f is not None else Kind.COL
    # a tile that is not this statement's own (a load or gather of the target's dtype: a pure
    # copy) is stored from where it is, not copied first (review4 F4); one kept on chip for
    # later statements is still copied, as they may bind or update it. Current API only: its
    # loads (and gathers) are prefetched a tile ahead (pipeline.prefetch); in the classic
    # dialect's unpipelined loop the store would queue right behind its gather, which the
    # cost model rates slower than the copy (embedding_lookup T300 D96 trn2: 4.22 -> 4.76 us)
    stored_as_is = not b.classic and v.kind is kind and v.dtype == t.dtype and v.step == 1 \
        and v.buf is not None and st.target not in resident
    if not stored_as_is and (v.kind is not kind or not v.temp or v.dtype != t.dtype):
        v = c.materialize(ctx, v, kind, t.dtype)
    if st.target in resident:
        assert v.buf is not None
        ctx.bound[st.target] = Bound(v.buf, kind, t.dtype)
        if st.target in nostore:
            b.resident.add(st.target)
            return
    from nkigen.ir import index_symbol
    dst, dkind, _ = c.hbm_view(ctx, st.target, b.store_at.get(st) or
                               tuple(index_symbol(i) for i in st.lhs))
    ctx.out.append(P.Dma(dst, c.ref(ctx, v)))


def sbuf_bytes(nodes) -> sympy.Expr:
    """Per-partition SBUF bytes of every tile allocated in ``nodes`` (an upper bound on the
    live footprint: tiles released early are counted as if they stayed)."""
    total: sympy.Expr = sympy.Integer(0)
    for n in nodes:
        if isinstance(n, P.Alloc) and n.mem is P.Mem.SBUF:
            w: sympy.Expr = sympy.Integer(n.dtype.itemsize)
            for d in n.shape[1:]:
                w = w * d
            total = total + w
        elif isinstance(n, P.Loop):
            total = total + sbuf_bytes(n.body)
        elif isinstance(n, P.If):
            total = total + sbuf_bytes(n.then) + sbuf_bytes(n.orelse)
    return sympy.expand(total)


def at_sizes(b: Build, e: sympy.Expr, largest: bool = True) -> int | None:
    """``e`` (an expression in the declared sizes) at the largest allowed sizes (``largest``)
    or at the smallest ones, or None when a size has no such bound (no ``max``; a derived
    size)."""
    subs = {}
    for sym in sympy.sympify(e).free_symbols:
        try:
            decl = b.spec.size(sym.name)
        except KeyError:
            return None
        if decl.value is not None:
            return None
        bound = decl.max if largest else decl.min
        if bound is None:
            return None
        subs[sym] = bound
    return int(sympy.sympify(e).subs(subs))


def _covers(a: sympy.Expr, c: sympy.Expr) -> bool:
    """True when ``a >= c`` for every positive value of the sizes: their difference is a
    polynomial in the sizes with no negative coefficient (sizes are positive integers)."""
    d = sympy.expand(a - c)
    if d.is_number:
        return bool(d >= 0)
    try:
        poly = sympy.Poly(d, *sorted(d.free_symbols, key=str))
    except sympy.PolynomialError:
        return False
    return all(k >= 0 for k in poly.coeffs())


def peak(nodes, classic: bool = False) -> sympy.Expr:
    """Peak per-partition SBUF bytes of ``nodes`` as an expression in the sizes.

    The generated code frees a tile when its last Python name is rebound or its stage helper
    returns (no ``del``), so the scan follows names: an allocation is charged before the old
    tile of the same name is released, an alias (``cur = nxt``) keeps its tile alive, and each
    loop body is scanned twice (the second pass meets the first pass's tiles: the
    double-buffered pipeline of :mod:`nkigen.codegen.pipeline`). The live total after each
    allocation is a candidate; candidates another one covers at every size are dropped, so
    the result is one sum, or the ``Max`` of the sums whose order depends on the sizes (the
    kernel evaluates it at trace time: :func:`nkigen.codegen.planner._rows`).

    ``classic``: the classic dialect renders a broadcast load as
    ``nl.load(row).broadcast_to(shape)`` (S25 general/nki/api/nki.language.rst ``load``,
    ``broadcast_to``): the loaded row and the broadcast result are two more tiles of the
    destination's free size, live at that line next to the destination (or, when the load
    rebinds the name, next to the tile it replaces), so two are charged there.
    """
    from nkigen.codegen.render import _broadcast
    size_of: dict[int, sympy.Expr] = {}    # tile id -> bytes
    refs: dict[int, int] = {}               # tile id -> names bound to it
    names: dict[str, int] = {}              # name -> tile id
    cands: list[sympy.Expr] = []
    state: dict = {"cur": sympy.Integer(0), "next": 0}

    def bind(name: str, tid: int | None) -> None:
        if tid is not None:
            refs[tid] += 1
        old = names.pop(name, None)
        if tid is not None:
            names[name] = tid
        if old is not None:
            refs[old] -= 1
            if refs[old] == 0:
                state["cur"] = sympy.expand(state["cur"] - size_of[old])

    def charge() -> None:
        cur = state["cur"]
        if any(_covers(c, cur) for c in cands):
            return
        cands[:] = [c for c in cands if not _covers(cur, c)] + [cur]

    def scan(ns) -> None:
        for n in ns:
            if isinstance(n, P.Alloc) and n.mem is P.Mem.SBUF:
                w: sympy.Expr = sympy.Integer(n.dtype.itemsize)
                for d in n.shape[1:]:
                    w = w * d
                tid = state["next"]
                state["next"] += 1
                size_of[tid] = sympy.expand(w)
                refs[tid] = 0
                state["cur"] = sympy.expand(state["cur"] + size_of[tid])
                charge()
                bind(n.name, tid)
            elif classic and isinstance(n, P.Dma) and isinstance(n.dst, P.Ref) \
                    and n.dst.name in names and _broadcast(n):
                cur = state["cur"]
                state["cur"] = sympy.expand(cur + 2 * size_of[names[n.dst.name]])
                charge()
                state["cur"] = cur
            elif isinstance(n, P.Let) and isinstance(n.value, sympy.Symbol) \
                    and n.value.name in names:
                bind(n.name, names[n.value.name])     # an alias keeps the tile alive
            elif isinstance(n, P.Loop):
                scan(n.body)
                scan(n.body)
            elif isinstance(n, P.If):
                scan(n.then)
                scan(n.orelse)

    scan(tuple(nodes))
    if not cands:
        return sympy.Integer(0)
    return cands[0] if len(cands) == 1 else sympy.Max(*cands)


def upper_bound(b: Build, nodes) -> int | None:
    """Peak per-partition SBUF bytes of ``nodes`` (:func:`peak`) at the largest allowed sizes,
    or None when some size has no ``max``."""
    return at_sizes(b, peak(nodes), largest=True)
