"""Stage: library (execution). Independent units of work -> their results, on a local process
pool (the default) or on a Ray cluster (``--executor ray[://ADDRESS]``).

Input: a picklable module-level function and the argument tuples of its calls. Output: an
iterator of ``(call index, result)`` in completion order; the callers (the library build, the
tuner) key every result by its index, so the order of completion never shows in what they write.

- :class:`LocalExecutor`: the calls in this process (``jobs <= 1``) or in a process pool whose
  workers ignore SIGINT (the parent handles it) and exit when the parent dies. Workers share the
  driver's file system (``remote`` is False).
- :class:`RayExecutor`: each call is a Ray task (``ray.remote``, one CPU, ``max_retries``: a task
  whose worker process or node died is run again, :data:`RAY_RETRIES` times), which may submit
  Ray tasks of its own (``nested``: a spec's task fans out its cases and tuning simulations, see
  :mod:`nkigen.library.detached`; a task waiting for its own tasks lends its CPU to them: Ray
  docs, ray-core/tasks/nested-tasks "Yielding Resources While Blocked").
  Workers may run on other machines (``remote`` is True): callers send them content and get
  content back, and never let them write into the output folder or a shared cache folder. On
  Ctrl-C or an error the driver cancels every task not finished yet (``ray.cancel(force=True)``,
  which also cancels the tasks they started) before re-raising.
  Connects to ``ADDRESS`` (Ray Client, ``ray://host:port``), else to the cluster that
  ``RAY_ADDRESS`` names, else to one started on this machine with ``ray start``, else starts a
  local Ray instance for the run and stops it afterwards (Ray's own ``ray.init`` rules).
  An already initialised Ray (``ray.init`` by the caller) is used as it is and left running.

A call that cannot return (its worker died after the retries, or it raised) comes back as a
:class:`TaskFailed` with the reason, for the caller to report against the unit's spec.

``ray`` is an optional dependency (``pip install 'nkigen[ray]'``); it is imported only when a Ray
executor is made, and its absence is a located error that says how to install it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from nkigen.diagnostics import Diagnostic, Loc, NkigenError

LOCAL = "local"
RAY = "ray"
RAY_CLIENT_PREFIX = "ray://"
RAY_RETRIES = 3          # extra runs of a task whose worker died (Ray's max_retries)
INSTALL_HINT = "pip install 'nkigen[ray]'"
CMDLINE = Loc("<command line>")


@dataclass(frozen=True)
class ExecutorChoice:
    """Where independent work runs: ``local`` (a process pool) or ``ray`` (``address``: a Ray
    Client address ``ray://host:port``; None: ``RAY_ADDRESS`` or a new local Ray instance)."""

    kind: str = LOCAL
    address: str | None = None

    def __str__(self) -> str:
        return self.address if self.address else self.kind


def parse_executor(text: str) -> ExecutorChoice:
    """``local``, ``ray`` or ``ray://HOST:PORT``; raises ValueError naming the accepted forms."""
    t = text.strip()
    if t == LOCAL:
        return ExecutorChoice(LOCAL)
    if t == RAY:
        return ExecutorChoice(RAY)
    if t.startswith(RAY_CLIENT_PREFIX) and len(t) > len(RAY_CLIENT_PREFIX) and t.isprintable() \
            and " " not in t:
        return ExecutorChoice(RAY, t)
    raise ValueError(f"must be 'local', 'ray' or 'ray://HOST:PORT', got {text!r}")


@dataclass(frozen=True)
class TaskFailed:
    """A call that returned no result: its worker died (after the retries) or it raised."""

    reason: str


class Executor:
    """Runs independent calls; a context manager (leaving it releases the workers)."""

    remote = False       # True: workers may not see the driver's files
    nested = False       # True: a task may run tasks of its own here (Ray's nested tasks)

    def map_unordered(self, fn: Callable[..., Any],
                      calls: Sequence[tuple]) -> Generator[tuple[int, Any], None, None]:
        raise NotImplementedError

    def share(self, value: Any) -> Any:
        """``value`` in the form to pass to many calls (Ray: stored once in the object store)."""
        return value

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Calls in this process (``jobs <= 1`` or one call), else in a pool of ``jobs`` processes."""

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, jobs)
        self._pool: cf.ProcessPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        """``fn(*args)`` on a pool of ``jobs`` processes started at the first call and kept
        until :meth:`close` (callers that launch work while they go on, e.g. the tuner; one
        pool, forked once, for all their batches). A dead worker fails the future with
        BrokenProcessPool."""
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(max_workers=self.jobs, initializer=_worker_init,
                                                initargs=(os.getpid(),))
        return self._pool.submit(fn, *args)

    def close(self, abort: bool = False) -> None:
        """Release the :meth:`submit` pool; ``abort`` (Ctrl-C, an error) stops its workers
        without waiting for what they run."""
        pool, self._pool = self._pool, None
        if pool is not None:
            if abort:
                _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)

    def map_unordered(self, fn: Callable[..., Any],
                      calls: Sequence[tuple]) -> Generator[tuple[int, Any], None, None]:
        if self.jobs <= 1 or len(calls) <= 1:
            for i, args in enumerate(calls):
                yield i, fn(*args)
            return
        pool = cf.ProcessPoolExecutor(max_workers=min(self.jobs, len(calls)),
                                      initializer=_worker_init, initargs=(os.getpid(),))
        try:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
            for f in cf.as_completed(futures):
                try:
                    r = f.result()
                except cf.process.BrokenProcessPool:
                    r = TaskFailed("the worker process running it died (out of memory?); "
                                   "retry with -j 1")
                yield futures[f], r
        except BaseException:      # Ctrl-C, an error, or the caller stopped early
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_init(parent: int) -> None:
    """In each worker process: leave SIGINT to the parent (no traceback per worker on Ctrl-C)
    and exit as soon as the parent is gone (SIGKILL of the driver must not leave orphans)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="nkigen-parent-watch", daemon=True).start()


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    for p in list(getattr(pool, "_processes", {}).values()):
        if p.is_alive():
            p.terminate()


def ray_missing() -> NkigenError:
    return NkigenError(Diagnostic(
        CMDLINE, "--executor", "the Ray executor needs the optional package 'ray'",
        got="ray is not installed", fix=f"install it with: {INSTALL_HINT}"))


class RayExecutor(Executor):
    """Calls as Ray tasks (see the module docstring)."""

    remote = True
    nested = True
    WAIT_S = 0.5          # the driver wakes up at least this often (Ctrl-C stays prompt)

    def __init__(self, address: str | None = None, retries: int = RAY_RETRIES,
                 nested: bool = True):
        """``nested`` False: a spec's task verifies its cases and tunes in its own process
        (one task per spec; for comparisons, benchmarks/bench_ray.py)."""
        self.nested = nested
        try:
            import ray
        except ImportError:
            raise ray_missing() from None
        self.ray = ray
        self.retries = retries
        self.owned = False
        self._remote: dict[Callable[..., Any], Any] = {}
        if not ray.is_initialized():
            where = address or os.environ.get("RAY_ADDRESS") or "a new local Ray instance"
            if where.startswith(RAY_CLIENT_PREFIX):
                try:
                    import grpc  # noqa: F401  (Ray Client's transport: ray[client])
                except ImportError:
                    raise NkigenError(Diagnostic(
                        CMDLINE, "--executor", "a ray:// address needs Ray Client (grpcio)",
                        got=f"{where}: grpcio is not installed",
                        fix=f"install it with: {INSTALL_HINT}")) from None
            try:
                with warnings.catch_warnings():   # Ray's own connection warnings: ours below
                    warnings.simplefilter("ignore")
                    ray.init(address=address, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.ERROR, configure_logging=True)
            except Exception as e:    # no cluster there, a refused connection, ...
                raise NkigenError(Diagnostic(
                    CMDLINE, "--executor", "cannot connect to the Ray cluster",
                    got=f"{where}: {' '.join(f'{type(e).__name__}: {e}'.split())[:300]}",
                    fix="check the address (ray://HOST:PORT of the head's Ray Client server) "
                        "and that the cluster is up (`ray status` on the head)")) from None
            self.owned = True

    def share(self, value: Any) -> Any:
        return self.ray.put(value)

    def _task(self, fn: Callable[..., Any]) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=self.retries,
                                               retry_exceptions=False)(fn)
        return self._remote[fn]

    def map_unordered(self, fn: Callable[..., Any],
                      calls: Sequence[tuple]) -> Generator[tuple[int, Any], None, None]:
        ray = self.ray
        task = self._task(fn)
        refs = [task.remote(*args) for args in calls]
        index = {r: i for i, r in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=self.WAIT_S)
                for ref in ready:
                    yield index[ref], self._get(ref)
        except BaseException:     # Ctrl-C, an error, or the caller stopped early
            for ref in pending:
                # (already finished, or its worker already gone)
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise

    def _get(self, ref: Any) -> Any:
        exc = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exc.RayTaskError as e:      # the function raised in the worker
            cause = e.cause if getattr(e, "cause", None) is not None else e
            text = " ".join(f"{type(cause).__name__}: {cause}".split())
            return TaskFailed(f"it raised in its Ray worker ({text[:300]})")
        except (exc.WorkerCrashedError, exc.NodeDiedError, exc.ObjectLostError,
                exc.OwnerDiedError, exc.RaySystemError) as e:
            return TaskFailed(f"its Ray worker was lost {self.retries + 1} times "
                              f"({type(e).__name__}); check the cluster's nodes and memory")

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False


def make_executor(choice: ExecutorChoice | str | Executor | None, jobs: int = 1) -> Executor:
    """The executor for ``choice`` (a parsed choice, its text, an executor, or None: local);
    ``jobs`` sizes the local pool (a Ray cluster's CPUs set its own parallelism)."""
    if isinstance(choice, Executor):
        return choice
    if choice is None:
        choice = ExecutorChoice()
    if isinstance(choice, str):
        try:
            choice = parse_executor(choice)
        except ValueError as e:
            raise NkigenError(Diagnostic(CMDLINE, "--executor", "unknown executor", got=str(e),
                                         fix="pass local, ray or ray://HOST:PORT")) from None
    if choice.kind == RAY:
        return RayExecutor(choice.address)
    return LocalExecutor(jobs)


__all__ = ["Executor", "ExecutorChoice", "LocalExecutor", "RayExecutor", "TaskFailed",
           "make_executor", "parse_executor"]
