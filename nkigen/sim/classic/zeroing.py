"""Zeroed PSUM accumulators: ``acc = nl.zeros(..., buffer=nl.psum)`` then ``acc += matmul``.

Stage: simulate (classic API layer). Modelled compiler behaviour (an assumption, stated): the
memset of a zeroed PSUM tile is not issued; the first matmul into each still-zero region starts
its accumulation group (TensorE reset flag) and later ones accumulate, exactly the stream the
current API's implicit reset gives. Evidence: the published classic matmul tutorial kernels
zero their PSUM tiles this way (nki-reference.md 5.1/5.2); with one VectorE memset per group the
cost model puts the fully optimized kernel at 1.5x its published latency, without it at 0.86x
(benchmarks/bench_classic_calibration.py, column "eager"; :func:`eager` turns the elision off).

The elision is undone whenever it would be observable: if any other instruction reads an
element of the tile that no matmul has written yet, the memset record is put back into the trace
where ``nl.zeros`` was called and the matmuls made resetting become accumulating again, which
is exactly the eager stream. Numerics are unaffected either way (the tile holds zeros).
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from nkigen.sim import state
from nkigen.sim.tensor import Alloc, Tensor
from nkigen.sim.trace import Instr, Region


@dataclass
class Zeroed:
    """One PSUM allocation whose zeroing memset has not been issued (yet)."""

    run: weakref.ref
    memset: Instr                   # the record to put back if the elision is observed
    index: int                      # its position in run.instrs
    written: np.ndarray             # per element: written by an instruction since nl.zeros
    resets: list[tuple[Instr, Region]] = field(default_factory=list)


_ZEROED: weakref.WeakKeyDictionary[Alloc, Zeroed] = weakref.WeakKeyDictionary()
_ELIDE = [True]


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Within the block, zeroed PSUM tiles get their memset issued (no elision)."""
    _ELIDE.append(False)
    try:
        yield
    finally:
        _ELIDE.pop()


def eliding() -> bool:
    return _ELIDE[-1]


def defer(t: Tensor) -> None:
    """``t`` was just zeroed by one memset (the last instruction): take that record back."""
    run = state.current()
    ins = run.instrs.pop()
    _ZEROED[t.alloc] = Zeroed(weakref.ref(run), ins, len(run.instrs),
                              np.zeros(math.prod(t.alloc.shape), np.bool_))


def _entry(t: Tensor) -> Zeroed | None:
    if not _ZEROED:
        return None
    z = _ZEROED.get(t.alloc)
    if z is None or z.run() is not state.active():
        return None
    return z


def _view(z: Zeroed, t: Tensor) -> np.ndarray:
    return np.ndarray(t.shape, np.bool_, buffer=z.written, offset=t.offset, strides=t.strides)


def touch(t, write: bool = False) -> None:
    """An instruction other than an accumulating matmul is about to access ``t``."""
    if not isinstance(t, Tensor):
        return
    z = _entry(t)
    if z is None:
        return
    v = _view(z, t)
    if write:
        v[...] = True
    elif not v.all():
        _materialize(t.alloc, z)


def matmul_accumulates(dst: Tensor) -> bool | None:
    """For ``dst += matmul``: False when ``dst`` is still all zero (the matmul resets), True
    when it holds earlier results, None when ``dst`` is no deferred zero tile."""
    z = _entry(dst)
    if z is None:
        return None
    v = _view(z, dst)
    if not v.any():
        return False
    if not v.all():
        _materialize(dst.alloc, z)
    return True


def started(dst: Tensor, ins: Instr) -> None:
    """The resetting matmul ``ins`` wrote ``dst``."""
    z = _entry(dst)
    if z is not None:
        _view(z, dst)[...] = True
        z.resets.append((ins, dst.region()))


def _materialize(alloc: Alloc, z: Zeroed) -> None:
    run = state.current()
    run.instrs.insert(z.index, z.memset)
    for other in _ZEROED.values():
        if other is not z and other.run() is run and other.index >= z.index:
            other.index += 1
    for ins, region in z.resets:
        ins.accumulate = True
        ins.reads = ins.reads + (region,)
        ins.in_psum += 1
    del _ZEROED[alloc]
