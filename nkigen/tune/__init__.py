"""Stage tune: ``schedule: auto`` -> the best legal schedule by the cost model.

    tune(spec, target=None, dialect="nki", sizes=None, cache_dir=True, jobs=1,
         executor=None) -> TuneResult

Sizes: tuning needs concrete sizes. ``sizes`` gives them; otherwise each free size takes its
``max`` (capped at twice :data:`DEFAULT_TUNE_SIZE`) or :data:`DEFAULT_TUNE_SIZE`, rounded down
to its ``multiple_of`` and clamped to its ``min``.

Search, in two phases so that large problems tune in seconds:

1. explore at *proxy sizes* (each size capped at :data:`PROXY_CAP`): the planner's defaults and
   the spec's own hints first, then a coordinate descent from the best of them that varies one
   knob at a time (each index's tile, each block factor, the buffer count) over the legal choices
   of :mod:`nkigen.tune.space`, keeping any improvement, until a round improves nothing;
2. decide at the real sizes: the defaults, the hints and the :data:`FINALISTS` best explored
   candidates are simulated at the real sizes and the fastest legal one wins. So the pick is
   never modeled slower than the defaults or the spec's hints at the sizes asked for.

Every evaluation is a cost-only simulation (:mod:`nkigen.tune.measure`), remembered in the disk
cache (:mod:`nkigen.tune.cache`). Branch and bound (``prune``, on by default): a candidate whose
provable latency lower bound (:mod:`nkigen.tune.bound`, from its plan) exceeds the latency it
would have to beat -- the FINALISTS-th best distinct kernel while exploring, the best of the
defaults and hints at the real sizes -- is not simulated, so the pick and its latency are the
exhaustive search's (``prune=False``, ``nkigen tune --exhaustive``). A round's candidates are
planned in parallel and simulated as one batch, lowest bounds first; the real-size simulations
of the defaults and hints start at once and run while the proxy search goes on.

Legality: the analysis' hint checks (partition, stationary,
moving and PSUM limits, SBUF footprint at the sizes' bounds) and the simulator's strictness
rules at the tuning sizes; every lowering handles partial last tiles, so a schedule legal at the
tuning sizes stays legal at every size the constraints allow.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nkigen.analysis import IndexRole
from nkigen.diagnostics import Loc, NkigenError, error
from nkigen.hw import DEFAULT_TARGET
from nkigen.ir import Schedule, Spec
from nkigen.tune.cache import default_dir
from nkigen.tune.search import Candidate, Searcher, rank
from nkigen.tune.space import (
    BLOCK_CHOICES,
    BUFFER_CHOICES,
    TILE_CHOICES,
    is_contraction,
    schedule_key,
    seeds,
)

DEFAULT_TUNE_SIZE = 1024
PROXY_CAP = 2048
FINALISTS = 4
MAX_ROUNDS = 3
BEAM = 2


@dataclass(frozen=True)
class TuneResult:
    spec: str
    target: str
    dialect: str
    sizes: tuple[tuple[str, int], ...]
    proxy_sizes: tuple[tuple[str, int], ...] | None   # None: explored at the real sizes
    best: Candidate
    default: Candidate
    candidates: tuple[Candidate, ...]     # ranked at the real sizes
    explored: tuple[Candidate, ...]       # ranked at the proxy sizes (empty without a proxy)
    simulated: int                        # simulations run (the rest came from caches)


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


# No Trainium chip's HBM holds a tensor this large (trn2: 96 GiB per chip); sizes beyond it are
# typos, and simulating them would overflow or run for ever.
MAX_TENSOR_BYTES = 1 << 37


def check_tuning_sizes(spec: Spec, sizes: Mapping[str, int], field: str = "sizes",
                       loc: Loc | None = None) -> None:
    """Raise NkigenError unless ``sizes`` (free and derived) satisfy the spec's constraints and
    every tensor fits in a chip's HBM at those sizes."""
    from nkigen.analysis import check_sizes
    from nkigen.analysis.sizes import eval_size_expr

    free = {s.name: sizes[s.name] for s in spec.free_sizes if s.name in sizes}
    diags = check_sizes(spec, free, field=field, loc=loc)
    if diags:
        raise NkigenError(diags)
    for t in spec.tensors:
        n = 1
        for d in t.shape:
            n *= eval_size_expr(d, sizes) or 1
        nbytes = n * t.dtype.itemsize
        if nbytes > MAX_TENSOR_BYTES:
            raise error(loc, field, f"tensor {t.name} would need {nbytes:,} bytes at these sizes, "
                        f"over {MAX_TENSOR_BYTES >> 30} GiB, beyond any Trainium chip's HBM",
                        ", ".join(f"{k}={v}" for k, v in sorted(sizes.items())),
                        "tune at sizes the kernel will really run at")


def proxy_sizes(spec: Spec, sizes: Mapping[str, int], cap: int = PROXY_CAP) -> dict[str, int]:
    """``sizes`` with each free size capped at ``cap`` (kept legal), derived sizes recomputed."""
    from nkigen.analysis import complete_sizes

    free: dict[str, int] = {}
    for s in spec.free_sizes:
        v = int(sizes[s.name])
        if v > cap:
            v = cap - cap % s.multiple_of if s.multiple_of else cap
            v = max(v, s.multiple_of or 1, s.min)
        free[s.name] = v
    return complete_sizes(spec, free)


def _with(s: Schedule, field: str, index: str | None, value) -> Schedule:
    if field == "buffers":
        return dataclasses.replace(s, auto=False, buffers=value)
    if field == "order":
        return dataclasses.replace(s, auto=False, order=tuple(value))
    current = dict(getattr(s, field))
    if field == "block" and value == 1:
        current.pop(index, None)
    else:
        current[index] = value
    if field == "block":
        return dataclasses.replace(s, auto=False, block=tuple(sorted(current.items())))
    return dataclasses.replace(s, auto=False, tiles=tuple(sorted(current.items())))


def _knobs(analysis) -> list[tuple[str, str | None, tuple]]:
    main = {li.name for li in analysis.main.loop_indices}
    knobs: list[tuple[str, str | None, tuple]] = []
    for name, _ in analysis.extents:
        role = analysis.role(name)
        if name not in main or role is None:
            continue
        if len(TILE_CHOICES.get(role, ())) > 1:
            knobs.append(("tiles", name, TILE_CHOICES[role]))
        if is_contraction(analysis) and role in BLOCK_CHOICES:
            knobs.append(("block", name, BLOCK_CHOICES[role]))
    stationary = [n for n, _ in analysis.extents if analysis.role(n) is IndexRole.STATIONARY
                  and n in main]
    moving = [n for n, _ in analysis.extents if analysis.role(n) is IndexRole.MOVING
              and n in main]
    if stationary and moving:     # which block loop of a contraction runs outermost
        r, c = stationary[0], moving[0]
        knobs.append(("order", None, ((r, c), (c, r))))
    knobs.append(("buffers", None, BUFFER_CHOICES))
    return knobs


def _distinct_best(cands, n: int) -> list[Candidate]:
    """The ``n`` fastest legal candidates with distinct modeled kernels."""
    out: list[Candidate] = []
    kernels: set[tuple] = set()
    for c in rank(cands):
        if c.legal and (c.latency_us, c.hfu, c.mbu) not in kernels and len(out) < n:
            kernels.add((c.latency_us, c.hfu, c.mbu))
            out.append(c)
    return out


def _kth_latency(cands, k: int) -> float | None:
    """The latency of the ``k``-th fastest distinct legal candidate (None: fewer than ``k``).
    A candidate modeled strictly slower cannot be among the ``k`` best of any superset."""
    best = _distinct_best(cands, k)
    return best[-1].latency_us if len(best) == k else None


def _explore(searcher: Searcher, starts: list[Schedule], prune: bool = True) -> None:
    """Beam search: sweep every knob of each of the BEAM best distinct candidates, repeat until
    the beam stops changing (a plain coordinate descent gets stuck where two block factors
    must change together). A round's candidates are one batch (they do not depend on each
    other: the beam changes between rounds only). With ``prune``, a candidate whose latency
    bound exceeds the FINALISTS-th best so far is not simulated: it could enter neither the beam
    (BEAM <= FINALISTS) nor the finalists, so the outcome is the exhaustive search's."""
    searcher.measure(starts)
    knobs = _knobs(searcher.analysis)
    beam = [c.key for c in _distinct_best(searcher.seen.values(), BEAM)]
    for _ in range(MAX_ROUNDS):
        batch = [_with(c.schedule, field, index, v)
                 for c in [searcher.seen[k] for k in beam]
                 for field, index, values in knobs for v in values]
        if prune:    # in order of bound: the cheapest group first, then a tighter limit
            bounds = searcher.bound_all(batch)
            for b in sorted(set(bounds)):
                limit = _kth_latency(searcher.seen.values(), FINALISTS)
                searcher.measure([s for s, sb in zip(batch, bounds) if sb == b],
                                 prune_above=limit)
        else:
            searcher.measure(batch)
        new = [c.key for c in _distinct_best(searcher.seen.values(), BEAM)]
        if new == beam:
            break
        beam = new


def tune(spec: Spec, target: str | None = None, dialect: str = "nki",
         sizes: Mapping[str, int] | None = None, cache_dir: Path | None | bool = True,
         jobs: int = 1, proxy_cap: int = PROXY_CAP,
         progress: Callable[[str, Candidate], None] | None = None,
         executor: Any = None, prune: bool = True) -> TuneResult:
    """Rank legal schedules for ``spec`` by modeled latency; see the module docstring.

    ``progress(phase, candidate)`` is called as each candidate is evaluated; ``phase`` is
    "proxy" (exploring at the proxy sizes) or "final" (at the real sizes). ``executor``: where
    the simulations run (:mod:`nkigen.library.executor`): None or "local" (``jobs`` processes),
    "ray", "ray://HOST:PORT", or an Executor the caller owns. The result does not depend on it.
    ``prune`` False: simulate every candidate the search visits (the exhaustive oracle; the
    best candidate and its latency are the same either way, only pruned rows differ)."""
    from nkigen.library.executor import Executor, LocalExecutor, make_executor

    owned = not isinstance(executor, Executor)
    ex = make_executor(executor, jobs)
    try:
        return _tune(spec, target, dialect, sizes, cache_dir, jobs, proxy_cap, progress, ex,
                     prune)
    except BaseException:
        if owned and isinstance(ex, LocalExecutor):
            ex.close(abort=True)     # Ctrl-C or an error: do not wait for running workers
        raise
    finally:
        if owned:
            ex.close()


def _tune(spec, target, dialect, sizes, cache_dir, jobs, proxy_cap, progress,
          executor, prune) -> TuneResult:
    from nkigen.analysis import analyze

    tname = target or spec.target or DEFAULT_TARGET
    analysis = analyze(spec, target=tname)
    full = tuning_sizes(spec, sizes)
    check_tuning_sizes(spec, full)
    proxy = proxy_sizes(spec, full, proxy_cap)
    root = default_dir() if cache_dir is True else (cache_dir or None)
    starts = seeds(analysis)
    def hook(phase: str):
        return None if progress is None else (lambda c: progress(phase, c))

    final = Searcher(analysis, full, tname, dialect, root, jobs, hook("final"), executor)
    explorer = final if proxy == full else Searcher(analysis, proxy, tname, dialect, root, jobs,
                                                    hook("proxy"), executor)
    explored: tuple[Candidate, ...] = ()
    if getattr(executor, "submit", None) is not None and jobs > 1:
        # the pool forks from this process at its first task: import what its workers run
        # (planning and its bound, the simulator with the kernel-loading API layers and the
        # cost model) once here rather than once in each worker
        import nkigen.codegen  # noqa: F401
        import nkigen.sim.classic  # noqa: F401
        import nkigen.sim.cost  # noqa: F401
        import nkigen.sim.runner  # noqa: F401
        import nkigen.tune.bound  # noqa: F401
        from nkigen.codegen.render import warm

        warm(dialect)          # the kernel templates, compiled once here too
    if explorer is not final:
        final.start(starts)    # the real-size defaults and hints run while the search explores
    _explore(explorer, starts, prune)
    if explorer is not final:
        explored = rank(explorer.seen.values())
        picks = [c.schedule for c in _distinct_best(explored, FINALISTS)]
        # a finalist is pruned when its bound exceeds the best start's latency, which is at
        # least the starts' smallest bound: below that, launch it without waiting for them
        floor = min((final.bounds.get(schedule_key(s), 0.0) for s in starts), default=0.0)
        final.measure(picks, floor=floor, prune_above=(
            lambda: _kth_latency(final.measure(starts), 1)) if prune else None)
        final.measure(starts)
    for s in (explorer, final):
        with contextlib.suppress(OSError):     # an unwritable cache only costs time next run
            s.cache.save()
    ranked = rank(final.seen.values())
    default = final.measure(starts[:1])[0]
    best = ranked[0] if ranked and ranked[0].legal else default
    return TuneResult(spec.name, tname, dialect, tuple(sorted(full.items())),
                      None if explorer is final else tuple(sorted(proxy.items())), best,
                      default, ranked, explored, final.simulated + (
                          explorer.simulated if explorer is not final else 0))


def _table(cands, best: Candidate, default: Candidate, limit: int | None) -> list[str]:
    from nkigen.sim.calibration import BAND
    rows = [("rank", f"latency_us (model, +-{round(100 * BAND)} %)", "hfu", "mbu", "schedule",
             "note")]
    for i, c in enumerate(cands[:limit] if limit else cands, 1):
        note = ("best " if c.key == best.key else "") + ("default " if c.key == default.key
                                                          else "")
        if c.pruned:
            note += f"pruned: {c.reason}"
        elif not c.legal:
            note += f"illegal: {c.reason}"
        rows.append((str(i) if c.legal else "-",
                     f"{c.latency_us:.1f}" if c.latency_us is not None else "-",
                     f"{c.hfu:.3f}" if c.hfu is not None else "-",
                     f"{c.mbu:.3f}" if c.mbu is not None else "-", c.key, note.strip()))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return [("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5]).rstrip()
            for r in rows]


def _sizes_text(sizes) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes)


def format_table(result: TuneResult, limit: int | None = None) -> str:
    """The ranked candidates as text tables (the output of ``nkigen tune``)."""
    n = len(result.candidates) + len(result.explored)
    pruned = sum(c.pruned for c in result.candidates + result.explored)
    ruled = f"{pruned} ruled out by a latency lower bound, " if pruned else ""
    lines = [f"{result.spec}: {n} evaluations on {result.target} ({result.dialect}), "
             f"{result.simulated} simulated, {ruled}the rest from the cache.",
             "Latencies are cost-model estimates, not measurements.", "",
             f"at {_sizes_text(result.sizes)}:"]
    lines += _table(result.candidates, result.best, result.default, limit)
    if result.proxy_sizes is not None:
        lines += ["", f"explored at proxy sizes {_sizes_text(result.proxy_sizes)}:"]
        lines += _table(result.explored, result.best, result.default, limit)
    return "\n".join(lines)


__all__ = ["Candidate", "TuneResult", "check_tuning_sizes", "format_table", "proxy_sizes", "tune",
           "tuning_sizes"]
