"""Interleaved SPMD programs: the LNC synchronisation points of the current API.

Stage: simulate (core). The programs of an SPMD grid normally run one after the other
(``runner``); that cannot honour ``nisa.core_barrier`` or ``nisa.sendrecv`` between them (SH
nki/api/nki/isa/__init__.py core_barrier / sendrecv, nki 0.3: two NeuronCores of an LNC=2
Logical NeuronCore wait for each other, sendrecv swaps tiles). When one of them is met on a
grid of several programs the run restarts (:class:`Restart`) in this mode: each program runs
in its own thread, but only one thread runs at a time, in program order, so the run stays
deterministic. A *phase* runs every unfinished program until it returns or reaches a
synchronisation point; then the waiting programs must all wait at the same kind of point (a
program that returned while another waits is a deadlock, an error), the exchange is made, and
the next phase starts. The per-program run state (program id, loop stack, SBUF/PSUM pools,
engine registers, shared-HBM counter) is swapped at every hand-over. SPMD race checking
(``deps``) restarts at each phase: accesses on either side of a barrier are ordered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nkigen.sim import deps, state
from nkigen.sim.errors import SimError
from nkigen.sim.trace import Mem

PER_PROGRAM = ("program", "loops", "scope", "shared_index", "act_regs", "vec_regs", "sbuf",
               "psum", "act_regs_set", "vec_regs_set")


class Restart(BaseException):       # noqa: N818 - a control-flow signal, not an error
    """Raised at a synchronisation point of a serially running grid: rerun interleaved."""


class _Abort(BaseException):        # noqa: N818 - unwinds a waiting program after a failure
    pass


class _Program:
    def __init__(self, k: int, prog: tuple[int, ...], run: state.Run):
        self.k = k
        self.status = "ready"                   # ready | waiting | done
        self.sync: tuple = ()
        self.inbox: Any = None
        self.ret: Any = None
        self.exc: BaseException | None = None
        self.go = threading.Event()
        self.affine_tail: list = []
        self.saved: dict[str, Any] = {"program": prog, "loops": (), "scope": (), "shared_index": 0,
                      "act_regs": None, "vec_regs": None, "act_regs_set": None,
                      "vec_regs_set": None,
                      "sbuf": state.Pool(Mem.SBUF, run.target.sbuf_bytes_per_partition),
                      "psum": state.Pool(Mem.PSUM, run.psum.capacity)}


class Interleaved:
    """The scheduler of one interleaved run (``run.interleave`` while it lasts)."""

    def __init__(self, run: state.Run, programs: Sequence[tuple[int, ...]],
                 race: deps.LoopState | None):
        self.run = run
        self.progs = [_Program(k, p, run) for k, p in enumerate(programs)]
        self.race = race
        self.yielded = threading.Event()
        self.current: _Program | None = None
        self.abort = False

    # ---- called by the kernel's thread ----------------------------------------------------
    def sync(self, kind: str, info: dict) -> Any:
        """Wait at a synchronisation point; returns what the exchange delivered."""
        p = self.current
        assert p is not None
        p.status, p.sync, p.inbox = "waiting", (kind, info), None
        self.yielded.set()
        p.go.wait()
        p.go.clear()
        if self.abort:
            raise _Abort
        return p.inbox

    def _body(self, p: _Program, fn: Callable, args: Sequence, kwargs: dict) -> None:
        p.go.wait()
        p.go.clear()
        try:
            if not self.abort:
                with np.errstate(all="ignore"):
                    p.ret = fn(*args, **kwargs)
        except _Abort:
            pass
        except BaseException as e:          # noqa: BLE001 - handed to the main thread
            p.exc = e
        finally:
            p.status = "done"
            self.yielded.set()

    # ---- the main thread --------------------------------------------------------------------
    def _resume(self, p: _Program, first: bool) -> None:
        r = self.run
        for name, v in p.saved.items():
            setattr(r, name, v)
        if r.affine:
            r.affine[1:] = p.affine_tail
        if self.race is not None and not first:
            r.epoch += 1
            self.race.next_iteration(r.epoch)
        self.current = p
        self.yielded.clear()
        p.go.set()
        self.yielded.wait()
        p.saved = {name: getattr(r, name) for name in PER_PROGRAM}
        p.affine_tail = list(r.affine[1:])

    def _stop(self, threads: list[threading.Thread]) -> None:
        self.abort = True
        for q in self.progs:
            if q.status != "done":
                q.go.set()
        for t in threads:
            t.join()

    def run_all(self, fn: Callable, args: Sequence, kwargs: dict) -> Any:
        r = self.run
        first_pools = (r.sbuf, r.psum)
        threads = [threading.Thread(target=self._body, args=(p, fn, args, kwargs),
                                    name=f"nkigen-program-{p.k}", daemon=True)
                   for p in self.progs]
        for t in threads:
            t.start()
        r.interleave = self
        try:
            while True:
                first = True
                for p in self.progs:
                    if p.status == "done":
                        continue
                    self._resume(p, first)
                    first = False
                    if p.exc is not None:
                        raise p.exc
                waiting = [p for p in self.progs if p.status == "waiting"]
                if not waiting:
                    break
                self._exchange(waiting)
                if self.race is not None:       # a barrier orders what is on either side
                    r.epoch += 1
                    self.race = deps.LoopState(self.race.first_id, r.epoch, spmd=True)
                    r.affine[0] = self.race
                for p in waiting:
                    p.status = "ready"
        finally:
            self._stop(threads)
            r.interleave = None
            pools = [p.saved["sbuf"] for p in self.progs if "sbuf" in p.saved]
            r.sbuf = max(pools, key=lambda q: q.peak) if pools else first_pools[0]
            r.psum = first_pools[1]
            r.program, r.loops, r.scope = self.progs[-1].saved["program"], (), ()
            if r.affine:
                del r.affine[1:]
        return self.progs[-1].ret

    def _exchange(self, waiting: list[_Program]) -> None:
        done = [p for p in self.progs if p.status == "done"]
        if done:
            p = waiting[0]
            raise SimError(f"SPMD deadlock: program {p.k} waits at {p.sync[0]} but program "
                           f"{done[0].k} returned without reaching it",
                           fix="every program of the grid must reach the same core_barrier / "
                           "sendrecv calls", loc=p.sync[1].get("loc"))
        kinds = {p.sync[0] for p in waiting}
        if len(kinds) > 1:
            raise SimError("SPMD programs wait at different synchronisation points",
                           ", ".join(f"program {p.k}: {p.sync[0]}" for p in waiting),
                           "call core_barrier / sendrecv in the same order in every program",
                           loc=waiting[0].sync[1].get("loc"))
        if kinds == {"sendrecv"}:
            by_k = {p.k: p for p in waiting}
            for p in waiting:
                info = p.sync[1]
                q = by_k.get(info["recv_from"])
                if q is None or q.sync[1]["send_to"] != p.k or \
                        q.sync[1]["pipe_id"] != info["pipe_id"]:
                    raise SimError("sendrecv: the programs' ranks do not pair up",
                                   f"program {p.k} receives from {info['recv_from']} (pipe "
                                   f"{info['pipe_id']})",
                                   "program a sends to b exactly when b receives from a, with "
                                   "the same pipe_id", loc=info.get("loc"))
                if q.sync[1]["shape"] != info["dst_shape"] or \
                        q.sync[1]["dtype"] != info["dst_dtype"]:
                    raise SimError("sendrecv: the received tile does not fit dst",
                                   f"{q.sync[1]['shape']} {q.sync[1]['dtype']} into "
                                   f"{info['dst_shape']} {info['dst_dtype']}",
                                   loc=info.get("loc"))
                p.inbox = q.sync[1]["values"]
