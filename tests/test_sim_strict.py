"""Simulator strictness: each rule raises a SimError naming the rule, the values and the kernel
line; uninitialised reads show up as NaN."""

import os

import numpy as np
import pytest

import nkigen.sim.nki as nki
import nkigen.sim.nki.isa as nisa
import nkigen.sim.nki.language as nl
from nkigen import sim
from nkigen.sim import SimError, UnsupportedError

HERE = os.path.basename(__file__)


def fails(kernel, *args, match: str, numerics: bool = True) -> SimError:
    with pytest.raises(SimError, match=match) as ei:
        sim.run(kernel, list(args) or [np.zeros((128, 512), np.float32)], numerics=numerics)
    msg = str(ei.value)
    assert f"{HERE}:" in msg, msg            # located in this file (the kernel source)
    return ei.value


def x128():
    return np.ones((128, 512), np.float32)


def test_error_names_the_kernel_line():
    def k(a):
        nl.ndarray((129, 4), dtype=nl.float32, buffer=nl.sbuf)  # <- line
    line = k.__code__.co_firstlineno + 1
    e = fails(k, match="partition dim exceeds 128")
    assert f"{HERE}:{line}:" in str(e)
    assert "129" in str(e)


def test_partition_over_128_on_load():
    def k(a):
        nl.load(a)
    fails(k, np.zeros((256, 4), np.float32), match=r"partition dim exceeds 128 \(got 256")


def test_slice_out_of_bounds_is_not_clipped():
    def k(a):
        nl.load(a[0:200, :])
    fails(k, match="slice out of bounds.*0:200 on dim 0 of size 128")


def test_integer_index_out_of_bounds():
    def k(a):
        t = nl.load(a)
        nl.copy(t[:, 512])
    fails(k, match="index out of bounds")


def test_nl_ds_out_of_bounds():
    def k(a):
        nl.load(a[:, nl.ds(500, 16)])
    fails(k, match=r"slice out of bounds.*nl.ds\(500, 16\)")


def test_partition_striding_rejected():
    def k(a):
        t = nl.load(a)
        nl.copy(t[0:128:2, :])
    fails(k, match="partition-dim striding is not allowed")


def test_psum_bank_overflow():
    def k(a):
        s = nl.load(a[:, 0:128])
        m = nl.load(a)
        acc = nl.ndarray((128, 1024), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc[:, 256:768], s, m)
    fails(k, match="must fit one PSUM bank")


def test_matmul_stationary_over_128():
    def k(a):
        s = nl.load(a[:, 0:256])
        m = nl.load(a[:, 0:128])
        acc = nl.ndarray((128, 2, 128), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc, s, m)
    fails(k, match=r"stationary free size exceeds gemm_stationary_fmax=128 \(got 256")


def test_matmul_moving_over_512():
    def k(a):
        s = nl.load(a[:, 0:128])
        m = nl.ndarray((128, 1024), dtype=nl.float32, buffer=nl.sbuf)
        acc = nl.ndarray((128, 1024), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc, s, m)
    fails(k, match=r"moving free size exceeds gemm_moving_fmax=512 \(got 1024")


def test_matmul_reads_sbuf_only():
    def k(a):
        s = nl.load(a[:, 0:128])
        p = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum)
        acc = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc, s, p)
    fails(k, match="moving must be in SBUF")


def test_load_from_sbuf():
    def k(a):
        t = nl.load(a)
        nl.load(t)
    fails(k, match="nl.load: source must be an HBM tensor")


def test_compute_on_hbm_rejected():
    def k(a):
        nl.exp(a)
    fails(k, match="must be in SBUF or PSUM, not HBM")


def test_gpsimd_cannot_touch_psum():
    def k(a):
        p = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum)
        nisa.memset(p, 0.0, engine=nisa.gpsimd_engine)
    fails(k, match="GpSimd engine cannot access PSUM")


def test_tensor_tensor_not_both_psum():
    def k(a):
        p = nl.zeros((128, 512), dtype=nl.float32, buffer=nl.psum)
        q = nl.zeros((128, 512), dtype=nl.float32, buffer=nl.psum)
        o = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(o, p, q, nl.add)
    fails(k, match="cannot both be in PSUM")


def test_dma_cannot_access_psum():
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        p = nl.zeros((128, 512), dtype=nl.float32, buffer=nl.psum)
        nisa.dma_copy(out, p)
    fails(k, match="DMA cannot access PSUM")


def test_sbuf_capacity_exceeded():
    # one tile larger than the whole SBUF cannot be spilled (several smaller ones are: the
    # compiler spills them, see tests/test_cost_v2.py); trn2 holds 212984 B/partition
    def k(a):
        return nl.ndarray((128, 53247), dtype=nl.float32, buffer=nl.sbuf)
    e = fails(k, match=r"SBUF capacity exceeded.*\(got 212988 > 212984 B/partition")
    assert "212988 B/partition" in str(e)


def test_sbuf_freed_when_tiles_die():
    def k(a):
        for _ in nl.affine_range(10):
            t = nl.ndarray((128, 20000), dtype=nl.float32, buffer=nl.sbuf)
            nisa.memset(t, 0.0)
    r = sim.run(k, [x128()])
    assert r.peak_sbuf_bytes == 2 * 80000     # old and new tile alive at the rebinding


def test_psum_capacity_exceeded():
    def k(a):
        return [nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.psum) for _ in range(9)]
    fails(k, match=r"PSUM capacity exceeded.*16384 > 16384|PSUM capacity exceeded.*> 16384")


def test_uninitialised_read_is_nan():
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        junk = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(junk[:, 0:256], 1.0)
        nl.store(out, value=nl.add(t, junk))
        return out
    out = sim.simulate(k)(x128())
    assert np.all(out[:, :256] == 2.0)
    assert np.all(np.isnan(out[:, 256:]))


def test_unwritten_output_is_nan():
    def k(a):
        out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out[:, 0:100], value=nl.load(a[:, 0:100]))
        return out
    out = sim.simulate(k)(x128())
    assert np.isnan(out[:, 100:]).all() and (out[:, :100] == 1).all()


def test_unsupported_api_is_named():
    def k(a):
        nisa.topk(None, None, a, 8)
    with pytest.raises(UnsupportedError,
                       match="nki.isa.topk is not supported by the nkigen simulator"):
        sim.run(k, [x128()])
    with pytest.raises(UnsupportedError, match="nki.language.gather_flattened"):
        nl.gather_flattened(None, None)            # a real API: importable, fails when called
    with pytest.raises(UnsupportedError, match="nki.language.no_such_api is not supported"):
        nl.no_such_api  # noqa: B018
    with pytest.raises(UnsupportedError, match="nki.benchmark"):
        nki.benchmark  # noqa: B018


def test_unsupported_op_is_named():
    def k(a):
        nisa.activation(nl.ndarray((128, 512), nl.float32), op=np.arcsinh, data=nl.load(a))
    with pytest.raises(UnsupportedError, match="op='arcsinh' is not supported"):
        sim.run(k, [x128()])


def test_outputs_must_be_shared_hbm():
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.hbm)
        nl.store(out, value=nl.load(a))
        return out
    with pytest.raises(SimError, match="kernel outputs must be allocated in nl.shared_hbm"):
        sim.run(k, [x128()])

    def k2(a):
        return nl.load(a)
    with pytest.raises(SimError, match="output 0 is in sbuf"):
        sim.run(k2, [x128()])


def test_shape_mismatch_partition_broadcast_needs_broadcast_to():
    def k(a):
        t = nl.load(a)
        row = nl.load(a[0:1, :])
        nl.add(t, row)
    fails(k, match="partition dims differ.*broadcast_to")


def test_checks_also_run_cost_only():
    def k(a):
        nl.load(a[0:129, :])
    with pytest.raises(SimError, match="slice out of bounds"):
        sim.run(k, [sim.placeholder((128, 512), "float32")], numerics=False)


def test_api_outside_kernel_is_an_error():
    with pytest.raises(SimError, match="outside a simulated kernel"):
        nl.ndarray((128, 4), dtype=nl.float32)


def test_simerror_is_nkigen_error():
    from nkigen.diagnostics import NkigenError
    assert issubclass(SimError, NkigenError)


# ---- affine_range loop-carried dependencies -----------------------------------------------------
def _scan_kernel(loop):
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        init = nl.zeros((128, 1), dtype=nl.float32)
        ones = nl.ones((128, 64), dtype=nl.float32)
        for c in loop(a.shape[1] // 64):
            t = nl.load(a[:, c * 64:(c + 1) * 64])
            r = nl.ndarray((128, 64), dtype=nl.float32)
            nisa.tensor_tensor_scan(r, ones, t, init, nl.multiply, nl.add)
            nisa.tensor_copy(init, r[:, 63])     # carried to the next chunk
            nl.store(out[:, c * 64:(c + 1) * 64], value=r)
        return out
    return k


def test_current_affine_range_is_range_so_carried_dependency_runs_in_order():
    # nki 0.3: nl.affine_range is an alias of range(), fully unrolled (SH nki/api/nki/language);
    # the classic API's parallel affine_range rejects it (tests/test_conformance_lang.py)
    a = np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)
    out = sim.simulate(_scan_kernel(nl.affine_range))(a)
    np.testing.assert_allclose(out, np.cumsum(a, axis=1), rtol=1e-5, atol=1e-5)


def test_sequential_loop_carried_dependency_ok():
    a = np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)
    out = sim.simulate(_scan_kernel(nl.sequential_range))(a)
    np.testing.assert_allclose(out, np.cumsum(a, axis=1), rtol=1e-5, atol=1e-5)


def test_current_affine_iterations_writing_same_location_run_in_order():
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        for c in nl.affine_range(4):
            nl.store(out, value=nl.load(a[:, c * 64:(c + 1) * 64]))
        return out
    a = np.random.default_rng(2).standard_normal((128, 256)).astype(np.float32)
    np.testing.assert_array_equal(sim.simulate(k)(a), a[:, 192:])


def test_affine_accumulation_into_sbuf_allowed():
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.zeros((128, 64), dtype=nl.float32)
        for c in nl.affine_range(4):
            t = nl.load(a[:, c * 64:(c + 1) * 64])
            nisa.tensor_tensor(acc, acc, t, nl.add)
            acc += t
        nl.store(out, value=acc)
        return out
    a = np.random.default_rng(1).standard_normal((128, 256)).astype(np.float32)
    out = sim.simulate(k)(a)
    np.testing.assert_allclose(out, 2 * a.reshape(128, 4, 64).sum(1), rtol=1e-5, atol=1e-5)


def test_nested_affine_disjoint_writes_ok():
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        for i in nl.affine_range(2):
            row = nl.ndarray((128, 256), dtype=nl.float32)
            for j in nl.affine_range(4):
                nisa.tensor_copy(row[:, j * 64:(j + 1) * 64],
                                 nl.load(a[i * 128:(i + 1) * 128, j * 64:(j + 1) * 64]))
            nl.store(out[i * 128:(i + 1) * 128, :], value=row)
        return out
    a = np.arange(256 * 256, dtype=np.float32).reshape(256, 256)
    np.testing.assert_array_equal(sim.simulate(k)(a), a)


def test_more_than_four_free_ap_dims_rejected():
    def k(a):
        t = nl.ndarray((128, 2, 3, 3, 3, 3, 4), dtype=nl.float32)
        nisa.memset(t, 0.0)                                     # contiguous: merges to 1 dim
        nisa.memset(t[:, :, :, :, 0:2, 0:2, 0:2], 1.0)          # 3 free AP dims: fine
        nisa.memset(t[:, :, 0:2, 0:2, 0:2, 0:2, 0:2], 1.0)      # 6 free AP dims
    fails(k, match="needs more than 4 free access-pattern dims")


def test_psum_engine_free_size_limit():
    def k(a):
        p = nl.ndarray((128, 8192), dtype=nl.bfloat16, buffer=nl.psum)
        nisa.memset(p, 0.0)
    fails(k, match="more than 4096 elements per partition")


def test_spmd_programs_writing_same_output_rejected():
    @nki.jit
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=nl.load(a[:, 0:64]))        # not indexed by program_id
        return out
    with pytest.raises(SimError, match="SPMD race: program 1 overwrites what program 0 wrote"):
        k[2](np.ones((128, 256), np.float32))


def test_spmd_program_reading_anothers_output_rejected():
    @nki.jit
    def k(a):
        out = nl.ndarray((256, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        nl.store(out[i * 128:(i + 1) * 128, :], value=nl.load(a[:, 0:64]))
        if i == 1:
            nl.load(out[0:128, :])
        return out
    with pytest.raises(SimError, match="SPMD race: program 1 reads what program 0 wrote"):
        k[2](np.ones((128, 256), np.float32))


def test_trn1_engine_restrictions():
    def k(a):
        t = nl.load(a)
        o = nl.ndarray((128, 512), dtype=nl.float32)
        nisa.activation(o, nl.exp, t, bias=1.0)
    with pytest.raises(SimError, match="bias must be a \\(128, 1\\) tile on NeuronCore-v2"):
        sim.run(k, [x128()], target="trn1")
    sim.run(k, [x128()], target="trn2")                 # scalar bias is fine on v3

    def k2(a):
        t = nl.load(a)
        o = nl.ndarray((128, 512), dtype=nl.float32)
        nisa.tensor_copy(o, t, engine=nisa.scalar_engine)
    with pytest.raises(SimError, match="no ScalarE tensor_copy on NeuronCore-v2"):
        sim.run(k2, [x128()], target="trn1")


def test_current_api_kernels_may_write_inputs():
    # nki 0.3 has no immutable-parameter rule (SH nki/migration passes outputs as arguments);
    # the classic rules are in tests/test_conformance_lang.py
    def k(a, b):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(b, value=nl.load(a))
        nl.store(out, value=nl.load(a))
        return out
    out = sim.simulate(k)(x128() * 2, x128())
    np.testing.assert_array_equal(out, 2.0)


def test_activation_outside_valid_range_is_nan_and_warned():
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        y = nl.ndarray(a.shape, dtype=nl.float32)
        nisa.activation(y, nl.log, t)
        nl.store(out, value=y)
        return out

    a = np.full((128, 4), 2.0, np.float32)
    a[5, 1] = -1.0
    res = sim.run(k, [a], report=False)
    assert np.isnan(res.outputs[0][5, 1])
    np.testing.assert_allclose(res.outputs[0][0], np.log(2.0), rtol=1e-6)
    (w,) = res.warnings
    assert "log input outside its valid range" in w and f"{HERE}:" in w
