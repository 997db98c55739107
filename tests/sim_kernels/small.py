"""A small matmul kernel (sequential k loop, implicit accumulation) shared by simulator tests."""

import nkigen.sim.nki.isa as nisa
import nkigen.sim.nki.language as nl


def matmul_kernel(lhsT, rhs):
    out = nl.ndarray((lhsT.shape[1], rhs.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum)
    for k in nl.sequential_range(lhsT.shape[0] // 128):
        a = nl.load(lhsT[k * 128:(k + 1) * 128, :])
        b = nl.load(rhs[k * 128:(k + 1) * 128, :])
        nisa.nc_matmul(acc, a, b)
    nl.store(out, value=nl.copy(acc))
    return out
