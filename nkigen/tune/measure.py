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

import sympy

from nkigen.diagnostics import NkigenError
from nkigen.ir import Schedule, Spec


def input_shapes(spec: Spec, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    subs = {sympy.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()}
    return {t.name: tuple(int(sympy.sympify(d).subs(subs)) for d in t.shape) for t in spec.inputs}


def check_legal(spec: Spec, schedule: Schedule) -> str | None:
    """None when the schedule passes the analysis' hardware hint checks, else the reason."""
    from nkigen.analysis import analyze

    if schedule.auto and not (schedule.tiles or schedule.block or schedule.order):
        return None
    try:
        analyze(dataclasses.replace(spec, schedule=dataclasses.replace(schedule, auto=False)))
    except NkigenError as e:
        return e.diagnostics[0].rule if e.diagnostics else str(e)
    return None


def evaluate(spec: Spec, schedule: Schedule, sizes: Mapping[str, int], target: str,
             dialect: str) -> dict:
    """{"legal": bool, "latency_us", "hfu", "mbu", "reason"} for one candidate."""
    from nkigen import sim
    from nkigen.codegen import generate

    reason = check_legal(spec, schedule)
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
