"""``neuronxcc`` (the classic NKI API, SDK 2.21-2.26) backed by the nkigen simulator core.

Stage: simulate (classic API layer). ``nkigen.sim.installed()`` maps ``neuronxcc``,
``neuronxcc.nki``, ``neuronxcc.nki.language``, ``neuronxcc.nki.isa`` and ``neuronxcc.nki.typing``
to this package (see :func:`modules`). Layout: ``index`` (nl.arange / nl.mgrid expressions,
masks as boxes of lanes, traced-once loop indices), ``tile`` (classic indexing and operands over
the core tensor), ``fresh`` (results re-targeted into their destination, ``+=`` accumulation),
``zeroing`` (``nl.zeros`` PSUM accumulators), ``language`` / ``isa`` / ``typing`` (the API
surface), ``nki`` (``nki.jit``, ``simulate_kernel``, the device-only decorators, the
output-argument convention).

Same core, same trace: a classic kernel issues the core instructions the current-API layer
issues for the same work, so the cost model gives the same estimate for the same stream.
"""

from __future__ import annotations

import types

from nkigen.sim.classic import nki

__all__ = ["modules", "nki"]


def modules() -> dict[str, types.ModuleType]:
    """sys.modules entries that make ``import neuronxcc.nki...`` resolve to this layer."""
    import sys
    return {"neuronxcc": sys.modules[__name__], "neuronxcc.nki": nki,
            "neuronxcc.nki.language": nki.language, "neuronxcc.nki.isa": nki.isa,
            "neuronxcc.nki.typing": nki.typing, "neuronxcc.nki.compiler": nki.compiler}
