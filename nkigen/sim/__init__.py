"""nkigen.sim: a strict CPU simulator of NKI kernels, with an instruction trace for the cost model.

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

Rules enforced (each a located SimError): partition dim <= 128 and on-chip rank >= 2; every
index/slice/nl.ds/.ap in bounds (never clipped); no partition-dim striding; engine operands on
chip with <= 4 free access-pattern dims and <= 64K (SBUF) / 4K (PSUM) elements per partition;
nl.load from HBM only, DMA never touches PSUM; TensorE reads SBUF and writes fp32 PSUM
[stationary_F, moving_F] inside one 2 KiB bank, contraction <= 128, stationary F <= 128, moving
F <= 512, fp32 paired with fp32; GpSimd never touches PSUM; tensor_tensor/scan/stt inputs not
both in PSUM; ScalarE tensor_scalar op pairs on trn2; SBUF/PSUM live bytes per partition within
the target's capacity (PSUM in whole banks); no loop-carried dependency in affine_range and no
race between SPMD programs (numerics runs); kernel outputs are nl.shared_hbm tensors. New
tensors are NaN-filled (ints: an extreme sentinel), storage rounds through ml_dtypes, engine
math is fp32, PSUM accumulates in fp32. Direct allocation (``address=``) places tensors in
shared physical SBUF/PSUM bytes, so overlapping placements alias as on hardware.

Not modelled: the start-partition rule, write-after-read across affine iterations, dependency
checks in cost-only runs and on directly allocated or reinterpreted tensors, capacity of direct
allocations mixed with automatic ones, indirect (gather/scatter) DMA, random numbers,
collectives and registers, NeuronCore-v4 instructions. Each unsupported API raises an error
naming it (real APIs are importable and raise when called).
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
