"""Stage: library (hint check). A verified hinted kernel + the planner's default kernel -> a
warning when the cost model puts the hints far behind the defaults.

Input: a spec with tiling hints (``schedule.tiles``, ``block``, ``order`` or ``buffers``), the
hinted kernel's modelled latency at the build's largest test case (already measured by the
verification) and an estimator of the default kernel's latency (one cost-only simulation at
that case: :func:`nkigen.tune.measure.simulate_source`). Output: None, or a JSON-able record
(``schedule.hint_slowdown`` in the manifest) whose ``warning`` is the located line the build
prints: the hints, both estimates, the ratio and the fix.

Threshold: :data:`SLOWDOWN_WARN`, a ratio of 4. The cost model's calibration band is about
+-20 % (``nkigen.sim.calibration``), so a ratio of 4 is no modelling artefact; below it a hint
may be a deliberate trade (fewer SBUF bytes, a layout a caller needs) and ``nkigen tune SPEC``
ranks hints against the defaults anyway.

Cost: only specs with hints pay, one cost-only simulation of the default kernel per spec (the
hinted kernel is never simulated again); ``nkigen check`` does not warn, since it simulates
nothing (the slow kernel is also the slow one to simulate: seconds for a 1,000x hint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from nkigen.ir import Schedule, Spec

# Warn when the hinted kernel is modelled more than this many times slower than the default.
SLOWDOWN_WARN = 4.0


def has_hints(spec: Spec) -> bool:
    """Whether the spec pins any schedule choice (a kernel built as written, not tuned)."""
    s = spec.schedule
    return not s.auto and bool(s.tiles or s.block or s.order or s.buffers is not None)


def without_hints(spec: Spec) -> Spec:
    """The spec with its schedule left to the planner (``schedule: auto``, never tuned here)."""
    return replace(spec, schedule=Schedule(auto=True, loc=spec.schedule.loc))


def _hint_fields(spec: Spec) -> list[tuple[str, str]]:
    """(field path, shown value) of every hint, in the spec's order of keys."""
    s = spec.schedule
    out = [(f"schedule.tiles.{k}", f"tiles.{k}: {v}") for k, v in s.tiles]
    out += [(f"schedule.block.{k}", f"block.{k}: {v}") for k, v in s.block]
    if s.order:
        out.append(("schedule.order", f"order: [{', '.join(s.order)}]"))
    if s.buffers is not None:
        out.append(("schedule.buffers", f"buffers: {s.buffers}"))
    return out


def _default_tiles(record: dict) -> dict[str, int]:
    """Index -> the tile size the default plan gives it (the first stage tiling it)."""
    out: dict[str, int] = {}
    for st in record.get("stages", ()):
        for k, v in (st.get("tiles") or {}).items():
            out.setdefault(k, int(v))
    return out


def slowdown(spec: Spec, case: dict, hinted_us: float,
             default: Callable[[Spec], tuple[float | None, dict]],
             target: str) -> dict | None:
    """The warning record when ``hinted_us`` (the hinted kernel at ``case``, a manifest case
    with ``name`` and ``sizes``) exceeds :data:`SLOWDOWN_WARN` times the default kernel's
    estimate; ``default(spec_without_hints) -> (latency_us or None, schedule record)``."""
    if not has_hints(spec) or not hinted_us or hinted_us <= 0:
        return None
    base_us, record = default(without_hints(spec))
    if base_us is None or base_us <= 0 or hinted_us <= SLOWDOWN_WARN * base_us:
        return None
    ratio = hinted_us / base_us
    fields = _hint_fields(spec)
    tiles = _default_tiles(record)
    shown = ", ".join(v for _, v in fields)
    raise_to = [f"{k} {tiles[k]}" for k, v in spec.schedule.tiles if k in tiles and tiles[k] > v]
    where = spec.loc_of(fields[0][0]) if fields else None
    where = where or spec.loc_of("schedule") or spec.loc
    field = fields[0][0] if len(fields) == 1 else "schedule"
    rule = (f"the hinted kernel is modelled {ratio:,.1f}x slower than the planner's default "
            f"at case {case['name']} ({hinted_us:,.2f} us against {base_us:,.2f} us, cost "
            f"model, {target}), over the {SLOWDOWN_WARN:g}x this warning allows")
    fix = ("drop the hint" + ("s" if len(fields) > 1 else "") + " (schedule: auto lets "
           "nkigen build tune the spec) or raise " + ("it" if len(fields) == 1 else "them")
           + (f" (the default plan tiles {', '.join(raise_to)})" if raise_to else "")
           + "; nkigen tune SPEC ranks hints against the defaults")
    from nkigen.analysis.checktime import SpecWarning
    from nkigen.diagnostics import Diagnostic, Loc

    text = str(SpecWarning(Diagnostic(where or Loc(spec.path), field, rule, shown, fix)))
    return {"hinted_us": round(hinted_us, 3), "default_us": round(base_us, 3),
            "ratio": round(ratio, 2), "case": case["name"], "hints": shown, "warning": text}


def default_estimate(stages: Any, target: str, dialect: str,
                     sizes: dict) -> Callable[[Spec], tuple[float | None, dict]]:
    """``default`` of :func:`slowdown` from a build's stages: the unhinted kernel generated
    like any kernel, its latency by :attr:`Stages.estimate` at ``sizes`` (None when the
    stages have no estimator, e.g. the build tests' fakes, or the kernel does not run)."""
    def run(spec: Spec) -> tuple[float | None, dict]:
        if stages.estimate is None:
            return None, {}
        source, record = stages.generate(spec, target, dialect, None)
        return stages.estimate(spec, source, sizes, target), record
    return run
