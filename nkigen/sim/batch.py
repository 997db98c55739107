"""Deferred TensorE numerics: the GEMMs of an accumulation group run on a second core.

Stage: simulate (numerics, fast path; off under ``NKIGEN_SIM_REFERENCE=1``). An ``nc_matmul``
into PSUM computes ``dst (+)= stationary.T @ moving`` in fp32: one fp32 GEMM per instruction
(``np.matmul(s.T, m)``, NumPy's BLAS), then one fp32 add into the PSUM tile (a store for the
first matmul of a group). On the fast path the instruction still runs every check and makes its
trace record at once, and reads its operands at once (a widened bfloat16/fp16/fp8 operand is a
private fp32 copy, so later writes to the SBUF tile cannot change it). Only the arithmetic is
deferred:

- the GEMM is queued for one worker thread, which computes it with the reference path's own
  expression (same BLAS call, same bits) while the interpreter goes on simulating;
- the store/add into PSUM is queued on the destination allocation (``Alloc.pending``), in
  instruction order, and applied by :func:`flush`: the same NumPy operation on the same view.

:func:`flush` runs before anything else touches the allocation's values: ``Tensor.np()`` and
``emit.write`` call it, and so does a reinterpret cast. A product the worker has not finished
by then is computed by the flushing thread itself (the worker's copy, identical, is dropped), so
a run never waits for the worker: whatever CPU time the worker gets is taken off the run's
critical path. The worker is opt-in and used while a CPU is free (:func:`wanted`).
Destinations that can alias other storage (direct allocations, reinterpret casts) and fp32
operands (views of SBUF, not copies) are not deferred.

Why not one GEMM over the concatenated K tiles of a group: BLAS would accumulate the long dot
product in its own blocking instead of rounding to fp32 after each instruction's product and at
each PSUM add, so the last bits would differ from the per-instruction semantics.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator

import numpy as np

from nkigen.sim import gemm

MAX_QUEUED = 64             # products queued on one allocation before they are applied


class Product:
    """One instruction's GEMM ``s.T @ m``; ``r`` is set by whichever thread computes it."""

    __slots__ = ("s", "m", "r", "taken")

    def __init__(self, s: np.ndarray, m: np.ndarray) -> None:
        self.s = s
        self.m = m
        self.r: np.ndarray | None = None
        self.taken = False          # by the worker or the flushing thread (under the lock)


class _Worker:
    """One daemon thread computing queued products in order (remade after a fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.todo: deque[Product] = deque()
        self.sleeping = False
        self.busy = False
        threading.Thread(target=self._loop, name="nkigen-tensore", daemon=True).start()

    def submit(self, p: Product) -> None:
        with self.lock:
            self.todo.append(p)
            if self.sleeping:
                self.wake.notify()

    def result(self, p: Product) -> np.ndarray:
        r = p.r
        if r is not None:
            return r
        with self.lock:
            if not p.taken:
                p.taken = True
                self.todo.remove(p)
        r = np.matmul(p.s.T, p.m)       # not done yet: computed here (the same bits)
        p.r = r
        return r

    def drop(self) -> None:
        """Forget queued products and wait for the one being computed."""
        with self.lock:
            for p in self.todo:
                p.taken = True
            self.todo.clear()
        while self.busy:
            time.sleep(0.0001)

    def _loop(self) -> None:
        np.seterr(all="ignore")         # floating-point error state is per thread
        todo = self.todo
        while True:
            with self.lock:
                while not todo:
                    self.sleeping = True
                    self.wake.wait()
                    self.sleeping = False
                p = todo.popleft()
                p.taken = True
                self.busy = True
            try:
                if p.r is None:
                    r = np.matmul(p.s.T, p.m)
                    if p.r is None:
                        p.r = r
            except BaseException:       # the flushing thread computes it (and raises) itself
                pass
            finally:
                self.busy = False


_WORKER: _Worker | None = None


def _worker() -> _Worker:
    global _WORKER
    w = _WORKER
    if w is None or w.pid != os.getpid():   # a forked child has none of its parent's threads
        w = _WORKER = _Worker()
    return w


FORCE: bool | None = None   # tests and the benchmark: the worker on (True) or off (False)
ACTIVE = False              # whether the running simulation defers products (see scope)


def wanted() -> bool:
    """Use the worker only when asked (``NKIGEN_SIM_WORKER=1``) and a CPU is free: this process
    may run on 2+ CPUs and the load average is below their number. Off by default: on the 2-CPU
    development machine under load (load average ~10) it measured 4-20% more CPU time for the
    run (the handoffs between the threads) and a wall time that went either way (tiled 2048^3
    bf16: 1.09 -> 0.50 s in one series, 0.67 -> 0.80 s in another; benchmarks/bench_sim_speed.py
    times both), and a thread alive in a process that later forks (``-j`` builds, Ray workers)
    is a risk with no measured gain to pay for it."""
    if FORCE is not None:
        return FORCE
    if os.environ.get("NKIGEN_SIM_WORKER") != "1":
        return False
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return n > 1 and load < n


class Queue:
    """The store/add operations queued on one PSUM allocation, in instruction order."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[np.ndarray, Product | Later, bool]] = []


def defer(alloc, view: np.ndarray, s: np.ndarray, m: np.ndarray, acc: bool) -> None:
    """Queue ``view (+)= s.T @ m`` on ``alloc`` (``view`` is a NumPy view of its storage, already
    holding its values; ``s`` and ``m`` are private fp32 arrays)."""
    q = alloc.pending
    if q is None:
        q = alloc.pending = Queue()
    elif len(q.ops) >= MAX_QUEUED:
        flush(alloc)
        q = alloc.pending = Queue()
    p = Product(s, m)
    _worker().submit(p)
    q.ops.append((view, p, acc))


class Later:
    """A classic fresh matmul result's product ``s.T @ m``, computed only when its tile's values
    are read (:func:`flush`), or straight into the PSUM tile it is accumulated into
    (:func:`take`). ``s`` and ``m`` are private fp32 copies (widened operands)."""

    __slots__ = ("s", "m")

    def __init__(self, s: np.ndarray, m: np.ndarray) -> None:
        self.s = s
        self.m = m


def later(alloc, view: np.ndarray, s: np.ndarray, m: np.ndarray) -> None:
    """Queue ``view[...] = s.T @ m`` on ``alloc`` (which has nothing queued), unstarted."""
    q = alloc.pending = Queue()
    q.ops.append((view, Later(s, m), False))


def _apply(view: np.ndarray, s: np.ndarray, m: np.ndarray, acc: bool) -> None:
    """``view (+)= s.T @ m``: the product into the view by one sgemm (gemm.py) where it takes
    them, else the reference expressions."""
    if gemm.into(view, s, m, acc):
        return
    r = np.matmul(s.T, m)
    if acc:
        view += r
    else:
        view[...] = r


def take(alloc, d: np.ndarray, acc: bool) -> bool:
    """``d (+)= the product`` of the unstarted :class:`Later` that is all ``alloc`` has queued, if
    ``d`` (a float32 view, e.g. the PSUM tile a classic ``acc += nc_matmul(...)`` accumulates
    into) has its shape: the product goes into ``d`` without passing through ``alloc``, whose
    own values stay queued (computed only if something reads them). False: nothing done."""
    q = alloc.pending
    if q is None or len(q.ops) != 1:
        return False
    p = q.ops[0][1]
    if p.__class__ is not Later or d.dtype != np.float32 or \
            d.shape != (p.s.shape[1], p.m.shape[1]):
        return False
    _apply(d, p.s, p.m, acc)
    return True


def flush(alloc) -> None:
    """Apply ``alloc``'s queued products in order (the per-instruction path's operations)."""
    q = alloc.pending
    alloc.pending = None
    if q is None:
        return
    if q.ops[0][1].__class__ is Later:
        view, p, acc = q.ops[0]
        _apply(view, p.s, p.m, acc)
        return
    w = _worker()
    for view, p, acc in q.ops:
        r = w.result(p)
        if acc:
            view += r
        else:
            view[...] = r


@contextlib.contextmanager
def scope(numerics: bool, fast: bool) -> Iterator[None]:
    """A run: decides whether it defers products (numerics on the fast path, :func:`wanted`);
    at its end the worker is left idle (still inside the single-threaded-BLAS scope). Products
    still queued then belong to PSUM tiles no instruction reads any more."""
    global ACTIVE
    prev, ACTIVE = ACTIVE, numerics and fast and wanted()
    try:
        yield
    finally:
        ACTIVE = prev
        if numerics and _WORKER is not None and _WORKER.pid == os.getpid():
            _WORKER.drop()
