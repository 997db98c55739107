"""Tuner stage 2 (measure): one candidate schedule -> its modeled cost at the tuning sizes.

The candidate is planned and rendered like any kernel, loaded into the simulator and run in
cost-only mode (no arithmetic) on placeholder inputs of the tuning sizes. A candidate the
planner, the hint checks or the simulator's strictness rules reject is illegal; its reason is
kept so the table can show it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import sympy

from nkigen.diagnostics import NkigenError
from nkigen.ir import Schedule, Spec

if TYPE_CHECKING:
    from nkigen.analysis import Analysis


def input_shapes(spec: Spec, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    subs = {sympy.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()}
    return {t.name: tuple(int(sympy.sympify(d).subs(subs)) for d in t.shape) for t in spec.inputs}


def check_legal(analysis: Analysis, schedule: Schedule, target: str) -> str | None:
    """None when the schedule passes the analysis' hardware hint checks, else the reason."""
    from nkigen.analysis import check_schedule

    if schedule.auto and not (schedule.tiles or schedule.block or schedule.order):
        return None
    diags = check_schedule(analysis, dataclasses.replace(schedule, auto=False), target)
    return diags[0].rule if diags else None


def evaluate(analysis: Analysis, schedule: Schedule, sizes: Mapping[str, int], target: str,
             dialect: str) -> dict:
    """{"legal": bool, "latency_us", "hfu", "mbu", "reason"} for one candidate."""
    from nkigen import sim
    from nkigen.codegen import generate

    spec = analysis.spec
    reason = check_legal(analysis, schedule, target)
    if reason is not None:
        return {"legal": False, "reason": reason}
    try:
        src = generate(spec, target=target, dialect=dialect, schedule=schedule)
        with tempfile.TemporaryDirectory(prefix="nkigen-tune-") as d:
            path = Path(d) / f"{spec.name}.py"
            path.write_text(src)
            kernel = sim.load(path, spec.name)
            args = [sim.placeholder(shape, t.dtype.value)
                    for t, shape in zip(spec.inputs, input_shapes(spec, sizes).values())]
            result = sim.run(kernel, args, target=target, numerics=False)
    except NkigenError as e:
        return {"legal": False, "reason": str(e.diagnostics[0]) if e.diagnostics else str(e)}
    rep = result.report
    return {"legal": True, "latency_us": round(float(rep.latency_us), 3),
            "hfu": round(float(rep.hfu), 4), "mbu": round(float(rep.mbu), 4)}
