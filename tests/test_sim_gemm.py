"""nkigen.sim.gemm: an nc_matmul's product written into PSUM by one sgemm must give the reference
path's bits (``psum += s.T @ m`` / ``psum[...] = s.T @ m``), and must decline, writing nothing,
whenever it cannot promise them."""

from __future__ import annotations

import numpy as np
import pytest

from nkigen.sim import blas, gemm


def _bf16_valued(rng, shape) -> np.ndarray:
    """float32 values exactly representable in bfloat16 (what a widened operand holds)."""
    x = rng.standard_normal(shape, dtype=np.float32)
    return (x.view(np.uint32) & 0xFFFF0000).view(np.float32)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


needs_blas = pytest.mark.skipif(blas.symbol("cblas_sgemm") is None,
                                reason="NumPy's BLAS exports no ILP64 cblas_sgemm here")


@needs_blas
@pytest.mark.parametrize("k,m,n", [(128, 128, 512), (128, 128, 128), (64, 96, 200), (1, 2, 2),
                                   (128, 2, 512), (7, 128, 3)])
@pytest.mark.parametrize("acc", [False, True])
def test_into_gives_the_reference_bits(k, m, n, acc):
    rng = np.random.default_rng(k * 1000 + m + n)
    s, mv = _bf16_valued(rng, (k, m)), _bf16_valued(rng, (k, n))
    # a PSUM tile that is a slice of a wider bank (ldc > n), as kernels address it
    bank = rng.standard_normal((m, n + 24), dtype=np.float32)
    want = bank.copy()
    if acc:
        want[:, 8:8 + n] += np.matmul(s.T, mv)
    else:
        want[:, 8:8 + n] = np.matmul(s.T, mv)
    got = bank.copy()
    assert gemm.into(got[:, 8:8 + n], s, mv, acc)
    assert np.array_equal(_bits(got), _bits(want))


@needs_blas
def test_into_takes_strided_operands_blas_can_describe():
    rng = np.random.default_rng(1)
    wide_s, wide_m = _bf16_valued(rng, (128, 300)), _bf16_valued(rng, (128, 700))
    s, mv = wide_s[:, 10:138], wide_m[:, 100:612]       # row strides larger than the rows
    d = np.zeros((128, 512), np.float32)
    want = d.copy()
    want += np.matmul(s.T, mv)
    assert gemm.into(d, s, mv, True)
    assert np.array_equal(_bits(d), _bits(want))


@pytest.mark.parametrize("case", ["vector_m", "vector_n", "same_buffer", "step_2_operand",
                                  "f64_operand", "3d_psum", "read_only_psum"])
def test_into_declines_what_numpy_would_not_hand_to_sgemm(case):
    rng = np.random.default_rng(2)
    s, mv = _bf16_valued(rng, (64, 32)), _bf16_valued(rng, (64, 48))
    d = np.zeros((32, 48), np.float32)
    if case == "vector_m":          # NumPy computes a vector product with gemv/dot
        s, d = s[:, :1], d[:1]
    elif case == "vector_n":
        mv, d = mv[:, :1], d[:, :1]
    elif case == "same_buffer":     # NumPy computes x.T @ x with syrk
        mv, d = s, np.zeros((32, 32), np.float32)
    elif case == "step_2_operand":  # no BLAS leading dimension for a stepped view
        mv = _bf16_valued(rng, (64, 96))[:, ::2]
    elif case == "f64_operand":
        s = s.astype(np.float64)
    elif case == "3d_psum":
        d = d.reshape(32, 2, 24)
    elif case == "read_only_psum":
        d.flags.writeable = False
    before = d.copy()
    assert not gemm.into(d, s, mv, True)
    assert np.array_equal(_bits(d), _bits(before))


def test_into_declines_when_no_blas_symbol(monkeypatch):
    monkeypatch.setattr(gemm, "_fn", None)
    monkeypatch.setattr(blas, "symbol", lambda name: None)
    d = np.zeros((4, 4), np.float32)
    assert not gemm.into(d, np.ones((3, 4), np.float32), np.ones((3, 4), np.float32), False)
    assert not d.any()


@needs_blas
def test_into_declines_when_the_probe_finds_different_bits(monkeypatch):
    """A BLAS whose beta=1 path rounded differently must not be used: the probe compares
    against the reference expressions and a single differing bit turns the fast path off."""
    real = gemm._call

    def off_by_one_ulp(fn, d, s, m, acc):
        ok = real(fn, d, s, m, acc)
        if ok and acc:
            d.view(np.uint32)[0, 0] ^= 1
        return ok

    monkeypatch.setattr(gemm, "_fn", None)
    monkeypatch.setattr(gemm, "_call", off_by_one_ulp)
    d = np.zeros((8, 8), np.float32)
    assert not gemm.into(d, np.ones((4, 8), np.float32), np.ones((4, 8), np.float32), False)
    assert gemm._fn is False
