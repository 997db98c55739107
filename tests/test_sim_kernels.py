"""Simulator numerics: the test kernels in tests/sim_kernels match NumPy float64 references."""

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from nkigen import sim

KDIR = Path(__file__).parent / "sim_kernels"
rng = np.random.default_rng(0)


def kernel(file: str, name: str):
    return sim.load(KDIR / file, name)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def test_tiled_add_matches_numpy():
    a, b = randn(256, 512), randn(256, 512)
    out = sim.simulate(kernel("basic.py", "tiled_add"))(a, b)
    np.testing.assert_array_equal(out, a + b)


def test_isa_add_ragged_rows():
    a, b = randn(300, 64), randn(300, 64)
    np.testing.assert_array_equal(sim.simulate(kernel("basic.py", "isa_add"))(a, b), a + b)


def test_spmd_grid_covers_all_blocks():
    a, b = randn(256, 512), randn(256, 512)
    k = kernel("basic.py", "spmd_add")
    np.testing.assert_array_equal(k[2, 2](a, b), a + b)
    res = sim.run(k[2, 2], [a, b])
    assert {i.program for i in res.instrs} == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("name", ["softmax", "softmax_nl"])
def test_softmax(name):
    x = randn(256, 300)
    x64 = x.astype(np.float64)
    ref = np.exp(x64 - x64.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(sim.simulate(kernel("basic.py", name))(x), ref, rtol=1e-5,
                               atol=1e-7)


def test_softmax_reduction_broadcasts_per_partition_when_square():
    # free size == partition size: a [P] reduction must broadcast along the free axis
    x = randn(128, 128)
    ref = np.exp(x - x.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(sim.simulate(kernel("basic.py", "softmax_nl"))(x), ref,
                               rtol=1e-5, atol=1e-7)


def test_rmsnorm():
    x, w = randn(256, 1024), randn(1, 1024)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt((x64 * x64).mean(1, keepdims=True) + 1e-6) * w
    np.testing.assert_allclose(sim.simulate(kernel("basic.py", "rmsnorm"))(x, w), ref,
                               rtol=1e-5, atol=1e-5)


def test_layernorm_bn_stats_bn_aggr():
    x, g, b = randn(128, 1024) * 3 + 1, randn(1, 1024), randn(1, 1024)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5) * g + b
    np.testing.assert_allclose(sim.simulate(kernel("basic.py", "layernorm"))(x, g, b), ref,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["matmul_tiled", "matmul_hoisted", "matmul_blocked"])
def test_matmul_variants_bf16(name):
    lhsT = randn(256, 256, dtype=ml_dtypes.bfloat16)
    rhs = randn(256, 1024, dtype=ml_dtypes.bfloat16)
    out = sim.simulate(kernel("matmul.py", name))(lhsT, rhs)
    assert out.dtype == ml_dtypes.bfloat16
    ref = lhsT.astype(np.float64).T @ rhs.astype(np.float64)
    # fp32 accumulation of exact bf16 products, then one rounding to bf16
    np.testing.assert_allclose(out.astype(np.float64), ref, rtol=2**-8, atol=1e-3)


def test_matmul_implicit_accumulation_flags():
    lhsT, rhs = randn(384, 128), randn(384, 512)
    res = sim.run(kernel("matmul.py", "matmul_tiled"), [lhsT, rhs])
    mm = [i for i in res.instrs if i.op == "nc_matmul"]
    assert [i.accumulate for i in mm] == [False, True, True]
    assert all(i.stationary_free == 128 and i.moving_free == 512 for i in mm)
    assert [i.loops[-1][:2] for i in mm] == [("affine", 0), ("affine", 1), ("affine", 2)]
    np.testing.assert_allclose(res.outputs[0], lhsT.astype(np.float64).T @ rhs, rtol=1e-5,
                               atol=1e-4)


def test_nl_matmul_untransposed():
    x, y = randn(64, 128), randn(128, 512)
    np.testing.assert_allclose(sim.simulate(kernel("matmul.py", "matmul_nl"))(x, y), x @ y,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["transpose_pe", "transpose_dma"])
def test_transposes(name):
    x = randn(96, 128)
    np.testing.assert_array_equal(sim.simulate(kernel("matmul.py", name))(x), x.T)
