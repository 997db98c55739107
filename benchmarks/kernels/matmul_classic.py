"""Benchmark kernels: the tiled matmul in the classic ``neuronxcc.nki`` API, tutorial style.

Stage: benchmark inputs (classic API; run them under ``nkigen.sim.installed()``). Written for
nkigen from the SDK 2.25 matmul tutorial's *description* of its tiled version (S25
general/nki/tutorials/matmul.rst; nki-reference.md 5.1), not from its code. Both compute
``out[M, N] = lhsT[K, M].T @ rhs[K, N]`` with m, n, k loops, operand tiles loaded from HBM in
the k loop, a zeroed fp32 PSUM tile per output tile accumulated with ``+=``, and one copy to the
output dtype before the store:

1. :func:`matmul_nl` -- ``acc += nl.matmul(lhsT_tile, rhs_tile, transpose_x=True)`` (the
   tutorial's form);
2. :func:`matmul_isa` -- ``acc += nisa.nc_matmul(lhsT_tile, rhs_tile)``.
"""

from __future__ import annotations

import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl
from neuronxcc import nki

TILE_K = 128   # contraction tile = partitions (nl.tile_size.pmax)
TILE_M = 128   # stationary free size (nl.tile_size.gemm_stationary_fmax)
TILE_N = 512   # moving free size (nl.tile_size.gemm_moving_fmax)


def _tiled(lhsT, rhs, out, product) -> None:
    """The tutorial's loops into ``out``; ``product(a, b)`` is one TensorE matmul of two loaded
    tiles."""
    K, M = lhsT.shape
    _, N = rhs.shape
    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            acc = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TILE_K):
                a = nl.load(lhsT[k * TILE_K:(k + 1) * TILE_K, m * TILE_M:(m + 1) * TILE_M])
                b = nl.load(rhs[k * TILE_K:(k + 1) * TILE_K, n * TILE_N:(n + 1) * TILE_N])
                acc += product(a, b)
            res = nl.copy(acc, dtype=out.dtype)
            nl.store(out[m * TILE_M:(m + 1) * TILE_M, n * TILE_N:(n + 1) * TILE_N], value=res)


@nki.jit
def matmul_nl(lhsT, rhs):
    out = nl.ndarray((lhsT.shape[1], rhs.shape[1]), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    _tiled(lhsT, rhs, out, lambda a, b: nl.matmul(a, b, transpose_x=True))
    return out


@nki.jit
def matmul_isa(lhsT, rhs):
    out = nl.ndarray((lhsT.shape[1], rhs.shape[1]), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    _tiled(lhsT, rhs, out, nisa.nc_matmul)
    return out


KERNELS = {"nl": matmul_nl, "isa": matmul_isa}
