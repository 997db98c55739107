"""Classic (neuronxcc.nki) API layer of the simulator: test kernels vs NumPy, strictness,
trace parity with the current API, device-only decorators."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from nkigen import sim
from nkigen.sim.classic import zeroing
from nkigen.sim.errors import SimError, UnsupportedError

KERNELS = Path(__file__).parent / "classic_kernels" / "basic.py"

with sim.installed():
    import neuronxcc.nki.isa as nisa  # noqa: E402
    import neuronxcc.nki.language as nl  # noqa: E402
    from neuronxcc import nki  # noqa: E402


def k(name: str):
    return sim.load(KERNELS, name)


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_modules_resolve_under_installed():
    with sim.installed():
        import neuronxcc
        import neuronxcc.nki.typing as nt
        assert neuronxcc.nki is nki and nki.language is nl and nki.isa is nisa
        assert nt.tensor[[128, 64], nl.bfloat16].shape == (128, 64)


@pytest.mark.parametrize("rows", [128, 300, 5])
def test_exp_ragged_mask(rows):
    x = rand(rows, 96)
    np.testing.assert_allclose(nki.simulate_kernel(k("exp_ragged"), x), np.exp(x), rtol=1e-6)


def test_masked_out_lanes_are_not_computed_or_bounds_checked():
    x = rand(130, 8)
    res = sim.run(k("exp_ragged"), [x], report=False)
    tile_rows = [i.partitions for i in res.instrs if i.op == "dma_copy"]
    assert tile_rows == [128, 128, 2, 2]
    acts = [i.partitions for i in res.instrs if i.engine.value == "scalar"]
    assert acts == [128, 2]


def test_mgrid_and_strided_free_index():
    a, b = rand(128, 512), rand(128, 512, seed=1)
    np.testing.assert_allclose(nki.simulate_kernel(k("add_mgrid"), a, b), a + b, rtol=1e-6)
    x = rand(64, 40)
    np.testing.assert_allclose(nki.simulate_kernel(k("even_odd_cols"), x),
                               x[:, 0::2] - x[:, 1::2], rtol=1e-6)


@pytest.mark.parametrize("rows,cols", [(200, 300), (128, 512), (7, 9)])
def test_two_axis_masks(rows, cols):
    x = rand(rows, cols)
    want = np.zeros_like(x)
    want[:, 3:cols - 2] = x[:, 3:cols - 2] * 1.5
    np.testing.assert_allclose(nki.simulate_kernel(k("ragged_cols_rows"), x, 1.5), want,
                               rtol=1e-6)


def test_matmul_psum_accumulation_is_one_tensor_instruction_per_k():
    lhsT = rand(384, 256).astype(ml_dtypes.bfloat16)
    rhs = rand(384, 1024, seed=1).astype(ml_dtypes.bfloat16)
    res = sim.run(k("matmul_psum"), [lhsT, rhs], report=False)
    want = lhsT.astype(np.float32).T @ rhs.astype(np.float32)
    np.testing.assert_allclose(res.outputs[0].astype(np.float32), want, rtol=2e-2, atol=0.3)
    mms = [i for i in res.instrs if i.op == "nc_matmul"]
    assert len(mms) == 2 * 2 * 3
    assert [i.accumulate for i in mms] == [False, True, True] * 4   # zeros: first one resets
    assert not [i for i in res.instrs if i.op in ("tensor_tensor", "memset", "nl.full")]
    with zeroing.eager():
        eager = sim.run(k("matmul_psum"), [lhsT, rhs], report=False)
    np.testing.assert_array_equal(eager.outputs[0], res.outputs[0])
    assert all(i.accumulate for i in eager.instrs if i.op == "nc_matmul")
    assert sum(1 for i in eager.instrs if i.engine.value == "vector"
               and i.writes[0].mem.value == "psum") == 4


def test_zeroed_psum_read_before_written_gets_its_memset_back():
    a, b = rand(128, 128), rand(128, 512, seed=1)
    res = sim.run(k("zero_read"), [a, b], report=False)
    want = np.zeros((128, 512), np.float32)
    want[:64] = a[:, :64].T @ b + a[:, 64:].T @ b
    np.testing.assert_allclose(res.outputs[0], want, rtol=1e-4, atol=1e-4)
    with zeroing.eager():
        eager = sim.run(k("zero_read"), [a, b], report=False)
    sig = [(i.engine, i.op, i.accumulate, len(i.reads)) for i in res.instrs]
    assert sig == [(i.engine, i.op, i.accumulate, len(i.reads)) for i in eager.instrs]
    ops = [i.op for i in res.instrs]
    assert ops.index("memset") < ops.index("nc_matmul")


def test_nl_matmul_and_plain_matmul():
    x, y = rand(64, 256), rand(256, 512, seed=1)
    got = nki.simulate_kernel(k("matmul_nl"), x, y)
    want = x @ y - x[:, :128] @ y[:128]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_sbuf_accumulate_with_par_dim_blocks():
    lhsT, rhs = rand(256, 64), rand(256, 128, seed=1)
    res = sim.run(k("sbuf_accumulate"), [lhsT, rhs], report=False)
    np.testing.assert_allclose(res.outputs[0], lhsT.T @ rhs, rtol=1e-4, atol=1e-4)
    adds = [i for i in res.instrs if i.op == "tensor_tensor"]
    assert len(adds) == 2 and all(i.engine.value == "vector" for i in adds)


@pytest.mark.parametrize("rows", [128, 250])
def test_softmax(rows):
    x = rand(rows, 128)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(nki.simulate_kernel(k("softmax"), x),
                               e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows,cols", [(300, 1000), (128, 128)])
def test_layernorm_v1(rows, cols):
    x, g, b = rand(rows, cols), rand(cols, seed=1), rand(cols, seed=2)
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    want = (x - mu) / np.sqrt(var + 1e-5) * g + b
    np.testing.assert_allclose(nki.simulate_kernel(k("layernorm_v1"), x, g, b), want,
                               rtol=1e-4, atol=1e-4)


def test_maxpool_5d_index():
    x = rand(16, 8, 12)
    want = x.reshape(16, 4, 2, 6, 2).max(axis=(2, 4))
    np.testing.assert_allclose(nki.simulate_kernel(k("maxpool2d"), x), want)


def test_affine_select_and_iota():
    x = rand(64, 64)
    out, idx = nki.simulate_kernel(k("iota_select"), x)
    ip, jf = np.mgrid[0:64, 0:64]
    np.testing.assert_array_equal(out, np.where(ip >= jf, x, -9984.0))
    np.testing.assert_array_equal(idx, (ip * 64 + jf).astype(np.float32))


def test_bn_stats_aggr():
    x = rand(128, 700)
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    np.testing.assert_allclose(nki.simulate_kernel(k("bn_layernorm"), x),
                               (x - mu) / np.sqrt(var), rtol=1e-4, atol=1e-4)


def test_output_argument_convention():
    a, b = rand(128, 64), rand(128, 64, seed=1)
    c = np.zeros_like(a)
    got = k("add_out_arg")(a, b, c)
    np.testing.assert_allclose(got, a + b, rtol=1e-6)
    np.testing.assert_allclose(c, a + b, rtol=1e-6)          # written back by reference
    c2 = np.zeros_like(a)
    np.testing.assert_allclose(nki.simulate_kernel(k("add_out_arg"), a, b, c2), a + b)


def test_mutable_parameter_returned():
    a, acc = rand(128, 32), rand(128, 32, seed=1)
    np.testing.assert_allclose(nki.simulate_kernel(k("add_mutable"), a, acc.copy()), acc + a)


def test_transposes_and_platform_target():
    x = rand(128, 96)
    res = sim.run(k("transposes"), [x], report=False)
    assert res.target == "trn1"
    np.testing.assert_array_equal(res.outputs[0], x.T)
    np.testing.assert_array_equal(res.outputs[1], x[:32, :32].T)
    engines = [i.engine.value for i in res.instrs if i.op == "nc_transpose"]
    assert engines == ["tensor", "vector"]


# ---- strictness --------------------------------------------------------------------------
def test_unmasked_out_of_bounds_index_is_an_error():
    @nki.jit
    def bad(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(x.shape[1])[None, :]
        nl.store(out[i_p, i_f], value=nl.load(x[i_p, i_f]))
        return out

    with pytest.raises(SimError, match="index out of bounds"):
        nki.simulate_kernel(bad, rand(100, 8))


@pytest.mark.parametrize("case", ["1d", "mixed", "pstride", "and", "triangle", "indirect"])
def test_index_and_mask_rules(case):
    @nki.jit
    def bad(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i_p = nl.arange(64)[:, None]
        i_f = nl.arange(64)[None, :]
        if case == "1d":
            nl.load(x[nl.arange(64), i_f])
        elif case == "mixed":
            nl.load(x[i_p, 0:64])
        elif case == "pstride":
            t = nl.load(x[i_p, i_f])
            nl.exp(t[2 * nl.arange(32)[:, None], i_f])
        elif case == "and":
            nl.load(x[i_p, i_f], mask=(i_p < 3) and (i_f < 3))
        elif case == "indirect":
            idx = nl.load(x[i_p, nl.arange(1)[None, :]])
            nl.load(x[idx[i_p, 0], i_f])
        else:
            nl.exp(nl.load(x[i_p, i_f]), mask=(i_p >= i_f))
        return out

    err = UnsupportedError if case == "triangle" else SimError
    with pytest.raises(err):
        nki.simulate_kernel(bad, rand(64, 64))


@pytest.mark.parametrize("loop", ["affine_range", "sequential_range"])
def test_loop_index_conditions(loop):
    @nki.jit
    def kern(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        for i in getattr(nl, loop)(2):
            if (i < 1) & (i >= 0):                     # resolved per iteration
                nl.store(out[0:64, :], value=nl.load(x[0:64, :]))
            else:
                nl.store(out[i * 64:(i + 1) * 64, :], value=nl.load(x[nl.ds(i * 64, 64), :]))
        return out

    @nki.jit
    def lanes(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        for i in getattr(nl, loop)(2):
            if i * 64 + nl.arange(64)[:, None] < 100:   # one value per lane: no truth value
                nl.store(out, value=nl.load(x))
        return out

    @nki.jit
    def bare(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        for i in getattr(nl, loop)(2):
            if i:
                nl.store(out, value=nl.load(x))
        return out

    x = rand(128, 8)
    np.testing.assert_array_equal(nki.simulate_kernel(kern, x), x)
    with pytest.raises(SimError, match="nl.arange lanes"):
        nki.simulate_kernel(lanes, x)
    with pytest.raises(SimError, match="traces an nl.affine_range"):
        nki.simulate_kernel(bare, x)


def test_block_tensor_must_be_indexed_before_compute():
    @nki.jit
    def bad(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((2, nl.par_dim(64), 64), dtype=x.dtype)
        nl.exp(t)
        return out

    with pytest.raises(SimError, match="block dimensions"):
        nki.simulate_kernel(bad, rand(64, 64))


def test_unknown_api_names_raise():
    with pytest.raises(UnsupportedError, match="neuronxcc.nki.language.no_such_fn"):
        nl.no_such_fn  # noqa: B018
    with pytest.raises(UnsupportedError, match="neuronxcc.nki.isa.no_such_isa"):
        nisa.no_such_isa  # noqa: B018


def test_device_only_decorators():
    def kern(a):
        return a

    with pytest.raises(UnsupportedError, match="nki.benchmark"):
        nki.benchmark(warmup=1, iters=2)(kern)(rand(4, 4))
    with pytest.raises(UnsupportedError, match="nki.profile"):
        nki.profile(working_directory="/tmp/x")(kern)(rand(4, 4))
    with pytest.raises(UnsupportedError, match="baremetal"):
        nki.baremetal(save_neff_name="k.neff")(kern)(rand(4, 4))
    with pytest.raises(UnsupportedError, match="mode='benchmark'"):
        nki.jit(kern, mode="benchmark")(rand(4, 4))


# ---- same core, same trace ---------------------------------------------------------------
CURRENT = '''
import nki
import nki.isa as nisa
import nki.language as nl


@nki.jit
def mm(lhsT, rhs):
    K, M = lhsT.shape
    _, N = rhs.shape
    out = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.psum)
    for k in nl.affine_range(K // 128):
        a = nl.ndarray((128, M), dtype=lhsT.dtype, buffer=nl.sbuf)
        b = nl.ndarray((128, N), dtype=rhs.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=a, src=lhsT[k * 128:(k + 1) * 128, :])
        nisa.dma_copy(dst=b, src=rhs[k * 128:(k + 1) * 128, :])
        nisa.nc_matmul(acc[0:M, 0:N], a, b)    # auto: the first overwrites, as classic +=
    r = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.sbuf)
    e = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=r, src=acc)
    nisa.activation(dst=e, op=nl.exp, data=r)
    nisa.dma_copy(dst=out, src=e)
    return out
'''

CLASSIC = '''
from neuronxcc import nki
import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl


@nki.jit
def mm(lhsT, rhs):
    K, M = lhsT.shape
    _, N = rhs.shape
    out = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.psum)
    for k in nl.affine_range(K // 128):
        a = nl.ndarray((128, M), dtype=lhsT.dtype, buffer=nl.sbuf)
        b = nl.ndarray((128, N), dtype=rhs.dtype, buffer=nl.sbuf)
        a[...] = nl.load(lhsT[k * 128:(k + 1) * 128, :])
        b[...] = nl.load(rhs[k * 128:(k + 1) * 128, :])
        acc[0:M, 0:N] += nisa.nc_matmul(a, b)
    r = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.sbuf)
    e = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.sbuf)
    r[...] = nisa.tensor_copy(acc)
    e[...] = nisa.activation(op=nl.exp, data=r)
    nl.store(out, value=e)
    return out
'''


def _sig(ins):
    # the accumulate flag differs by design: classic ``acc += nc_matmul`` accumulates every
    # time, the current API's accumulate=None overwrites on the first write (SH nc_matmul;
    # accumulate=True on a fresh PSUM location is undefined) -- checked separately below
    return (ins.engine, ins.op.rsplit(".", 1)[-1].replace("store", "dma_copy"), ins.partitions,
            ins.free, ins.dtype, ins.out_dtype,
            tuple((r.mem, r.p0, r.p1, r.b0, r.b1) for r in ins.writes))


def test_trace_parity_with_current_api(tmp_path):
    (tmp_path / "cur.py").write_text(CURRENT)
    (tmp_path / "cls.py").write_text(CLASSIC)
    lhsT, rhs = np.zeros((256, 64), np.float32), np.zeros((256, 128), np.float32)
    a = sim.run(sim.load(tmp_path / "cur.py", "mm"), [lhsT, rhs])
    b = sim.run(sim.load(tmp_path / "cls.py", "mm"), [lhsT, rhs])
    assert [_sig(i) for i in a.instrs] == [_sig(i) for i in b.instrs]
    assert [i.accumulate for i in a.instrs if i.op == "nc_matmul"] == [False, True]
    assert a.report is not None and a.report.latency_us == b.report.latency_us
    assert (a.peak_sbuf_bytes, a.peak_psum_bytes) == (b.peak_sbuf_bytes, b.peak_psum_bytes)


@pytest.mark.parametrize("rows", [128, 77])
def test_isa_calls_with_masks(rows):
    x, y = rand(rows, 16), rand(rows, 16, seed=1)
    got = nki.simulate_kernel(k("isa_zoo"), x, y)
    col = y.sum(axis=1, keepdims=True)
    scan = np.zeros_like(x)
    prev = np.zeros(rows, np.float32)
    for i in range(16):
        prev = x[:, i] * prev + y[:, i]
        scan[:, i] = prev
    want = [x * y, (x - col) * 0.5, np.exp(x * 0.25 + col), x * 2 + y, scan,
            1 / (np.abs(y) + 1), np.full_like(x, 3.0)]
    for j, w in enumerate(want):
        np.testing.assert_allclose(got[:, 16 * j:16 * (j + 1)], w, rtol=1e-5, atol=1e-5,
                                   err_msg=f"block {j}")
    np.testing.assert_allclose(got[:, 112], x.max(axis=1), rtol=1e-6)


def test_transposing_store_and_spmd_grid():
    x = rand(64, 48)
    np.testing.assert_array_equal(nki.simulate_kernel(k("transposing_store"), x), x.T)
    a = rand(384, 32)
    got = k("spmd_scale")[3](a)
    np.testing.assert_allclose(got, a * np.repeat([1, 2, 3], 128)[:, None], rtol=1e-6)


def test_cost_only_with_typing_placeholders():
    with sim.installed():
        import neuronxcc.nki.typing as nt
    res = sim.run(k("matmul_psum"), [nt.tensor[[1024, 512], nl.bfloat16],
                                     nt.tensor[[1024, 1024], nl.bfloat16]], numerics=False)
    assert res.outputs[0].shape == (512, 1024)
    assert sum(1 for i in res.instrs if i.op == "nc_matmul") == 4 * 2 * 8
    assert res.report.latency_us > 0


@pytest.mark.parametrize("rows", [256, 200])
def test_rmsnorm_tutorial_style(rows):
    a, g = rand(rows, 96), rand(96, seed=1)
    want = a / np.sqrt((a * a).mean(axis=1, keepdims=True)) * g
    np.testing.assert_allclose(nki.simulate_kernel(k("rmsnorm_rows"), a, g), want,
                               rtol=1e-4, atol=1e-5)


def test_masked_matmul_computes_the_box_only():
    lhsT, rhs = rand(128, 64), rand(128, 96, seed=1)
    res = sim.run(k("matmul_masked"), [lhsT, rhs], report=False)
    np.testing.assert_allclose(res.outputs[0], (lhsT.T @ rhs)[:40], rtol=1e-4, atol=1e-4)
    (mm,) = [i for i in res.instrs if i.op == "nc_matmul"]
    assert mm.stationary_free == 40 and mm.moving_free == 96


def test_topk_partition_reduce_where():
    x = rand(16, 40)
    top, idx, rest, colmax, eye = nki.simulate_kernel(k("topk_where"), x)
    np.testing.assert_array_equal(eye, np.eye(16))
    order = np.argsort(-x, axis=1)[:, :8]
    np.testing.assert_array_equal(top, np.take_along_axis(x, order, axis=1))
    np.testing.assert_array_equal(idx, order.astype(np.float32))
    replaced = x.copy()
    np.put_along_axis(replaced, order, 0.0, axis=1)
    np.testing.assert_array_equal(rest[:, 1:], replaced[:, 1:])
    np.testing.assert_array_equal(rest[:, 0], np.where(x[:, 0] > 0, x[:, 0], 0.0))
    np.testing.assert_array_equal(colmax[0], x.max(axis=0))


def test_tensor_scalar_reduce_and_range_select():
    @nki.jit(platform_target="trn2")
    def kern(x):
        out = nl.ndarray((64, 32), dtype=nl.float32, buffer=nl.shared_hbm)
        red = nl.ndarray((64, 2), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        s = nl.ndarray((64, 1), dtype=nl.float32)
        y = nisa.tensor_scalar_reduce(data=t, op0=np.multiply, operand0=2.0,
                                      reduce_op=np.add, reduce_res=s)
        nl.store(out, value=y)
        nl.store(red[:, 0:1], value=s)
        mx = nl.ndarray((64, 1), dtype=nl.float32)
        lo = nisa.memset((64, 1), 4.0, dtype=nl.float32)   # bounds are fp32 tiles (S25 doc)
        hi = nisa.memset((64, 1), 9.0, dtype=nl.float32)
        nisa.range_select(on_true_tile=t, comp_op0=np.greater_equal, comp_op1=np.less,
                          bound0=lo, bound1=hi, reduce_res=mx, reduce_op=np.max)
        nl.store(red[:, 1:2], value=mx)
        return out, red

    x = rand(64, 32)
    out, red = nki.simulate_kernel(kern, x)
    np.testing.assert_allclose(out, 2 * x, rtol=1e-6)
    np.testing.assert_allclose(red[:, 0], (2 * x).sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(red[:, 1], x[:, 4:9].max(axis=1), rtol=1e-6)


def test_partition_broadcast_psum_store_and_small_apis():
    @nki.jit
    def kern(a, b):
        out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        mm = nl.ndarray((64, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        scratch = nl.ndarray((2, nl.par_dim(8), 4), dtype=nl.float32, buffer=nl.hbm)
        assert scratch.shape == (2, 8, 4)
        x = nl.load(a)                        # [128, 64]
        row = nl.load(b[0:1, :])              # [1, 64]: broadcast across partitions
        col = nl.load(a[:, 0:1])              # [128, 1]: broadcast along the free dim
        y = nl.add(nl.add(x, row), nl.maximum(col, nl.fp32.min))
        nl.store(out, value=y)
        nl.store(mm, value=nisa.nc_matmul(x[:, 0:64], x[:, 0:64]))   # PSUM value
        r = nl.rand((4, 4))
        assert r.shape == (4, 4)
        return out, mm

    a, b = rand(128, 64), rand(2, 64, seed=1)
    res = sim.run(kern, [a, b], report=False)
    out, mm = res.outputs
    np.testing.assert_allclose(out, a + b[0:1] + a[:, 0:1], rtol=1e-6)
    np.testing.assert_allclose(mm, a.T @ a, rtol=1e-4, atol=1e-3)
    assert "broadcast_to" in [i.op for i in res.instrs]
    i_store = [i.op for i in res.instrs].index("nc_matmul") + 1
    assert res.instrs[i_store].op == "tensor_copy"       # PSUM staged through SBUF


def test_spmd_dim_and_compiler_stub():
    @nki.jit
    def kern(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        nl.store(out[i * 32:(i + 1) * 32, :], value=nl.load(a[i * 32:(i + 1) * 32, :]))
        return out

    a = rand(128, 8)
    np.testing.assert_array_equal(kern[nl.spmd_dim(nl.nc(2), 2)](a), a)
    np.testing.assert_array_equal(kern[nl.nc(2) * 2](a), a)
    with sim.installed():
        import neuronxcc.nki.compiler as ncc
    assert callable(ncc.sbuf.mod_alloc)          # direct allocation is simulated
    with pytest.raises(UnsupportedError, match="compiler.no_such_api"):
        ncc.no_such_api  # noqa: B018


def test_reduce_over_window_axes_and_rank1_load():
    x = rand(16, 8, 12)
    out, first = nki.simulate_kernel(k("avgpool_axes_2_4"), x)
    np.testing.assert_allclose(out, x.reshape(16, 4, 2, 6, 2).mean(axis=(2, 4)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(first[:, 0], x[:, 0, 0])


def test_masked_slice_past_the_end_finfo_mgrid_z_where_broadcast():
    @nki.jit
    def kern(x):
        rows, cols = x.shape
        out = nl.ndarray((rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
        ext = nl.ndarray((2, 2, 2, 2), dtype=x.dtype, buffer=nl.shared_hbm)
        for t in nl.affine_range((rows + 127) // 128):
            i_p = t * 128 + nl.arange(128)[:, None]
            v = nl.ndarray((128, cols), dtype=x.dtype)
            nisa.dma_copy(dst=v, src=x[t * 128:(t + 1) * 128, :], mask=(i_p < rows))
            low = nl.full((1, cols), nl.finfo(x.dtype).min, dtype=x.dtype)
            y = nl.where(nl.greater(v, 0.0), v, low)          # [1, C] broadcast to [128, C]
            nl.store(out[t * 128:(t + 1) * 128, :], value=y, mask=(i_p < rows))
        g = nl.mgrid[0:2, 0:2, 0:2, 0:2]
        e = nisa.iota(8 * g.p + 4 * g.x + 2 * g.y + g.z, dtype=nl.float32)
        nl.store(ext.reshape(shape=(2, 2, 2, 2)), value=e)
        return out, ext

    x = rand(200, 16)
    out, ext = nki.simulate_kernel(kern, x)
    np.testing.assert_array_equal(out, np.where(x > 0, x, np.finfo(np.float32).min))
    np.testing.assert_array_equal(ext.reshape(-1), np.arange(16, dtype=np.float32))


def test_loop_index_comparison_is_a_mask():
    @nki.jit
    def kern(x):
        out = nl.ndarray((4, 128, 8), dtype=x.dtype, buffer=nl.shared_hbm)
        for i in nl.affine_range(4):
            t = nl.load(x)
            causal = i >= 2                         # a trace-time predicate, not a bool
            nl.store(out[i], value=nl.copy(t), mask=causal)
            nl.store(out[i], value=nl.negative(t), mask=(i < 2) & (nl.arange(8)[None, :] < 8))
        return out

    x = rand(128, 8)
    got = nki.simulate_kernel(kern, x)
    np.testing.assert_array_equal(got, np.stack([-x, -x, x, x]))


def test_assigning_a_masked_result_writes_only_its_box():
    @nki.jit
    def kern(x):
        out = nl.ndarray((2, 128, 8), dtype=x.dtype, buffer=nl.shared_hbm)
        buf = nl.ndarray((128, 8), dtype=x.dtype)
        buf[...] = nl.load(x)
        for i in nl.sequential_range(2):                     # iteration 1 rewrites what 0 read
            y = nl.negative(buf, mask=(i >= 1))            # skipped when i == 0
            z = nl.copy(buf)                                 # y is no longer the latest result
            buf[...] = y
            nl.store(out[i], value=nl.add(buf, z))
        return out

    x = rand(128, 8)
    got = nki.simulate_kernel(kern, x)
    np.testing.assert_array_equal(got[0], 2 * x)
    np.testing.assert_array_equal(got[1], np.zeros_like(x))


def test_indirect_gather_scatter():
    data = rand(64, 16)
    uniq = np.array([5, 0, 63, 7, 8, 31, 2, 40], np.int32)
    picked, even, scattered, clipped = nki.simulate_kernel(k("gather_scatter"), data, uniq)
    np.testing.assert_array_equal(picked, data[uniq])
    np.testing.assert_array_equal(even, data[0::2])
    want = np.zeros_like(data)
    want[uniq] = data[:8]
    np.testing.assert_array_equal(scattered, want)
    rows = 3 * np.arange(8)
    np.testing.assert_array_equal(clipped, np.where((rows < 64)[:, None], data[rows % 64], -1))
    res = sim.run(k("gather_scatter"), [data, uniq], report=False)
    assert sum(1 for i in res.instrs if i.attrs.get("indirect")) == 4
    bad = np.array([5, 0, 64, 7, 8, 31, 2, 40], np.int32)
    with pytest.raises(SimError, match="indirect index out of bounds"):
        nki.simulate_kernel(k("gather_scatter"), data, bad)


def test_integer_true_division_and_floor_idiom():
    @nki.jit
    def kern(x):
        out = nl.ndarray((128, 2), dtype=nl.float32, buffer=nl.shared_hbm)
        pos = nisa.iota(2176 + nl.arange(128)[:, None], dtype=nl.int32)
        h = nl.floor(pos / 38, dtype=nl.int32)              # operator: true division
        w = nl.mod(pos, 38, dtype=nl.int32)
        r = nl.ndarray((128, 2), dtype=nl.float32)
        r[:, 0:1] = nl.copy(h, dtype=nl.float32)
        r[:, 1:2] = nl.copy(nl.divide(w, 4), dtype=nl.float32)
        nl.store(out, value=r)
        return out

    got = nki.simulate_kernel(kern, np.zeros((1, 1), np.float32))
    pos = 2176 + np.arange(128)
    np.testing.assert_array_equal(got[:, 0], pos // 38)
    np.testing.assert_allclose(got[:, 1], (pos % 38) / 4)


def test_scatter_add_and_atomic_rmw():
    @nki.jit
    def kern(base, idx, vals):
        out = nl.ndarray(base.shape, dtype=base.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=nl.load(base))
        i_p = nl.arange(idx.shape[0])[:, None]
        i_f = nl.arange(base.shape[1])[None, :]
        t = nl.load(idx[i_p])
        v = nl.load(vals)
        nisa.dma_copy(dst=out[t, i_f], src=v, dst_rmw_op=np.add)
        nl.atomic_rmw(out[t, i_f], value=v, op=np.add)
        return out

    base, vals = rand(16, 8), rand(4, 8, seed=1)
    idx = np.array([3, 3, 0, 15], np.int32)               # row 3 twice: both values land
    want = base.copy()
    for _ in range(2):
        np.add.at(want, idx, vals)
    np.testing.assert_allclose(nki.simulate_kernel(kern, base, idx, vals), want, rtol=1e-6)


def test_dropout_and_gather_flattened():
    @nki.jit
    def kern(x, j):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        got = nl.ndarray(j.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.random_seed(7)
        t = nl.load(x)
        nl.store(out, value=nisa.dropout(t, prob=0.25))
        nl.store(got, value=nl.gather_flattened(data=t, indices=nl.load(j)))
        return out, got

    x = np.abs(rand(128, 512)) + 1.0
    j = np.random.default_rng(3).integers(0, 512, (128, 10)).astype(np.uint32)
    out, got = nki.simulate_kernel(kern, x, j)
    kept = out != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_array_equal(out[kept], x[kept])
    np.testing.assert_array_equal(got, np.take_along_axis(x, j.astype(np.int64), axis=1))


# ---- a ragged tile through nl.arange index tiles (the generated classic kernels' form) -------
@nki.jit
def _ragged_arange_dma(x, out, out_t, lim):
    """What codegen/classic_index.py emits for a ragged last tile: HBM views ``p0 + i_p`` (an
    nl.arange index tile, a loop index, an int dim) under ``mask=``, one loop iteration past the
    last tile (fully masked), nisa.dma_copy both ways and nisa.dma_transpose from HBM."""
    rows, cols = x.shape[1], x.shape[2]
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(cols)[None, :]
    i_pc = nl.arange(cols)[:, None]
    i_ft = nl.arange(128)[None, :]
    for t in nl.affine_range(rows // 128 + 2):
        p0 = 128 * t
        v = nl.ndarray((128, cols), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=v[0:128, 0:cols], src=x[1, p0 + i_p, i_f], mask=(p0 + i_p < rows))
        nisa.dma_copy(dst=out[p0 + i_p, i_f], src=v[0:128, 0:cols], mask=(p0 + i_p < lim))
        vt = nl.ndarray((cols, 128), dtype=x.dtype, buffer=nl.sbuf)
        vt[0:cols, 0:128] = nisa.dma_transpose(x[1, p0 + i_p, i_f], mask=(p0 + i_p < rows))
        nisa.dma_copy(dst=out_t[i_pc, p0 + i_ft], src=vt[0:cols, 0:128],
                      mask=(p0 + i_ft < lim))


@pytest.mark.parametrize("rows", [2, 127, 128, 129, 300])
def test_masked_arange_index_dma_touches_only_in_mask_lanes(rows):
    """In-mask lanes are read and written; lanes past the tensor's end are never touched (no
    error, though the index tile runs past it); in-bounds lanes outside the mask keep their
    values. Boundary: a mask one lane wider than the tensor is an out-of-bounds access (S25
    general/nki/api/nki.errors.rst err_tensor_access_out_of_bound)."""
    x = rand(2, rows, 24)
    sentinel = np.float32(-7.0)
    out = np.full((rows, 24), sentinel, np.float32)
    out_t = np.full((24, rows), sentinel, np.float32)
    _ragged_arange_dma(x, out, out_t, rows - 1)   # output arguments, written back in place
    got, got_t = out, out_t
    np.testing.assert_array_equal(got[:rows - 1], x[1, :rows - 1])
    np.testing.assert_array_equal(got[rows - 1:], sentinel)       # in bounds, masked out
    np.testing.assert_array_equal(got_t[:, :rows - 1], x[1, :rows - 1].T)
    np.testing.assert_array_equal(got_t[:, rows - 1:], sentinel)
    res = sim.run(_ragged_arange_dma, [x, out.copy(), out_t.copy(), rows - 1], report=False)
    loads = [i.partitions for i in res.instrs if i.op == "dma_copy"
             and i.reads and i.reads[0].mem.name == "HBM"]
    full, last = divmod(rows, 128)
    assert loads == [128] * full + ([last] if last else [])       # the empty tiles: skipped
    sim.run(_ragged_arange_dma, [x, out.copy(), out_t.copy(), rows], report=False)  # last legal
    with pytest.raises(SimError, match="index out of bounds"):
        sim.run(_ragged_arange_dma, [x, out.copy(), out_t.copy(), rows + 1], report=False)
