"""Benchmark kernels: row-wise layer normalisation in two versions, with the structure the public
NKI layernorm tutorial describes (S25 general/nki/tutorials/layernorm.rst; nki-reference.md 6.1).

Stage: benchmark inputs (classic ``neuronxcc.nki`` API; run under ``nkigen.sim.installed()``).
Written for nkigen from the tutorial's *description*, not from its code. ``x [rows, width]``,
``gamma, beta [1, width]``, fp32; rows tiled by 128. The last row tile may be partial: every tile
is sized fully and its ragged rows are masked (``mask=``), since a classic ``nl.affine_range``
body is traced once and its tile extents cannot depend on the loop index (S25
general/nki/api/nki.api.shared.rst "NKI API Masking").

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


def _affine(y, gamma, beta, live):
    g = gamma.broadcast_to((P, gamma.shape[1]))
    b = beta.broadcast_to((P, beta.shape[1]))
    return nl.add(nl.multiply(y, g, mask=live), b, mask=live)


@nki.jit
def layernorm_v1(x, gamma, beta):
    n, w = x.shape
    out = nl.ndarray((n, w), dtype=x.dtype, buffer=nl.shared_hbm)
    g = nl.load(gamma)
    b = nl.load(beta)
    ip, iw = nl.arange(P)[:, None], nl.arange(w)[None, :]
    for i in nl.affine_range((n + P - 1) // P):
        live = i * P + ip < n
        t = nl.load(x[i * P + ip, iw], mask=live)
        mu = nl.mean(t, axis=[1], mask=live)
        xc = nl.subtract(t, mu, mask=live)
        var = nl.mean(nl.square(xc, mask=live), axis=[1], mask=live)
        rstd = nl.rsqrt(nl.add(var, EPS, mask=live), mask=live)
        y = _affine(nl.multiply(xc, rstd, mask=live), g, b, live)
        nl.store(out[i * P + ip, iw], y, mask=live)
    return out


@nki.jit
def layernorm_v2(x, gamma, beta):
    n, w = x.shape
    out = nl.ndarray((n, w), dtype=x.dtype, buffer=nl.shared_hbm)
    g = nl.load(gamma)
    b = nl.load(beta)
    chunks = (w + STATS_CHUNK - 1) // STATS_CHUNK
    ip, iw = nl.arange(P)[:, None], nl.arange(w)[None, :]
    for i in nl.affine_range((n + P - 1) // P):
        live = i * P + ip < n
        t = nl.load(x[i * P + ip, iw], mask=live)
        stats = nl.ndarray((P, 6 * chunks), dtype=np.float32, buffer=nl.sbuf)
        for c in nl.static_range(chunks):     # the last chunk may be narrower: a static loop
            c0 = c * STATS_CHUNK
            c1 = min(w, c0 + STATS_CHUNK)
            stats[:, 6 * c:6 * c + 6] = nisa.bn_stats(t[:, c0:c1], mask=live)
        mv = nisa.bn_aggr(stats, mask=live)
        rstd = nl.rsqrt(nl.add(mv[:, 1:2], EPS, mask=live), mask=live)
        y = nisa.tensor_scalar(t, op0=np.subtract, operand0=mv[:, 0:1],
                               op1=np.multiply, operand1=rstd, mask=live)
        nl.store(out[i * P + ip, iw], _affine(y, g, b, live), mask=live)
    return out


KERNELS = {"v1": layernorm_v1, "v2": layernorm_v2}
