"""Loop iterators and SPMD ids: ``affine_range`` / ``sequential_range`` / ``static_range`` with
Python ``range`` semantics, recording the enclosing loop nest on every traced instruction, and
``program_id`` / ``num_programs`` / ``program_ndim``.

Stage: simulate (core).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from nkigen.sim import deps, state
from nkigen.sim.errors import SimError, as_int

AFFINE, SEQUENTIAL, STATIC = "affine", "sequential", "static"


_LOOP_IDS = itertools.count(1)


def _loop(kind: str, start, stop, step, checked: bool = True) -> Iterator[int]:
    """One ``nl.*_range`` loop. ``checked``: iterations are parallel, so the dependency check
    of ``deps`` runs (classic affine_range, S25 nki.language.affine_range); the current API's
    affine_range is an alias of ``range`` (SH nki/api/nki/language affine_range, nki 0.3:
    fully unrolled), so it passes ``checked=False``."""
    if stop is None:
        start, stop = 0, start
    api = f"nl.{kind}_range"
    r = range(as_int(start, f"{api}: start"), as_int(stop, f"{api}: stop"),
              as_int(step, f"{api}: step"))
    run = state.current()
    outer = run.loops
    scope = run.scope
    trip = len(r)
    st = None
    if kind == AFFINE and checked and run.numerics and trip > 1:
        run.epoch += 1
        st = deps.LoopState(run.next_id, run.epoch)
        run.affine.append(st)
    run.scope = scope + (next(_LOOP_IDS),)
    try:
        for n, i in enumerate(r):
            run.loops = outer + ((kind, i, trip),)
            if n and st is not None:
                run.epoch += 1
                st.next_iteration(run.epoch)
            yield i
    finally:
        run.loops = outer
        run.scope = scope
        if st is not None:
            run.affine.remove(st)


def affine_range(start, stop=None, step=1, **_kw) -> Iterator[int]:
    return _loop(AFFINE, start, stop, step)


def unrolled_affine_range(start, stop=None, step=1) -> Iterator[int]:
    """The current API's ``nl.affine_range``: Python ``range`` semantics, unrolled."""
    return _loop(AFFINE, start, stop, step, checked=False)


def sequential_range(start, stop=None, step=1, **_kw) -> Iterator[int]:
    return _loop(SEQUENTIAL, start, stop, step)


def static_range(start, stop=None, step=1, **_kw) -> Iterator[int]:
    return _loop(STATIC, start, stop, step)


def _axis(v, api: str) -> int:
    """A grid axis: a trace-time integer (a string, a float or an array is a located error,
    not a Python exception inside the simulator; mutants17 crash probes)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise SimError(f"{api}: a grid axis must be an integer", repr(v)[:40],
                       "pass 0, 1, ... (the SPMD grid dimension)")
    return int(v)


def program_id(axis: int = 0) -> int:
    run = state.current()
    axis = _axis(axis, "program_id")
    if not run.grid and axis == 0:
        return 0
    if not 0 <= axis < max(len(run.grid), 1):
        raise SimError("program_id: axis out of range", f"axis {axis}, grid {list(run.grid)}")
    return run.program[axis]


def num_programs(axes=None) -> int:
    """Classic ``nl.num_programs(axes=None)``: ``None`` is the whole grid (S25
    nki.language.num_programs); the current API defaults to ``axes=0`` (see
    :func:`num_programs_current`)."""
    run = state.current()
    grid = run.grid or (1,)
    if axes is None:
        n = 1
        for g in grid:
            n *= g
        return n
    if not isinstance(axes, (list, tuple)):
        axes = _axis(axes, "num_programs")
    if isinstance(axes, int):
        if not 0 <= axes < len(grid):
            raise SimError("num_programs: axis out of range", f"axis {axes}, grid {list(grid)}")
        return grid[axes]
    n = 1
    for a in axes:
        a = _axis(a, "num_programs")
        if not 0 <= a < len(grid):
            raise SimError("num_programs: axis out of range", f"axis {a}, grid {list(grid)}")
        n *= grid[a]
    return n


def num_programs_current(axes=0) -> int:
    """``nl.num_programs(axes=0)`` of the current API: the default changed from None to 0
    (SH nki/migration "Parameter default value updates", nki 0.3)."""
    return num_programs(axes)


def program_ndim() -> int:
    return len(state.current().grid)
