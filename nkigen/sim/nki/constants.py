"""``nki.isa.constants``: the ISA enums under the module path some kernels import them from.

Stage: simulate (API layer).
"""

from nkigen.sim.nki.isa import (  # noqa: F401 - re-exported names
    dge_mode,
    dma_engine,
    engine,
    matmul_perf_mode,
    nc_version,
    oob_mode,
    reduce_cmd,
)
