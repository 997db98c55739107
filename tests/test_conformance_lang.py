"""Conformance of the simulator to the documented language, programming-model and nki.errors
rules of both API generations (rows: nkigen/sim/conformance/lang.py). Every test runs a small
kernel and checks the documented error (rule named, fix given, located in this file) or the
documented value; limits are pinned at their boundary."""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import pytest

from nkigen import hw, sim
from nkigen.sim.errors import SimError, UnsupportedError

HERE = os.path.abspath(__file__)

with sim.installed():
    import neuronxcc.nki.compiler as ncc  # noqa: E402
    import neuronxcc.nki.isa as cisa  # noqa: E402
    import neuronxcc.nki.language as cl  # noqa: E402
    import neuronxcc.nki.typing as cnt  # noqa: E402
    import nki  # noqa: E402
    import nki.isa as nisa  # noqa: E402
    import nki.language as nl  # noqa: E402
    from neuronxcc import nki as cnki  # noqa: E402


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def fails(call, match: str, fix: str | None = None, located: bool = True) -> SimError:
    """``call()`` raises a SimError matching ``match``, located in this file, with a fix."""
    with pytest.raises(SimError, match=match) as ei:
        call()
    msg = str(ei.value)
    if located:
        assert f"{HERE}:" in msg, msg
    if fix is not None:
        assert fix in msg, msg
    return ei.value


def classic(fn, *args):
    return lambda: cnki.simulate_kernel(cnki.jit(fn), *args)


def current(fn, *args, **kw):
    return lambda: sim.simulate(nki.jit(fn))(*args, **kw)


def _c_out(a):
    """A classic kernel's trivial output (so bodies under test need not produce one)."""
    out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
    cl.store(out, value=cl.load(a[0:128, 0:4]))
    return out


X = rand(128, 512)


# ---- tensor creation, buffers, tile-size constraints -----------------------------------------
@pytest.mark.parametrize("api", ["classic", "current"])
def test_partition_dim_limit_tc1(api):
    lang = cl if api == "classic" else nl
    run = classic if api == "classic" else current

    def k(a, p):
        lang.ndarray((p, 4), dtype=lang.float32, buffer=lang.sbuf)
        return a
    run(k, X, 128)()                                              # last legal value
    fails(run(k, X, 129), "partition dim exceeds 128", "tile_size.pmax")


def _n_out(a):
    out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, value=nl.load(a[0:128, 0:4]))
    return out


def test_on_chip_rank_at_least_two():
    def k(a):
        nl.ndarray((128,), dtype=nl.float32, buffer=nl.sbuf)
        return a
    fails(current(k, X), "rank >= 2", "shape (P, 1)")


def test_classic_psum_tile_free_size_tc2():
    def k(a, f, dtype):
        cl.ndarray((128, f), dtype=dtype, buffer=cl.psum)
        cl.ndarray((4, cl.par_dim(128), 512), dtype=cl.float32, buffer=cl.psum)  # blocks ok
        return a
    classic(k, X, 512, cl.float32)()
    fails(classic(k, X, 513, cl.float32), "TC#2.*psum_fmax \\(512\\)", "split the free dim")
    fails(classic(k, X, 1024, cl.bfloat16), "TC#2")                # elements, not bytes
    assert cl.tile_size.psum_fmax == 512


def test_current_psum_tensor_may_span_banks():
    def k(a):
        p = nl.ndarray((128, 2048), dtype=nl.float32, buffer=nl.psum)   # 4 banks: allowed
        nisa.memset(p[:, 0:512], 0.0)
        return a
    current(k, X)()


def test_matmul_tile_limits_tc3():
    def k(a, m):
        x = nl.ndarray((128, m), dtype=nl.float32, buffer=nl.sbuf)
        y = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(x, 1.0)
        nisa.memset(y, 1.0)
        out = nl.ndarray((m, 512), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(out, x, y)
        return a
    current(k, X, 128)()
    fails(current(k, X, 129), "128")


@pytest.mark.parametrize("api", ["classic", "current"])
def test_zeros_in_hbm_rejected(api):
    lang = cl if api == "classic" else nl
    run = classic if api == "classic" else current

    def k(a):
        lang.full((128, 4), 1.0, dtype=lang.float32, buffer=lang.shared_hbm)
        return a
    fails(run(k, X), "in HBM are not supported", "store")


def test_current_string_buffers_rejected():
    def k(a, b):
        nl.ndarray((128, 4), dtype=nl.float32, buffer=b)
        return a
    current(k, X, nl.sbuf)()
    fails(current(k, X, "sbuf"), "strings are not accepted in NKI 0.3", "use nl.sbuf")


def test_current_ndarray_buffer_defaults_to_sbuf():
    seen = []

    def k(a):
        seen.append(nl.ndarray((128, 4), dtype=nl.float32).buffer)
        return a
    current(k, X)()
    assert seen == [nl.sbuf]


# ---- outputs, parameters ---------------------------------------------------------------------
def test_current_outputs_must_be_shared_hbm():
    def k(a, buf):
        out = nl.ndarray((128, 4), dtype=nl.float32, buffer=buf)
        nl.store(out, value=nl.load(a[0:128, 0:4]))
        return out
    np.testing.assert_array_equal(current(k, X, nl.shared_hbm)(), X[:, 0:4])
    fails(current(k, X, nl.hbm), "must be allocated in nl.shared_hbm", "buffer=nl.shared_hbm",
          located=False)


def test_classic_outputs_may_be_hbm():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.hbm)
        cl.store(out, value=cl.load(a[0:128, 0:4]))
        return out
    np.testing.assert_array_equal(classic(k, X)(), X[:, 0:4])


def test_classic_immutable_parameter():
    def k(a, b):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        cl.store(b[0:128, 0:4], value=cl.load(a[0:128, 0:4]))
        cl.store(out, value=cl.load(a[0:128, 0:4]))
        return out, b
    fails(classic(k, X, rand(128, 4)), "err_cannot_update_immutable_parameter",
          "nt.mutable_tensor")


def test_classic_mutable_parameter_must_be_returned():
    def bad(a, b: cnt.mutable_tensor):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        cl.store(b[0:128, 0:4], value=cl.load(a[0:128, 0:4]))
        cl.store(out, value=cl.load(a[0:128, 0:4]))
        return out
    fails(classic(bad, X, rand(128, 4)), "err_mutable_parameter_not_returned", "return values")

    def ok(a, b: cnt.mutable_tensor):
        cl.store(b[0:128, 0:4], value=cl.load(a[0:128, 0:4]))
        return b
    np.testing.assert_array_equal(classic(ok, X, rand(128, 4))(), X[:, 0:4])


def test_classic_output_parameter_never_written():
    def k(a, out):
        for _ in cl.affine_range(128 // 129):            # a dead loop: never stores
            cl.store(out, value=cl.load(a[0:128, 0:4]))
    fails(classic(k, X, np.zeros((128, 4), np.float32)), "err_tensor_output_not_written_to",
          located=False)


def test_current_kernels_may_write_inputs():
    def k(a, b):
        nl.store(b[0:128, 0:4], value=nl.load(a[0:128, 0:4]))
        return a
    current(k, X, rand(128, 4))()


@pytest.mark.parametrize("where", ["nl_loop", "python_loop", "helper"])
def test_classic_shared_hbm_only_at_top_level(where):
    def helper():
        return cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)

    def k(a):
        if where == "nl_loop":
            for _ in cl.affine_range(2):
                cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        elif where == "python_loop":
            for _ in range(2):
                cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        else:
            helper()
        return a
    fails(classic(k, X), "err_shared_hbm_must_in_kernel_level", "top of the kernel")


def test_classic_shared_hbm_at_top_level_ok():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        cl.store(out, value=cl.load(a[0:128, 0:4]))
        return out
    np.testing.assert_array_equal(classic(k, X)(), X[:, 0:4])


# ---- nki 0.3 argument rules ------------------------------------------------------------------
def test_current_platform_target_is_an_error():
    with pytest.raises(SimError, match="platform_target=...\\) is an error in NKI 0.3") as ei:
        nki.jit(_n_out, platform_target="trn2")
    assert "NEURON_PLATFORM_TARGET_OVERRIDE" in str(ei.value)
    cnki.jit(_c_out, platform_target="trn1")                 # the classic API takes it


def test_current_mode_is_ignored():
    np.testing.assert_array_equal(nki.jit(mode="torchxla")(_n_out)(X), X[:, 0:4])


def test_current_list_arguments_rejected():
    def k(a, perm):
        return a
    current(k, X, (0, 1))()
    fails(current(k, X, [0, 1]), "do not take list arguments", "tuple", located=False)


def test_current_keyword_only_separator_rejected():
    def k(a, *, flag=True):
        return a
    fails(current(k, X), "keyword-only separator", "without '\\*'".replace("\\", ""))


def test_current_identity_comparisons_rejected():
    def k(a, flag=None):
        if flag is not None:
            pass
        return a

    def ok(a, flag=None):
        if flag != None:  # noqa: E711 - the form NKI 0.3 asks for
            pass
        return a
    current(ok, X)()
    fails(current(k, X), "may not use `is` / `is not`", "== / !=")


# ---- tile_size constants ---------------------------------------------------------------------
def test_classic_tile_size_constants():
    ts = cl.tile_size
    assert (ts.pmax, ts.psum_fmax, ts.gemm_stationary_fmax, ts.gemm_moving_fmax,
            ts.bn_stats_fmax, ts.psum_min_align, ts.sbuf_min_align) == (128, 512, 128, 512, 512,
                                                                        4, 1)
    with pytest.raises(SimError, match="has no constant 'sbuf_fmax'"):
        ts.sbuf_fmax  # noqa: B018


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_current_tile_size_constants(target):
    seen = {}

    def k(a):
        ts = nl.tile_size
        seen.update(pmax=ts.pmax, psum_fmax=ts.psum_fmax, psum_bank_fmax=ts.psum_bank_fmax,
                    psum_bank_fmax_bytes=ts.psum_bank_fmax_bytes, psum_num_banks=ts.psum_num_banks,
                    sbuf_fmax=ts.sbuf_fmax, sbuf_fmax_bytes=ts.sbuf_fmax_bytes,
                    sbuf_size_bytes=ts.sbuf_size_bytes, avail=ts.total_available_sbuf_size,
                    psum_fmax_bytes=ts.psum_fmax_bytes)
        return a
    sim.run(k, [X], target=target, report=False)
    t = hw.target(target)
    assert seen == dict(pmax=128, psum_fmax=512, psum_bank_fmax=512, psum_bank_fmax_bytes=2048,
                        psum_num_banks=8, sbuf_fmax=t.sbuf_bytes_per_partition // 4,
                        sbuf_fmax_bytes=t.sbuf_bytes_per_partition,
                        sbuf_size_bytes=128 * t.sbuf_physical_bytes,
                        avail=t.sbuf_bytes_per_partition, psum_fmax_bytes=2048)


# ---- SPMD ------------------------------------------------------------------------------------
def test_num_programs_per_api():
    seen = []

    def kc(a):
        seen.append(("classic", cl.num_programs(), cl.num_programs(axes=1), cl.program_ndim()))
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        if cl.program_id(0) == 0 and cl.program_id(1) == 0:
            cl.store(out, value=cl.load(a[0:128, 0:4]))
        return out

    def kn(a):
        seen.append(("current", nl.num_programs(), nl.num_programs((0, 1)), nl.program_id()))
        out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
        if nl.program_id(0) == 0 and nl.program_id(1) == 0:
            nl.store(out, value=nl.load(a[0:128, 0:4]))
        return out
    cnki.jit(kc)[2, 3](X)
    nki.jit(kn)[2, 3](X)
    assert seen[0] == ("classic", 6, 3, 2)
    assert seen[6] == ("current", 2, 6, 0)


def test_gridded_kernel_inside_kernel_rejected():
    inner = cnki.jit(_c_out)

    def k(a):
        inner[2](a)
        return a
    fails(classic(k, X), "calling a gridded kernel from another kernel")


def test_spmd_programs_race_rejected():
    @nki.jit
    def k(a):
        out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=nl.load(a[0:128, 0:4]))
        return out
    fails(lambda: k[2](X), "SPMD race: program 1 overwrites", "program_id")


def test_api_outside_kernel_rejected():
    with pytest.raises(SimError, match="outside a simulated kernel"):
        nl.ndarray((128, 4), dtype=nl.float32)


# ---- loops -----------------------------------------------------------------------------------
def _classic_scan(loop):
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        acc = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.sbuf)
        acc[...] = cl.load(a[0:128, 0:4])
        for i in loop(1, 3):
            acc[...] = cl.add(acc, cl.load(a[0:128, i * 4:(i + 1) * 4]))   # reads, then writes
        cl.store(out, value=acc)
        return out
    return k


def test_classic_affine_read_after_write_rejected():
    fails(classic(_classic_scan(cl.affine_range), X), "iteration 1 (reads what|overwrites what)",
          "sequential_range")


def test_classic_sequential_range_carries_dependencies():
    got = classic(_classic_scan(cl.sequential_range), X)()
    np.testing.assert_allclose(got, X[:, 0:4] + X[:, 4:8] + X[:, 8:12], rtol=1e-6)


def test_classic_affine_write_after_read_detected():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        buf = cl.ndarray((128, 8), dtype=cl.float32, buffer=cl.sbuf)
        buf[...] = cl.load(a[0:128, 0:8])
        for i in cl.affine_range(2):                     # shift left: i reads i+1, writes i
            buf[:, i:i + 1] = cl.copy(buf[:, i + 1:i + 2])
        cl.store(out, value=buf[:, 0:4])
        return out
    fails(classic(k, X), "iteration 1 overwrites what iteration 0 read", "sequential_range")


@pytest.mark.parametrize("cap", [1, 2, 3, 5, 4096])
def test_classic_write_after_read_log_applies_in_order(cap, monkeypatch):
    """Reads are logged and applied to the read tags only when the tensor is written in a
    loop or the log reaches deps.RLOG_MAX: whatever the cap (1 = every read applied at once,
    as before the log), the same write-after-read is found, and reads in an earlier loop nest
    never count against a later one."""
    from nkigen.sim import deps
    monkeypatch.setattr(deps, "RLOG_MAX", cap)

    def war(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        buf = cl.ndarray((128, 8), dtype=cl.float32, buffer=cl.sbuf)
        buf[...] = cl.load(a[0:128, 0:8])
        for i in cl.affine_range(3):                     # 4 reads per iteration: 4, 5, 6, i+1
            t = cl.add(buf[:, 4:5], buf[:, 5:6])
            t = cl.add(t, buf[:, 6:7])
            t = cl.add(t, buf[:, i + 1:i + 2])
            buf[:, 2 * i:2 * i + 1] = cl.copy(t)         # writes 0, 2, 4: 4 read by iteration 0
        cl.store(out, value=buf[:, 0:4])
        return out
    fails(classic(war, X), "iteration 2 overwrites what iteration 0 read", "sequential_range")

    def nests(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        buf = cl.ndarray((128, 8), dtype=cl.float32, buffer=cl.sbuf)
        buf[...] = cl.load(a[0:128, 0:8])
        acc = cl.zeros((128, 1), dtype=cl.float32, buffer=cl.sbuf)
        for i in cl.affine_range(4):                     # reads only
            acc += buf[:, i:i + 1]
        for i in cl.affine_range(4):                     # a later nest writes what it read
            buf[:, i:i + 1] = cl.copy(acc)
        cl.store(out, value=buf[:, 0:4])
        return out
    got = classic(nests, X)()
    want = X[:, 0:1] + X[:, 1:2] + X[:, 2:3] + X[:, 3:4]
    np.testing.assert_allclose(got, np.repeat(want, 4, axis=1), rtol=1e-5)


def test_classic_affine_same_location_written_rejected():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        for i in cl.affine_range(2):
            cl.store(out, value=cl.load(a[0:128, i * 4:(i + 1) * 4]))
        return out
    fails(classic(k, X), "iterations write the same location", "index the destination")


def test_classic_affine_accumulation_allowed():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        acc = cl.zeros((128, 4), dtype=cl.float32, buffer=cl.sbuf)
        for i in cl.affine_range(3):
            acc += cl.load(a[0:128, i * 4:(i + 1) * 4])
        cl.store(out, value=acc)
        return out
    np.testing.assert_allclose(classic(k, X)(), X[:, 0:4] + X[:, 4:8] + X[:, 8:12], rtol=1e-6)


def test_current_affine_range_is_unrolled_range():
    def k(a):
        out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
        acc = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(acc, a[0:128, 0:4])
        for i in nl.affine_range(1, 3):                  # carried: legal, runs in order
            nisa.tensor_tensor(acc, acc, nl.load(a[0:128, i * 4:(i + 1) * 4]), nl.add)
        buf = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(buf, a[0:128, 0:8])
        for i in nl.affine_range(2):                     # write-after-read: in order too
            nisa.tensor_copy(buf[:, i:i + 1], buf[:, i + 1:i + 2])
        nisa.tensor_tensor(acc, acc, buf[:, 0:4], nl.add)
        nl.store(out, value=acc)
        return out
    shifted = np.concatenate([X[:, 1:3], X[:, 2:4]], axis=1)
    np.testing.assert_allclose(current(k, X)(), X[:, 0:4] + X[:, 4:8] + X[:, 8:12] + shifted,
                               rtol=1e-6)


@pytest.mark.parametrize("api", ["classic", "current"])
def test_static_range_yields_ints(api):
    lang = cl if api == "classic" else nl
    seen = []

    def k(a):
        seen.extend(type(i) for i in lang.static_range(2, 8, 3))
        return a
    (classic if api == "classic" else current)(k, X)()
    assert seen == [int, int]


def test_current_tensors_outlive_loops():
    def k(a):
        out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
        for i in nl.affine_range(2):
            t = nl.load(a[0:128, i * 4:(i + 1) * 4])
        nl.store(out, value=nl.exp(t))                  # Python scoping in nki 0.3
        return out
    np.testing.assert_allclose(current(k, X)(), np.exp(X[:, 4:8]), rtol=1e-5)


def test_dynamic_loops_run():
    seen = []

    def k(a):
        # SH nki/api/nki/language dynamic_range: runtime bounds; the induction variable is a
        # VirtualRegister (SH release notes NKI 0.5); registers are simulated eagerly
        for i in nl.dynamic_range(2):
            seen.append(i)
        return a
    current(k, X)()
    assert [repr(i) for i in seen] == ["VirtualRegister(0)", "VirtualRegister(1)"]


def test_classic_tensor_used_out_of_loop_scope():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        for i in cl.affine_range(2):
            t = cl.load(a[0:128, i * 4:(i + 1) * 4])
        cl.store(out, value=cl.exp(t))                   # t was created inside the loop
        return out
    fails(classic(k, X), "err_local_variable_used_out_of_scope", "allocate it before the loop")

    def ok(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        t = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.sbuf)
        for _ in cl.sequential_range(2):
            t[...] = cl.load(a[0:128, 0:4])
        cl.store(out, value=cl.exp(t))
        return out
    np.testing.assert_allclose(classic(ok, X)(), np.exp(X[:, 0:4]), rtol=1e-5)


# ---- indexing, slicing, ds, arange/mgrid, masks ----------------------------------------------
@pytest.mark.parametrize("api", ["classic", "current"])
def test_slices_never_clipped(api):
    lang = cl if api == "classic" else nl

    def k(a, stop):
        t = lang.ndarray((128, 8), dtype=lang.float32, buffer=lang.sbuf)
        t[:, 0:stop]  # noqa: B018
        return a
    run = classic if api == "classic" else current
    run(k, X, 8)()
    fails(run(k, X, 9), "slice out of bounds", "never clipped")


@pytest.mark.parametrize("api", ["classic", "current"])
def test_ds_is_start_plus_size(api):
    lang = cl if api == "classic" else nl

    def k(a, start):
        out = lang.ndarray((128, 4), dtype=lang.float32, buffer=lang.shared_hbm)
        lang.store(out, value=lang.load(a[0:128, lang.ds(start, 4)]))
        return out
    run = classic if api == "classic" else current
    np.testing.assert_array_equal(run(k, X, 508)(), X[:, 508:512])
    fails(run(k, X, 509), "out of bounds")


@pytest.mark.parametrize("api", ["classic", "current"])
def test_ds_takes_trace_time_integers(api):
    """nl.ds(start, size) takes integers (index.ds_integers): a tile as the start is a located
    error (it raised int()'s TypeError inside the simulator), a fractional start is refused
    rather than truncated; an integral numpy start runs."""
    lang = cl if api == "classic" else nl

    def k(a, start):
        out = lang.ndarray((128, 4), dtype=lang.float32, buffer=lang.shared_hbm)
        t = lang.load(a[0:128, 0:4])
        s = t if isinstance(start, str) else start
        lang.store(out, value=lang.load(a[0:128, lang.ds(s, 4)]))
        return out
    run = classic if api == "classic" else current
    np.testing.assert_array_equal(run(k, X, np.int32(8))(), X[:, 8:12])
    fails(run(k, X, "tile"), "nl.ds: start must be an integer known at trace time")
    fails(run(k, X, 8.5), "nl.ds: start must be an integer")


def test_ap_pattern_is_stride_count_pairs():
    """.ap(pattern, offset): a list of [stride, count] pairs and an integer offset
    (nki.ap_pattern, SH NkiTensor.ap): a flat pair raised a TypeError inside the simulator, a
    three-element entry and offset=0.5 were accepted (the offset truncated)."""
    def kernel(pattern, offset):
        def k(a):
            out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
            nl.store(out, value=nl.load(a.ap(pattern, offset=offset)))
            return out
        return k
    np.testing.assert_array_equal(current(kernel([[512, 128], [1, 4]], 4), X)(), X[:, 4:8])
    fails(current(kernel([512, 128], 0), X), "pattern must be a list of \\[stride, count\\] pairs")
    fails(current(kernel([[512, 128, 1], [1, 4]], 0), X), "pattern must be a list of")
    fails(current(kernel([[512, 128], [1, 4]], 0.5), X), "offset must be an integer element count")


def test_integer_partition_index_keeps_tile_rank():
    shapes = []

    def k(a):
        t = nl.load(a[0:128, 0:4])
        shapes.append(t[3, :].shape)
        return a
    current(k, X)()
    assert shapes == [(1, 4)]


def test_partition_dim_striding_rejected():
    def k(a):
        t = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.sbuf)
        t[0:128:2, :]  # noqa: B018
        return a
    fails(current(k, X), "partition-dim striding is not allowed", "stride free dims only")


def test_classic_indirect_indexing_unsupported():
    def k(a):
        idx = cl.zeros((8, 1), dtype=cl.int32, buffer=cl.sbuf)
        t = cl.load(a[0:128, 0:8])
        t[idx, cl.arange(4)[None, :]]  # noqa: B018 - tile-valued (runtime) index
        return a
    with pytest.raises(SimError, match="not supported"):
        classic(k, X)()


def test_classic_arange_mgrid_indexing():
    def k(a):
        out = cl.ndarray((64, 8), dtype=cl.float32, buffer=cl.shared_hbm)
        i_p, i_f = cl.mgrid[0:64, 0:8]
        j = cl.arange(8)[None, :]
        t = cl.load(a[i_p * 2, i_f * 3 + 1])                     # strided gather by index
        cl.store(out[i_p, j], value=t)
        return out
    np.testing.assert_array_equal(classic(k, X)(), X[0:128:2, 1:24:3])


def test_classic_1d_arange_rejected():
    def k(a):
        t = cl.zeros((128, 1), dtype=cl.float32, buffer=cl.sbuf)
        cl.exp(t[cl.arange(64), 0])
        return a
    fails(classic(k, X), "err_1d_arange_not_supported", "nl.arange(n)[:, None]")


def test_classic_mixing_basic_and_advanced_indexing_rejected():
    def k(a):
        t = cl.zeros((4, 4), dtype=cl.float32, buffer=cl.sbuf)
        cl.exp(t[cl.arange(4)[:, None], :])
        return a
    fails(classic(k, X), "basic and advanced indexing may not be mixed")


def test_classic_index_tensor_not_assignable():
    def k(a):
        _, x = cl.mgrid[0:1, 0:8]
        x[0, 5] = 1024
        return a
    fails(classic(k, X), "err_cannot_assign_to_index", "nisa.iota")


def test_classic_control_flow_on_arange_rejected():
    def k(a):
        j = cl.arange(512)[None, :]
        if j > 256:
            pass
        return a
    fails(classic(k, X), "no single truth value", "mask")


def test_tensor_truth_value_rejected():
    def k(a):
        t = nl.load(a[0:1, 0:1])
        if t:
            pass
        return a
    fails(current(k, X), "no truth value")


def test_loop_bounds_and_sizes_are_trace_time_integers():
    """A loop bound, an nl.arange length, a reshape dimension or a classic memset shape held in
    a tile (or None, or a fraction) is a located error naming the argument (each raised a
    Python TypeError inside the simulator, and range(2.5) ran 2 iterations); integral numpy and
    float values run (errors.trace_time_ints)."""
    def cur(bound):
        def k(a):
            t = nl.load(a[0:128, 0:4])
            n = t if bound == "tile" else bound
            out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
            for _ in nl.affine_range(n):
                nl.store(out, value=t)
            return out
        return k
    np.testing.assert_array_equal(current(cur(np.int64(2)), X)(), X[:, 0:4])
    np.testing.assert_array_equal(current(cur(2.0), X)(), X[:, 0:4])
    fails(current(cur("tile"), X), "nl.affine_range: stop must be an integer known at trace "
          "time", "dynamic control flow")
    fails(current(cur(2.5), X), "nl.affine_range: stop must be an integer")

    def cur2(what):
        def k(a):
            t = nl.load(a[0:128, 0:4])
            if what == "shape":
                nl.ndarray((128, t), dtype=nl.float32, buffer=nl.sbuf)
            elif what == "slice":
                t[0:t, :]  # noqa: B018
            elif what == "bcast":
                t[0:1, :].broadcast_to(None)
            elif what == "iota":
                d = nl.ndarray((128, 4), dtype=nl.int32, buffer=nl.sbuf)
                nisa.iota(dst=d, pattern=[[0.5, 4]], offset=0)
            elif what == "select":
                d = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.sbuf)
                nisa.affine_select(dst=d, pattern=[[1, 4]], channel_multiplier=0,
                                   on_true_tile=t, on_false_value=0.0, offset=t)
            out = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.shared_hbm)
            nl.store(out, value=t)
            return out
        return k
    fails(current(cur2("shape"), X), "a tensor shape dim must be an integer known at trace time")
    fails(current(cur2("slice"), X), "a slice stop must be an integer known at trace time")
    fails(current(cur2("bcast"), X), "broadcast_to: shape is a tuple of dims")
    fails(current(cur2("iota"), X), "iota: a pattern step must be an integer")
    fails(current(cur2("select"), X), "affine_select: offset must be an integer known at trace")
    np.testing.assert_array_equal(current(cur2("none"), X)(), X[:, 0:4])

    def view(what):            # the view primitives' dims and sizes (nki.view_primitives)
        def k(a):
            t = nl.load(a[0:128, 0:8])
            v = {"permute": lambda: t.permute(None), "reshape_dim": lambda: t.reshape_dim(1, 8),
                 "slice": lambda: t.slice(1, 0, t), "select": lambda: t.select(1, None),
                 "permute_str": lambda: t.permute("01"),
                 "ok": lambda: t.reshape_dim(1, (2, 4)).flatten_dims(1, 2)}[what]()
            out = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.shared_hbm)
            nl.store(out, value=v)
            return out
        return k
    fails(current(view("permute"), X), "permute: dims must be a tuple or list")
    fails(current(view("reshape_dim"), X), "reshape_dim: shape must be a tuple or list")
    fails(current(view("slice"), X), "slice: end must be an integer known at trace time")
    fails(current(view("select"), X), "select: index must be an integer known at trace time")
    fails(current(view("permute_str"), X), "permute: dims must be a tuple or list")
    np.testing.assert_array_equal(current(view("ok"), X)(), X[:, 0:8])

    def cla(what):
        def k(a):
            out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
            t = cl.load(a[0:128, 0:4])
            if what == "arange":
                cl.arange(t)
            elif what == "reshape":
                t.reshape(t)
            elif what == "mgrid":
                cl.mgrid[0:128].x  # noqa: B018
            elif what == "memset":
                cisa.memset(128, 0.0, cl.float32)
            cl.store(out, value=t)
            return out
        return k
    fails(classic(cla("arange"), X), "nl.arange: stop must be an integer known at trace time")
    fails(classic(cla("reshape"), X), "reshape: a dimension must be an integer")
    fails(classic(cla("mgrid"), X), "nl.mgrid: the grid has no axis .x")
    fails(classic(cla("memset"), X), "memset: shape must be a tuple of dims")
    np.testing.assert_array_equal(classic(cla("none"), X)(), X[:, 0:4])


def test_classic_mask_limits_lanes_and_bounds():
    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        i_p, i_f = cl.mgrid[0:128, 0:4]
        t = cl.zeros((128, 4), dtype=cl.float32, buffer=cl.sbuf)
        t[i_p, i_f] = cl.load(a[i_p, i_f + 510], mask=(i_f + 510 < 512))   # OOB lanes masked
        cl.store(out, value=t)
        return out
    got = classic(k, X)()
    np.testing.assert_array_equal(got[:, 0:2], X[:, 510:512])
    np.testing.assert_array_equal(got[:, 2:4], 0)


def test_classic_mask_comparisons_share_one_lane_grid():
    """A mask whose comparisons index grids that do not broadcast together (the partition
    nl.arange put on the free axis beside a free arange of another size) is a located error,
    not a crash; the same mask with each arange on its own axis runs (index.mask_grid)."""
    def kernel(partition_index):
        def k(a):
            out = cl.ndarray((128, 512), dtype=cl.float32, buffer=cl.shared_hbm)
            t = cl.zeros((128, 512), dtype=cl.float32, buffer=cl.sbuf)
            i_p = partition_index()
            i_f = cl.arange(512)[None, :]
            t[...] = cl.load(a[cl.arange(128)[:, None], i_f], mask=(i_p < 100) & (i_f < 512))
            cl.store(out, value=t)
            return out
        return k
    got = classic(kernel(lambda: cl.arange(128)[:, None]), X)()
    np.testing.assert_array_equal(got[:100], X[:100])
    fails(classic(kernel(lambda: cl.arange(128)[None, :]), X),
          "mask= comparisons index lane grids that do not broadcast", "nl.arange(P)[:, None]")


def test_current_mask_and_arange_removed():
    def k(a):
        nl.exp(nl.load(a[0:128, 0:4]), mask=None)
        nl.load(a[0:128, 0:4], mask=True)
        return a
    with pytest.raises(UnsupportedError, match="mask=...\\) \\(removed in the current API\\)"):
        current(k, X)()
    with pytest.raises(UnsupportedError, match="nki.language.arange"):
        nl.arange  # noqa: B018


def test_classic_block_tensor_must_be_indexed_to_a_tile():
    def k(a):
        t = cl.zeros((4, cl.par_dim(8), 8), dtype=cl.float32, buffer=cl.sbuf)
        cl.add(t, 32)
        return a
    fails(classic(k, X), "must be indexed down to a tile", "t\\[b\\]".replace("\\", ""))


def test_transpose_rank_and_size_limits():
    def k(a, shape):
        t = cl.zeros(shape, dtype=cl.float32, buffer=cl.sbuf)
        cl.transpose(t)
        return a
    classic(k, X, (64, 128))()
    fails(classic(k, X, (64, 32, 2)), "rank must be 2")
    fails(classic(k, X, (128, 129)), "partition dim exceeds 128")


def test_unsupported_memory_rejected():
    def k(a):
        t = cl.ndarray((4, 4), dtype=cl.float32, buffer=cl.sbuf)
        cl.load(t)
        return a
    fails(classic(k, X), "source must be an HBM tensor")

    def k2(a):
        cl.exp(a)
        return a
    fails(classic(k2, X), "must be in SBUF or PSUM")


def test_num_partition_mismatch_rejected():
    def k(a):
        x = cl.zeros((128, 512), dtype=cl.float32, buffer=cl.sbuf)
        y = cl.zeros((1, 512), dtype=cl.float32, buffer=cl.sbuf)
        cisa.tensor_tensor(x, y, op=cl.add)
        return a
    fails(classic(k, X), "partition dims differ", "broadcast_to")


def test_tensor_access_out_of_bound_rejected():
    def k(a):
        i_p, i_f = cl.mgrid[0:128, 0:512]
        cl.load(a[i_p, 512 + i_f])
        return a
    fails(classic(k, X), "out of bounds")


# ---- assignment ------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["classic", "current"])
def test_assignment_destination_not_smaller(api):
    lang = cl if api == "classic" else nl
    run = classic if api == "classic" else current

    def k(a, f):
        x = lang.ndarray((128, 512), dtype=lang.float32, buffer=lang.sbuf)
        x[...] = lang.load(a)
        y = lang.ndarray((128, f), dtype=lang.float32, buffer=lang.sbuf)
        y[...] = lang.copy(x[:, 0:1])                    # broadcast a column: fine
        y[...] = x
        return a
    run(k, X, 512)()
    fails(run(k, X, 1), "destination is smaller than the value", "size-1 dims")


# ---- start partition -------------------------------------------------------------------------
@pytest.mark.parametrize("p0,n,ok", [(0, 128, True), (64, 64, True), (32, 64, False),
                                     (96, 32, True), (16, 32, False), (65, 1, False),
                                     (64, 33, True), (0, 65, True)])
def test_start_partition_rule(p0, n, ok):
    def k(a):
        t = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(t[p0:p0 + n, :], 1.0)                # a compute-engine access
        return a
    if ok:
        current(k, X)()
    else:
        fails(current(k, X), f"access of {n} partitions must start at partition",
              "legal quadrant")


def test_start_partition_rule_not_for_dma():
    def k(a):
        out = nl.ndarray((1, 4), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a[0:128, 0:4])
        nisa.dma_copy(out, t[5:6, :])
        return out
    np.testing.assert_array_equal(current(k, X)(), X[5:6, 0:4])


# ---- direct allocation (classic) -------------------------------------------------------------
def test_classic_mod_alloc_places_and_aliases_blocks():
    def k(a):
        out = cl.ndarray((2, 128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        t = cl.ndarray((3, cl.par_dim(128), 4), dtype=cl.float32,
                       buffer=ncc.sbuf.mod_alloc(base_addr=64, num_free_tiles=(2,)))
        for i in cl.sequential_range(3):
            t[i] = cl.load(a[0:128, i * 4:(i + 1) * 4])
        cl.store(out[0], value=t[0])                    # block 2 reused block 0's bytes
        cl.store(out[1], value=t[1])
        return out
    got = classic(k, X)()
    np.testing.assert_array_equal(got[0], X[:, 8:12])
    np.testing.assert_array_equal(got[1], X[:, 4:8])


def test_classic_psum_alloc_function_and_rules():
    def k(a, bank):
        cl.ndarray((2, cl.par_dim(128), 512), dtype=cl.float32,
                       buffer=ncc.psum.alloc(lambda idx, pdim_size, fdim_size:
                                             (bank + idx[0], 0, 0)))
        return a
    classic(k, X, 6)()                                  # banks 6, 7: last legal
    fails(classic(k, X, 7), "PSUM bank id out of range", "banks 0..7")


def test_classic_direct_allocation_rules():
    def start(a):
        cl.ndarray((cl.par_dim(64), 4), dtype=cl.float32,
                   buffer=ncc.sbuf.alloc(lambda idx, pdim_size, fdim_size: (32, 0)))
        return a
    fails(classic(start, X), "start-partition rule", "multiple of 32")

    def psum_off(a):
        cl.ndarray((cl.par_dim(128), 4), dtype=cl.float32,
                   buffer=ncc.psum.alloc(lambda idx, pdim_size, fdim_size: (0, 0, 64)))
        return a
    fails(classic(psum_off, X), "start_partition and byte_addr must both be 0")

    def big(a):
        cl.ndarray((cl.par_dim(128), 1024), dtype=cl.float32,
                   buffer=ncc.psum.mod_alloc(base_bank=0))
        return a
    fails(classic(big, X), "TC#2|may not span banks")

    def sbuf_end(a, addr):
        cl.ndarray((cl.par_dim(128), 4), dtype=cl.float32,
                   buffer=ncc.sbuf.mod_alloc(base_addr=addr))
        return a
    usable = hw.target("trn2").sbuf_bytes_per_partition
    classic(sbuf_end, X, usable - 16)()
    fails(classic(sbuf_end, X, usable - 15), "outside the usable bytes per partition")

    def init(a):
        cl.zeros((cl.par_dim(128), 4), dtype=cl.float32, buffer=ncc.sbuf.mod_alloc(base_addr=0))
        return a
    fails(classic(init, X), "err_tensor_creation_on_scratchpad_with_init_value_not_supported")


@pytest.mark.parametrize("direct", [False, True])
def test_classic_first_matmul_into_unwritten_psum_overwrites(direct):
    def k(a, b):
        out = cl.ndarray((128, 512), dtype=cl.float32, buffer=cl.shared_hbm)
        buf = ncc.psum.mod_alloc(base_bank=7) if direct else cl.psum
        acc = cl.ndarray((2, cl.par_dim(128), 512), dtype=cl.float32, buffer=buf)
        for m in cl.affine_range(2):
            acc[1] += cisa.nc_matmul(cl.load(a[m * 128:(m + 1) * 128, :]),
                                     cl.load(b[m * 128:(m + 1) * 128, :]))
        res = cl.ndarray((128, 512), dtype=cl.float32, buffer=cl.sbuf)
        res[...] = cl.copy(acc[1])
        cl.store(out, value=res)
        return out
    a, b = rand(256, 128, seed=1), rand(256, 512, seed=2)
    np.testing.assert_allclose(classic(k, a, b)(), a.T @ b, rtol=1e-4, atol=1e-4)


def test_classic_trace_sub_kernel():
    @cnki.trace
    def sub(a, out):
        cl.store(out, value=cl.load(a[0:128, 0:4]))

    def k(a):
        out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
        sub(a, out)
        return out
    np.testing.assert_array_equal(classic(k, X)(), X[:, 0:4])


def test_load_package_module_with_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("COLS = 4\n")
    (pkg / "sub" / "kern.py").write_text(
        "import nki\nimport nki.language as nl\nfrom ..util import COLS\n\n"
        "@nki.jit\ndef k(a):\n    out = nl.ndarray((128, COLS), dtype=a.dtype, "
        "buffer=nl.shared_hbm)\n    nl.store(out, value=nl.load(a[0:128, 0:COLS]))\n"
        "    return out\n")
    np.testing.assert_array_equal(sim.load(pkg / "sub" / "kern.py", "k")(X), X[:, 0:4])


# ---- loading ---------------------------------------------------------------------------------
def test_load_registers_module_for_dataclasses(tmp_path):
    (tmp_path / "dk.py").write_text(
        "from dataclasses import dataclass\nimport nki\nimport nki.language as nl\n\n"
        "@dataclass\nclass Cfg:\n    cols: int = 4\n\n"
        "@nki.jit\ndef k(a):\n    out = nl.ndarray((128, Cfg().cols), dtype=a.dtype, "
        "buffer=nl.shared_hbm)\n    nl.store(out, value=nl.load(a[0:128, 0:Cfg().cols]))\n"
        "    return out\n")
    np.testing.assert_array_equal(sim.load(tmp_path / "dk.py", "k")(X), X[:, 0:4])


def test_classic_mask_of_loop_indices_skips_instruction():
    """A mask of affine_range indices alone that no iteration but the first keeps: the
    instruction is skipped elsewhere (nothing accumulated, no result tile on chip), kept whole
    in the first (the boundary: i < 1 keeps i = 0, not i = 1)."""
    a = rand(128, 128, seed=3)
    b = rand(128, 512, seed=4)

    def k(x, y):
        out = cl.ndarray((128, 512), dtype=cl.float32, buffer=cl.shared_hbm)
        st = cl.load(x)
        mv = cl.load(y)
        acc = cl.zeros((128, 512), dtype=cl.float32, buffer=cl.psum)
        for i in cl.affine_range(3):
            acc += cisa.nc_matmul(st, mv, mask=(i < 1))
        t = cl.ndarray((128, 512), dtype=cl.float32, buffer=cl.sbuf)
        for i in cl.affine_range(3):
            t[...] = cisa.tensor_copy(acc, mask=(i >= 2))   # only the last iteration copies
        cl.store(out, value=t)
        return out
    r = sim.run(cnki.jit(k), [a, b], report=False)
    np.testing.assert_allclose(r.outputs[0], a.T @ b, rtol=1e-4, atol=1e-4)
    ops = [i.op.rsplit(".", 1)[-1] for i in r.instrs]
    assert ops.count("nc_matmul") == 1 and ops.count("tensor_copy") == 1
    # a skipped result tile is never on chip: the peak is the loads plus t
    assert r.peak_sbuf_bytes == (128 + 512 + 512) * 4


def test_comparison_result_dtype_per_api():
    """Current API (SH nl.equal ... nl.greater_equal, nl.logical_not, nki 0.3): the result
    defaults to the input tile's dtype (1.0 / 0.0 for float32; two tiles: the promoted dtype)
    and dtype=nl.uint8 gives the boolean-like tile; classic (S25, SDK 2.25): dtype=bool
    (uint8) by default."""
    a = rand(8, 16)
    b = rand(8, 16, seed=1)
    seen = {}

    def cur(x, y):
        t, u = nl.load(x), nl.load(y)
        outs = {"lt": nl.less(t, u), "ge0": nl.greater_equal(t, 0.0),
                "not": nl.logical_not(nl.greater(t, 0.0)),
                "bf": nl.equal(nl.copy(t, dtype=nl.bfloat16), nl.copy(t, dtype=nl.bfloat16)),
                "u8": nl.less(t, u, dtype=nl.uint8)}
        seen.update({k: v.dtype for k, v in outs.items()})
        out = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=outs["lt"])
        return out
    got = sim.simulate(nki.jit(cur))(a, b)
    np.testing.assert_array_equal(got, (a < b).astype(np.float32))
    assert {k: str(v) for k, v in seen.items()} == {
        "lt": "float32", "ge0": "float32", "not": "float32", "bf": "bfloat16", "u8": "uint8"}

    def old(x, y):
        r = cl.less(cl.load(x), cl.load(y))
        seen["classic"] = r.dtype
        out = cl.ndarray((8, 16), dtype=cl.uint8, buffer=cl.shared_hbm)
        cl.store(out, value=r)
        return out
    got = cnki.simulate_kernel(cnki.jit(old), a, b)
    np.testing.assert_array_equal(got, (a < b).astype(np.uint8))
    assert seen["classic"] == np.uint8


def test_current_broadcast_to_dtype_and_identity_dst():
    """SH nl.broadcast_to(x, shape, dtype=) returns a cast copy when dtype differs (same dtype:
    no copy); SH nl.shared_identity_matrix(n, dtype, dst=) writes the identity into an SBUF
    dst and returns it (a PSUM dst is refused)."""
    a = rand(8, 16)
    seen = {}

    def k(x):
        col = nl.load(x[:, 0:1])
        same = nl.broadcast_to(col, (8, 16), dtype=nl.float32)
        low = nl.broadcast_to(col, (8, 16), dtype=nl.bfloat16)
        seen.update(same=str(same.dtype), low=str(low.dtype))
        eye = nl.ndarray((8, 8), dtype=nl.float32, buffer=nl.sbuf)
        r = nl.shared_identity_matrix(8, dtype=nl.float32, dst=eye)
        seen["is_dst"] = id(r) == id(eye)
        out = nl.ndarray((8, 24), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out[:, 0:16], value=nl.copy(low, dtype=nl.float32))
        nl.store(out[:, 16:24], value=eye)
        return out
    got = sim.simulate(nki.jit(k))(a)
    want = np.broadcast_to(a[:, 0:1].astype(ml_dtypes.bfloat16).astype(np.float32), (8, 16))
    np.testing.assert_array_equal(got[:, 0:16], want)
    np.testing.assert_array_equal(got[:, 16:24], np.eye(8, dtype=np.float32))
    assert seen == {"same": "float32", "low": "bfloat16", "is_dst": True}

    def bad(x):
        eye = nl.ndarray((8, 8), dtype=nl.float32, buffer=nl.psum)
        nl.shared_identity_matrix(8, dtype=nl.float32, dst=eye)
        return x
    fails(current(bad, a), "shared_identity_matrix: dst must be an SBUF tensor",
          "buffer=nl.sbuf")


def test_classic_allocated_kernel_activation_bias_and_transpose():
    """S25 nki.errors.rst (SDK 2.25): in an allocated kernel (one that places tensors with
    ncc.sbuf/psum allocators) an activation passes bias (err_bias_tensor_must_be_specified_in_
    allocation; nl.exp lowers to a biasless activation and fails) and no transpose runs on
    TensorE (err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel: nc_transpose
    without engine=vector, nl.matmul without transpose_x). The same calls pass in a kernel that
    allocates automatically, and the allocated forms the doc allows pass."""
    a = rand(32, 32)

    def kern(call, allocated=True):
        def k(x):
            out = cl.ndarray((32, 32), dtype=cl.float32, buffer=cl.shared_hbm)
            buf = ncc.sbuf.mod_alloc(base_addr=0) if allocated else cl.sbuf
            t = cl.ndarray((cl.par_dim(32), 32), dtype=cl.float32, buffer=buf)
            t[...] = cl.load(x)
            zb = cl.ndarray((cl.par_dim(32), 1), dtype=cl.float32,
                            buffer=ncc.sbuf.mod_alloc(base_addr=256) if allocated else cl.sbuf)
            zb[...] = cisa.memset((32, 1), 0.0, cl.float32)
            r = call(t, zb)
            cl.store(out, value=cl.copy(r, dtype=cl.float32))
            return out
        return classic(k, a)

    def act(t, zb):
        return cisa.activation(np.exp, data=t)

    def act_bias(t, zb):
        return cisa.activation(np.exp, data=t, bias=zb)

    def nl_exp(t, zb):
        return cl.exp(t)

    def tr(t, zb):
        return cisa.nc_transpose(t)

    def tr_vec(t, zb):
        return cisa.nc_transpose(t, engine=cisa.vector_engine)

    def mm(t, zb):
        return cl.matmul(t, t)

    def mm_t(t, zb):
        return cl.matmul(t, t, transpose_x=True)

    for call in (act, nl_exp):
        fails(kern(call), "err_bias_tensor_must_be_specified_in_allocation", "bias=")
    for call in (tr, mm):
        fails(kern(call), "err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel",
              "nisa.nc_matmul")
    np.testing.assert_allclose(kern(act_bias)(), np.exp(a), rtol=1e-5)
    np.testing.assert_array_equal(kern(tr_vec)(), a.T)
    np.testing.assert_allclose(kern(mm_t)(), a.T @ a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kern(act, allocated=False)(), np.exp(a), rtol=1e-5)
    np.testing.assert_allclose(kern(nl_exp, allocated=False)(), np.exp(a), rtol=1e-5)
    np.testing.assert_array_equal(kern(tr, allocated=False)(), a.T)
    np.testing.assert_allclose(kern(mm, allocated=False)(), a @ a, rtol=1e-4, atol=1e-4)


def test_mean_of_integers_dtype_per_api():
    """nl.mean of an int32 tile: float32 result in the classic API (S25 mean: "float32
    intermediate and return values are used for integer inputs"), the input's int32 in the
    current one (SH mean, nki 0.3: dtype defaults to the input tile's, float32 intermediates);
    a float tile keeps its dtype in both."""
    ai = (np.arange(8, dtype=np.int32)[:, None] * 5 - 20
          + np.array([-1, 1, -2, 2, -3, 3], np.int32))                 # row means exact
    seen = {}

    def cur(x):
        m = nl.mean(nl.load(x), axis=1)
        seen["cur"] = str(m.dtype)
        out = nl.ndarray((8, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        nl.store(out, value=m)
        return out
    np.testing.assert_array_equal(sim.simulate(nki.jit(cur))(ai)[:, 0], ai.mean(1))

    def old(x):
        m = cl.mean(cl.load(x), axis=1)
        seen["classic"] = str(m.dtype)
        out = cl.ndarray((8, 1), dtype=cl.float32, buffer=cl.shared_hbm)
        cl.store(out, value=m)
        return out
    np.testing.assert_array_equal(cnki.simulate_kernel(cnki.jit(old), ai)[:, 0], ai.mean(1))
    assert seen == {"cur": "int32", "classic": "float32"}


def test_classic_expand_dims_and_gather_flattened_limits():
    """S25 nl.expand_dims (SDK 2.25): new axes only after the last index (axis=2 of a 2-D tile
    passes, axis=1 fails; the tensor method .expand_dims takes any position). S25
    nl.gather_flattened: uint32 indices (int32 fails) and 2- to 4-D operands (4-D passes, 5-D
    fails)."""
    a = rand(8, 16)

    def ed(axis, method=False):
        def k(x):
            t = cl.load(x)
            e = t.expand_dims(axis) if method else cl.expand_dims(t, axis)
            out = cl.ndarray(e.shape, dtype=cl.float32, buffer=cl.shared_hbm)
            cl.store(out, value=e)
            return out
        return classic(k, a)
    assert ed(2)().shape == (8, 16, 1)
    assert ed(1, method=True)().shape == (8, 1, 16)
    fails(ed(1), "nl.expand_dims: new axes only after the last index", "axis=2")

    def gf(idx_dtype, shape=(8, 16)):
        def k(x):
            t = cl.load(x.reshape(shape))
            ix = cl.zeros(shape, dtype=idx_dtype)
            r = cl.gather_flattened(data=t, indices=ix)
            out = cl.ndarray(shape, dtype=cl.float32, buffer=cl.shared_hbm)
            cl.store(out, value=r)
            return out
        return classic(k, a)
    np.testing.assert_array_equal(gf(cl.uint32, (8, 2, 2, 4))(),
                                  np.broadcast_to(a[:, :1].reshape(8, 1, 1, 1), (8, 2, 2, 4)))
    fails(gf(cl.int32), "gather_flattened: indices must be uint32", "uint32 tile")
    fails(gf(cl.uint32, (8, 2, 2, 2, 2)), "gather_flattened: data must be 2-, 3- or "
          "4-dimensional")


def test_classic_atomic_rmw_add_on_indirect_dst_only():
    """S25 nl.atomic_rmw (SDK 2.25): op is np.add only and dst is indexed indirectly (an index
    tile); np.add into rows picked by an index tile accumulates."""
    a = rand(8, 16)
    rows = np.array([[3], [1], [0], [7], [2], [6], [5], [4]], np.int32)

    def k(op, indirect=True):
        def f(x, r):
            out = cl.ndarray(x.shape, dtype=x.dtype, buffer=cl.shared_hbm)
            cl.store(out, value=cl.load(x))
            i_p, i_f = cl.arange(8)[:, None], cl.arange(16)[None, :]
            idx = cl.load(r)
            dst = out[idx[i_p, 0], i_f] if indirect else out
            cl.atomic_rmw(dst, value=cl.load(x), op=op)
            return out
        return classic(f, a, rows)
    want = a.copy()
    want[rows[:, 0]] += a
    np.testing.assert_allclose(k(np.add)(), want, rtol=1e-6)
    fails(k(np.multiply), "nl.atomic_rmw: op supports only np.add", "op=np.add")
    fails(k(np.add, indirect=False), "dst must use indirect")


def test_classic_loop_reduce_accumulates_into_assigned_tile():
    """S25 nl.loop_reduce (SDK 2.25): ``acc[...] = nl.loop_reduce(x, op=np.add,
    loop_indices=[k])`` is a tensor_tensor accumulate into acc across the affine loop (legal,
    no loop-carried-dependency error); under mask=(k < 3) the k = 3 iteration adds nothing; a
    non-reduction operator (np.divide) is refused."""
    a = rand(4, 8, 16)

    def k(op=np.add, mask=True):
        def f(x):
            out = cl.ndarray((8, 16), dtype=cl.float32, buffer=cl.shared_hbm)
            acc = cl.zeros((8, 16), dtype=cl.float32)
            for i in cl.affine_range(4):
                kw = {"mask": i < 3} if mask else {}
                acc[...] = cl.loop_reduce(cl.load(x[i]), op=op, loop_indices=[i], **kw)
            cl.store(out, value=acc)
            return out
        return classic(f, a)
    np.testing.assert_allclose(k()(), a[:3].sum(0), rtol=1e-5)
    np.testing.assert_allclose(k(np.maximum, mask=False)(), np.maximum(a.max(0), 0.0),
                               rtol=1e-6)
    with pytest.raises(SimError, match="cannot be used as a reduction"):
        k(np.divide)()


def test_classic_indirect_index_on_free_dim_rejected():
    """S25 nki.errors.rst err_indirect_indices_free_dim (SDK 2.25): a dynamic (index tile)
    load index goes on the partition (or block) dim: an index tile on the free dim of the
    access fails, the documented form nl.load(data[idx[i_p, 0], i_f]) gathers rows."""
    a = rand(64, 32)
    ids = np.arange(8, dtype=np.int32)[::-1].reshape(8, 1).copy()

    def k(form):
        def f(x, ix):
            i_p, i_f = cl.arange(8)[:, None], cl.arange(32)[None, :]
            idx = cl.load(ix)
            if form == "rows":
                t = cl.load(x[idx[i_p, 0], i_f])
            elif form == "free":
                t = cl.load(x[i_p, idx[i_p, 0]])
            else:
                t = cl.load(x[i_p, cl.load(ix.reshape((1, 8)))[0, cl.arange(8)[None, :]]])
            out = cl.ndarray(t.shape, dtype=x.dtype, buffer=cl.shared_hbm)
            cl.store(out, value=t)
            return out
        return classic(f, a, ids)
    np.testing.assert_array_equal(k("rows")(), a[ids[:, 0]])
    fails(k("free"), "err_indirect_indices_free_dim", "nl.arange(F)[None, :]")
    fails(k("row_tile"), "err_indirect_indices_free_dim", "nl.load(idx[i_p])")
