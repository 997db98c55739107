"""Human-readable summary of a KernelPlan (printed by ``nkigen explain``).

Stage: plan (KernelPlan -> text). Lists per stage the statements, strategy, index placement,
tiles, blocks and engines, then the instruction counts of the plan tree by kind.
"""

from __future__ import annotations

from collections import Counter

from nkigen.codegen import plan as P


def _count(nodes, c: Counter) -> None:
    for n in nodes:
        c[type(n).__name__] += 1
        if isinstance(n, P.Loop):
            _count(n.body, c)
        elif isinstance(n, P.If):
            _count(n.then, c)
            _count(n.orelse, c)


def format_plan(plan: P.KernelPlan) -> str:
    lines = [f"kernel {plan.name} (target {plan.target})",
             f"  inputs:  {', '.join(f'{t.name}:{t.dtype.value}' for t in plan.inputs)}",
             f"  outputs: {', '.join(f'{t.name}:{t.dtype.value}' for t in plan.outputs)}"]
    for s in plan.stages:
        st = ", ".join(str(i) for i in s.statements)
        lines.append(f"  stage [statements {st}] {s.strategy}")
        lines.append(f"    partition: {s.partition}   free: {', '.join(s.free) or '-'}"
                     f"   outer loops: {', '.join(s.loops) or '-'}")
        if s.tiles:
            lines.append("    tiles: " + ", ".join(f"{k}={v}" for k, v in s.tiles))
        if s.blocks:
            lines.append("    blocks: " + ", ".join(f"{k}={v}" for k, v in s.blocks))
        lines.append(f"    engines: {', '.join(s.engines)}")
        for n in s.notes:
            lines.append(f"    note: {n}")
    c: Counter = Counter()
    _count(plan.body, c)
    lines.append("  plan nodes: " + ", ".join(f"{k}={v}" for k, v in sorted(c.items())))
    return "\n".join(lines) + "\n"
