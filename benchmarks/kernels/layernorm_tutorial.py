"""Benchmark kernels: row-wise layer normalisation in two versions, with the structure the public
NKI layernorm tutorial describes (S25 general/nki/tutorials/layernorm.rst; nki-reference.md 6.1).

Stage: benchmark inputs (classic ``neuronxcc.nki`` API; run under ``nkigen.sim.installed()``).
Written for nkigen from the tutorial's *description*, not from its code. ``x [rows, width]``,
``gamma, beta [1, width]``, fp32; rows tiled by 128 (the last tile may be partial).

1. :func:`layernorm_v1` -- language-level ops: mean, centred square mean (variance), rsqrt, then
   scale by gamma / shift by beta broadcast to the tile's partitions.
2. :func:`layernorm_v2` -- ``bn_stats`` on <= 512-wide chunks + ``bn_aggr`` for mean/variance,
   and one ``tensor_scalar`` for (x - mean) * rstd, then gamma / beta as in v1.
"""

from __future__ import annotations

import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl
import numpy as np
from neuronxcc import nki

P = 128
EPS = 1e-5
STATS_CHUNK = 512       # bn_stats free-size limit (nl.tile_size.bn_stats_fmax)


def _affine(y, gamma, beta, rows: int):
    g = gamma.broadcast_to((rows, gamma.shape[1]))
    b = beta.broadcast_to((rows, beta.shape[1]))
    return nl.add(nl.multiply(y, g), b)


@nki.jit
def layernorm_v1(x, gamma, beta):
    n, w = x.shape
    out = nl.ndarray((n, w), dtype=x.dtype, buffer=nl.shared_hbm)
    g = nl.load(gamma)
    b = nl.load(beta)
    for i in nl.affine_range((n + P - 1) // P):
        r0 = i * P
        rows = min(P, n - r0)
        t = nl.load(x[r0:r0 + rows, 0:w])
        mu = nl.mean(t, axis=[1])
        xc = nl.subtract(t, mu)
        var = nl.mean(nl.square(xc), axis=[1])
        rstd = nl.rsqrt(nl.add(var, EPS))
        y = _affine(nl.multiply(xc, rstd), g, b, rows)
        nl.store(out[r0:r0 + rows, 0:w], y)
    return out


@nki.jit
def layernorm_v2(x, gamma, beta):
    n, w = x.shape
    out = nl.ndarray((n, w), dtype=x.dtype, buffer=nl.shared_hbm)
    g = nl.load(gamma)
    b = nl.load(beta)
    chunks = (w + STATS_CHUNK - 1) // STATS_CHUNK
    for i in nl.affine_range((n + P - 1) // P):
        r0 = i * P
        rows = min(P, n - r0)
        t = nl.load(x[r0:r0 + rows, 0:w])
        stats = nl.ndarray((rows, 6 * chunks), dtype=np.float32, buffer=nl.sbuf)
        for c in nl.affine_range(chunks):
            c0 = c * STATS_CHUNK
            c1 = min(w, c0 + STATS_CHUNK)
            stats[0:rows, 6 * c:6 * c + 6] = nisa.bn_stats(t[0:rows, c0:c1])
        mv = nisa.bn_aggr(stats)
        rstd = nl.rsqrt(nl.add(mv[0:rows, 1:2], EPS))
        y = nisa.tensor_scalar(t, op0=np.subtract, operand0=mv[0:rows, 0:1],
                               op1=np.multiply, operand1=rstd)
        nl.store(out[r0:r0 + rows, 0:w], _affine(y, g, b, rows))
    return out


KERNELS = {"v1": layernorm_v1, "v2": layernorm_v2}
