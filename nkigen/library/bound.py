"""Stage: library (reporting). A cost report -> the kernel's bound resource, its utilisation and
the spec statement to blame when that resource is poorly used.

Input: the cost model's :class:`nkigen.sim.report.Report` of one verified case (with its
timeline), the generated kernel source and the spec. Output: a small dict stored in the case's
manifest entry and shown by the build summary.

* bound: the resource busiest over the run (``tensor``, ``vector``, ``scalar``, ``gpsimd`` or
  ``dma``; busy share as the cost model reports it, DMA averaged over its queues);
* utilisation: how much of that resource's peak the kernel uses: TensorE -> HFU (modeled FLOPs
  / peak), DMA -> MBU (HBM bytes / peak HBM bandwidth), the other engines -> busy share (they
  have no separate peak-throughput figure in the model);
* a spec may state why its bound resource stays under :data:`WARN_BELOW` (``bound_note``);
  the build then shows the figure marked ``(noted)`` instead of a warning;
* blame (only under :data:`WARN_BELOW`): the spec line(s) of the stage whose instructions
  occupy the bound resource longest. Instructions map to stages through the generated source:
  each stage is a helper ``def _<kernel>_stage<k>(...)`` whose docstring starts with the
  statements it lowers (``[0] ...; [1] ...``).
"""

from __future__ import annotations

import math
import re
from typing import Any

RESOURCES = ("tensor", "vector", "scalar", "gpsimd", "dma")
WARN_BELOW = 0.5      # the rule: a bound resource under 50 % utilised is a cliff


def _order(name: str) -> int:
    return RESOURCES.index(name) if name in RESOURCES else len(RESOURCES)


def in_order(busy: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """``busy`` (resource -> busy share) as pairs in :data:`RESOURCES` order (others last)."""
    return tuple(sorted(busy.items(), key=lambda kv: _order(kv[0])))


def busiest(busy: dict[str, float]) -> str:
    """The busiest resource of ``busy``; ties go to the earlier one in :data:`RESOURCES`."""
    return min(busy, key=lambda e: (-float(busy[e]), _order(e)))

_STAGE_DEF = re.compile(r"^def _\w+_stage\d+\(")
_POSITIONS = re.compile(r"(?:^|; )\[(\d+)\] ")


def bound(rep: Any) -> tuple[str, float]:
    """(bound resource, its modeled utilisation in [0, 1])."""
    busy = getattr(rep, "engine_busy", {}) or {}
    name = busiest({e: float(busy.get(e, 0.0)) for e in RESOURCES})
    if name == "tensor":
        util = float(rep.hfu)
    elif name == "dma":
        util = float(rep.mbu)
    else:
        util = float(busy.get(name, 0.0))
    return name, min(1.0, max(0.0, util))


def _stage_of_line(source: str) -> dict[int, tuple[int, ...]]:
    """Kernel source line (1-based) -> statement positions of the stage helper it is in."""
    out: dict[int, tuple[int, ...]] = {}
    cur: tuple[int, ...] = ()
    lines = source.splitlines()
    for i, text in enumerate(lines, start=1):
        if _STAGE_DEF.match(text):
            doc = lines[i] if i < len(lines) else ""
            cur = tuple(int(x) for x in _POSITIONS.findall(doc.split('"""', 2)[1]
                                                              if '"""' in doc else ""))
        elif text.startswith(("def ", "@")):
            cur = ()
        if cur:
            out[i] = cur
    return out


def blame(rep: Any, resource: str, source: str, spec: Any) -> str | None:
    """``path:line`` of the spec statement(s) whose stage occupies ``resource`` longest."""
    tl = getattr(rep, "timeline", None)
    if tl is None or not source:
        return None
    stage_of = _stage_of_line(source)
    spent: dict[tuple[int, ...], float] = {}
    moved = getattr(tl, "moved", None) or {}     # engines the schedule chose (Timeline.moved)
    for i, ins in enumerate(tl.instrs):
        if moved.get(i, ins.engine).value != resource:
            continue
        key = stage_of.get(int(getattr(ins, "line", 0) or 0))
        if key:
            spent[key] = spent.get(key, 0.0) + max(0.0, tl.busy[i] - tl.start[i])
    if not spent:
        return None
    worst = max(sorted(spent), key=lambda k: spent[k])
    by_path: dict[str, list[int]] = {}
    for pos in worst:
        if 0 <= pos < len(spec.statements):
            loc = spec.statements[pos].loc
            if loc is not None and loc.line > 0:
                by_path.setdefault(loc.path, []).append(loc.line)
    parts = []
    for path, lines in by_path.items():
        lo, hi = min(lines), max(lines)
        parts.append(f"{path}:{lo}" if lo == hi else f"{path}:{lo}-{hi}")
    return ", ".join(parts) or None


def describe(rep: Any, source: str, spec: Any) -> dict:
    """The manifest fields of one case: ``bound``, ``bound_util`` and, when that is under
    :data:`WARN_BELOW`, ``blame``."""
    name, util = bound(rep)
    out: dict = {"bound": name, "bound_util": round(util, 6)}
    if util < WARN_BELOW:
        who = blame(rep, name, source, spec)
        if who is not None:
            out["blame"] = who
    return out


def pct(util: float) -> str:
    """``util`` as a percentage rounded down to 0.1 % (49.99 % must not print as 50.0 %)."""
    return f"{math.floor(1000 * util + 1e-9) / 10:.1f} %"


def under(case: dict) -> bool:
    """The case's bound resource is under :data:`WARN_BELOW` utilised."""
    return "bound" in case and case["bound_util"] < WARN_BELOW


def warning(kernel: str, case: dict, note: str = "") -> str | None:
    """The build summary's warning line for a case under :data:`WARN_BELOW`, else None. A
    spec's ``bound_note`` (its stated reason for the low utilisation) replaces the warning: the
    issue's rule is ">= 50 % of the bound resource at the largest test case, or a stated reason
    in the spec"."""
    if not under(case) or note.strip():
        return None
    what = {"tensor": "TensorE (HFU)", "dma": "DMA (MBU)", "vector": "VectorE (busy)",
            "scalar": "ScalarE (busy)", "gpsimd": "GpSimd (busy)"}[case["bound"]]
    where = f"; look at {case['blame']}" if case.get("blame") else ""
    return (f"warning: {kernel} is bound by {what} at {pct(case['bound_util'])} "
            f"utilisation (case {case['name']}, under {100 * WARN_BELOW:.0f} %){where}")
