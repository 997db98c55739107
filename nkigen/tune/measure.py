"""Tuner stage 2 (measure): one candidate schedule -> its modeled cost at concrete sizes.

A candidate is first checked against the analysis' hardware hint checks, then planned and
rendered like any kernel (:func:`render_candidate`); the source is loaded into the simulator and
run in cost-only mode (no arithmetic) on placeholder inputs (:func:`simulate_source`). A
candidate the hint checks, the planner or the simulator's strictness rules reject is illegal;
its reason is kept so the table can show it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sympy

from nkigen.diagnostics import NkigenError
from nkigen.ir import Schedule, Spec, size_symbol

if TYPE_CHECKING:
    from nkigen.analysis import Analysis
    from nkigen.codegen.plan import KernelPlan


def input_shapes(spec: Spec, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    subs = {size_symbol(k): v for k, v in sizes.items()}
    return {t.name: tuple(int(sympy.sympify(d).subs(subs)) for d in t.shape) for t in spec.inputs}


def _reason(e: NkigenError) -> str:
    return str(e.diagnostics[0]) if e.diagnostics else str(e)


def check_legal(analysis: Analysis, schedule: Schedule, target: str) -> str | None:
    """None when the schedule passes the analysis' hardware hint checks, else the reason."""
    from nkigen.analysis import check_schedule

    if schedule.auto and not (schedule.tiles or schedule.block or schedule.order):
        return None
    diags = check_schedule(analysis, dataclasses.replace(schedule, auto=False), target)
    return diags[0].rule if diags else None


def plan_candidate(analysis: Analysis, schedule: Schedule, target: str,
                   dialect: str) -> tuple[KernelPlan | None, str | None, str | None]:
    """(plan, kernel source, None) for a legal candidate, else (None, None, reason)."""
    from nkigen.codegen import plan_kernel, render

    reason = check_legal(analysis, schedule, target)
    if reason is not None:
        return None, None, reason
    try:
        plan = plan_kernel(analysis.spec, analysis, target, schedule, dialect)
        return plan, render(plan, dialect), None
    except NkigenError as e:
        return None, None, _reason(e)


def prepare(analysis: Analysis, schedule: Schedule, sizes: Mapping[str, int], target: str,
            dialect: str) -> tuple[str | None, str | None, float]:
    """(kernel source, None, latency lower bound at ``sizes``) for a legal candidate, else
    (None, reason, 0.0): what the search needs before it simulates (picklable, for workers)."""
    from nkigen.tune.bound import latency_bound_us

    plan, src, reason = plan_candidate(analysis, schedule, target, dialect)
    return src, reason, latency_bound_us(analysis, plan, sizes, target)


def render_candidate(analysis: Analysis, schedule: Schedule, target: str,
                     dialect: str) -> tuple[str | None, str | None]:
    """(kernel source, None) for a legal candidate, else (None, reason)."""
    _, src, reason = plan_candidate(analysis, schedule, target, dialect)
    return src, reason


def simulate_source(spec: Spec, src: str, sizes: Mapping[str, int], target: str) -> dict:
    """{"legal": bool, "latency_us", "hfu", "mbu" | "reason"}: a cost-only run of ``src``."""
    from nkigen import sim

    try:
        with tempfile.TemporaryDirectory(prefix="nkigen-tune-") as d:
            path = Path(d) / f"{spec.name}.py"
            path.write_text(src)
            kernel = sim.load(path, spec.name)
            args = [sim.placeholder(shape, t.dtype.value)
                    for t, shape in zip(spec.inputs, input_shapes(spec, sizes).values())]
            result = sim.run(kernel, args, target=target, numerics=False)
    except NkigenError as e:
        return {"legal": False, "reason": _reason(e)}
    rep: Any = result.report    # run() reports unless asked not to
    return {"legal": True, "latency_us": round(float(rep.latency_us), 3),
            "hfu": round(float(rep.hfu), 4), "mbu": round(float(rep.mbu), 4)}


def evaluate(analysis: Analysis, schedule: Schedule, sizes: Mapping[str, int], target: str,
             dialect: str) -> dict:
    """Both steps for one candidate."""
    src, reason = render_candidate(analysis, schedule, target, dialect)
    if src is None:
        return {"legal": False, "reason": reason}
    return simulate_source(analysis.spec, src, sizes, target)


def simulate_checked(sources: str, spec: Spec, src: str, sizes: Mapping[str, int],
                     target: str) -> dict:
    """:func:`simulate_source` on a remote worker (Ray) that first checks its nkigen sources
    are the driver's (``sources``: :func:`nkigen.library.cache.package_hash`): another cost
    model would put other figures in the shared cache."""
    from nkigen.library.cache import package_hash

    mine = package_hash()
    if mine != sources:
        raise RuntimeError(f"the worker's nkigen is not the driver's (sources sha256 {mine[:12]} "
                           f"on the worker, {sources[:12]} on the driver); install the same "
                           "nkigen on every node")
    return simulate_source(spec, src, sizes, target)
