"""Planning driver: a spec (and its analysis) becomes a frozen KernelPlan.

Stage: plan (Spec + Analysis + target + Schedule -> KernelPlan). Statements are taken in order:
a matmul-like contraction goes to :mod:`nkigen.codegen.matmul` (swallowing the next statement as
its eviction epilogue when that statement only post-processes the result); runs of element-wise /
reduction statements are fused over one row tile when they can share it
(:mod:`nkigen.codegen.rows`), else each statement is lowered alone with HBM temps.
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen import __version__
from nkigen.codegen import (
    attention,
    colreduce,
    conv,
    divcmp,
    einsum,
    flatten,
    gathered,
    hoist,
    matmul,
    matvec,
    operands,
    planes,
    prepass,
    prologue,
    residue,
    rows,
    rowsplit,
    runmax,
    shuffle,
    splitsum,
    tailmerge,
    transpose,
    turned,
)
from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.hw import DEFAULT_TARGET
from nkigen.hw import target as hw_target
from nkigen.ir import Role, Schedule, Spec

FUSED_SBUF_SHARE = 0.95     # share of the usable SBUF a fused row pass may plan to use (peak scan)


def plan_kernel(spec: Spec, analysis: object | None, target: str | None = None,
                schedule: Schedule | None = None, dialect: str = "nki") -> P.KernelPlan:
    """The plan of ``spec``; ``dialect`` "neuronxcc" plans for the classic dialect (row loops
    nested, no Python-level prefetch: see :meth:`Build.buffers`)."""
    tname = target or spec.target or DEFAULT_TARGET
    tgt = hw_target(tname)
    given = {t.name for t in spec.tensors}
    # spec-to-spec pre-passes: index comparisons through a floor division as affine ones;
    # divided partition indices write a reshaped view of the output;
    # then (index extents unchanged) '= sum(a * b, k)' contractions spelled '+=',
    # several-index reductions into a target with few points as row reductions first,
    # row-invariant reductions computed once, transposed row reads from a turned copy (a
    # reversed free-axis read needs no pre-pass: codegen/revrows.py reverses it on chip)
    sched = schedule if schedule is not None else spec.schedule
    spec = residue.rewrite(divcmp.rewrite(spec), tgt.name)
    # (not under tiling hints: they name the statement's own indices, which flat maps lose)
    hinted = bool(sched is not None and (sched.tiles or sched.order or sched.block))
    spec = flatten.rewrite(spec, dialect == "neuronxcc" or hinted)
    spec = tailmerge.rewrite(spec, hinted)
    # (a gather whose ids cannot lie on the statement's partitions is read into a temp first)
    spec = hoist.rewrite(splitsum.rewrite(operands.rewrite(einsum.rewrite(
        gathered.rewrite(spec), tgt.name))))
    spec = turned.rewrite(spec, tgt.name, sched)
    b = Build.create(spec, analysis, tgt)
    b.classic = dialect == "neuronxcc"
    b.schedule = sched
    body: list = []
    stages: list[P.StagePlan] = []
    consts: list[tuple[int, P.Const]] = []
    for g in _groups(b, spec.statements, sched):
        n_stage = sum(1 for x in body if isinstance(x, P.Comment))
        body.append(P.Comment(_stmt_comment(g.statements)))
        body.extend(g.nodes)
        stages.extend(prepass.noted(g.stages, g.statements, given))
        consts.extend((n_stage, c) for c in g.consts)
    bases = {t.name: t.view_of for t in spec.temps if t.view_of}
    if bases and not b.classic:     # (codegen/residue.py views; classic has no .ap(): its
        body = list(P.ap_on_bases(tuple(body), bases))  # patterns index reshapes of the view)
    allocs: list = []
    for t in spec.outputs:
        allocs.append(P.Alloc(checked(t.name, "tensor"), tuple(sympy.sympify(s) for s in t.shape),
                              t.dtype, P.Mem.SHARED_HBM))
    used = P.names_used(tuple(body)) if bases and not b.classic else None
    for t in spec.temps:
        if t.view_of and used is not None and t.name not in used:
            continue    # a view every access reaches through its base's patterns (no line)
        if t.name not in b.resident:
            allocs.append(P.Alloc(checked(t.name, "tensor"),
                                  tuple(sympy.sympify(s) for s in t.shape), t.dtype, P.Mem.HBM,
                                  view_of=t.view_of))
    return P.KernelPlan(
        consts=tuple(consts),
        name=checked(spec.name, "name"),
        doc=spec.doc,
        spec_name=spec.name,
        spec_sha256=spec.sha256,
        target=tgt.name,
        nkigen_version=__version__,
        inputs=tuple(P.TensorArg(checked(t.name, "tensor"),
                                 tuple(sympy.sympify(s) for s in t.shape), t.dtype)
                     for t in spec.inputs),
        outputs=tuple(P.TensorArg(checked(t.name, "tensor"),
                                  tuple(sympy.sympify(s) for s in t.shape), t.dtype)
                      for t in spec.outputs),
        params=tuple((checked(p.name, "param"), p.value) for p in spec.params),
        binds=prologue.binds(spec),
        derived=prologue.derived(spec, analysis),
        checks=prologue.checks(spec),
        body=P.with_releases(tuple(allocs + body)),
        stages=tuple(stages),
    )


@dataclasses.dataclass(frozen=True)
class _Stage:
    """One stage of the kernel body: its statements (the stage comment), plan nodes, stage
    plans and the constants its lowering declared."""

    statements: tuple
    nodes: tuple
    stages: tuple
    consts: tuple


def _step(b: Build, sts, i: int, sched, budget: int,
          exclude: frozenset[tuple[int, bool]]) -> tuple[list[_Stage], int]:
    """Lower the statements from ``sts[i]`` on: (stages, index after the last statement used).
    ``exclude``: the row groups ``(end, skew)`` starting at ``i`` not to try again (the
    fallback of a trace-time choice, :func:`_rows`)."""
    mark = len(b.consts)
    st = sts[i]
    low = whole_statement(b, sts, i, sched)
    if low is not None:
        nodes, used, stage = low
        return [_Stage(tuple(sts[i:i + used]), tuple(nodes), (stage,),
                       _take_consts(b, mark))], i + used
    got = _rows(b, sts, i, sched, budget, exclude)
    if got is not None:
        return got
    nodes, split = rowsplit.choose(b, [st], rows.lower_statement(b, st))
    return [_Stage((st,), tuple(nodes), (_row_stage(b, [st], fused=False, split=split),),
                   _take_consts(b, mark))], i + 1


def whole_statement(b: Build, sts, i: int, sched) -> tuple | None:
    """The whole-statement lowerings of ``sts[i]``, tried in order: (nodes, statements used,
    stage), or None (the row lowering's)."""
    st = sts[i]
    low = attention.try_lower(b, sts, i)
    if low is None:
        cv = conv.try_lower(b, st)  # convolution-shaped contractions: implicit GEMM
        low = (cv[0], 1, cv[1]) if cv is not None else None
    if low is None:
        low = matmul.try_lower(b, st, sts[i + 1] if i + 1 < len(sts) else None, sched)
    if low is None:
        # transposes; matvec; strided plane reads (pooling: 2-D free tiles); copies that
        # interleave short digits into output rows (pixel shuffle); running max/min spelled
        # as triangular reductions
        tr = (transpose.try_lower(b, st) or matvec.try_lower(b, st)
              or planes.try_lower(b, st) or shuffle.try_lower(b, st)
              or runmax.try_lower(b, st))
        low = (tr[0], 1, tr[1]) if tr is not None else None
    if low is None:
        cr = colreduce.try_lower(b, st)
        low = (cr, 1, colreduce.stage(b, st)) if cr is not None else None
    return low


def claimed(spec: Spec, target: str, sched) -> tuple[frozenset[int], frozenset[int]]:
    """``(taken, epilogues)``: indices (in ``spec.statements``) of the statements a
    whole-statement lowering takes, except the matmul eviction epilogues, which are listed
    apart. Found by planning ``spec`` as :func:`plan_kernel` does (on a throwaway build), so a
    statement a row group fuses with an earlier one counts as the row group's, and one the
    planner reaches alone as whatever takes it (for the pre-pass :mod:`nkigen.codegen.turned`,
    which leaves ``taken`` alone and puts what an epilogue needs before its contraction, and
    :mod:`nkigen.codegen.einsum`)."""
    b = Build.create(spec, None, hw_target(target))
    b.schedule = sched
    # by identity: the statements a pre-pass added share their consumer's position
    index = {id(st): k for k, st in enumerate(spec.statements)}
    got: set[int] = set()
    epi: set[int] = set()
    for g in _groups(b, spec.statements, sched):
        if any(stage.strategy.startswith("rows") for stage in g.stages):
            continue
        ks = [index[id(st)] for st in g.statements if id(st) in index]
        if any(stage.strategy == "matmul" for stage in g.stages) and len(ks) == 2:
            got.add(ks[0])
            epi.add(ks[1])
        else:
            got.update(ks)
    return frozenset(got), frozenset(epi)


def _groups(b: Build, statements, sched):
    """The planner's stages of ``statements``, in order (each :func:`_step` from where the
    previous one stopped)."""
    sts = list(statements)
    budget = int(FUSED_SBUF_SHARE * b.target.sbuf_bytes_per_partition)
    i = 0
    while i < len(sts):
        groups, i = _step(b, sts, i, sched, budget, frozenset())
        yield from groups


def _take_consts(b: Build, mark: int) -> tuple:
    """The constants declared since ``mark`` (removed from ``b.consts``)."""
    got = tuple(b.consts[mark:])
    del b.consts[mark:]
    return got


def _rows(b: Build, sts, i: int, sched, budget: int,
          exclude: frozenset[tuple[int, bool]]) -> tuple[list[_Stage], int] | None:
    """The longest run of element-wise / reduction statements from ``sts[i]`` fused over one
    row tile, or None.

    The fused pass keeps whole rows on chip: its pipelined SBUF peak (:func:`rows.peak`, a
    function of the sizes) must stay within ``budget`` bytes per partition. When it does at
    the largest allowed sizes, the pass is used as is; when it does not even at the smallest,
    the next shorter group is tried; otherwise the kernel chooses at trace time: the fused
    stage runs under ``if peak < budget + 1:``, and each stage of what the planner does
    without it (:func:`_range`) under ``if budget < peak:``. Each stage stays its own helper
    function, so one pass's tiles are freed before the next one allocates (names keep tiles
    alive until their helper returns)."""
    j = i + 1
    while j < len(sts) and matmul.is_contraction(b, sts[j]) is False:
        j += 1
    for end, skew in [(e, k) for e in range(j, i + 1, -1) for k in (True, False)]:
        if (end, skew) in exclude:
            continue
        group = sts[i:end]
        before = set(b.resident)
        mark = len(b.consts)
        nodes = rows.lower_group(b, group, skew)
        if nodes is None:
            b.resident = before      # a failed attempt may have marked temps on chip
            del b.consts[mark:]
            continue
        need = rows.peak(nodes, b.classic)
        top = rows.at_sizes(b, need, largest=True)
        least = rows.at_sizes(b, need, largest=False)
        # few long rows: each row across the partitions when the trace-time sizes call for it
        # (codegen/rowsplit.py; the peak above is the one-row-per-partition pass's, the split
        # form's tiles are [128, D / 128])
        nodes, split = rowsplit.choose(b, list(group), nodes)
        if top is not None and top <= budget:
            return [_Stage(tuple(group), tuple(nodes),
                           (_row_stage(b, group, fused=True, split=split),),
                           _take_consts(b, mark))], end
        if (least is not None and least > budget) or (end, not skew) in exclude:
            # rows too long to keep on chip; or the other pipeline form of the same group is
            # the fused side of the choice this is the fallback of (a peak within a few
            # bytes of it: no second test on the same rows)
            b.resident = before
            del b.consts[mark:]
            continue
        # sizes for which the rows fit and sizes for which they do not: choose at trace
        # time between the fused pass and the planner's form without it (HBM temps, chunked
        # rows), on the same peak the fused pass reaches (double-buffered loop bodies)
        fused = _Stage(tuple(group),
                       (P.If(need, sympy.Integer(budget + 1), tuple(nodes), (), P.Cmp.LT),),
                       (_row_stage(b, group, fused=True, split=split),), _take_consts(b, mark))
        b.resident = before
        alt = _range(b, sts[:end], i, sched, budget, exclude | {(end, skew)})
        return [fused] + [dataclasses.replace(
            g, nodes=(P.If(sympy.Integer(budget), need, g.nodes, (), P.Cmp.LT),),
            stages=tuple(dataclasses.replace(
                s, strategy=f"{s.strategy} (trace-time fallback when the rows exceed SBUF)")
                for s in g.stages)) for g in alt], end
    return None


def _range(b: Build, sts, i: int, sched, budget: int,
           exclude: frozenset[tuple[int, bool]]) -> list[_Stage]:
    """The stages of ``sts[i:]``; ``exclude`` applies to the groups starting at ``i``."""
    out: list[_Stage] = []
    k = i
    while k < len(sts):
        got, k = _step(b, sts, k, sched, budget, exclude if k == i else frozenset())
        out.extend(got)
    return out


def _stmt_comment(sts) -> str:
    return "; ".join(f"[{s.position}] {s.text}" for s in sts)


def _row_stage(b: Build, sts, fused: bool, split: bool = False) -> P.StagePlan:
    st = sts[0]
    rhs = rows.effective_rhs(b, st)
    pl = rows.placement(b, st, rhs)
    resident = sorted(t for t in b.resident if any(s.target == t for s in sts))
    notes: tuple[str, ...] = (f"on-chip temps: {', '.join(resident)}",) if resident else ()
    tp, tf = rows.hint_tiles(b, pl)
    if fused:
        notes += ("whole rows on chip (free axis not tiled)",)
    if split:
        notes += (rowsplit.NOTE,)
    return P.StagePlan(
        statements=tuple(s.position for s in sts),
        strategy="rows-fused" if fused and len(sts) > 1 else "rows",
        partition=pl.p,
        free=(pl.f,) if pl.f else (),
        loops=pl.loops,
        tiles=((pl.p, tp),) + (((pl.f, tf),) if pl.f and not fused else ()),
        blocks=(),
        engines=("dma", "scalar", "vector") + (("tensor",) if split else ()),
        notes=notes,
    )


def outputs_of(spec: Spec):
    return [t for t in spec.tensors if t.role is Role.OUTPUT]
