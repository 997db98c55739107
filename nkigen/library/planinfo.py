"""Stage: library (schedule record). A spec + build configuration -> the plan's schedule as JSON.

Input: a spec, its kernel plan and the schedule handed to codegen (None, or the tuner's choice).
Output: a JSON-able dict for the manifest: who chose the schedule (``spec`` hints, ``tuner``,
or the planner's ``default``) and, per lowered stage of the kernel plan, its strategy,
partition/free indices, loops, tiles, blocks and engines; ``nonfinite_note`` when the kernel
turns tiles on a NeuronCore-v2 TensorE (exact for finite data only).
"""

from __future__ import annotations

from typing import Any


def _jsonable(x: Any) -> Any:
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "value") and hasattr(x, "name") and not isinstance(x, type):   # Enum
        return _jsonable(x.value)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    return str(x)


def _stage(st: Any) -> dict:
    return {
        "statements": list(st.statements),
        "strategy": st.strategy,
        "partition": st.partition,
        "free": list(st.free),
        "loops": list(st.loops),
        "tiles": {k: int(v) for k, v in st.tiles},
        "blocks": {k: int(v) for k, v in st.blocks},
        "engines": list(st.engines),
    }


def schedule_json(spec: Any, plan: Any, schedule: Any) -> dict:
    """The manifest's ``schedule`` of a kernel: who chose it, and the plan's stages.

    ``chosen_by`` is ``tuner`` when the tuner picked a schedule other than the planner's
    defaults, ``spec`` when the spec gives hints, else ``default``.
    """
    tuned = schedule is not None and not schedule.auto
    chosen_by = "tuner" if tuned else ("default" if spec.schedule.auto else "spec")
    out: dict[str, Any] = {"chosen_by": chosen_by,
                           "stages": [_stage(st) for st in getattr(plan, "stages", ())]}
    if plan is not None and isinstance(getattr(plan, "body", None), tuple):
        from nkigen.codegen.render import NOT_EXACT_V2
        from nkigen.codegen.transpose import inexact_turns
        if inexact_turns(plan):
            out["nonfinite_note"] = NOT_EXACT_V2
    picked = schedule if tuned else (None if spec.schedule.auto else spec.schedule)
    if picked is not None:
        out["tuned" if tuned else "hints"] = {
            "tiles": dict(picked.tiles), "order": list(picked.order),
            "block": dict(picked.block), "buffers": picked.buffers}
    return _jsonable(out)
