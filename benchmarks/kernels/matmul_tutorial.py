"""Benchmark kernels: four matmuls with the loop structure of the public NKI matmul tutorial.

Stage: benchmark inputs (current ``nki`` API; run them under ``nkigen.sim.installed()``).
Written for nkigen from the tutorial's *description* (nki-reference.md 5.1), not from its code.
All compute ``out[M, N] = lhsT[K, M].T @ rhs[K, N]`` in bf16 with fp32 PSUM accumulation:

1. :func:`matmul_tiled` -- m, n, k loops; both operand tiles reloaded from HBM in the k loop.
2. :func:`matmul_hoisted` -- per m, all K tiles of lhsT loaded once; per n, all K tiles of rhs.
3. :func:`matmul_block_free` -- M and N blocked by 2 tiles; each block's loads reused by its tiles.
4. :func:`matmul_fully_blocked` -- blocks of 16 M tiles, 2 N tiles, 8 K tiles (fewer when the
   problem is smaller); a sequential K-block loop; partial sums of each block accumulated into an
   SBUF result buffer, stored per M tile.

Tiles that hold several K tiles at once fold them into a free dimension (the current API has no
block dimensions). ``del`` at the end of a loop body releases a large tile before the next
iteration allocates its replacement (the simulator charges SBUF until the last reference dies).
"""

from __future__ import annotations

import nki
import nki.isa as nisa
import nki.language as nl

TILE_K = 128   # contraction tile = partitions (nl.tile_size.pmax)
TILE_M = 128   # stationary free size (nl.tile_size.gemm_stationary_fmax)
TILE_N = 512   # moving free size (nl.tile_size.gemm_moving_fmax)


def _evict(out, psum_tile, m0: int, n0: int) -> None:
    """PSUM -> SBUF (downcast to the output dtype) -> HBM."""
    res = nl.ndarray((TILE_M, TILE_N), dtype=out.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(res, psum_tile)
    nisa.dma_copy(dst=out[m0:m0 + TILE_M, n0:n0 + TILE_N], src=res)


@nki.jit
def matmul_tiled(lhsT, rhs):
    K, M = lhsT.shape
    _, N = rhs.shape
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            acc = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TILE_K):
                a = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                b = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=a, src=lhsT[k * TILE_K:(k + 1) * TILE_K,
                                              m * TILE_M:(m + 1) * TILE_M])
                nisa.dma_copy(dst=b, src=rhs[k * TILE_K:(k + 1) * TILE_K,
                                             n * TILE_N:(n + 1) * TILE_N])
                nisa.nc_matmul(acc, a, b)
            _evict(out, acc, m * TILE_M, n * TILE_N)
    return out


@nki.jit
def matmul_hoisted(lhsT, rhs):
    K, M = lhsT.shape
    _, N = rhs.shape
    kt = K // TILE_K
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // TILE_M):
        a = nl.ndarray((TILE_K, kt, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
        for k in nl.affine_range(kt):
            nisa.dma_copy(dst=a[:, k, :], src=lhsT[k * TILE_K:(k + 1) * TILE_K,
                                                   m * TILE_M:(m + 1) * TILE_M])
        for n in nl.affine_range(N // TILE_N):
            b = nl.ndarray((TILE_K, kt, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
            for k in nl.affine_range(kt):
                nisa.dma_copy(dst=b[:, k, :], src=rhs[k * TILE_K:(k + 1) * TILE_K,
                                                      n * TILE_N:(n + 1) * TILE_N])
            acc = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
            for k in nl.affine_range(kt):
                nisa.nc_matmul(acc, a[:, k, :], b[:, k, :])
            _evict(out, acc, m * TILE_M, n * TILE_N)
            del b
        del a
    return out


@nki.jit
def matmul_block_free(lhsT, rhs, tiles_m: int = 2, tiles_n: int = 2):
    K, M = lhsT.shape
    _, N = rhs.shape
    kt = K // TILE_K
    block_m, block_n = tiles_m * TILE_M, tiles_n * TILE_N
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for mb in nl.affine_range(M // block_m):
        a = nl.ndarray((TILE_K, tiles_m, kt, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
        for i in nl.affine_range(tiles_m):
            m0 = mb * block_m + i * TILE_M
            for k in nl.affine_range(kt):
                nisa.dma_copy(dst=a[:, i, k, :],
                              src=lhsT[k * TILE_K:(k + 1) * TILE_K, m0:m0 + TILE_M])
        for nb in nl.affine_range(N // block_n):
            b = nl.ndarray((TILE_K, tiles_n, kt, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
            for j in nl.affine_range(tiles_n):
                n0 = nb * block_n + j * TILE_N
                for k in nl.affine_range(kt):
                    nisa.dma_copy(dst=b[:, j, k, :],
                                  src=rhs[k * TILE_K:(k + 1) * TILE_K, n0:n0 + TILE_N])
            for i in nl.affine_range(tiles_m):
                for j in nl.affine_range(tiles_n):
                    acc = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
                    for k in nl.affine_range(kt):
                        nisa.nc_matmul(acc, a[:, i, k, :], b[:, j, k, :])
                    _evict(out, acc, mb * block_m + i * TILE_M, nb * block_n + j * TILE_N)
            del b
        del a
    return out


@nki.jit
def matmul_fully_blocked(lhsT, rhs, tiles_m: int = 16, tiles_n: int = 2, tiles_k: int = 8):
    K, M = lhsT.shape
    _, N = rhs.shape
    # blocks never larger than the problem (small test sizes); sizes must divide into blocks
    tiles_m, tiles_n = min(tiles_m, M // TILE_M), min(tiles_n, N // TILE_N)
    tiles_k = min(tiles_k, K // TILE_K)
    block_m, block_n, block_k = tiles_m * TILE_M, tiles_n * TILE_N, tiles_k * TILE_K
    assert M % block_m == 0 and N % block_n == 0 and K % block_k == 0, (M, N, K)
    n_mt = M // TILE_M
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for nb in nl.affine_range(N // block_n):
        # one [TILE_M, block_n] row of results per M tile, accumulated over K blocks in SBUF
        res = nl.ndarray((TILE_M, n_mt, block_n), dtype=lhsT.dtype, buffer=nl.sbuf)
        nisa.memset(res, 0.0)
        for kb in nl.sequential_range(K // block_k):
            b = nl.ndarray((TILE_K, tiles_k, block_n), dtype=rhs.dtype, buffer=nl.sbuf)
            for bk in nl.affine_range(tiles_k):
                k0 = kb * block_k + bk * TILE_K
                nisa.dma_copy(dst=b[:, bk, :],
                              src=rhs[k0:k0 + TILE_K, nb * block_n:(nb + 1) * block_n])
            for mb in nl.affine_range(M // block_m):
                a = nl.ndarray((TILE_K, tiles_k, block_m), dtype=lhsT.dtype, buffer=nl.sbuf)
                for bk in nl.affine_range(tiles_k):
                    k0 = kb * block_k + bk * TILE_K
                    nisa.dma_copy(dst=a[:, bk, :],
                                  src=lhsT[k0:k0 + TILE_K, mb * block_m:(mb + 1) * block_m])
                for j in nl.affine_range(tiles_n):
                    for i in nl.affine_range(tiles_m):
                        acc = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
                        for bk in nl.affine_range(tiles_k):
                            nisa.nc_matmul(acc, a[:, bk, i * TILE_M:(i + 1) * TILE_M],
                                           b[:, bk, j * TILE_N:(j + 1) * TILE_N])
                        dst = res[:, mb * tiles_m + i, j * TILE_N:(j + 1) * TILE_N]
                        nisa.tensor_tensor(dst, dst, acc, op=nl.add)
                del a
            del b
        for mt in nl.affine_range(n_mt):
            nisa.dma_copy(dst=out[mt * TILE_M:(mt + 1) * TILE_M, nb * block_n:(nb + 1) * block_n],
                          src=res[:, mt, :])
        del res
    return out


KERNELS = {
    "tiled": matmul_tiled,
    "hoisted": matmul_hoisted,
    "block_free": matmul_block_free,
    "fully_blocked": matmul_fully_blocked,
}
