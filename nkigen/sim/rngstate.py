"""The simulator's random-number generator, shared by both API layers.

Stage: simulate (core). ``nl.rand`` / ``nl.dropout`` / ``nisa.dropout`` draw from one NumPy
generator per run, seeded by ``nl.random_seed`` (0 when the kernel sets no seed), so a kernel's
random numbers are reproducible run to run. The hardware's generator is not published: the
values are uniform on [0, 1) as documented, not the device's sequence.
"""

from __future__ import annotations

import weakref

import numpy as np

from nkigen.sim import state

_RNG: list = []            # [(run weakref, numpy Generator)]


def seed(value: int) -> None:
    """Seed the generator for the rest of the running kernel."""
    _RNG[:] = [(weakref.ref(state.current()), np.random.default_rng(int(value)))]


def generator() -> np.random.Generator:
    """The running kernel's generator (seeded with 0 on first use)."""
    run = state.current()
    if not _RNG or _RNG[0][0]() is not run:
        seed(0)
    return _RNG[0][1]
