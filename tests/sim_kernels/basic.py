"""Test kernels (current nki API): element-wise add, softmax, rmsnorm, layernorm, SPMD add."""

import nki
import nki.isa as nisa
import nki.language as nl


@nki.jit
def tiled_add(a, b):
    """out = a + b for [R, C] with R a multiple of 128 (nl.load / nl.add / nl.store)."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    rows, cols = a.shape
    p = nl.tile_size.pmax
    for i in nl.affine_range(rows // p):
        x = nl.load(a[i * p:(i + 1) * p, :])
        y = nl.load(b[nl.ds(i * p, p), :])
        nl.store(out[i * p:(i + 1) * p, :], value=nl.add(x, y))
    return out


@nki.jit
def isa_add(a, b):
    """Same with the ISA: dma_copy + tensor_tensor + ragged last tile via min()."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    rows, cols = a.shape
    p = nl.tile_size.pmax
    for i in nl.affine_range((rows + p - 1) // p):
        r0 = i * p
        n = min(p, rows - r0)
        x = nl.ndarray((p, cols), dtype=a.dtype, buffer=nl.sbuf)
        y = nl.ndarray((p, cols), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=x[0:n, :], src=a[r0:r0 + n, :])
        nisa.dma_copy(dst=y[0:n, :], src=b[r0:r0 + n, :])
        z = nl.ndarray((p, cols), dtype=a.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=z[0:n, :], data1=x[0:n, :], data2=y[0:n, :], op=nl.add)
        nisa.dma_copy(dst=out[r0:r0 + n, :], src=z[0:n, :])
    return out


@nki.jit
def spmd_add(a, b):
    """Grid launch: program (i, j) handles one [128, C/n1] block."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i, j = nl.program_id(0), nl.program_id(1)
    bc = a.shape[1] // nl.num_programs(1)
    assert nl.program_ndim() == 2
    x = nl.load(a[i * 128:(i + 1) * 128, j * bc:(j + 1) * bc])
    y = nl.load(b[i * 128:(i + 1) * 128, j * bc:(j + 1) * bc])
    nl.store(out[i * 128:(i + 1) * 128, j * bc:(j + 1) * bc], value=x + y)
    return out


@nki.jit
def softmax(x):
    """Row softmax of [R, C] (R multiple of 128): max, exp with bias=-max and row sum fused
    in one activation, reciprocal, tensor_scalar multiply."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    rows, cols = x.shape
    for i in nl.affine_range(rows // 128):
        t = nl.load(x[i * 128:(i + 1) * 128, :])
        mx = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=mx, op=nl.maximum, data=t, axis=1, negate=True)
        e = nl.ndarray((128, cols), dtype=nl.float32, buffer=nl.sbuf)
        s = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=e, op=nl.exp, data=t, bias=mx, reduce_op=nl.add, reduce_res=s,
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        r = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=r, data=s)
        y = nl.ndarray((128, cols), dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=y, data=e, op0=nl.multiply, operand0=r)
        nl.store(out[i * 128:(i + 1) * 128, :], value=y)
    return out


@nki.jit
def softmax_nl(x):
    """Row softmax with nl.* functions: the [P] reductions broadcast as [P, 1]."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range(x.shape[0] // 128):
        t = nl.load(x[i * 128:(i + 1) * 128, :])
        e = nl.exp(nl.subtract(t, nl.max(t, axis=1)))
        y = nl.divide(e, nl.sum(e, axis=1))
        nl.store(out[i * 128:(i + 1) * 128, :], value=y)
    return out


@nki.jit
def rmsnorm(x, w, eps=1e-6):
    """y = x / sqrt(mean(x^2) + eps) * w, w [1, H] broadcast over partitions."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    rows, h = x.shape
    wt = nl.broadcast_to(nl.load(w), (128, h))
    for i in nl.affine_range(rows // 128):
        t = nl.load(x[i * 128:(i + 1) * 128, :])
        ss = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        sq = nl.ndarray((128, h), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation_reduce(dst=sq, op=nl.square, data=t, reduce_op=nl.add, reduce_res=ss)
        rs = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=rs, data=ss, op0=nl.multiply, operand0=1.0 / h, op1=nl.add,
                           operand1=eps)
        nisa.activation(dst=rs, op=nl.rsqrt, data=rs)
        y = nl.ndarray((128, h), dtype=x.dtype, buffer=nl.sbuf)
        nisa.scalar_tensor_tensor(dst=y, data=t, op0=nl.multiply, operand0=rs,
                                  op1=nl.multiply, operand1=wt)
        nl.store(out[i * 128:(i + 1) * 128, :], value=y)
    return out


@nki.jit
def layernorm(x, gamma, beta, eps=1e-5):
    """LayerNorm over H (H a multiple of 512) with bn_stats per 512 chunk + bn_aggr."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    rows, h = x.shape
    fmax = nl.tile_size.bn_stats_fmax
    nchunk = h // fmax
    g = nl.broadcast_to(nl.load(gamma), (128, h))
    b = nl.broadcast_to(nl.load(beta), (128, h))
    for i in nl.affine_range(rows // 128):
        t = nl.load(x[i * 128:(i + 1) * 128, :])
        stats = nl.ndarray((128, nchunk, 6), dtype=nl.float32, buffer=nl.sbuf)
        for c in nl.affine_range(nchunk):
            nisa.bn_stats(dst=stats[:, c, :], data=t[:, c * fmax:(c + 1) * fmax])
        mv = nl.ndarray((128, 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.bn_aggr(dst=mv, data=stats)
        rstd = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=rstd, data=mv[:, 1:2], op0=nl.add, operand0=eps,
                           op1=nl.rsqrt, operand1=0.0)
        xn = nl.ndarray((128, h), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=xn, data=t, op0=nl.subtract, operand0=mv[:, 0:1],
                           op1=nl.multiply, operand1=rstd)
        y = nl.add(nl.multiply(xn, g), b, dtype=x.dtype)
        nl.store(out[i * 128:(i + 1) * 128, :], value=y)
    return out
