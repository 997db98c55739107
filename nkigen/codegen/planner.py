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
    matmul,
    matvec,
    planes,
    prologue,
    rows,
    transpose,
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
    b = Build.create(spec, analysis, tgt)
    b.classic = dialect == "neuronxcc"
    sched = schedule if schedule is not None else spec.schedule
    b.schedule = sched
    body: list = []
    stages: list[P.StagePlan] = []
    sts = list(spec.statements)
    consts: list[tuple[int, P.Const]] = []
    i = 0
    while i < len(sts):
        if b.consts:             # the constants the previous stage declared
            n_stage = sum(1 for x in body if isinstance(x, P.Comment)) - 1
            consts.extend((n_stage, c) for c in b.consts)
            b.consts = []
        st = sts[i]
        # the whole-statement lowerings, tried in order: (nodes, statements used, stage)
        low = attention.try_lower(b, sts, i)
        if low is None:
            cv = conv.try_lower(b, st)  # convolution-shaped contractions: implicit GEMM
            low = (cv[0], 1, cv[1]) if cv is not None else None
        if low is None:
            low = matmul.try_lower(b, st, sts[i + 1] if i + 1 < len(sts) else None, sched)
        if low is None:
            # transposes; matvec; strided plane reads (pooling: 2-D free tiles)
            tr = (transpose.try_lower(b, st) or matvec.try_lower(b, st)
                  or planes.try_lower(b, st))
            low = (tr[0], 1, tr[1]) if tr is not None else None
        if low is None:
            cr = colreduce.try_lower(b, st)
            low = (cr, 1, colreduce.stage(b, st)) if cr is not None else None
        if low is not None:
            nodes, used, stage = low
            body.append(P.Comment(_stmt_comment(sts[i:i + used])))
            body.extend(nodes)
            stages.append(stage)
            i += used
            continue
        done = False
        j = i + 1
        while j < len(sts) and matmul.is_contraction(b, sts[j]) is False:
            j += 1
        budget = int(FUSED_SBUF_SHARE * tgt.sbuf_bytes_per_partition)
        for end, skew in [(e, k) for e in range(j, i + 1, -1) for k in (True, False)]:
            group = sts[i:end]
            before = set(b.resident)
            mark = len(b.consts)
            nodes = rows.lower_group(b, group, skew)
            if nodes is None:
                b.resident = before      # a failed attempt may have marked temps on chip
                del b.consts[mark:]
                continue
            need = rows.sbuf_bytes(nodes)
            top = rows.upper_bound(b, need, nodes)
            if top is not None and top > budget:      # rows too long to keep on chip
                b.resident = before
                del b.consts[mark:]
                continue
            body.append(P.Comment(_stmt_comment(group)))
            stages.append(_row_stage(b, group, fused=True))
            if top is None:
                # unbounded sizes: choose at trace time between the fused pass and the
                # statement-by-statement form (HBM temps, chunked rows)
                b.resident = before
                alt: list = []
                for st_ in group:
                    alt.extend(rows.lower_statement(b, st_))
                alt_stage = _row_stage(b, group, fused=False)
                stages.append(dataclasses.replace(
                    alt_stage, strategy="rows (trace-time fallback when the rows exceed SBUF)"))
                body.append(P.If(need, sympy.Integer(budget + 1), tuple(nodes), tuple(alt),
                                 P.Cmp.LT))
            else:
                body.extend(nodes)
            i = end
            done = True
            break
        if done:
            continue
        body.append(P.Comment(_stmt_comment([st])))
        body.extend(rows.lower_statement(b, st))
        stages.append(_row_stage(b, [st], fused=False))
        i += 1
    if b.consts:
        n_stage = sum(1 for x in body if isinstance(x, P.Comment)) - 1
        consts.extend((n_stage, c) for c in b.consts)
        b.consts = []
    allocs: list = []
    for t in spec.outputs:
        allocs.append(P.Alloc(checked(t.name, "tensor"), tuple(sympy.sympify(s) for s in t.shape),
                              t.dtype, P.Mem.SHARED_HBM))
    for t in spec.temps:
        if t.name not in b.resident:
            allocs.append(P.Alloc(checked(t.name, "tensor"),
                                  tuple(sympy.sympify(s) for s in t.shape), t.dtype, P.Mem.HBM))
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


def _stmt_comment(sts) -> str:
    return "; ".join(f"[{s.position}] {s.text}" for s in sts)


def _row_stage(b: Build, sts, fused: bool) -> P.StagePlan:
    st = sts[0]
    rhs = rows.effective_rhs(b, st)
    pl = rows.placement(b, st, rhs)
    resident = sorted(t for t in b.resident if any(s.target == t for s in sts))
    notes: tuple[str, ...] = (f"on-chip temps: {', '.join(resident)}",) if resident else ()
    tp, tf = rows.hint_tiles(b, pl)
    if fused:
        notes += ("whole rows on chip (free axis not tiled)",)
    return P.StagePlan(
        statements=tuple(s.position for s in sts),
        strategy="rows-fused" if fused and len(sts) > 1 else "rows",
        partition=pl.p,
        free=(pl.f,) if pl.f else (),
        loops=pl.loops,
        tiles=((pl.p, tp),) + (((pl.f, tf),) if pl.f and not fused else ()),
        blocks=(),
        engines=("dma", "scalar", "vector"),
        notes=notes,
    )


def outputs_of(spec: Spec):
    return [t for t in spec.tensors if t.role is Role.OUTPUT]
