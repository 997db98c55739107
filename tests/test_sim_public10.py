"""Simulator fixes found by the mutation campaign over public current-API kernels
(benchmarks/public_mutants.py).

Each test is a small kernel of its own, pinned at the boundary of one rule:

* ``nc_matmul(..., is_transpose=True)`` on NeuronCore-v3+ (SH nki/api/nki/isa/__init__.py
  nc_matmul "Transpose mode" and nc_transpose, nki 0.3; SH nki/guides/architecture/
  trainium2_arch.rst "Built-in Transpose Support"): the moving operand is an identity matrix,
  and dst has the dtype of the data turned (the campaign's ``add-transpose`` mutants, a plain
  matmul flagged as a transpose, ran as a matmul and matched; nki-library's bf16 transposes
  into bf16 PSUM on gen3 were refused as "dst must be float32").
"""

from __future__ import annotations

import inspect
import os

import ml_dtypes
import numpy as np
import pytest

from nkigen import sim
from nkigen.sim.errors import SimError

HERE = os.path.abspath(__file__)

with sim.installed():
    import neuronxcc.nki.isa as cisa  # noqa: E402
    import neuronxcc.nki.language as cnl  # noqa: E402
    import nki  # noqa: E402
    import nki.isa as nisa  # noqa: E402
    import nki.language as nl  # noqa: E402
    from neuronxcc import nki as cnki  # noqa: E402

BF16 = ml_dtypes.bfloat16


@nki.jit
def _turn(x, m, sdt, ddt):
    """out = transpose-mode nc_matmul(stationary=x, moving=m), x and m cast to ``sdt`` on the
    way in, the PSUM result of dtype ``ddt`` cast to float32 on the way out."""
    p, f = x.shape
    n = m.shape[1]
    out = nl.ndarray((f, n), dtype=nl.float32, buffer=nl.shared_hbm)
    s = nl.ndarray((p, f), dtype=sdt, buffer=nl.sbuf)
    nisa.dma_copy(dst=s, src=x)
    mv = nl.ndarray((p, n), dtype=sdt, buffer=nl.sbuf)
    nisa.dma_copy(dst=mv, src=m)
    ps = nl.ndarray((f, n), dtype=ddt, buffer=nl.psum)
    nisa.nc_matmul(dst=ps, stationary=s, moving=mv, is_transpose=True)
    r = nl.ndarray((f, n), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=r, src=ps)
    nisa.dma_copy(dst=out, src=r)
    return out


def _mm_line() -> int:
    src, first = inspect.getsourcelines(_turn.fn if hasattr(_turn, "fn") else _turn)
    return first + next(i for i, ln in enumerate(src) if "is_transpose=True" in ln)


def _run(x, m, sdt, ddt, target):
    out = sim.run(_turn, [x, m, sdt, ddt], target).outputs
    return np.asarray(out[0] if isinstance(out, (tuple, list)) else out)


def _x(p: int, f: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((p, f)).astype(np.float32)


def _located(e: pytest.ExceptionInfo) -> None:
    assert f"{HERE}:{_mm_line()}:" in str(e.value), str(e.value)


def test_transpose_mode_moving_identity_passes_one_extra_one_fails():
    x = _x(32, 16)
    eye = np.eye(32, dtype=np.float32)
    # last legal: the identity (and a column selection of it) turns x exactly
    np.testing.assert_array_equal(_run(x, eye, nl.float32, nl.float32, "trn2"), x.T)
    np.testing.assert_array_equal(_run(x, eye[:, :8], nl.float32, nl.float32, "trn2"),
                                  x.T[:, :8])
    # first illegal: one more 1 in one column
    bad = eye.copy()
    bad[5, 0] = 1.0
    with pytest.raises(SimError, match="is_transpose=True needs an identity matrix") as e:
        _run(x, bad, nl.float32, nl.float32, "trn2")
    _located(e)
    assert "moving [32, 32] float32" in str(e.value)
    # a dense moving operand (the campaign's mutant: a matmul flagged as a transpose)
    with pytest.raises(SimError, match="identity matrix"):
        _run(x, _x(32, 32), nl.float32, nl.float32, "trn2")


def test_transpose_flag_on_neuroncore_v2_is_a_plain_matmul():
    """NeuronCore-v2 has no transpose mode: is_transpose=True only tags the matmul for the
    profiler (SH nc_matmul 'Transpose mode'), so any moving operand multiplies."""
    x, m = _x(32, 16), _x(32, 8)
    np.testing.assert_allclose(_run(x, m, nl.float32, nl.float32, "trn1"), x.T @ m,
                               rtol=1e-5, atol=1e-5)


def test_transpose_mode_dst_dtype_is_the_data_dtype():
    x = _x(32, 16)
    eye = np.eye(32, dtype=np.float32)
    want = x.astype(BF16).astype(np.float32).T
    # trn2: bf16 data -> bf16 PSUM passes (exact), float32 PSUM is refused
    np.testing.assert_array_equal(_run(x, eye, nl.bfloat16, nl.bfloat16, "trn2"), want)
    with pytest.raises(SimError, match="dst dtype must equal the stationary dtype") as e:
        _run(x, eye, nl.bfloat16, nl.float32, "trn2")
    _located(e)
    assert "dst float32 vs stationary bfloat16" in str(e.value)
    # trn1 (no transpose mode): the matmul's float32 dst, bf16 PSUM refused
    np.testing.assert_array_equal(_run(x, eye, nl.bfloat16, nl.float32, "trn1"), want)
    with pytest.raises(SimError, match="dst must be float32 PSUM"):
        _run(x, eye, nl.bfloat16, nl.bfloat16, "trn1")


def test_transpose_mode_float8_data_is_refused_on_v3():
    x = _x(32, 16)
    eye = np.eye(32, dtype=np.float32)
    np.testing.assert_array_equal(_run(x, eye, nl.bfloat16, nl.bfloat16, "trn2"),
                                  x.astype(BF16).astype(np.float32).T)
    with pytest.raises(SimError, match="16-bit elements"):
        _run(x, eye, nl.float8_e4m3, nl.float32, "trn2")


def _classic_turn(x, m, target):
    """Classic: the transpose-flagged nc_matmul of x by m, evicted to float32."""
    def k(a, b):
        t = cisa.nc_matmul(cnl.load(a), cnl.load(b), is_transpose=True)   # classic line
        out = cnl.ndarray(t.shape, dtype=cnl.float32, buffer=cnl.shared_hbm)
        cnl.store(out, value=cnl.copy(t))
        return out
    return np.asarray(cnki.simulate_kernel(cnki.jit(k, platform_target=target), x, m))


def test_classic_is_transpose_hint_needs_an_identity_on_v3():
    """S25 general/nki/api/nki/isa nc_matmul (SDK 2.25): is_transpose "hints to the compiler
    that this is a transpose operation with moving as an identity matrix"."""
    x = _x(32, 16)
    eye = np.eye(32, dtype=np.float32)
    np.testing.assert_array_equal(_classic_turn(x, eye, "trn2"), x.T)
    bad = eye.copy()
    bad[31, 31] = 0.0                  # one column without its 1
    with pytest.raises(SimError, match="is_transpose=True needs an identity matrix") as e:
        _classic_turn(x, bad, "trn2")
    src, first = inspect.getsourcelines(_classic_turn)
    line = first + next(i for i, ln in enumerate(src) if "# classic line" in ln)
    assert f"{HERE}:{line}:" in str(e.value), str(e.value)
    # NeuronCore-v2: a hint only, the product is computed
    np.testing.assert_allclose(_classic_turn(x, bad, "trn1"), x.T @ bad, rtol=1e-6, atol=1e-6)
