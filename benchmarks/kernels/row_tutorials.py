"""Benchmark kernels: RMSNorm and LayerNorm with the structure of the public NKI tutorials.

Stage: benchmark inputs (classic ``neuronxcc.nki`` API, as the tutorials are written; run them
under ``nkigen.sim.installed()``). Written for nkigen from the tutorials' *prose*
(S25 general/nki/tutorials/rmsnorm.rst and layernorm.rst, SDK 2.25), not from their code:

* :func:`rmsnorm_tutorial` -- weight loaded once and broadcast over the partitions; per 128-row
  tile: load (masked), square, row sum, divide by the row length, rsqrt, free-axis broadcast
  multiply (tensor_scalar), partition-broadcast multiply by the weight (tensor_tensor), store.
  (The tutorial has no epsilon; neither has this kernel.)
* :func:`layernorm_tutorial` -- the tutorial's "version 2": mean and variance with ``bn_stats``
  over 512-element chunks (nl.tile_size.bn_stats_fmax) and one ``bn_aggr``; ``rsqrt(var + eps)``
  on the column; shift and scale in one two-op ``tensor_scalar``; then ``* gamma + beta`` with
  the partition-broadcast parameters.
"""

from __future__ import annotations

import math

import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl
from neuronxcc import nki

PMAX = 128          # nl.tile_size.pmax
BN_FMAX = 512       # nl.tile_size.bn_stats_fmax
BN_STATS = 6        # bn_stats output elements per chunk (S25 nki.isa.bn_stats)


@nki.jit
def rmsnorm_tutorial(a_tensor, g_tensor):
    out = nl.ndarray(a_tensor.shape, dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    rows, cols = a_tensor.shape
    ix = nl.arange(PMAX)[:, None]
    iw = nl.arange(1)[:, None]
    iy = nl.arange(cols)[None, :]
    g_2d = g_tensor.reshape((1, cols))
    g_tile = nl.load(g_2d[iw, iy])
    g_bcast = g_tile.broadcast_to((PMAX, cols))
    for i in nl.affine_range(math.ceil(rows / PMAX)):
        live = i * PMAX + ix < rows
        a_tile = nl.load(a_tensor[i * PMAX + ix, iy], mask=live)
        sq = nl.square(a_tile, mask=live)
        ssum = nl.sum(sq, axis=[1], mask=live)
        ms = nl.multiply(ssum, 1.0 / cols, mask=live)
        inv_rms = nl.rsqrt(ms, mask=live)
        y = nl.multiply(a_tile, inv_rms, mask=live)
        y = nl.multiply(y, g_bcast, mask=live)
        nl.store(out[i * PMAX + ix, iy], value=y, mask=live)
    return out


@nki.jit
def layernorm_tutorial(x_tensor, gamma, beta, eps=1e-5):
    out = nl.ndarray(x_tensor.shape, dtype=x_tensor.dtype, buffer=nl.shared_hbm)
    rows, cols = x_tensor.shape
    ix = nl.arange(PMAX)[:, None]
    iw = nl.arange(1)[:, None]
    iy = nl.arange(cols)[None, :]
    g_b = nl.load(gamma.reshape((1, cols))[iw, iy]).broadcast_to((PMAX, cols))
    b_b = nl.load(beta.reshape((1, cols))[iw, iy]).broadcast_to((PMAX, cols))
    nchunks = math.ceil(cols / BN_FMAX)
    ic = nl.arange(BN_FMAX)[None, :]
    i6 = nl.arange(BN_STATS)[None, :]
    for i in nl.affine_range(math.ceil(rows / PMAX)):
        live = i * PMAX + ix < rows
        x_tile = nl.load(x_tensor[i * PMAX + ix, iy], mask=live)
        stats = nl.ndarray((PMAX, BN_STATS * nchunks), dtype=nl.float32, buffer=nl.sbuf)
        for c in nl.affine_range(nchunks):
            stats[ix, c * BN_STATS + i6] = nisa.bn_stats(
                x_tile[ix, c * BN_FMAX + ic], mask=live & (c * BN_FMAX + ic < cols),
                dtype=nl.float32)
        mv = nisa.bn_aggr(stats, mask=live, dtype=nl.float32)
        mean = mv[ix, 0]
        rstd = nl.rsqrt(nl.add(mv[ix, 1], eps, mask=live), mask=live)
        y = nisa.tensor_scalar(x_tile, op0=nl.subtract, operand0=mean, op1=nl.multiply,
                               operand1=rstd, mask=live)
        y = nl.multiply(y, g_b, mask=live)
        y = nl.add(y, b_b, mask=live)
        nl.store(out[i * PMAX + ix, iy], value=y, mask=live)
    return out
