"""nkigen.sim: a strict CPU simulator of NKI kernels, with an instruction trace for the cost model.

Stage: simulate. Public interface::

    simulate(kernel, target="trn2")(*arrays) -> outputs
    run(kernel, args, target="trn2", numerics=True) -> Result(.outputs, .report, .instrs)
    placeholder(shape, dtype)     # cost-only inputs
    installed()                   # `import nki` resolves to the simulator inside the block
    load(path, name)              # load a kernel from a .py file under installed()

Layout: core = tensor (views), state (run, memory accounting), emit (checks, trace), isa_move /
isa_compute (instructions), lang (nl.* tile functions), loops, ops (op registry); API layer =
nkigen.sim.nki (current ``nki`` API).
"""

from __future__ import annotations

from nkigen.sim.errors import SimError, UnsupportedError
from nkigen.sim.runner import (
    Kernel,
    Placeholder,
    Result,
    installed,
    jit,
    load,
    placeholder,
    run,
    simulate,
)

__all__ = ["Kernel", "Placeholder", "Result", "SimError", "UnsupportedError", "installed",
           "jit", "load", "placeholder", "run", "simulate"]
