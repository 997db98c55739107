"""nkigen.sim: a CPU simulator of NKI kernels (documented rules of both APIs), with a trace.

Stage: simulate. Public interface::

    simulate(kernel, target="trn2")(*arrays) -> outputs
    run(kernel, args, target="trn2", numerics=True) -> Result(.outputs, .report, .instrs)
    placeholder(shape, dtype)     # cost-only inputs
    installed()                   # `import nki` (and the classic `neuronxcc.nki`) resolve to
                                  # the simulator inside the block
    load(path, name)              # load a kernel from a .py file under installed()

Layout: core = tensor (views over flat NumPy storage), state (run, SBUF/PSUM accounting), emit
(operand checks, fp32 reads, rounded writes, trace records), isa_move / isa_compute / isa_extra
(instructions, dst-first), lang (nl.* tile functions), loops, deps (affine/SPMD dependency
check), ops (op registry), dt (dtypes); API layers over that one core = nkigen.sim.nki (current
``nki`` API) and nkigen.sim.classic (``neuronxcc.nki``: arange/mgrid indexing, masks, par_dim,
tile-returning ISA calls, ``+=`` PSUM accumulation).

Rules (each violation a located SimError naming the rule and the fix; the full list with
sources is the conformance table, ``python -m nkigen.sim.conformance``): tile-size constraints,
start-partition rule, bounds (never clipped), no partition-dim striding, engine/memory legality
and operand limits, SBUF/PSUM capacity; classic affine_range iterations independent
(RAW/WAW/WAR), current affine_range = range; no SPMD races; kernel outputs in nl.shared_hbm (the
classic API also takes nl.hbm); classic immutable parameters, shared_hbm at top level, tensor
scope in loops, direct allocation (ncc.sbuf / ncc.psum, aliasing as on hardware); NKI 0.3
argument rules. New tensors are NaN-filled (ints: an extreme sentinel), storage rounds through
ml_dtypes, engine math is fp32, PSUM accumulates in fp32.

SPMD programs run one after the other; a core_barrier / sendrecv between them reruns the grid
with the programs interleaved at those points (nkigen.sim.spmd).

Not modelled: dependency checks in cost-only runs and on directly allocated or reinterpreted
tensors, tensor scope across if blocks, mixing automatic and direct allocation, capacity of
direct allocations mixed with automatic ones, random numbers in the current API, collectives
across ranks (nki.collectives), registers in cost-only runs, NeuronCore-v4 instructions. Each
unsupported API raises an error naming it (real APIs are importable and raise when called).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nkigen.sim.errors import SimError, UnsupportedError

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """The runner (NumPy, ml_dtypes) is imported on first use, so light submodules such as
    ``nkigen.sim.calibration`` stay cheap to import (CLI start-up)."""
    if name in __all__:
        from nkigen.sim import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'nkigen.sim' has no attribute {name!r}")
