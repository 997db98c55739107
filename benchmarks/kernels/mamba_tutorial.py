"""Benchmark kernels: the selective-scan (Mamba SSM) layer in three versions, with the loop
structure of the public NKI fused-Mamba tutorial (S25 general/nki/tutorials/fused_mamba.rst).

Stage: benchmark inputs (classic ``neuronxcc.nki`` API; run them under
``nkigen.sim.installed()``). Written for nkigen from the tutorial's *description* of each version
(loop orders, what is loaded where, tile sizes), not from its code. Shapes, fp32 throughout:
dt, x [batch, channels, seq]; a [channels, states]; b, c [batch, states, seq];
out [batch, channels, seq] with out[t] = sum_s c[s, t] * h_s[t], h_s[t] = exp(dt[t] * a[s]) *
h_s[t-1] + dt[t] * x[t] * b[s, t].

1. :func:`ssm_v1` -- state loop outside the channel-tile loop; dt and x tiles loaded again for
   every state; one accumulator per channel tile kept for the whole batch, stored at the end.
2. :func:`ssm_v2` -- channel-tile loop outside the state loop; dt and x loaded once per channel
   tile; the accumulator lives inside the channel loop and is stored right after it.
3. :func:`ssm_v3` -- v2 plus a sequence-tile loop (512 columns) inside the state loop; the scan
   carries its last column into the next tile through ``initial``.
"""

from __future__ import annotations

import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl
import numpy as np
from neuronxcc import nki

P = 128          # channels per tile (partition dim)
SEQ_TILE = 512   # v3 sequence tile


def _state_step(dt_t, x_t, a_col, b_src, c_src, init):
    """One state's contribution over one sequence range; returns (c * h, h). ``b_src``/``c_src``
    are the HBM rows of b and c, loaded right before their use. Temporaries are dropped as soon
    as they are dead (``del``), as the compiler's allocator would free them."""
    width = dt_t.shape[1]
    decay = nisa.activation(op=nl.exp, data=dt_t, scale=a_col)          # ScalarE
    b_row = nl.load(b_src)
    dx = nisa.tensor_tensor(dt_t, x_t, op=nl.multiply)                    # VectorE
    b_all = b_row.broadcast_to((P, width))                                # TensorE
    del b_row
    drive = nisa.tensor_tensor(dx, b_all, op=nl.multiply)
    del dx, b_all
    h = nisa.tensor_tensor_scan(decay, drive, initial=init, op0=np.multiply, op1=np.add)
    del decay, drive
    c_row = nl.load(c_src)
    c_all = c_row.broadcast_to((P, width))
    del c_row
    y = nisa.tensor_tensor(h, c_all, op=nl.multiply)
    return y, h


@nki.jit
def ssm_v1(dt, x, a, b, c):
    nb, ch, seq = dt.shape
    ns = a.shape[1]
    out = nl.ndarray((nb, ch, seq), dtype=dt.dtype, buffer=nl.shared_hbm)
    nt = ch // P
    for ib in nl.affine_range(nb):
        acc = nl.zeros((nt, nl.par_dim(P), seq), dtype=dt.dtype)
        for s in nl.affine_range(ns):
            for t in nl.affine_range(nt):
                rows = slice(t * P, (t + 1) * P)
                dt_t = nl.load(dt[ib, rows, 0:seq])
                a_col = nl.load(a[rows, s])
                x_t = nl.load(x[ib, rows, 0:seq])
                y = _state_step(dt_t, x_t, a_col, b[ib, s:s + 1, 0:seq],
                                c[ib, s:s + 1, 0:seq], 0)[0]
                acc[t, 0:P, 0:seq] += y
                del y
        for t in nl.affine_range(nt):
            nl.store(out[ib, t * P:(t + 1) * P, 0:seq], acc[t, 0:P, 0:seq])
    return out


@nki.jit
def ssm_v2(dt, x, a, b, c):
    nb, ch, seq = dt.shape
    ns = a.shape[1]
    out = nl.ndarray((nb, ch, seq), dtype=dt.dtype, buffer=nl.shared_hbm)
    for ib in nl.affine_range(nb):
        for t in nl.affine_range(ch // P):
            rows = slice(t * P, (t + 1) * P)
            acc = nl.zeros((nl.par_dim(P), seq), dtype=dt.dtype)
            dt_t = nl.load(dt[ib, rows, 0:seq])
            x_t = nl.load(x[ib, rows, 0:seq])
            for s in nl.affine_range(ns):
                a_col = nl.load(a[rows, s])
                y = _state_step(dt_t, x_t, a_col, b[ib, s:s + 1, 0:seq],
                                c[ib, s:s + 1, 0:seq], 0)[0]
                acc[0:P, 0:seq] += y
                del y
            nl.store(out[ib, rows, 0:seq], acc[0:P, 0:seq])
    return out


@nki.jit
def ssm_v3(dt, x, a, b, c):
    nb, ch, seq = dt.shape
    ns = a.shape[1]
    out = nl.ndarray((nb, ch, seq), dtype=dt.dtype, buffer=nl.shared_hbm)
    for ib in nl.affine_range(nb):
        for t in nl.affine_range(ch // P):
            rows = slice(t * P, (t + 1) * P)
            acc = nl.zeros((nl.par_dim(P), seq), dtype=dt.dtype)
            dt_t = nl.load(dt[ib, rows, 0:seq])
            x_t = nl.load(x[ib, rows, 0:seq])
            for s in nl.affine_range(ns):
                a_col = nl.load(a[rows, s])
                carry = nl.zeros((P, 1), dtype=dt.dtype)
                for j in nl.static_range(seq // SEQ_TILE):
                    cols = slice(j * SEQ_TILE, (j + 1) * SEQ_TILE)
                    y, h = _state_step(dt_t[0:P, cols], x_t[0:P, cols], a_col,
                                       b[ib, s:s + 1, cols], c[ib, s:s + 1, cols], carry)
                    carry[...] = h[0:P, SEQ_TILE - 1]
                    acc[0:P, cols] += y
                    del y, h
            nl.store(out[ib, rows, 0:seq], acc[0:P, 0:seq])
    return out


KERNELS = {"v1": ssm_v1, "v2": ssm_v2, "v3": ssm_v3}
