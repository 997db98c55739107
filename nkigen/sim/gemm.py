"""TensorE products straight into PSUM: one BLAS call per ``nc_matmul``, the add included.

Stage: simulate (numerics, fast path; off under ``NKIGEN_SIM_REFERENCE=1``). The reference path
computes an ``nc_matmul`` as ``r = numpy.matmul(s.T, m)`` (NumPy hands a float32 product of two
matrices to its BLAS ``sgemm`` with beta = 0) and then ``psum += r`` (or ``psum[...] = r``).
:func:`into` makes the same ``sgemm`` call itself, with the PSUM view as the output: beta = 1
for an accumulating matmul, beta = 0 for the first of a group. The product is accumulated in
the same BLAS kernel either way (the contraction is at most 128 long, within one BLAS K block),
and beta = 1 adds that float32 product to the PSUM value with one rounding, which is exactly
``psum + r``: no temporary product, no second pass over the PSUM tile.

That equivalence is a property of the BLAS kernel, so it is not assumed: the first call probes
it (:func:`_probe`: products of several shapes, ragged ones included, and NaN payloads, signed
zeros and infinities, compared bit for bit against the reference expressions) and :func:`into`
declines (returns False; the caller takes the reference path) when the probe fails, when
NumPy's BLAS does not export ``cblas_sgemm``, or for operands NumPy itself would not hand to
``sgemm`` (a vector shape, one buffer used as both operands, strides BLAS cannot describe).
tests/test_sim_equivalence.py compares every shipped
spec's outputs with the reference path.
"""

from __future__ import annotations

import ctypes

import numpy as np

from nkigen.sim import blas

_F32 = np.dtype(np.float32)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_fn = None          # the bound cblas_sgemm once probed; False when unavailable or unequal


def _bind():
    fn = blas.symbol("cblas_sgemm")
    if fn is None:
        return None
    i = ctypes.c_int64
    f, p = ctypes.c_float, ctypes.c_void_p
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i, i, i, f, p, i, p, i, f, p, i]
    fn.restype = None
    return fn


def _ld(a: np.ndarray) -> int:
    """The leading dimension of a row-major 2-D float32 view, or 0 when BLAS cannot take it."""
    s0, s1 = a.strides
    if s1 != 4 or s0 % 4 or s0 < 4 * a.shape[1]:
        return 0
    return s0 // 4


def _call(fn, d: np.ndarray, s: np.ndarray, m: np.ndarray, acc: bool) -> bool:
    k, mm = s.shape
    n = m.shape[1]
    lda, ldb, ldc = _ld(s), _ld(m), _ld(d)
    if not (lda and ldb and ldc) or mm < 2 or n < 2 or s.ctypes.data == m.ctypes.data or \
            not d.flags.writeable:
        return False
    fn(_ROW_MAJOR, _TRANS, _NO_TRANS, mm, n, k, 1.0, s.ctypes.data, lda, m.ctypes.data, ldb,
       1.0 if acc else 0.0, d.ctypes.data, ldc)
    return True


def _probe(fn) -> bool:
    """Whether this BLAS gives the reference path's bits for both store and accumulate."""
    rng = np.random.default_rng(7)
    for k, mm, n in ((128, 128, 512), (128, 128, 128), (96, 77, 130), (128, 3, 5), (1, 64, 2)):
        # bfloat16-representable inputs, as TensorE operands are after widening
        s = (rng.standard_normal((k, mm), dtype=np.float32).view(np.uint32) & 0xFFFF0000) \
            .view(np.float32)
        m = (rng.standard_normal((k, n), dtype=np.float32).view(np.uint32) & 0xFFFF0000) \
            .view(np.float32)
        base = rng.standard_normal((mm, n), dtype=np.float32)
        want0 = np.matmul(s.T, m)
        want1 = base.copy()
        want1 += np.matmul(s.T, m)
        got0 = np.full((mm, n), np.nan, np.float32)
        got1 = base.copy()
        if not (_call(fn, got0, s, m, False) and _call(fn, got1, s, m, True)):
            return False
        if not (np.array_equal(got0.view(np.uint32), want0.view(np.uint32)) and
                np.array_equal(got1.view(np.uint32), want1.view(np.uint32))):
            return False
    return _probe_specials(fn)


def _probe_specials(fn) -> bool:
    """Special values keep their bits too: NaN payloads in PSUM and in a product (which NaN an
    add returns is the instruction's operand order), signed zeros, opposite infinities."""
    u = np.uint32
    s = np.ones((4, 8), np.float32)
    s[:, 1] = 0.0                                       # column 1: products of -0.0 ...
    s[0, 2], s[1, 2] = np.inf, -np.inf                  # column 2: inf - inf
    m = np.ones((4, 8), np.float32)
    m[:, 1] = -1.0
    m.view(u)[0, 0] = 0x7FC01234                        # a NaN with a payload in the product
    base = np.ones((8, 8), np.float32)
    base.view(u)[0, 0] = 0xFFC05678                     # ... and another one in PSUM
    base[1, :] = -0.0                                   # ... added to -0.0
    base.view(u)[2, 0] = 0x7FC00042
    with np.errstate(invalid="ignore"):
        want = base.copy()
        want += np.matmul(s.T, m)
    got = base.copy()
    return _call(fn, got, s, m, True) and np.array_equal(got.view(u), want.view(u))


def into(d: np.ndarray, s: np.ndarray, m: np.ndarray, acc: bool) -> bool:
    """``d += s.T @ m`` (``acc``) or ``d[...] = s.T @ m`` with one ``sgemm``, the reference
    path's bits; False (nothing written) when this call cannot promise them."""
    global _fn
    fn = _fn
    if fn is None:
        fn = _bind()
        fn = _fn = fn if fn is not None and _probe(fn) else False
    if fn is False or d.dtype != _F32 or s.dtype != _F32 or m.dtype != _F32 or \
            d.ndim != 2 or s.ndim != 2 or m.ndim != 2:
        return False
    return _call(fn, d, s, m, acc)
