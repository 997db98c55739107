"""Loop iterators and SPMD ids: ``affine_range`` / ``sequential_range`` / ``static_range`` with
Python ``range`` semantics, recording the enclosing loop nest on every traced instruction, and
``program_id`` / ``num_programs`` / ``program_ndim``.

Stage: simulate (core).
"""

from __future__ import annotations

from collections.abc import Iterator

from nkigen.sim import deps, state
from nkigen.sim.errors import SimError

AFFINE, SEQUENTIAL, STATIC = "affine", "sequential", "static"


def _loop(kind: str, start, stop, step) -> Iterator[int]:
    if stop is None:
        start, stop = 0, start
    r = range(int(start), int(stop), int(step))
    run = state.current()
    outer = run.loops
    trip = len(r)
    st = None
    if kind == AFFINE and run.numerics and trip > 1:
        run.epoch += 1
        st = deps.LoopState(run.next_id, run.epoch)
        run.affine.append(st)
    try:
        for n, i in enumerate(r):
            run.loops = outer + ((kind, i, trip),)
            if n and st is not None:
                run.epoch += 1
                st.next_iteration(run.epoch)
            yield i
    finally:
        run.loops = outer
        if st is not None:
            run.affine.remove(st)


def affine_range(start, stop=None, step=1, **_kw) -> Iterator[int]:
    return _loop(AFFINE, start, stop, step)


def sequential_range(start, stop=None, step=1, **_kw) -> Iterator[int]:
    return _loop(SEQUENTIAL, start, stop, step)


def static_range(start, stop=None, step=1, **_kw) -> Iterator[int]:
    return _loop(STATIC, start, stop, step)


def program_id(axis: int = 0) -> int:
    run = state.current()
    if not run.grid and axis == 0:
        return 0
    if not 0 <= axis < max(len(run.grid), 1):
        raise SimError("program_id: axis out of range", f"axis {axis}, grid {list(run.grid)}")
    return run.program[axis]


def num_programs(axes=None) -> int:
    run = state.current()
    grid = run.grid or (1,)
    if axes is None:
        n = 1
        for g in grid:
            n *= g
        return n
    if isinstance(axes, int):
        if not 0 <= axes < len(grid):
            raise SimError("num_programs: axis out of range", f"axis {axes}, grid {list(grid)}")
        return grid[axes]
    n = 1
    for a in axes:
        n *= grid[a]
    return n


def program_ndim() -> int:
    return len(state.current().grid)
