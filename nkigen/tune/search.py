"""Tuner stage 4 (search): evaluate batches of candidates at one set of sizes, remembering all.

A :class:`Searcher` owns one size assignment. Each candidate is looked up in this run's memo,
then in the disk cache; otherwise it is checked and rendered, and candidates whose kernels are
byte-identical share one simulation (many knobs do not change the plan for every spec). The
remaining simulations run in worker processes when ``jobs > 1``, or as Ray tasks with an
executor from :mod:`nkigen.library.executor`; their results come back to the driver, which alone
writes the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from nkigen.diagnostics import Loc, error
from nkigen.ir import Schedule
from nkigen.tune.cache import TuneCache, size_bucket
from nkigen.tune.measure import render_candidate, simulate_checked, simulate_source
from nkigen.tune.space import schedule_key


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

    def beats(self, other: Candidate) -> bool:
        if not self.legal:
            return False
        return not other.legal or (self.latency_us or 0.0) < (other.latency_us or 0.0)


def _hints(s: Schedule) -> int:
    return len(s.tiles) + len(s.block) + len(s.order) + (s.buffers is not None)


def rank(cands: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """Legal candidates by latency, ties to the fewest hints (the defaults win a tie), then
    illegal ones by key."""
    return tuple(sorted(cands, key=lambda c: (not c.legal, c.latency_us or 0.0,
                                              _hints(c.schedule), c.key)))


class Searcher:
    def __init__(self, analysis, sizes: Mapping[str, int], target: str, dialect: str,
                 cache_root, jobs: int = 1, on_candidate=None, executor=None):
        self.on_candidate = on_candidate   # called with each new Candidate (progress)
        self.executor = executor           # nkigen.library.executor.Executor, or None: local
        self.analysis = analysis
        self.sizes = dict(sizes)
        self.target = target
        self.dialect = dialect
        self.jobs = max(1, jobs)
        self.cache = TuneCache(cache_root, analysis.spec.sha256, size_bucket(sizes), target,
                               dialect)
        self.seen: dict[str, Candidate] = {}
        self._by_source: dict[str, dict] = {}
        self.simulated = 0

    def _make(self, s: Schedule, key: str, res: Mapping, cached: bool) -> Candidate:
        c = Candidate(s, key, bool(res.get("legal")), res.get("latency_us"), res.get("hfu"),
                      res.get("mbu"), res.get("reason"), cached)
        self.seen[key] = c
        if self.on_candidate is not None:
            self.on_candidate(c)
        return c

    def measure(self, schedules: Iterable[Schedule]) -> list[Candidate]:
        """Candidates for ``schedules`` in the same order, simulating only what is new."""
        order: list[str] = []
        todo: dict[str, Schedule] = {}
        for s in schedules:
            key = schedule_key(s)
            order.append(key)
            if key in self.seen or key in todo:
                continue
            hit = self.cache.get(key)
            if hit is not None:
                self._make(s, key, hit, True)
            else:
                todo[key] = s
        pending: dict[str, list[tuple[str, Schedule]]] = {}
        sources: dict[str, str] = {}
        for key, s in todo.items():
            src, reason = render_candidate(self.analysis, s, self.target, self.dialect)
            if src is None:
                res = {"legal": False, "reason": reason}
                self.cache.put(key, res)
                self._make(s, key, res, False)
                continue
            digest = hashlib.sha256(src.encode()).hexdigest()
            if digest in self._by_source:
                self.cache.put(key, self._by_source[digest])
                self._make(s, key, self._by_source[digest], False)
                continue
            pending.setdefault(digest, []).append((key, s))
            sources[digest] = src
        for digest, res in zip(sources, self._simulate(list(sources.values()))):
            self._by_source[digest] = res
            for key, s in pending[digest]:
                self.cache.put(key, res)
                self._make(s, key, res, False)
        return [self.seen[k] for k in order]

    def _simulate(self, sources: list[str]) -> list[dict]:
        """Each source's cost-only simulation, in order, on the executor (a local pool of
        ``jobs`` processes unless the caller gave one, e.g. Ray). Results come back to this
        process, which alone writes the cache; a task that failed is a located error."""
        from nkigen.library.executor import LocalExecutor, TaskFailed

        self.simulated += len(sources)
        spec = self.analysis.spec
        ex = self.executor if self.executor is not None else LocalExecutor(self.jobs)
        shared = ex.share(spec) if len(sources) > 1 else spec
        calls: list[tuple] = [(shared, src, self.sizes, self.target) for src in sources]
        fn: Callable[..., dict] = simulate_source
        if ex.remote:       # workers elsewhere: check they run this nkigen
            from nkigen.library.cache import package_hash

            fn, calls = simulate_checked, [(package_hash(), *c) for c in calls]
        out: list[dict | None] = [None] * len(sources)
        with contextlib.closing(ex.map_unordered(fn, calls)) as finished:
            for i, res in finished:     # closing: Ctrl-C or an error cancels the rest
                if isinstance(res, TaskFailed):
                    raise error(spec.loc or Loc(spec.path or spec.name), "schedule",
                                "a tuning candidate's simulation failed in its worker",
                                res.reason, "run again; if it keeps failing, tune with the "
                                "local executor (-j 1) and report the spec")
                out[i] = res
        return [r for r in out if r is not None]
