"""Deferred TensorE numerics: the GEMMs of an accumulation group run on a second core.

Stage: simulate (numerics, fast path; off under ``NKIGEN_SIM_REFERENCE=1``). An ``nc_matmul``
into PSUM computes ``dst (+)= stationary.T @ moving`` in fp32: one fp32 GEMM per instruction
(``np.matmul(s.T, m)``, NumPy's BLAS), then one fp32 add into the PSUM tile (a store for the
first matmul of a group). On the fast path the instruction still runs every check and makes its
trace record at once, and reads its operands at once (a widened bfloat16/fp16/fp8 operand is a
private fp32 copy, so later writes to the SBUF tile cannot change it). Only the arithmetic is
deferred:

- the product is queued for one worker thread, which applies it straight into the PSUM view
  (the reference path's own BLAS call and store/add, gemm.py) while the interpreter goes on
  simulating; the worker takes a tile's products in instruction order, so its store/adds keep
  their order;
- :func:`flush` runs before anything else touches the allocation's values: ``Tensor.np()`` and
  ``emit.write`` call it, and so does a reinterpret cast. The flushing thread takes the
  products the worker has not started, last first, computes them itself, waits for the worker's
  last one (at most the one it is computing) and adds its own in order: the two threads share
  the products and none is computed twice (an earlier design recomputed, in the flushing
  thread, whatever the worker had not finished, and the two ran in lockstep on the same
  product).

The worker is opt-in and used while a CPU is free (:func:`wanted`). Destinations that can alias
other storage (direct allocations, reinterpret casts) and fp32 operands (views of SBUF, not
copies) are not deferred.

Why not one GEMM over the concatenated K tiles of a group: BLAS would accumulate the long dot
product in its own blocking instead of rounding to fp32 after each instruction's product and at
each PSUM add, so the last bits would differ from the per-instruction semantics.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator

import numpy as np

from nkigen.sim import gemm

MAX_QUEUED = 64             # products queued on one allocation before they are applied


class Product:
    """One instruction's ``view (+)= s.T @ m``, queued on its PSUM allocation (``q``).

    ``owner``: 0 queued, 1 the worker's (it applies the product straight into ``view``, in
    instruction order), 2 the flushing thread's (it computes ``r`` and adds it itself)."""

    __slots__ = ("view", "s", "m", "acc", "q", "owner", "done", "applied", "r")

    def __init__(self, view: np.ndarray, s: np.ndarray, m: np.ndarray, acc: bool,
                 q: Queue) -> None:
        self.view = view
        self.s = s
        self.m = m
        self.acc = acc
        self.q = q
        self.owner = 0
        self.done = False           # the worker is through with it ...
        self.applied = False        # ... and applied it (not after a failure: ``q.broken``)
        self.r: np.ndarray | None = None


class _Worker:
    """One daemon thread applying queued products in order (remade after a fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.finished = threading.Condition(self.lock)
        self.todo: deque[Product] = deque()
        self.sleeping = False
        self.busy = False
        threading.Thread(target=self._loop, name="nkigen-tensore", daemon=True).start()

    def submit(self, p: Product) -> None:
        with self.lock:
            self.todo.append(p)
            if self.sleeping:
                self.wake.notify()

    def settle(self, ops: list[Product]) -> None:
        """Apply one allocation's queued products (in instruction order) before its values are
        read. The worker applies them from the front; this thread takes the ones it has not
        started from the back, computes them, waits for the worker's last one (the one it may
        be computing: it never waits for a product nobody started), then adds its own in
        order. No product is computed twice; the store/add operations keep their order."""
        lock = self.lock
        mine = 0
        for p in reversed(ops):
            with lock:
                if p.owner:         # the worker's: so is every earlier product
                    break
                p.owner = 2
            p.r = _product(p.s, p.m)
            mine += 1
        first = len(ops) - mine
        if first:
            last = ops[first - 1]
            if not last.done:
                with lock:
                    while not last.done:
                        self.finished.wait()
            if last.q.broken:       # a product raised in the worker: the rest here
                for p in ops[:first]:
                    if not p.applied:
                        _apply(p.view, p.s, p.m, p.acc)
        for p in ops[first:]:
            r = p.r
            if p.acc:
                p.view += r
            else:
                p.view[...] = r

    def drop(self) -> None:
        """Forget queued products and wait for the one being applied."""
        with self.lock:
            for p in self.todo:
                p.owner = 2
            self.todo.clear()
            while self.busy:
                self.finished.wait()

    def _loop(self) -> None:
        np.seterr(all="ignore")         # floating-point error state is per thread
        todo = self.todo
        lock = self.lock
        while True:
            with lock:
                while True:
                    while not todo:
                        self.sleeping = True
                        self.wake.wait()
                        self.sleeping = False
                    p = todo.popleft()
                    if not p.owner:     # (taken by a flushing thread: skipped)
                        break
                p.owner = 1
                self.busy = True
            if not p.q.broken:
                try:
                    _apply(p.view, p.s, p.m, p.acc)
                    p.applied = True
                except BaseException:   # the flushing thread applies it (and raises) itself
                    p.q.broken = True
            with lock:
                p.done = True
                self.busy = False
                self.finished.notify_all()


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
    """The store/add operations queued on one PSUM allocation, in instruction order: products
    for the worker, or one unstarted :class:`Later` (``later``)."""

    __slots__ = ("ops", "later", "broken")

    def __init__(self) -> None:
        self.ops: list[Product] = []
        self.later: tuple[np.ndarray, Later] | None = None
        self.broken = False         # a product raised in the worker: the flush applies the rest


def defer(alloc, view: np.ndarray, s: np.ndarray, m: np.ndarray, acc: bool) -> None:
    """Queue ``view (+)= s.T @ m`` on ``alloc`` (``view`` is a NumPy view of its storage, already
    holding its values; ``s`` and ``m`` are private fp32 arrays)."""
    q = alloc.pending
    if q is None:
        q = alloc.pending = Queue()
    elif len(q.ops) >= MAX_QUEUED:
        flush(alloc)
        q = alloc.pending = Queue()
    p = Product(view, s, m, acc, q)
    q.ops.append(p)
    _worker().submit(p)


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
    q.later = (view, Later(s, m))


def _product(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``s.T @ m`` as the reference path computes it (a flushing thread's share)."""
    return np.matmul(s.T, m)


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
    if q is None or q.later is None:
        return False
    p = q.later[1]
    if d.dtype != np.float32 or \
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
    if q.later is not None:
        view, p = q.later
        _apply(view, p.s, p.m, False)
        return
    _worker().settle(q.ops)


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
