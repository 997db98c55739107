"""``nki`` (current standalone API) backed by the nkigen simulator: ``nki.jit``,
``nki.simulate``, and the ``language`` / ``isa`` / ``typing`` submodules.

Stage: simulate (API layer). Made importable as ``nki`` by ``nkigen.sim.installed()``.
"""

from __future__ import annotations

from nkigen.sim.errors import UnsupportedError
from nkigen.sim.nki import isa, language, typing
from nkigen.sim.runner import Kernel, jit, simulate

__all__ = ["Kernel", "isa", "jit", "language", "simulate", "typing"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"nki.{name}")
