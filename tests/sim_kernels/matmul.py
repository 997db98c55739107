"""Test kernels (current nki API): matmul variants and transposes, after the public tutorial
structure (tiled, hoisted loads, blocked free dims), written for the nkigen simulator."""

import nki
import nki.isa as nisa
import nki.language as nl


@nki.jit
def matmul_tiled(lhsT, rhs):
    """out[M, N] = lhsT.T @ rhs; PSUM accumulation over k is implicit (accumulate=None) across
    the affine_range k loop; the PSUM tile is allocated outside that loop."""
    K, M = lhsT.shape
    _, N = rhs.shape
    TM, TK, TN = (nl.tile_size.gemm_stationary_fmax, nl.tile_size.pmax,
                  nl.tile_size.gemm_moving_fmax)
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // TM):
        for n in nl.affine_range(N // TN):
            acc = nl.ndarray((TM, TN), dtype=nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TK):
                a = nl.ndarray((TK, TM), dtype=lhsT.dtype, buffer=nl.sbuf)
                b = nl.ndarray((TK, TN), dtype=rhs.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=a, src=lhsT[k * TK:(k + 1) * TK, m * TM:(m + 1) * TM])
                nisa.dma_copy(dst=b, src=rhs[k * TK:(k + 1) * TK, n * TN:(n + 1) * TN])
                nisa.nc_matmul(acc, a, b)
            res = nl.ndarray((TM, TN), dtype=out.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=res, src=acc)
            nisa.dma_copy(dst=out[m * TM:(m + 1) * TM, n * TN:(n + 1) * TN], src=res)
    return out


@nki.jit
def matmul_hoisted(lhsT, rhs):
    """Loads of all K tiles hoisted out of the n loop; explicit accumulate flags."""
    K, M = lhsT.shape
    _, N = rhs.shape
    TM, TK, TN = 128, 128, 512
    KT = K // TK
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // TM):
        a = nl.ndarray((TK, KT, TM), dtype=lhsT.dtype, buffer=nl.sbuf)
        for k in nl.affine_range(KT):
            nisa.dma_copy(dst=a[:, k, :], src=lhsT[k * TK:(k + 1) * TK, m * TM:(m + 1) * TM])
        for n in nl.affine_range(N // TN):
            b = nl.ndarray((TK, KT, TN), dtype=rhs.dtype, buffer=nl.sbuf)
            for k in nl.affine_range(KT):
                nisa.dma_copy(dst=b[:, k, :], src=rhs[k * TK:(k + 1) * TK, n * TN:(n + 1) * TN])
            acc = nl.ndarray((TM, TN), dtype=nl.float32, buffer=nl.psum)
            for k in nl.sequential_range(KT):
                nisa.nc_matmul(dst=acc, stationary=a[:, k, :], moving=b[:, k, :],
                               accumulate=(k != 0))
            nl.store(out[m * TM:(m + 1) * TM, n * TN:(n + 1) * TN],
                     value=nl.copy(acc, dtype=out.dtype))
    return out


@nki.jit
def matmul_blocked(lhsT, rhs, BM=2, BN=2):
    """Free dims blocked by BM x BN tiles; one PSUM tile per (m, n) tile of the block, results
    coalesced in an SBUF [128, BN*512] row before one store."""
    K, M = lhsT.shape
    _, N = rhs.shape
    TM, TK, TN = 128, 128, 512
    KT = K // TK
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for mb in nl.affine_range(M // (TM * BM)):
        a = nl.ndarray((TK, KT, BM * TM), dtype=lhsT.dtype, buffer=nl.sbuf)
        for k in nl.affine_range(KT):
            nisa.dma_copy(dst=a[:, k, :],
                          src=lhsT[k * TK:(k + 1) * TK, mb * BM * TM:(mb + 1) * BM * TM])
        for nb in nl.affine_range(N // (TN * BN)):
            b = nl.ndarray((TK, KT, BN * TN), dtype=rhs.dtype, buffer=nl.sbuf)
            for k in nl.affine_range(KT):
                nisa.dma_copy(dst=b[:, k, :],
                              src=rhs[k * TK:(k + 1) * TK, nb * BN * TN:(nb + 1) * BN * TN])
            for mi in nl.affine_range(BM):
                row = nl.ndarray((TM, BN * TN), dtype=out.dtype, buffer=nl.sbuf)
                for ni in nl.affine_range(BN):
                    acc = nl.ndarray((TM, TN), dtype=nl.float32, buffer=nl.psum)
                    for k in nl.affine_range(KT):
                        nisa.nc_matmul(acc, a[:, k, mi * TM:(mi + 1) * TM],
                                       b[:, k, ni * TN:(ni + 1) * TN])
                    nisa.tensor_copy(dst=row[:, ni * TN:(ni + 1) * TN], src=acc,
                                     engine=nisa.scalar_engine)
                r0 = (mb * BM + mi) * TM
                nisa.dma_copy(dst=out[r0:r0 + TM, nb * BN * TN:(nb + 1) * BN * TN], src=row)
    return out


@nki.jit
def matmul_nl(x, y):
    """nl.matmul(x, y) with x [M<=128, K<=128] untransposed (TensorE transpose inserted)."""
    out = nl.ndarray((x.shape[0], y.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    r = nl.matmul(nl.load(x), nl.load(y))
    nl.store(out, value=nl.copy(r))
    return out


@nki.jit
def transpose_pe(x):
    """[P, F] -> [F, P] (both <= 128) through nc_transpose on TensorE into PSUM."""
    p, f = x.shape
    out = nl.ndarray((f, p), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    tp = nl.ndarray((f, p), dtype=x.dtype, buffer=nl.psum)
    nisa.nc_transpose(dst=tp, data=t)
    s = nl.ndarray((f, p), dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=s, src=tp)
    nl.store(out, value=s)
    return out


@nki.jit
def transpose_dma(x):
    """[P, F] -> [F, P] with dma_transpose HBM -> SBUF."""
    p, f = x.shape
    out = nl.ndarray((f, p), dtype=x.dtype, buffer=nl.shared_hbm)
    s = nl.ndarray((f, p), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_transpose(dst=s, src=x)
    nl.store(out, value=s)
    return out
