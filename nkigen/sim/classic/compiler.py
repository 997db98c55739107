"""``neuronxcc.nki.compiler`` (direct allocation, ``ncc.sbuf.alloc`` ...): not simulated.

Stage: simulate (classic API layer). Importable, so a kernel module loads; any use raises an
error naming the API (the simulator allocates automatically: use nl.ndarray buffers).
"""

from __future__ import annotations

from nkigen.sim.errors import UnsupportedError


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"neuronxcc.nki.compiler.{name} (direct allocation)",
                           "allocate with nl.ndarray(..., buffer=nl.sbuf / nl.psum)")
