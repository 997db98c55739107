"""Stage tune: ``schedule: auto`` -> the best legal schedule by the cost model.

    tune(spec, target=None, dialect="nki", sizes=None, cache_dir=...) -> TuneResult

Search: the planner's defaults and the spec's own hints are evaluated first; from the best of
them a coordinate descent varies one knob at a time (each index's tile, each block factor, the
buffer count) over the legal choices of :mod:`nkigen.tune.space`, keeping any improvement,
until a full round improves nothing. Every evaluation is a cost-only simulation
(:mod:`nkigen.tune.evaluate`) remembered in the disk cache (:mod:`nkigen.tune.cache`).

Sizes: tuning needs concrete sizes. ``sizes`` gives them; otherwise each free size takes its
``max`` (capped at :data:`DEFAULT_TUNE_SIZE` x 2) or :data:`DEFAULT_TUNE_SIZE`, rounded down to
its ``multiple_of`` and clamped to its ``min``. Because every lowering handles partial last
tiles, a schedule that is legal at the tuning sizes stays legal at every allowed size; SBUF
footprints that grow with a size are checked by the analysis' hint checks at the size's bound.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nkigen.hw import DEFAULT_TARGET
from nkigen.ir import Schedule, Spec
from nkigen.tune.cache import TuneCache, default_dir, size_bucket
from nkigen.tune.measure import evaluate
from nkigen.tune.space import (
    BLOCK_CHOICES,
    BUFFER_CHOICES,
    TILE_CHOICES,
    is_contraction,
    schedule_key,
    seeds,
)

DEFAULT_TUNE_SIZE = 2048
MAX_ROUNDS = 3


@dataclass(frozen=True)
class Candidate:
    schedule: Schedule
    key: str
    legal: bool
    latency_us: float | None
    hfu: float | None
    mbu: float | None
    reason: str | None
    cached: bool


@dataclass(frozen=True)
class TuneResult:
    spec: str
    target: str
    dialect: str
    sizes: tuple[tuple[str, int], ...]
    best: Candidate
    default: Candidate
    candidates: tuple[Candidate, ...]     # ranked: legal by latency, then illegal

    @property
    def evaluated(self) -> int:
        return sum(1 for c in self.candidates if not c.cached)


def tuning_sizes(spec: Spec, given: Mapping[str, int] | None = None) -> dict[str, int]:
    """Concrete free sizes to tune at (see module docstring), then derived sizes."""
    from nkigen.analysis import complete_sizes

    free: dict[str, int] = {}
    for s in spec.free_sizes:
        if given and s.name in given:
            free[s.name] = int(given[s.name])
            continue
        v = min(s.max, 2 * DEFAULT_TUNE_SIZE) if s.max is not None else DEFAULT_TUNE_SIZE
        if s.multiple_of:
            v = max(s.multiple_of, v - v % s.multiple_of)
        free[s.name] = max(v, s.min)
    return complete_sizes(spec, free)


def _with(s: Schedule, field: str, index: str | None, value: int) -> Schedule:
    if field == "buffers":
        return dataclasses.replace(s, auto=False, buffers=value)
    current = dict(getattr(s, field))
    if field == "block" and value == 1:
        current.pop(index, None)
    else:
        current[index] = value
    return dataclasses.replace(s, auto=False, **{field: tuple(sorted(current.items()))})


def _knobs(spec: Spec, analysis) -> list[tuple[str, str | None, tuple[int, ...]]]:
    main = {li.name for li in analysis.main.loop_indices}
    knobs: list[tuple[str, str | None, tuple[int, ...]]] = []
    for name, _ in analysis.extents:
        role = analysis.role(name)
        if name not in main or role is None:
            continue
        if len(TILE_CHOICES.get(role, ())) > 1:
            knobs.append(("tiles", name, TILE_CHOICES[role]))
        if is_contraction(analysis) and role in BLOCK_CHOICES:
            knobs.append(("block", name, BLOCK_CHOICES[role]))
    knobs.append(("buffers", None, BUFFER_CHOICES))
    return knobs


def tune(spec: Spec, target: str | None = None, dialect: str = "nki",
         sizes: Mapping[str, int] | None = None,
         cache_dir: Path | None | bool = True) -> TuneResult:
    """Rank legal schedules for ``spec`` by modeled latency; see the module docstring."""
    from nkigen.analysis import analyze

    tname = target or spec.target or DEFAULT_TARGET
    analysis = analyze(spec, target=tname)
    at = tuning_sizes(spec, sizes)
    root = default_dir() if cache_dir is True else (cache_dir or None)
    cache = TuneCache(root, spec.sha256, size_bucket(at), tname, dialect)
    seen: dict[str, Candidate] = {}

    def measure(s: Schedule) -> Candidate:
        key = schedule_key(s)
        if key in seen:
            return seen[key]
        hit = cache.get(key)
        res = hit if hit is not None else evaluate(analysis, s, at, tname, dialect)
        if hit is None:
            cache.put(key, res)
        c = Candidate(s, key, bool(res["legal"]), res.get("latency_us"), res.get("hfu"),
                      res.get("mbu"), res.get("reason"), hit is not None)
        seen[key] = c
        return c

    def better(a: Candidate, b: Candidate) -> bool:
        return a.legal and (not b.legal or (a.latency_us or 0) < (b.latency_us or 0))

    starts = [measure(s) for s in seeds(analysis)]
    default = starts[0]
    best = default
    for c in starts[1:]:
        if better(c, best):
            best = c
    knobs = _knobs(spec, analysis)
    for _ in range(MAX_ROUNDS):
        improved = False
        for field, index, values in knobs:
            for v in values:
                c = measure(_with(best.schedule, field, index, v))
                if better(c, best):
                    best, improved = c, True
        if not improved:
            break
    with contextlib.suppress(OSError):     # an unwritable cache only costs time next run
        cache.save()
    ranked = sorted(seen.values(), key=lambda c: (not c.legal, c.latency_us or 0.0, c.key))
    return TuneResult(spec.name, tname, dialect, tuple(sorted(at.items())), best, default,
                      tuple(ranked))


def format_table(result: TuneResult, limit: int | None = None) -> str:
    """The ranked candidates as a text table (the output of ``nkigen tune``)."""
    rows = [("rank", "latency_us", "hfu", "mbu", "schedule", "note")]
    for i, c in enumerate(result.candidates[:limit] if limit else result.candidates, 1):
        note = ("best " if c is result.best else "") + ("default " if c is result.default else "")
        if not c.legal:
            note += f"illegal: {c.reason}"
        rows.append((str(i) if c.legal else "-",
                     f"{c.latency_us:.1f}" if c.latency_us is not None else "-",
                     f"{c.hfu:.3f}" if c.hfu is not None else "-",
                     f"{c.mbu:.3f}" if c.mbu is not None else "-", c.key, note.strip()))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5] for r in rows]
    sizes = ", ".join(f"{k}={v}" for k, v in result.sizes)
    head = (f"{result.spec}: {len(result.candidates)} candidates at {sizes} on {result.target} "
            f"({result.dialect}); {result.evaluated} simulated, the rest from the cache.\n"
            "Latencies are cost-model estimates, not measurements.")
    return head + "\n" + "\n".join(line.rstrip() for line in lines)


__all__ = ["Candidate", "TuneResult", "format_table", "tune", "tuning_sizes"]
