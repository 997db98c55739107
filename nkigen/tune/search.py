"""Tuner stage 4 (search): evaluate batches of candidates at one set of sizes, remembering all.

A :class:`Searcher` owns one size assignment. Each candidate is looked up in this run's memo,
then in the disk cache; otherwise it is checked, planned and rendered, and candidates whose
kernels are byte-identical share one simulation (many knobs do not change the plan for every
spec). Before simulating, a candidate's provable lower bound on its modeled latency
(:mod:`nkigen.tune.bound`) is compared with the caller's ``prune_above``: a candidate whose bound
already exceeds it cannot be among the results the caller keeps, and is not simulated
(branch and bound; the caller chooses ``prune_above`` so the outcome is the exhaustive one).

The simulations run in worker processes when ``jobs > 1``, or as Ray tasks with an executor from
:mod:`nkigen.library.executor`; their results come back to the driver, which alone writes the
cache. :meth:`Searcher.start` launches simulations without waiting for them (a local pool runs
them while the driver goes on), :meth:`Searcher.measure` waits for what it returns.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NoReturn

from nkigen.diagnostics import Loc, error
from nkigen.ir import Schedule
from nkigen.tune.cache import TuneCache, size_bucket
from nkigen.tune.measure import prepare, simulate_checked, simulate_source
from nkigen.tune.space import schedule_key

PRUNED = "not simulated: its lower bound"   # the reason text of a pruned candidate starts so
Limit = float | Callable[[], float | None] | None


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
    bound_us: float | None = None   # pruned: the lower bound that ruled it out (legal False)

    @property
    def pruned(self) -> bool:
        return self.bound_us is not None

    def beats(self, other: Candidate) -> bool:
        if not self.legal:
            return False
        return not other.legal or (self.latency_us or 0.0) < (other.latency_us or 0.0)


def _hints(s: Schedule) -> int:
    return len(s.tiles) + len(s.block) + len(s.order) + (s.buffers is not None)


def rank(cands: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """Legal candidates by latency, ties to the fewest hints (the defaults win a tie), then
    pruned ones by their bound, then illegal ones by key."""
    return tuple(sorted(cands, key=lambda c: (not c.legal, not c.pruned,
                                              c.latency_us or c.bound_us or 0.0,
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
        self._by_source: dict[str, dict | Future] = {}   # digest -> result or running sim
        self._waiting: dict[str, tuple[Schedule, str, float]] = {}  # key -> (s, digest, bound)
        self._deferred: dict[str, str] = {}   # digest -> source, for executors without submit
        self.bounds: dict[str, float] = {}    # key -> latency lower bound (rendered candidates)
        self._planned: dict[str, tuple[str | None, str | None, float]] = {}  # (src, reason, bound)
        self.simulated = 0

    def _make(self, s: Schedule, key: str, res: Mapping, cached: bool,
              bound: float | None = None) -> Candidate:
        c = Candidate(s, key, bool(res.get("legal")), res.get("latency_us"), res.get("hfu"),
                      res.get("mbu"), res.get("reason"), cached, bound)
        self.seen[key] = c
        if self.on_candidate is not None:
            self.on_candidate(c)
        return c

    def start(self, schedules: Iterable[Schedule], prune_above: Limit = None,
              floor: float = 0.0) -> list[str]:
        """Launch what ``schedules`` need (cache, render, bound, simulation) without waiting
        for the simulations; their keys in order. A candidate whose latency bound exceeds
        ``prune_above`` (strictly) is recorded as pruned instead of simulated. ``prune_above``
        may be a function computing it (it may wait for simulations), called once and only if
        a bound exceeds ``floor``, a known lower bound of it."""
        order: list[str] = []
        limit: list[float | None] = []        # prune_above, once computed
        schedules = list(schedules)
        self.bound_all(schedules)             # plans (in parallel with a pool) what is new
        for s in schedules:
            key = schedule_key(s)
            order.append(key)
            if key in self.seen or key in self._waiting:
                continue
            hit = self.cache.get(key)
            if hit is not None:
                self._make(s, key, hit, True)
                continue
            src, reason, bound = self._planned.pop(key)
            if src is None:
                res = {"legal": False, "reason": reason}
                self.cache.put(key, res)
                self._make(s, key, res, False)
                continue
            digest = hashlib.sha256(src.encode()).hexdigest()
            done = self._by_source.get(digest)
            if isinstance(done, dict):
                self.cache.put(key, done)
                self._make(s, key, done, False)
                continue
            self.bounds[key] = bound
            if done is None and prune_above is not None and bound > floor:
                if not limit:
                    limit.append(prune_above() if callable(prune_above) else prune_above)
                if limit[0] is not None and bound > limit[0]:
                    self._make(s, key, {"legal": False, "reason": f"{PRUNED} {bound:.3f} us "
                                        f"exceeds {limit[0]:.3f} us"}, False, bound)
                    continue
            if done is None:
                self._launch(digest, src)
            self._waiting[key] = (s, digest, bound)
        return order

    def bound_all(self, schedules: Iterable[Schedule]) -> list[float]:
        """Each candidate's latency lower bound (0.0 for one known already or illegal); plans
        and renders them once, for :meth:`start` to reuse."""
        todo: dict[str, Schedule] = {}
        for s in schedules:
            key = schedule_key(s)
            if key not in self.seen and key not in self._waiting and key not in self._planned \
                    and key not in todo and self.cache.get(key) is None:
                todo[key] = s
        for key, res in zip(todo, self._prepare(list(todo.values()))):
            self._planned[key] = res
        return [self._planned[k][2] if k in self._planned else 0.0
                for k in map(schedule_key, schedules)]

    def _prepare(self, schedules: list[Schedule]) -> list[tuple[str | None, str | None, float]]:
        """:func:`prepare` of each schedule, in order. With a local pool, its workers take them
        from the front while this process takes them from the back (work stealing: a worker
        may be busy with a long simulation)."""
        args = (self.analysis, self.sizes, self.target, self.dialect)
        submit = getattr(self.executor, "submit", None)
        if submit is None or self.jobs <= 1 or len(schedules) < 2:
            return [prepare(self.analysis, s, *args[1:]) for s in schedules]
        futs = [self._submit(submit, "planning", prepare, self.analysis, s, *args[1:])
                for s in schedules]
        out: list = [None] * len(schedules)
        for i in range(len(schedules) - 1, -1, -1):
            if not futs[i].cancel():     # a worker has it: it has all before it too
                break
            out[i] = prepare(self.analysis, schedules[i], *args[1:])
        for i, f in enumerate(futs):
            if out[i] is None:
                try:
                    out[i] = f.result()
                except Exception as e:     # the worker died (BrokenProcessPool) or raised
                    self._fail(f"{type(e).__name__}: {e}", "planning")
        return out

    def measure(self, schedules: Iterable[Schedule], prune_above: Limit = None,
                floor: float = 0.0) -> list[Candidate]:
        """Candidates for ``schedules`` in the same order, simulating only what is new (and
        not pruned, see :meth:`start`); waits for their simulations."""
        order = self.start(schedules, prune_above, floor)
        self._run_deferred()
        for key in order:
            if key in self.seen:
                continue
            s, digest, _ = self._waiting.pop(key)
            res = self._result(digest)
            self.cache.put(key, res)
            self._make(s, key, res, False)
        return [self.seen[k] for k in order]

    # ---- simulations ----------------------------------------------------------------------

    def _call(self) -> tuple[Callable[..., dict], tuple]:
        spec = self.analysis.spec
        if self.executor is not None and self.executor.remote:   # check they run this nkigen
            from nkigen.library.cache import package_hash

            return simulate_checked, (package_hash(), spec)
        return simulate_source, (spec,)

    def _launch(self, digest: str, src: str) -> None:
        self.simulated += 1
        submit = getattr(self.executor, "submit", None)
        if submit is None or self.jobs <= 1:
            self._deferred[digest] = src
            self._by_source[digest] = Future()      # resolved by _run_deferred
            return
        fn, head = self._call()
        self._by_source[digest] = self._submit(submit, "simulation", fn, *head, src, self.sizes,
                                               self.target)

    def _submit(self, submit: Callable[..., Future], what: str, fn: Callable[..., Any],
                *args: Any) -> Future:
        try:
            return submit(fn, *args)
        except Exception as e:     # the pool broke: one of its workers died earlier
            self._fail(f"{type(e).__name__}: {e}", what)

    def _result(self, digest: str) -> dict:
        from nkigen.library.executor import TaskFailed

        r = self._by_source[digest]
        if isinstance(r, Future):
            try:
                res = r.result()
            except Exception as e:     # the worker died (BrokenProcessPool) or raised
                res = TaskFailed(f"{type(e).__name__}: {e}")
            if isinstance(res, TaskFailed):
                self._fail(res.reason)
            self._by_source[digest] = r = res
        assert isinstance(r, dict)
        return r

    def _fail(self, reason: str, what: str = "simulation") -> NoReturn:
        spec = self.analysis.spec
        raise error(spec.loc or Loc(spec.path or spec.name), "schedule",
                    f"a tuning candidate's {what} failed in its worker", reason,
                    "run again; if it keeps failing, tune with the local executor (-j 1) and "
                    "report the spec")

    def _run_deferred(self) -> None:
        """The simulations waiting for an executor without ``submit`` (in this process with
        ``jobs`` 1, Ray tasks), as one batch on it; results come back to this process."""
        from nkigen.library.executor import LocalExecutor, TaskFailed

        if not self._deferred:
            return
        digests, sources = list(self._deferred), list(self._deferred.values())
        self._deferred.clear()
        ex = self.executor if self.executor is not None else LocalExecutor(self.jobs)
        fn, head = self._call()
        if len(sources) > 1:
            head = (*head[:-1], ex.share(head[-1]))
        calls: list[tuple] = [(*head, src, self.sizes, self.target) for src in sources]
        with contextlib.closing(ex.map_unordered(fn, calls)) as finished:
            for i, res in finished:     # closing: Ctrl-C or an error cancels the rest
                if isinstance(res, TaskFailed):
                    self._fail(res.reason)
                fut = self._by_source[digests[i]]
                assert isinstance(fut, Future)
                fut.set_result(res)
