"""``nki`` (current standalone API) backed by the nkigen simulator: ``nki.jit``,
``nki.simulate``, and the ``language`` / ``isa`` / ``typing`` submodules.

Stage: simulate (API layer). Made importable as ``nki`` by ``nkigen.sim.installed()``.
"""

from __future__ import annotations

import numpy as np

from nkigen.sim.errors import UnsupportedError
from nkigen.sim.nki import collectives, isa, language, typing, views
from nkigen.sim.runner import Kernel, jit, simulate
from nkigen.sim.tensor import Tensor

dtype = np.dtype          # used in kernel annotations
tensor = Tensor

__all__ = ["Kernel", "collectives", "dtype", "isa", "jit", "language", "simulate", "tensor",
           "typing", "views"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"nki.{name}")
