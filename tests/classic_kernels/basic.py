"""Classic-API (neuronxcc.nki) test kernels: arange/mgrid indexing, masks, par_dim, PSUM
accumulation, the output-argument convention. Written for nkigen; each has a NumPy twin in
tests/test_classic_sim.py."""

import math

import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl
import neuronxcc.nki.typing as nt
import numpy as np
from neuronxcc import nki


@nki.jit
def exp_ragged(x):
    """exp over [R, C], R ragged: arange rows, masked load / compute / store."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    rows, cols = x.shape
    i_f = nl.arange(cols)[None, :]
    for t in nl.affine_range(math.ceil(rows / nl.tile_size.pmax)):
        i_p = t * nl.tile_size.pmax + nl.arange(nl.tile_size.pmax)[:, None]
        tile = nl.load(x[i_p, i_f], mask=(i_p < rows))
        y = nl.exp(tile, mask=(i_p < rows))
        nl.store(out[i_p, i_f], value=y, mask=(i_p < rows))
    return out


@nki.jit
def add_mgrid(a, b):
    """a + b for one [128, 512] tile, mgrid indices via .p/.x and via unpacking."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    g = nl.mgrid[0:128, 0:512]
    i_p, i_f = nl.mgrid[0:128, 0:512]
    x = nl.load(a[g.p, g.x])
    y = nl.load(b[i_p, i_f])
    nl.store(out[i_p, i_f], value=nl.add(x, y))
    return out


@nki.jit
def even_odd_cols(x):
    """Strided free-dim indices: out[:, :C/2] = x[:, 0::2] - x[:, 1::2] (2*i_f, 2*i_f+1)."""
    rows, cols = x.shape
    out = nl.ndarray((rows, cols // 2), dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(rows)[:, None]
    i_f = nl.arange(cols // 2)[None, :]
    t = nl.load(x[i_p, nl.arange(cols)[None, :]])
    d = nl.subtract(t[i_p, 2 * i_f], t[i_p, 2 * i_f + 1])
    nl.store(out[i_p, i_f], value=d)
    return out


@nki.jit
def ragged_cols_rows(x, scale):
    """Masks on both axes: x * scale with ragged rows and a column window [c0, c0 + w)."""
    rows, cols = x.shape
    out = nl.ndarray((rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
    c0, w = 3, cols - 5
    i_f = nl.arange(512)[None, :]
    for t in nl.affine_range((rows + 127) // 128):
        i_p = t * 128 + nl.arange(128)[:, None]
        m = (i_p < rows) & (i_f < w)
        tile = nl.load(x[i_p, c0 + i_f], mask=m)
        y = nisa.tensor_scalar(tile, np.multiply, scale, mask=m)
        nl.store(out[i_p, c0 + i_f], value=y, mask=m)
        z = nl.zeros((128, 512), dtype=x.dtype)
        nl.store(out[i_p, i_f], value=z, mask=(i_p < rows) & (i_f < c0))
        nl.store(out[i_p, c0 + w + i_f], value=z, mask=(i_p < rows) & (i_f < cols - c0 - w))
    return out


@nki.jit
def matmul_psum(lhsT, rhs):
    """Tiled matmul, tutorial style: PSUM zeros + acc += nisa.nc_matmul over an affine K loop."""
    K, M = lhsT.shape
    _, N = rhs.shape
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    TM, TK, TN = 128, 128, 512
    for m in nl.affine_range(M // TM):
        for n in nl.affine_range(N // TN):
            acc = nl.zeros((TM, TN), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TK):
                a = nl.load(lhsT[k * TK:(k + 1) * TK, m * TM:(m + 1) * TM])
                b = nl.load(rhs[k * TK:(k + 1) * TK, n * TN:(n + 1) * TN])
                acc += nisa.nc_matmul(a, b)
            nl.store(out[m * TM:(m + 1) * TM, n * TN:(n + 1) * TN],
                     value=nl.copy(acc, dtype=out.dtype))
    return out


@nki.jit
def matmul_nl(x, y):
    """x @ y with nl.matmul: transpose_x=True on a loaded x^T, += into a sliced PSUM tile."""
    M, K = x.shape
    _, N = y.shape
    out = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.zeros((M, N), nl.float32, buffer=nl.psum)
    for k in nl.affine_range(K // 128):
        xt = nl.load_transpose2d(x[0:M, k * 128:(k + 1) * 128])
        yt = nl.load(y[k * 128:(k + 1) * 128, 0:N])
        acc[...] += nl.matmul(xt, yt, transpose_x=True)
    plain = nl.matmul(nl.load(x[0:M, 0:128]), nl.load(y[0:128, 0:N]))
    res = nl.ndarray((M, N), dtype=nl.float32)
    res[...] = nl.copy(acc)
    res[...] = nl.subtract(res, plain)
    nl.store(out[0:M, 0:N], value=res)
    return out


@nki.jit
def sbuf_accumulate(lhsT, rhs):
    """Partial products added into an SBUF tile with t[...] += inside an affine loop, using a
    block-dimension buffer (K tiles, par_dim(128), 128) for the operands."""
    K, M = lhsT.shape
    _, N = rhs.shape
    kt = K // 128
    out = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    a = nl.ndarray((kt, nl.par_dim(128), M), dtype=lhsT.dtype)
    b = nl.ndarray((kt, nl.par_dim(128), N), dtype=rhs.dtype)
    for k in nl.affine_range(kt):
        a[k] = nl.load(lhsT[k * 128:(k + 1) * 128, :])
        b[k, :, :] = nl.load(rhs[k * 128:(k + 1) * 128, :])
    res = nl.zeros((M, N), dtype=nl.float32)
    for k in nl.affine_range(kt):
        res[...] += nisa.nc_matmul(a[k], b[k, :, :])
    nl.store(out, value=res)
    return out


@nki.jit
def softmax(x):
    """Row softmax with nl.* (max / exp / sum / divide), ragged rows masked."""
    rows, cols = x.shape
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i_f = nl.arange(cols)[None, :]
    for t in nl.affine_range((rows + 127) // 128):
        i_p = t * 128 + nl.arange(128)[:, None]
        m = i_p < rows
        v = nl.load(x[i_p, i_f], mask=m)
        mx = nl.max(v, axis=[1], mask=m)
        e = nl.exp(nl.subtract(v, mx, mask=m), mask=m)
        s = nl.sum(e, axis=1, mask=m)
        y = nl.divide(e, s, mask=m)
        nl.store(out[i_p, i_f], value=y, mask=m)
    return out


@nki.jit
def layernorm_v1(x, gamma, beta, eps: float = 1e-5):
    """LayerNorm, tutorial v1 style: nl.mean, nl.rsqrt, broadcast_to for gamma/beta, masks."""
    rows, cols = x.shape
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i_f = nl.arange(cols)[None, :]
    i_0 = nl.arange(1)[:, None]
    g = nl.load(gamma.reshape((1, cols))[i_0, i_f]).broadcast_to((128, cols))
    bt = nl.load(beta.reshape((1, cols))[i_0, i_f]).broadcast_to((128, cols))
    for t in nl.affine_range((rows + 127) // 128):
        i_p = t * 128 + nl.arange(128)[:, None]
        v = nl.load(x[i_p, i_f], mask=(i_p < rows))
        mu = nl.mean(v, axis=[1], mask=(i_p < rows))
        c = nl.subtract(v, mu, mask=(i_p < rows))
        var = nl.mean(nl.square(c, mask=(i_p < rows)), axis=[1], mask=(i_p < rows))
        r = nl.rsqrt(var + eps, mask=(i_p < rows))
        y = nl.multiply(c, r, mask=(i_p < rows))
        y = nl.add(nl.multiply(y, g, mask=(i_p < rows)), bt, mask=(i_p < rows))
        nl.store(out[i_p, i_f], value=y, mask=(i_p < rows))
    return out


@nki.jit
def maxpool2d(x, pool: int = 2):
    """2-D max pooling of [C, H, W] (C <= 128) with a 5-D arange index over a 3-D tile,
    reduced over axes [2, 4]."""
    C, H, W = x.shape
    out = nl.ndarray((C, H // pool, W // pool), dtype=x.dtype, buffer=nl.shared_hbm)
    i_0 = nl.arange(C)[:, None, None]
    i_1 = nl.arange(H)[None, :, None]
    i_2 = nl.arange(W)[None, None, :]
    t = nl.load(x[i_0, i_1, i_2])
    j0 = nl.arange(C)[:, None, None, None, None]
    j1 = nl.arange(H // pool)[None, :, None, None, None]
    j2 = nl.arange(pool)[None, None, :, None, None]
    j3 = nl.arange(W // pool)[None, None, None, :, None]
    j4 = nl.arange(pool)[None, None, None, None, :]
    win = t[j0, pool * j1 + j2, pool * j3 + j4]
    # free-dim permutation [P, Ho, p, Wo, p] -> [P, Ho, Wo, p, p] so the window is trailing
    k0 = nl.arange(C)[:, None, None, None, None]
    k1 = nl.arange(H // pool)[None, :, None, None, None]
    k2 = nl.arange(W // pool)[None, None, :, None, None]
    k3 = nl.arange(pool)[None, None, None, :, None]
    k4 = nl.arange(pool)[None, None, None, None, :]
    perm = nl.ndarray((C, H // pool, W // pool, pool, pool), dtype=x.dtype)
    perm[k0, k1, k2, k3, k4] = nl.copy(win)[k0, k1, k3, k2, k4]
    m = nl.max(perm, axis=[3, 4])
    o0 = nl.arange(C)[:, None, None]
    o1 = nl.arange(H // pool)[None, :, None]
    o2 = nl.arange(W // pool)[None, None, :]
    nl.store(out[o0, o1, o2], value=m)
    return out


@nki.jit
def iota_select(x):
    """Causal mask via nisa.affine_select and an iota column index."""
    rows, cols = x.shape
    out = nl.ndarray((rows, cols), dtype=nl.float32, buffer=nl.shared_hbm)
    idx = nl.ndarray((rows, cols), dtype=nl.float32, buffer=nl.shared_hbm)
    i_p = nl.arange(rows)[:, None]
    i_f = nl.arange(cols)[None, :]
    t = nl.load(x[i_p, i_f])
    sel = nisa.affine_select(i_p >= i_f, t, -9984.0, dtype=nl.float32)
    nl.store(out[i_p, i_f], value=sel)
    io = nisa.iota(i_p * cols + i_f, dtype=nl.int32)
    nl.store(idx[i_p, i_f], value=nl.copy(io, dtype=nl.float32))
    return out, idx


@nki.jit
def bn_layernorm(x):
    """Normalisation with nisa.bn_stats / bn_aggr (ISA calls returning tiles)."""
    rows, cols = x.shape
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nch = (cols + 511) // 512
    for t in nl.affine_range(rows // 128):
        v = nl.load(x[t * 128:(t + 1) * 128, :])
        st = nl.ndarray((128, 6 * nch), dtype=nl.float32)
        for c in nl.static_range(nch):          # unrolled: min() on the index is legal
            w = min(512, cols - c * 512)
            st[:, 6 * c:6 * c + 6] = nisa.bn_stats(v[:, c * 512:c * 512 + w], dtype=nl.float32)
        mv = nisa.bn_aggr(st, dtype=nl.float32)
        r = nisa.activation(op=nl.rsqrt, data=mv[:, 1:2], bias=None, scale=1.0)
        y = nisa.tensor_scalar(v, np.subtract, mv[:, 0:1], op1=np.multiply, operand1=r)
        nl.store(out[t * 128:(t + 1) * 128, :], value=y)
    return out


@nki.baremetal
def add_out_arg(a_input, b_input, c_output):
    """SDK 2.20 convention: the output is a parameter, nothing is returned."""
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(a_input.shape[1])[None, :]
    a = nl.load(a_input[i_p, i_f])
    b = nl.load(b_input[i_p, i_f])
    nl.store(c_output[i_p, i_f], value=a + b)


def add_mutable(a, acc: nt.mutable_tensor):
    """acc += a in place (mutable parameter, returned)."""
    t = nl.load(acc[0:128, :])
    nl.store(acc[0:128, :], value=nl.add(t, nl.load(a[0:128, :])))
    return acc


@nki.jit(mode="simulation", platform_target="trn1")
def transposes(x):
    """nc_transpose on TensorE (PSUM result) and on VectorE (32x32)."""
    out = nl.ndarray((x.shape[1], x.shape[0]), dtype=x.dtype, buffer=nl.shared_hbm)
    small = nl.ndarray((32, 32), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    tt = nisa.nc_transpose(t)
    nl.store(out, value=nl.copy(tt))
    s = nisa.nc_transpose(t[0:32, 0:32], engine=nisa.vector_engine)
    nl.store(small, value=s)
    return out, small


@nki.jit
def isa_zoo(x, y):
    """Tile-returning ISA calls with a mask on ragged rows: tensor_tensor, tensor_scalar with a
    column operand, activation with bias/scale tiles, scalar_tensor_tensor, tensor_reduce,
    reciprocal, tensor_copy, tensor_tensor_scan, memset, masked dma_copy."""
    rows, cols = x.shape
    out = nl.ndarray((rows, 8 * cols), dtype=nl.float32, buffer=nl.shared_hbm)
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(cols)[None, :]
    m = i_p < rows
    a = nl.load(x[i_p, i_f], mask=m)
    b = nl.load(y[i_p, i_f], mask=m)
    col = nisa.tensor_reduce(np.add, b, axis=1, keepdims=True, mask=m)
    r = [
        nisa.tensor_tensor(a, b, op=nl.multiply, mask=m),
        nisa.tensor_scalar(a, np.subtract, col, op1=np.multiply, operand1=0.5, mask=m),
        nisa.activation(op=nl.exp, data=a, bias=col, scale=0.25, mask=m),
        nisa.scalar_tensor_tensor(data=a, op0=np.multiply, operand0=2.0, op1=np.add,
                                  operand1=b, mask=m),
        nisa.tensor_tensor_scan(a, b, 0.0, np.multiply, np.add, mask=m),
        nisa.tensor_copy(nisa.reciprocal(nl.add(nl.abs(b, mask=m), 1.0, mask=m), mask=m),
                         mask=m),
        nisa.memset((128, cols), 3.0, nl.float32, mask=m),
    ]
    for j, t in enumerate(r):
        nl.store(out[i_p, j * cols + i_f], value=t, mask=m)
    mx = nisa.tensor_reduce(np.max, a, axis=[1], mask=m)
    nisa.dma_copy(dst=out[i_p, 7 * cols + nl.arange(1)[None, :]], src=mx, mask=m)
    return out


@nki.jit
def transposing_store(x):
    """The partition index on an HBM column: out = x.T via the store's index."""
    rows, cols = x.shape
    out = nl.ndarray((cols, rows), dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(rows)[:, None]
    i_f = nl.arange(cols)[None, :]
    t = nl.load(x[i_p, i_f])
    nl.store(out[i_f, i_p], value=t)
    return out


@nki.jit
def spmd_scale(a):
    """Grid launch: program i scales its [128, C] row block by (i + 1)."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i = nl.program_id(0)
    i_p = i * 128 + nl.arange(128)[:, None]
    i_f = nl.arange(a.shape[1])[None, :]
    t = nl.load(a[i_p, i_f])
    nl.store(out[i_p, i_f], value=nl.multiply(t, i + 1))
    return out


@nki.jit
def zero_read(a, b):
    """A zeroed PSUM tile read where no matmul wrote (rows 64..127 stay zero)."""
    out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    t = nl.load(a)
    u = nl.load(b)
    acc = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    acc[0:64, :] += nisa.nc_matmul(t[:, 0:64], u)
    acc[0:64, :] += nisa.nc_matmul(t[:, 64:128], u)
    nl.store(out, value=nl.copy(acc))
    return out


@nki.jit
def rmsnorm_rows(a, g):
    """RMSNorm in the style of the public tutorial: rows tiled by 128 with masks, square/sum,
    rsqrt, weight loaded once as [1, C] and broadcast across partitions."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    rows, cols = a.shape
    ix = nl.arange(128)[:, None]
    iw = nl.arange(1)[:, None]
    iy = nl.arange(cols)[None, :]
    g_tile = nl.load(g.reshape((1, cols))[iw, iy])
    for i in nl.affine_range(math.ceil(rows / 128)):
        m = i * 128 + ix < rows
        t = nl.load(a[i * 128 + ix, iy], mask=m)
        sq = nl.sum(nl.square(t, mask=m), axis=[1], mask=m)
        r = nl.rsqrt(nl.multiply(sq, 1.0 / cols, mask=m), mask=m)
        y = nl.multiply(t, r, mask=m)
        g_b = g_tile.broadcast_to((128, cols))
        y = nl.multiply(y, g_b, mask=m)
        nl.store(out[i * 128 + ix, iy], value=y, mask=m)
    return out


@nki.jit
def matmul_masked(lhsT, rhs):
    """A masked nc_matmul: only the first 40 rows of the [64, 96] result are computed."""
    out = nl.ndarray((40, 96), dtype=nl.float32, buffer=nl.shared_hbm)
    i_m = nl.arange(64)[:, None]
    i_n = nl.arange(96)[None, :]
    a = nl.load(lhsT)
    b = nl.load(rhs)
    res = nisa.nc_matmul(a, b, mask=(i_m < 40))
    nl.store(out[i_m, i_n], value=nl.copy(res, mask=(i_m < 40)), mask=(i_m < 40))
    return out


@nki.jit
def topk_where(x):
    """max8 / nc_find_index8 / nc_match_replace8 (top-8 per row), tensor_partition_reduce,
    nl.where and an identity constant."""
    rows, cols = x.shape
    top = nl.ndarray((rows, 8), dtype=nl.float32, buffer=nl.shared_hbm)
    idx = nl.ndarray((rows, 8), dtype=nl.float32, buffer=nl.shared_hbm)
    rest = nl.ndarray((rows, cols), dtype=nl.float32, buffer=nl.shared_hbm)
    colmax = nl.ndarray((1, cols), dtype=nl.float32, buffer=nl.shared_hbm)
    t = nl.load(x)
    m8 = nisa.max8(src=t)
    nl.store(top, value=m8)
    nl.store(idx, value=nl.copy(nisa.nc_find_index8(data=t, vals=m8), dtype=nl.float32))
    nl.store(rest, value=nisa.nc_match_replace8(data=t, vals=m8, imm=0.0))
    nl.store(colmax, value=nisa.tensor_partition_reduce(np.maximum, t))
    eye = nl.ndarray((rows, rows), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(eye, value=nl.copy(nl.shared_identity_matrix(rows, dtype=nl.float32)))
    w = nl.where(nl.greater(t, 0.0), t, 0.0)
    nl.store(rest[:, 0:1], value=nl.copy(w[:, 0:1]))
    return top, idx, rest, colmax, eye


@nki.jit
def avgpool_axes_2_4(x, pool: int = 2):
    """Average pooling with the reduction over the window axes [2, 4] of a 5-D index view
    (non-trailing reduction axes: the access pattern is reordered), and a per-partition
    column loaded from a 1-D slice (x[c0:c1, i] -> a [P, 1] tile)."""
    C, H, W = x.shape
    out = nl.ndarray((C, H // pool, W // pool), dtype=x.dtype, buffer=nl.shared_hbm)
    first = nl.ndarray((C, 1), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    j0 = nl.arange(C)[:, None, None, None, None]
    j1 = nl.arange(H // pool)[None, :, None, None, None]
    j2 = nl.arange(pool)[None, None, :, None, None]
    j3 = nl.arange(W // pool)[None, None, None, :, None]
    j4 = nl.arange(pool)[None, None, None, None, :]
    s = nl.sum(t[j0, pool * j1 + j2, pool * j3 + j4], axis=[2, 4])
    nl.store(out, value=nl.multiply(s, 1.0 / (pool * pool)))
    nl.store(first, value=nl.load(x[0:C, 0, 0]))
    return out, first


@nki.jit
def gather_scatter(data, idx):
    """Indirect DMA: rows of data picked by an index tile loaded from HBM (gather), rows picked
    by an iota index tile (even rows), and a scatter store through an index tile; an index
    tile with out-of-range rows copied with oob_mode.skip."""
    n, m = data.shape
    k = idx.shape[0]
    picked = nl.ndarray((k, m), dtype=data.dtype, buffer=nl.shared_hbm)
    even = nl.ndarray((n // 2, m), dtype=data.dtype, buffer=nl.shared_hbm)
    scattered = nl.ndarray((n, m), dtype=data.dtype, buffer=nl.shared_hbm)
    clipped = nl.ndarray((k, m), dtype=data.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(k)[:, None]
    i_f = nl.arange(m)[None, :]
    idx_tile = nl.load(idx[i_p])
    nl.store(picked, value=nl.load(data[idx_tile[i_p, 0], i_f]))
    evens = nisa.iota(2 * nl.arange(n // 2)[:, None], dtype=nl.int32)
    nl.store(even, value=nl.load(data[evens, i_f]))
    zero = nl.zeros((n, m), dtype=data.dtype)
    nl.store(scattered, value=zero)
    nl.store(scattered[idx_tile, i_f], value=nl.load(data[0:k, :]))
    big = nisa.iota(3 * nl.arange(k)[:, None], dtype=nl.int32)
    got = nisa.memset((k, m), -1.0, data.dtype)
    nisa.dma_copy(dst=got, src=data[big, i_f], oob_mode=nisa.oob_mode.skip)
    nl.store(clipped, value=got)
    return picked, even, scattered, clipped
