"""Benchmark kernels: attention written by hand the way an NKI expert would (issue 14 targets).

Stage: benchmark inputs (current ``nki`` API; run them under ``nkigen.sim.installed()``).
Written for nkigen after the *structure* of the public nki-samples tutorial
``attention_fwd_performance`` (its v6/v7 "instruction combination on ScalarE" and v8 "evict
PSUM early" versions), not from its code, and with the same inputs as our specs (row-major
``q [M, D]``, ``k [N, D]``, ``v [N, D]``; the tutorial takes them d-major):

* :func:`attention_probs_expert` -- the tutorial cut after the softmax: q^T and k^T loaded once
  (DMA transposes, 2-byte dtype), per 128-query tile the whole score row in PSUM
  (one bank per 512 keys), the row max read from PSUM bank by bank then combined with
  ``tensor_reduce(negate=True)``, ``exp`` with the fused bias and the row sum in one ScalarE
  ``activation`` per bank reading PSUM, one ``reciprocal`` and one ``tensor_scalar``, store.
  Needs ``N % 512 == 0`` and ``N <= 2048`` (the score row, allocated per query tile, must fit
  the PSUM twice: the next tile's is charged before the previous one dies).
* :func:`attention_expert` -- full ``softmax(scale * q k^T) v``: q^T, k^T and v loaded once;
  per query tile the scores go PSUM -> SBUF with the row max in the same VectorE instruction
  (``tensor_scalar_reduce``, freeing the PSUM early), ``exp`` + row sum on ScalarE into bf16,
  128 x 128 TensorE transposes of the probabilities, the PV matmul accumulated in PSUM over
  all key tiles, and the normalisation fused into the PSUM eviction (``tensor_scalar``).
  Needs ``N % 512 == 0``.

API facts used (S29 = SDK v2.29.0 nki/api/nki/isa/__init__.py): ``tensor_reduce`` reads SBUF
or PSUM and takes ``negate``; ``activation`` reads PSUM, applies ``op(data * scale + bias)``
and sums the result into ``reduce_res`` with ``reduce_cmd=reset_reduce``;
``tensor_scalar_reduce`` applies one ALU op and reduces along the free axis; ``nc_transpose``
writes a PSUM tile of the input's dtype; ``dma_transpose`` is for 2- and 4-byte dtypes;
``get_nc_version`` tells NeuronCore-v2 (trn1, no DMA transpose unit) from v3 (trn2).
"""

from __future__ import annotations

import nki
import nki.isa as nisa
import nki.language as nl

PMAX = 128          # partitions (nl.tile_size.pmax)
BANK = 512          # fp32 columns per PSUM bank (nl.tile_size.gemm_moving_fmax)
SCALE = 0.125       # the specs' softmax scale (1 / sqrt(64)); fixed, as in the specs


def _load_transposed(src, rows, d):
    """``src [rows, d]`` (2-byte dtype) -> SBUF ``[d, rows]``: DMA transposes of <= 2048 rows
    on NeuronCore-v3+, on NeuronCore-v2 (no DMA transpose unit) contiguous row loads turned
    128 x 128 on TensorE in float32 (NeuronCore-v2 has no transpose mode, so a TensorE
    transpose writes float32 PSUM: SH nki/guides/architecture/trainium2_arch.rst "Built-in
    Transpose Support"; nc_transpose wants data of dst's dtype)."""
    dst = nl.ndarray((d, rows), dtype=src.dtype, buffer=nl.sbuf)
    if nisa.get_nc_version() == nisa.nc_version.gen2:
        for t in range(rows // PMAX):
            r0 = t * PMAX
            row_t = nl.ndarray((PMAX, d), dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=row_t, src=src[r0:r0 + PMAX, 0:d])
            tp = nl.ndarray((d, PMAX), dtype=nl.float32, buffer=nl.psum)
            nisa.nc_transpose(dst=tp, data=row_t)
            nisa.tensor_copy(dst=dst[0:d, r0:r0 + PMAX], src=tp)
        return dst
    for b in range((rows + 2047) // 2048):
        r0 = 2048 * b
        rsz = min(2048, rows - r0)
        nisa.dma_transpose(dst=dst[0:d, r0:r0 + rsz], src=src[r0:r0 + rsz, 0:d])
    return dst


@nki.jit
def attention_probs_expert(q, k):
    M, D = q.shape
    N = k.shape[0]
    assert D <= PMAX and M % PMAX == 0 and N % BANK == 0 and N <= 4 * BANK
    nb = N // BANK
    p = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    qT = _load_transposed(q, M, D)
    kT = _load_transposed(k, N, D)
    for qt in range(M // PMAX):
        q0 = qt * PMAX
        qk = nl.ndarray((PMAX, nb, BANK), dtype=nl.float32, buffer=nl.psum)
        for b in range(nb):
            nisa.nc_matmul(qk[0:PMAX, b, 0:BANK], qT[0:D, q0:q0 + PMAX],
                           kT[0:D, b * BANK:(b + 1) * BANK])
        bank_max = nl.ndarray((PMAX, nb), dtype=nl.float32, buffer=nl.sbuf)
        for b in range(nb):
            nisa.tensor_reduce(dst=bank_max[0:PMAX, b:b + 1], op=nl.maximum,
                               data=qk[0:PMAX, b, 0:BANK], axis=1, keepdims=True)
        neg_max = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=neg_max, op=nl.maximum, data=bank_max, axis=1, keepdims=True,
                           negate=True)
        bias = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=bias, data=neg_max, op0=nl.multiply, operand0=SCALE,
                           engine=nisa.engine.vector)
        ex = nl.ndarray((PMAX, N), dtype=nl.float32, buffer=nl.sbuf)
        bank_sum = nl.ndarray((PMAX, nb), dtype=nl.float32, buffer=nl.sbuf)
        for b in range(nb):
            nisa.activation(dst=ex[0:PMAX, b * BANK:(b + 1) * BANK], op=nl.exp,
                            data=qk[0:PMAX, b, 0:BANK], bias=bias, scale=SCALE,
                            reduce_op=nl.add, reduce_res=bank_sum[0:PMAX, b:b + 1],
                            reduce_cmd=nisa.reduce_cmd.reset_reduce)
        row_sum = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=row_sum, op=nl.add, data=bank_sum, axis=1, keepdims=True)
        inv = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv, data=row_sum)
        probs = nl.ndarray((PMAX, N), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=probs, data=ex, op0=nl.multiply, operand0=inv,
                           engine=nisa.engine.vector)
        nisa.dma_copy(dst=p[q0:q0 + PMAX, 0:N], src=probs)
    return p


@nki.jit
def attention_expert(q, k, v):
    M, D = q.shape
    N = k.shape[0]
    J = v.shape[1]
    assert D <= PMAX and J <= BANK and M % PMAX == 0 and N % BANK == 0
    nb = N // BANK
    nkt = N // PMAX
    o = nl.ndarray((M, J), dtype=q.dtype, buffer=nl.shared_hbm)
    qT = _load_transposed(q, M, D)
    kT = _load_transposed(k, N, D)
    v_sb = nl.ndarray((PMAX, nkt, J), dtype=v.dtype, buffer=nl.sbuf)
    for t in range(nkt):
        nisa.dma_copy(dst=v_sb[0:PMAX, t, 0:J], src=v[t * PMAX:(t + 1) * PMAX, 0:J])
    for qt in range(M // PMAX):
        q0 = qt * PMAX
        scores = nl.ndarray((PMAX, N), dtype=nl.float32, buffer=nl.sbuf)
        bank_max = nl.ndarray((PMAX, nb), dtype=nl.float32, buffer=nl.sbuf)
        for b in range(nb):
            qk = nl.ndarray((PMAX, BANK), dtype=nl.float32, buffer=nl.psum)
            nisa.nc_matmul(qk, qT[0:D, q0:q0 + PMAX], kT[0:D, b * BANK:(b + 1) * BANK])
            nisa.tensor_scalar_reduce(dst=scores[0:PMAX, b * BANK:(b + 1) * BANK], data=qk,
                                      op0=nl.multiply, operand0=1.0, reduce_op=nl.maximum,
                                      reduce_res=bank_max[0:PMAX, b:b + 1])
        neg_max = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=neg_max, op=nl.maximum, data=bank_max, axis=1, keepdims=True,
                           negate=True)
        bias = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=bias, data=neg_max, op0=nl.multiply, operand0=SCALE,
                           engine=nisa.engine.vector)
        # the probabilities are transposed on TensorE: float32 on NeuronCore-v2 (see above)
        ted = nl.float32 if nisa.get_nc_version() == nisa.nc_version.gen2 else nl.bfloat16
        ex = nl.ndarray((PMAX, N), dtype=ted, buffer=nl.sbuf)
        bank_sum = nl.ndarray((PMAX, nb), dtype=nl.float32, buffer=nl.sbuf)
        for b in range(nb):
            nisa.activation(dst=ex[0:PMAX, b * BANK:(b + 1) * BANK], op=nl.exp,
                            data=scores[0:PMAX, b * BANK:(b + 1) * BANK], bias=bias,
                            scale=SCALE, reduce_op=nl.add, reduce_res=bank_sum[0:PMAX, b:b + 1],
                            reduce_cmd=nisa.reduce_cmd.reset_reduce)
        row_sum = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=row_sum, op=nl.add, data=bank_sum, axis=1, keepdims=True)
        inv = nl.ndarray((PMAX, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv, data=row_sum)
        exT = nl.ndarray((PMAX, nkt, PMAX), dtype=nl.bfloat16, buffer=nl.sbuf)
        for t in range(nkt):
            tp = nl.ndarray((PMAX, PMAX), dtype=ted, buffer=nl.psum)
            nisa.nc_transpose(dst=tp, data=ex[0:PMAX, t * PMAX:(t + 1) * PMAX])
            nisa.tensor_copy(dst=exT[0:PMAX, t, 0:PMAX], src=tp)
        acc = nl.ndarray((PMAX, J), dtype=nl.float32, buffer=nl.psum)
        for t in range(nkt):
            nisa.nc_matmul(acc, exT[0:PMAX, t, 0:PMAX], v_sb[0:PMAX, t, 0:J])
        out = nl.ndarray((PMAX, J), dtype=o.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=out, data=acc, op0=nl.multiply, operand0=inv,
                           engine=nisa.engine.vector)
        nisa.dma_copy(dst=o[q0:q0 + PMAX, 0:J], src=out)
    return o
